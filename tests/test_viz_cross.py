"""viz.cross: the method panels draw one annotated panel per modality with readable text colours."""
import matplotlib

matplotlib.use("Agg")

from uqxai_lib.viz import cross as vc


def test_method_panels_one_panel_per_modality_with_contrasting_text():
    rows = [dict(modality=m, method=me, source=s, score=sc, auroc=a, auroc_ci95=[a - 0.1, a + 0.1])
            for m, a0 in (("ECG", 0.3), ("volume", 0.7)) for me in ("grad_cam", "lime") for s in ("test_time",)
            for sc, a in (("spearman", a0), ("jaccard", 1 - a0))]
    rows[0]["auroc"] = None
    fig = vc.plot_method_panels(rows, modalities=["ECG", "volume"], methods=["grad_cam", "lime"],
                                sources=["test_time"], scores=["spearman", "jaccard"])
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["ECG", "volume"]
    texts = [t.get_text() for t in panels[0].texts]
    assert texts[0] == "–" and "0.70*" in texts  # undefined cell; 0.7 with an interval above 0.5
    assert fig.get_size_inches()[0] <= 6.9 + 1e-9  # fits the 688 px column at 100 dpi
    import matplotlib.pyplot as plt
    cmap = plt.get_cmap("PuOr")
    assert vc.text_colour(cmap(0.0)) == "white" and vc.text_colour(cmap(0.5)) == "black"


def test_method_table_has_intervals_for_every_cell():
    rows = [dict(modality="ECG", method="lime", source="mc_dropout", score="spearman", auroc=0.6,
                 auroc_ci95=[0.4, 0.8], aurc=0.1, added_delta=0.01, added_ci95=[-0.1, 0.12],
                 added_verdict="no detectable difference", n_samples=4)]
    t = vc.method_table(rows)
    assert t.loc[0, "95% CI"] == "[0.400, 0.800]" and t.loc[0, "added 95% CI"] == "[-0.100, 0.120]"
    assert t.loc[0, "method"] == "LIME"


def test_risk_coverage_grid_and_alpha_frames_draw_one_panel_and_one_frame_row_per_modality():
    import numpy as np

    op = {"coverage": np.linspace(1, 0.1, 5), "risk": np.linspace(0.3, 0.0, 5), "test_index": [0, 1, 2],
          "points": [{"alpha": a, "coverage": 0.5, "risk": 0.05, "answered": [True, False, True]} for a in (0.1, 0.2)]}
    ops = {"A": {"test_time: jaccard": op, "test_time: entropy": op}, "B": {"mc_dropout: spearman": op},
           "C": {"rashomon: jaccard": op}}
    fig = vc.plot_risk_coverage_grid(ops, {"A": 0.1, "B": 0.1, "C": 0.2})
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert len(fig.axes) == 4 and [ax.get_title() for ax in shown] == ["A", "B", "C"]
    assert len(shown[0].get_lines()) == 2 * 2 + 1  # two curves, their points, the α line
    frames, labels = vc.alpha_frames({k: ops[k] for k in ("B", "C")}, {"B": [1, 0, 1], "C": [0, 0, 1]}, delta=0.1)
    assert labels == ["B", "C"] and [len(r) for r in frames] == [2, 2]


def test_tables_put_key_columns_first_and_format_intervals():
    rows = [{"modality": "A", "source": "s", "auroc_baselines": 0.7, "auroc_combined": 0.71234, "delta": 0.01234,
             "delta_ci95": [-0.02, 0.04], "verdict": "no detectable difference"}]
    df = vc.added_table(rows)
    assert list(df.columns[:2]) == ["modality", "source"] and df["95% CI"][0] == "[-0.020, 0.040]"
    assert df["AUROC + explanation"][0] == 0.712


def test_tables_show_a_missing_interval_as_na_never_nan():
    nan = float("nan")
    added = vc.added_table([{"modality": "A", "source": "s", "auroc_baselines": 0.7, "auroc_combined": nan,
                             "delta": nan, "delta_ci95": [nan, nan], "verdict": "undefined"}])
    design = vc.design_table([{"modality": "A", "source": "s", "score": "jaccard", "alternative": "alt",
                               "auroc_a": 0.6, "auroc_b": 0.6, "delta": nan, "delta_ci95": [nan, 0.1],
                               "verdict": "undefined"}])
    assert added["95% CI"][0] == "n/a" and design["95% CI"][0] == "n/a"


def test_matrix_runs_sources_down_the_page_and_modalities_across():
    """Few modalities, many (source, score) pairs: the pairs are the rows, so every cell's AUROC and
    interval fit on one line inside the 688 px column; an undefined cell reads n/a."""
    rows = [dict(modality=m, source=s, score=sc, auroc=0.62, auroc_ci95=[0.51, 0.7])
            for m in ("ECG", "MRI", "dermoscopy", "volume") for s in ("test_time", "rashomon_finetuned")
            for sc in ("jaccard", "spearman")]
    rows[-1] = {**rows[-1], "auroc": None, "auroc_ci95": [None, None]}
    fig = vc.plot_matrix(rows, modalities=["ECG", "MRI", "dermoscopy", "volume"],
                         sources=["test_time", "rashomon_finetuned"], scores=["jaccard", "spearman"])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["ECG", "MRI", "dermoscopy", "volume"]
    ylab = [t.get_text() for t in ax.get_yticklabels()]
    assert len(ylab) == 4 and ylab[2] == "Rashomon set (fine-tuned) · Jaccard (SUE)"
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == 16 and texts[0] == "0.62 [0.51, 0.70]" and texts[-1] == "n/a"
    assert fig.get_size_inches()[0] <= 6.9 + 1e-9
