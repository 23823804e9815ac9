"""Tests of the ECG chapter's tables, headline numbers and figures (uqxai_lib.viz.ecg)."""
import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from uqxai_lib import perturb as P  # noqa: E402
from uqxai_lib.data.synthetic_ecg import make_synthetic_ecg  # noqa: E402
from uqxai_lib.models.cnn_bilstm import CNNBiLSTM  # noqa: E402
from uqxai_lib.studies import ecg as S  # noqa: E402
from uqxai_lib.viz import ecg as vz  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def data():
    return make_synthetic_ecg(n_subjects=6, windows_per_subject=2, seed=0)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return CNNBiLSTM(channels=(4, 8, 8), hidden=8).eval()


def _row(n_mis=9, effect=0.1, verdict="higher"):
    return {"sue_correct_mean": 0.7, "sue_correct_sd": 0.1, "n_correct": 26, "sue_mis_mean": 0.6 if n_mis else None,
            "sue_mis_sd": 0.2 if n_mis else None, "n_mis": n_mis, "effect": effect if n_mis else float("nan"),
            "ci95": [0.05, 0.15] if n_mis else [float("nan")] * 2, "verdict": verdict if n_mis else "undefined"}


def test_sue_table_puts_the_papers_difference_beside_ours_labelled_as_theirs():
    rows = {k: _row() for k in P.PERTURBATIONS}
    t = vz.sue_table(rows, paper=S.PAPER_TABLE1).data
    assert list(t["noise"]) == ["Gaussian noise", "Power-line interference", "Motion artefact", "Electrode motion"]
    assert list(t["theirs: difference"]) == ["+0.117", "+0.152", "+0.383", "+0.358"]  # Table 1 of the paper
    assert "correct (n = 26)" in t.columns and list(t["verdict"]) == ["higher"] * 4
    assert t["difference [95 % CI]"].iloc[0] == "+0.100 [0.050, 0.150]"
    assert "theirs: difference" not in vz.sue_table(rows).data.columns


def test_empty_misclassified_group_gives_dashes_in_the_table():
    t = vz.sue_table({"gaussian": _row(n_mis=0)}).data
    assert t.iloc[0]["misclassified (n = 0)"] == "–" and t.iloc[0]["verdict"] == "undefined"
    assert t.iloc[0]["difference [95 % CI]"] == "–"


def test_plot_perturbations_titles_report_the_achieved_snr(data):
    x = data.x[:1]
    g = torch.Generator().manual_seed(0)
    noisy = {k: P.make_perturbation(k, 7.0)(x, g)[0, 0] for k in P.PERTURBATIONS}
    fig = vz.plot_perturbations(x[0, 0], noisy, S.achieved_snr(x[0, 0], noisy), target_snr_db=7.0)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == 4 and all(t.endswith(": 7.0 dB") for t in titles)
    assert "asked SNR 7 dB" in fig._suptitle.get_text()


def test_figures_are_drawn_with_and_without_misclassified_windows(data, model):
    x = data.x
    fig = vz.plot_class_examples(x[:, 0], data.y, data.classes, data.mask)
    assert len(fig.axes) == 2
    r = S.perturbation_sue(model, x, model.cam_layer_name, "gaussian", 10.0, 3, seed=0)
    clean_maps = r.maps.mean(0)
    for correct in (r.clean_pred == data.y, torch.ones(len(x), dtype=torch.bool)):
        fig = vz.plot_example_pair(x[:, 0], clean_maps, r.maps, r.sue, S.pick_examples(r.sue, correct), data.y,
                                   r.clean_pred,
                                   classes=data.classes, mask=data.mask)
        fig.canvas.draw()
    assert "no misclassified window" in fig.axes[1].get_title()


def test_sweep_frames_make_a_png_grid_kind_by_snr(data, model):
    xw = data.x[:1]
    recs = S.sue_sweep(model, xw, model.cam_layer_name, ("gaussian", "baseline"), (0.0, 20.0, 30.0), 2, seed=0,
                       keep_maps=True)
    noisy = S.first_draws(xw, recs)
    frames = vz.sweep_frames(recs[0]["maps"][0, 0], recs, noisy, int(data.y[0]), dpi=30)
    assert len(frames) == 2 and all(len(r) == 3 for r in frames)
    im = Image.open(io.BytesIO(frames[1][2]))
    assert im.format == "PNG"
    with pytest.raises(ValueError, match="keep_maps=True"):
        vz.sweep_frames(recs[0]["maps"][0, 0], [{k: v for k, v in r.items() if k != "maps"} for r in recs], noisy, 0)
    two = S.sue_sweep(model, data.x[:2], model.cam_layer_name, ("gaussian",), (0.0,), 2, seed=0, keep_maps=True)
    with pytest.raises(ValueError, match="one window"):
        vz.sweep_frames(recs[0]["maps"][0, 0], two, {("gaussian", 0.0): data.x[0, 0]}, 0)


def test_split_table_counts_windows_subjects_and_cad_share(data):
    from uqxai_lib.viz.common import split_table

    t = split_table({"all": data, "first": data.subset(torch.arange(4))}, items="windows", groups="subjects",
                    positive="CAD share", percent=False, digits=3)
    assert t.loc["all", "windows"] == len(data) and t.loc["first", "subjects"] == 2
    assert t.loc["all", "CAD share"] == pytest.approx(float(data.y.float().mean()), abs=1e-3)


def test_variant_baseline_strata_and_layer_tables_and_figures_are_drawn():
    rows = [{"reference": ref, "q": q, "target": t, "auroc": 0.6 + q, "auroc_ci95": [0.5, 0.9], "n_empty": 2}
            for ref in ("pairs", "clean") for t in ("clean", "own") for q in (0.05, 0.1, 0.2, 0.3)]
    t = vz.variants_table(rows).data
    assert len(t) == 16 and t.iloc[0]["windows left out (empty map)"] == 2
    fig = vz.plot_variants(rows)
    assert len(fig.axes[0].get_legend().get_texts()) == 4
    b = vz.baselines_table({"auroc": 0.7, "auroc_ci95": [0.6, 0.8]},
                           {"margin": {"auroc": 0.8, "auroc_ci95": [0.7, 0.9]}},
                           {"strongest": "margin", "auroc_strongest": 0.8, "auroc_combination": 0.79,
                            "auroc_with_score": 0.82, "delta": 0.02, "delta_ci95": [-0.01, 0.05],
                            "verdict": "no detectable difference"}).data
    assert b.iloc[0]["AUROC"] == "0.700" and "gain 0.020" in b.iloc[-1]["95 % interval"]
    assert b.iloc[-1]["score"] == "baselines + SUE (out of fold), against softmax margin of the draws"
    s = vz.strata_table([{"severity": "mild CAD", "n_correct": 3, "n_mis": 0, "auroc": float("nan"),
                          "auroc_ci95": [float("nan")] * 2}]).data
    assert s.iloc[0]["AUROC"] == "–"
    lt = vz.layer_choice_table([{"layer": "features.0", "resolution": 500, "mass_in_mask": 0.5, "chance": 0.4,
                                 "pointing_game": 0.6, "sue_mean": 0.5, "sue_auroc": 0.7, "sue_auroc_ci95": [0.6, 0.8],
                                 "n_mis": 4}]).data
    assert lt.iloc[0]["map samples"] == 500 and "layer" in lt.columns
    wc = {"cells": [{"true": "healthy", "predicted": "healthy", "n": 9, "sue_mean": 0.8, "sue_sd": 0.1},
                    {"true": "healthy", "predicted": "CAD", "n": 2, "sue_mean": 0.4, "sue_sd": 0.1},
                    {"true": "CAD", "predicted": "healthy", "n": 1, "sue_mean": 0.7, "sue_sd": float("nan")},
                    {"true": "CAD", "predicted": "CAD", "n": 5, "sue_mean": 0.3, "sue_sd": 0.1}],
          "rows": [{"predicted": "healthy", "auroc": 0.4, "auroc_ci95": [0.2, 0.6],
                    "verdict": "no detectable difference"},
                   {"predicted": "CAD", "auroc": float("nan"), "auroc_ci95": [float("nan")] * 2,
                    "verdict": "undefined"}],
          "pooled": {"auroc": 0.45, "ci95": [0.3, 0.6], "verdict": "no detectable difference"}}
    w = vz.within_class_table(wc).data
    assert list(w["predicted"]) == ["CAD", "CAD", "healthy", "healthy", "pooled within class"]
    assert w.iloc[2]["AUROC within the predicted class"] == "0.400 [0.200, 0.600]" and w.iloc[0][
        "AUROC within the predicted class"] == "undefined" and w.iloc[-1]["n"] == 17


def test_sanity_figure_has_a_colour_bar_and_viridis_and_curves_draw_the_random_baseline():
    g = torch.Generator().manual_seed(0)
    maps = {"trained": torch.rand(5, 100, generator=g), "fc": torch.rand(5, 100, generator=g)}
    fig = vz.plot_cascading(maps, [{"randomised_from": "fc", "median_rho": 0.12}])
    assert len(fig.axes) == 3  # two heat maps + colour bar in its own axis
    assert fig.axes[0].images[0].get_cmap().name == "viridis" and "0.12" in fig.axes[1].get_title()
    curves = {k: torch.linspace(1, 0, 6) for k in ("deletion", "deletion_random", "insertion", "insertion_random")}
    fig = vz.plot_deletion_insertion(curves, {k: 0.5 for k in curves})
    assert len(fig.axes[0].lines) == 2 and "random order" in fig.axes[0].get_legend().get_texts()[1].get_text()
    fig = vz.plot_fidelity_vs_stability(torch.rand(10, generator=g), torch.rand(10, generator=g),
                                        torch.arange(10) % 3 > 0, 0.4)
    assert fig.axes[0].get_xlabel() == "SUE (stability)"
