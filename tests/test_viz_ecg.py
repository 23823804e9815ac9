"""Tests of the ECG chapter's tables, headline numbers and figures (uqxai_lib.viz.ecg)."""
import io
import json

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from scipy.stats import mannwhitneyu  # noqa: E402

from uqxai_lib import perturb as P  # noqa: E402
from uqxai_lib.data.synthetic_ecg import make_synthetic_ecg  # noqa: E402
from uqxai_lib.models.cnn_bilstm import CNNBiLSTM  # noqa: E402
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


def _sue_and_correct(seed=0, n=40):
    g = torch.Generator().manual_seed(seed)
    correct = torch.rand(n, generator=g) < 0.7
    sue = torch.where(correct, 0.6 + 0.3 * torch.rand(n, generator=g), 0.2 + 0.5 * torch.rand(n, generator=g))
    return sue, correct


def test_table_rows_match_numpy_and_scipy_mann_whitney():
    sue, correct = _sue_and_correct()
    row = vz.table_rows({"gaussian": sue}, {"gaussian": correct})["gaussian"]
    a, b = sue[correct].double().numpy(), sue[~correct].double().numpy()
    assert row["n_correct"] == len(a) and row["n_mis"] == len(b)
    assert row["sue_correct_mean"] == pytest.approx(a.mean(), rel=1e-6)
    assert row["sue_mis_sd"] == pytest.approx(b.std(ddof=1), rel=1e-6)
    assert row["mwu_p"] == pytest.approx(mannwhitneyu(a, b, alternative="two-sided").pvalue, rel=1e-6)
    auc = np.mean([(x > y) + 0.5 * (x == y) for x in a for y in b])
    assert row["auroc"] == pytest.approx(auc, rel=1e-9)


def test_sue_table_puts_the_papers_values_beside_ours_labelled_as_theirs():
    sue, correct = _sue_and_correct()
    rows = vz.table_rows({k: sue for k in P.PERTURBATIONS}, {k: correct for k in P.PERTURBATIONS})
    t = vz.sue_table(rows)
    assert list(t.index) == [vz.PERTURBATION_LABELS[k] for k in P.PERTURBATIONS]
    assert "SUE correct (paper)" in t.columns and "SUE correct (ours)" in t.columns
    assert t.loc["Gaussian noise", "SUE correct (paper)"] == "0.982 ± 0.040"
    assert t.loc["Electrode motion", "SUE misclassified (paper)"] == "0.476 ± 0.294"


def test_empty_misclassified_group_gives_dashes_none_in_json_and_a_clear_sentence():
    sue = torch.linspace(0.1, 0.9, 10)
    rows = {"clean": vz.table_rows({"gaussian": sue}, {"gaussian": torch.ones(10, dtype=torch.bool)})}
    t = vz.sue_table(rows["clean"])
    assert t.loc["Gaussian noise", "SUE misclassified (ours)"] == "–"
    assert t.loc["Gaussian noise", "AUROC (SUE)"] == "–"
    h = vz.headline_numbers({"accuracy": 1.0, "sensitivity": 1.0, "specificity": 1.0}, rows, snr_db=10.0, skip=None)
    text = json.dumps(h, allow_nan=False, sort_keys=True)  # NaN would make this raise
    assert h["perturbations"]["gaussian"]["sue_mis_mean"] is None and h["perturbations"]["gaussian"]["n_mis"] == 0
    assert "skip" not in h and h["snr_db"] == 10.0 and "NaN" not in text
    assert "No perturbation type left a misclassified window" in vz.describe_rows(rows["clean"])


def test_headline_numbers_round_to_six_significant_digits_and_name_both_definitions():
    sue, correct = _sue_and_correct()
    rows = {d: vz.table_rows({"powerline": sue}, {"powerline": correct}) for d in ("clean", "majority")}
    h = vz.headline_numbers({"accuracy": 2 / 3, "sensitivity": 0.123456789, "specificity": 1.0}, rows)
    assert h["accuracy"] == 0.666667 and h["sensitivity"] == 0.123457
    assert set(h) == {"accuracy", "sensitivity", "specificity", "perturbations", "perturbations_majority"}
    assert set(h["perturbations"]["powerline"]) == set(vz.ROW_KEYS)
    for v in h["perturbations"]["powerline"].values():
        assert v == float(f"{v:.6g}")


def test_describe_rows_counts_higher_sue_in_correct_and_flags_small_groups():
    rows = {
        "gaussian": dict(sue_correct_mean=0.8, sue_correct_sd=0.1, n_correct=50, sue_mis_mean=0.5, sue_mis_sd=0.2,
                         n_mis=10, mwu_p=0.001, auroc=0.8),
        "powerline": dict(sue_correct_mean=0.7, sue_correct_sd=0.1, n_correct=57, sue_mis_mean=0.75, sue_mis_sd=0.0,
                          n_mis=3, mwu_p=0.5, auroc=0.4),
    }
    text = vz.describe_rows(rows)
    assert "**1 of 2**" in text
    assert "only 3 misclassified" in text and "only 10" not in text


def test_sue_vs_snr_frame_accuracy_is_the_share_of_correct_draws():
    y = torch.tensor([0, 1, 1])
    rec = dict(kind="gaussian", snr_db=5.0, sue=torch.tensor([0.9, 0.5, 0.1]),
               draw_pred=torch.tensor([[0, 1, 0], [0, 1, 1], [1, 1, 0]]), clean_pred=torch.tensor([0, 1, 0]),
               majority_pred=torch.tensor([0, 1, 0]))
    f = vz.sue_vs_snr_frame([rec], y, definition="majority")
    assert f.loc[0, "accuracy"] == pytest.approx(6 / 9)
    assert f.loc[0, "sue_correct"] == pytest.approx(0.7) and f.loc[0, "sue_mis"] == pytest.approx(0.1)
    assert f.loc[0, "n_mis"] == 1
    with pytest.raises(ValueError, match="'majority' or 'clean'"):
        vz.sue_vs_snr_frame([rec], y, definition="vote")


def test_pick_examples_takes_extremes_of_each_group_or_none():
    sue = torch.tensor([0.2, 0.9, 0.4, 0.1, 0.8])
    correct = torch.tensor([True, True, False, False, True])
    assert vz.pick_examples(sue, correct) == (1, 3)
    assert vz.pick_examples(sue, torch.ones(5, dtype=torch.bool)) == (1, None)


def test_plot_perturbations_titles_report_the_achieved_snr(data):
    x = data.x[:1]
    g = torch.Generator().manual_seed(0)
    noisy = {k: P.make_perturbation(k, 7.0)(x, g)[0, 0] for k in P.PERTURBATIONS}
    fig = vz.plot_perturbations(x[0, 0], noisy, target_snr_db=7.0)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == 4 and all("SNR 7.00 dB" in t for t in titles)


def test_figures_are_drawn_with_and_without_misclassified_windows(data, model):
    x = data.x
    fig = vz.plot_class_examples(x[:, 0], data.y, data.classes, data.mask)
    assert len(fig.axes) == 2
    r = P.perturbation_sue(model, x, model.cam_layer_name, "gaussian", 10.0, 3, seed=0)
    clean_maps = r.maps.mean(0)
    for correct in (r.clean_pred == data.y, torch.ones(len(x), dtype=torch.bool)):
        fig = vz.plot_example_pair(x[:, 0], clean_maps, r.maps, r.sue, correct, data.y, r.clean_pred,
                                   classes=data.classes, mask=data.mask)
        fig.canvas.draw()
    assert "no misclassified window" in fig.axes[1].get_title()


def test_sweep_frames_make_a_png_grid_kind_by_snr(data, model):
    xw = data.x[:1]
    recs = P.sue_sweep(model, xw, model.cam_layer_name, ("gaussian", "baseline"), (0.0, 20.0, 30.0), 2, seed=0,
                       keep_maps=True)
    frames = vz.sweep_frames(xw, recs[0]["maps"][0, 0], recs, int(data.y[0]), dpi=30)
    assert len(frames) == 2 and all(len(r) == 3 for r in frames)
    im = Image.open(io.BytesIO(frames[1][2]))
    assert im.format == "PNG"
    with pytest.raises(ValueError, match="keep_maps=True"):
        vz.sweep_frames(xw, recs[0]["maps"][0, 0], [{k: v for k, v in r.items() if k != "maps"} for r in recs], 0)
    with pytest.raises(ValueError, match="one window"):
        vz.sweep_frames(data.x[:2], recs[0]["maps"][0, 0], recs, 0)


def test_split_table_counts_windows_subjects_and_cad_share(data):
    from uqxai_lib.viz.common import split_table

    t = split_table({"all": data, "first": data.subset(torch.arange(4))}, items="windows", groups="subjects",
                    positive="CAD share", percent=False, digits=3)
    assert t.loc["all", "windows"] == len(data) and t.loc["first", "subjects"] == 2
    assert t.loc["all", "CAD share"] == pytest.approx(float(data.y.float().mean()), abs=1e-3)
