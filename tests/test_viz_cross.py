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
