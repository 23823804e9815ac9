"""Tests of the ECG chapter's pipeline (uqxai_lib.studies.ecg): SUE study, Table 1 rows, records."""
import json

import numpy as np
import pytest
import torch
from scipy.stats import mannwhitneyu

from uqxai_lib.data.synthetic_ecg import make_synthetic_ecg
from uqxai_lib.perturb import snr_db
from uqxai_lib.studies import ecg as S
from uqxai_lib.studies.ecg import PerturbationSUE, correctness, majority_vote


@pytest.fixture(scope="module")
def x():
    return make_synthetic_ecg(n_subjects=8, windows_per_subject=4, seed=0).x


def _sue_and_correct(seed=0, n=40):
    g = torch.Generator().manual_seed(seed)
    correct = torch.rand(n, generator=g) < 0.7
    sue = torch.where(correct, 0.6 + 0.3 * torch.rand(n, generator=g), 0.2 + 0.5 * torch.rand(n, generator=g))
    return sue, correct


def test_table_rows_match_numpy_and_scipy_mann_whitney():
    sue, correct = _sue_and_correct()
    row = S.table_rows({"gaussian": sue}, {"gaussian": correct})["gaussian"]
    a, b = sue[correct].double().numpy(), sue[~correct].double().numpy()
    assert row["n_correct"] == len(a) and row["n_mis"] == len(b)
    assert row["sue_correct_mean"] == pytest.approx(a.mean(), rel=1e-6)
    assert row["sue_mis_sd"] == pytest.approx(b.std(ddof=1), rel=1e-6)
    assert row["mwu_p"] == pytest.approx(mannwhitneyu(a, b, alternative="two-sided").pvalue, rel=1e-6)
    auc = np.mean([(x > y) + 0.5 * (x == y) for x in a for y in b])
    assert row["auroc"] == pytest.approx(auc, rel=1e-9)


def test_empty_misclassified_group_gives_none_in_json_and_a_clear_sentence():
    sue = torch.linspace(0.1, 0.9, 10)
    rows = {"clean": S.table_rows({"gaussian": sue}, {"gaussian": torch.ones(10, dtype=torch.bool)})}
    h = S.headline_numbers({"accuracy": 1.0, "sensitivity": 1.0, "specificity": 1.0}, rows, snr_db=10.0, skip=None)
    text = json.dumps(h, allow_nan=False, sort_keys=True)  # NaN would make this raise
    assert h["perturbations"]["gaussian"]["sue_mis_mean"] is None and h["perturbations"]["gaussian"]["n_mis"] == 0
    assert "skip" not in h and h["snr_db"] == 10.0 and "NaN" not in text
    assert "No perturbation type left a misclassified window" in S.describe_rows(rows["clean"])


def test_headline_numbers_round_to_six_significant_digits_and_name_both_definitions():
    sue, correct = _sue_and_correct()
    rows = {d: S.table_rows({"powerline": sue}, {"powerline": correct}) for d in ("clean", "majority")}
    h = S.headline_numbers({"accuracy": 2 / 3, "sensitivity": 0.123456789, "specificity": 1.0}, rows)
    assert h["accuracy"] == 0.666667 and h["sensitivity"] == 0.123457
    assert set(h) == {"accuracy", "sensitivity", "specificity", "perturbations", "perturbations_majority"}
    assert set(h["perturbations"]["powerline"]) == set(S.ROW_KEYS)
    for v in h["perturbations"]["powerline"].values():
        assert v == float(f"{v:.6g}")


def test_describe_rows_counts_higher_sue_in_correct_and_flags_small_groups():
    rows = {
        "gaussian": dict(sue_correct_mean=0.8, sue_correct_sd=0.1, n_correct=50, sue_mis_mean=0.5, sue_mis_sd=0.2,
                         n_mis=10, mwu_p=0.001, auroc=0.8),
        "powerline": dict(sue_correct_mean=0.7, sue_correct_sd=0.1, n_correct=57, sue_mis_mean=0.75, sue_mis_sd=0.0,
                          n_mis=3, mwu_p=0.5, auroc=0.4),
    }
    text = S.describe_rows(rows)
    assert "**1 of 2**" in text
    assert "only 3 misclassified" in text and "only 10" not in text


def test_sue_vs_snr_frame_accuracy_is_the_share_of_correct_draws():
    y = torch.tensor([0, 1, 1])
    rec = dict(kind="gaussian", snr_db=5.0, sue=torch.tensor([0.9, 0.5, 0.1]),
               draw_pred=torch.tensor([[0, 1, 0], [0, 1, 1], [1, 1, 0]]), clean_pred=torch.tensor([0, 1, 0]),
               majority_pred=torch.tensor([0, 1, 0]))
    f = S.sue_vs_snr_frame([rec], y, definition="majority")
    assert f.loc[0, "accuracy"] == pytest.approx(6 / 9)
    assert f.loc[0, "sue_correct"] == pytest.approx(0.7) and f.loc[0, "sue_mis"] == pytest.approx(0.1)
    assert f.loc[0, "n_mis"] == 1
    with pytest.raises(ValueError, match="'majority' or 'clean'"):
        S.sue_vs_snr_frame([rec], y, definition="vote")


def test_pick_examples_takes_extremes_of_each_group_or_none():
    sue = torch.tensor([0.2, 0.9, 0.4, 0.1, 0.8])
    correct = torch.tensor([True, True, False, False, True])
    assert S.pick_examples(sue, correct) == (1, 3)
    assert S.pick_examples(sue, torch.ones(5, dtype=torch.bool)) == (1, None)




def test_majority_vote_counts_draws_and_breaks_ties_with_the_clean_prediction():
    draws = torch.tensor([[0, 1, 1, 0], [0, 1, 0, 1], [1, 1, 0, 0]])  # [S=3, B=4]
    clean = torch.tensor([1, 0, 1, 1])
    assert majority_vote(draws, clean, 2).tolist() == [0, 1, 0, 0]
    tie = torch.tensor([[0, 2], [1, 2], [2, 0], [1, 0]])  # window 0: 1 twice, 0/2 once -> 1
    assert majority_vote(tie, torch.tensor([0, 2]), 3).tolist() == [1, 2]


def test_correctness_definitions_clean_versus_majority():
    r = PerturbationSUE("gaussian", 10.0, torch.zeros(3, 2, 5), torch.ones(2), torch.tensor([1, 0]),
                        torch.tensor([[0, 0], [0, 0], [1, 0]]), torch.tensor([0, 0]), torch.tensor([2 / 3, 0.0]))
    y = torch.tensor([1, 0])
    assert correctness(r, y, "clean").tolist() == [True, True]
    assert correctness(r, y, "majority").tolist() == [False, True]
    with pytest.raises(ValueError, match="'clean' or 'majority'"):
        correctness(r, y, "vote")


def _tiny_model():
    from uqxai_lib.models.cnn_bilstm import CNNBiLSTM

    torch.manual_seed(0)
    return CNNBiLSTM(channels=(4, 8, 8), hidden=8).eval()


def test_perturbation_sue_shapes_targets_and_reproducibility(x):
    from uqxai_lib.studies.ecg import perturbation_sue

    m = _tiny_model()
    xs = x[:6]
    a = perturbation_sue(m, xs, m.cam_layer_name, "powerline", 5.0, 4, seed=3, chunk=4)
    b = perturbation_sue(m, xs, m.cam_layer_name, "powerline", 5.0, 4, seed=3, chunk=4)
    assert a.maps.shape == (4, 6, 125) and a.sue.shape == (6,) and a.draw_pred.shape == (4, 6)
    assert torch.equal(a.sue, b.sue) and torch.equal(a.maps, b.maps)
    assert bool(((a.sue >= 0) & (a.sue <= 1)).all())
    with torch.no_grad():
        assert torch.equal(a.clean_pred, m(xs).argmax(1))
    assert torch.allclose(a.flip_rate, (a.draw_pred != a.clean_pred).float().mean(0))


def test_sue_is_one_when_the_noise_is_negligible(x):
    from uqxai_lib.studies.ecg import sue_study

    m = _tiny_model()
    out = sue_study(m, x[:4], m.cam_layer_name, ("gaussian", "electrode"), 80.0, 3, seed=0)
    for r in out.values():
        assert torch.allclose(r["sue"], torch.ones(4), atol=1e-6)
        assert float(r["flip_rate"].sum()) == 0.0


def test_draw_inputs_reproduce_the_inputs_perturbation_sue_explained(x):
    from uqxai_lib import saliency
    from uqxai_lib.studies.ecg import draw_inputs, perturbation_sue

    m = _tiny_model()
    xs = x[:5]
    r = perturbation_sue(m, xs, m.cam_layer_name, "electrode", 3.0, 3, seed=7, chunk=2)
    inputs = draw_inputs(xs, "electrode", 3.0, 3, seed=7, chunk=2)
    assert inputs.shape == (3, 5, 1, 500)
    with torch.no_grad():
        pred = torch.stack([m(v).argmax(1) for v in inputs])
    assert torch.equal(pred, r.draw_pred)
    # the maps are the Grad-CAM maps of exactly these inputs, for the clean prediction
    maps = torch.stack([saliency.grad_cam(m, v, m.cam_layer_name, target=r.clean_pred) for v in inputs])
    assert torch.allclose(maps, r.maps, atol=1e-5)
    noise_part = (inputs - xs[None]).flatten(0, 1)
    assert torch.allclose(snr_db(xs.repeat(3, 1, 1), noise_part), torch.full((15,), 3.0, dtype=torch.float64),
                          atol=0.1)


def test_sue_sweep_records_equal_perturbation_sue_at_their_seed(x):
    from uqxai_lib.studies.ecg import perturbation_sue, sue_sweep, sweep_seed

    m = _tiny_model()
    xs = x[:4]
    recs = sue_sweep(m, xs, m.cam_layer_name, ("gaussian", "baseline"), (0.0, 20.0), 3, seed=5)
    assert [(r["kind"], r["snr_db"]) for r in recs] == [
        ("gaussian", 0.0), ("baseline", 0.0), ("gaussian", 20.0), ("baseline", 20.0)]
    assert len({r["seed"] for r in recs}) == 4 and all("maps" not in r for r in recs)
    r = recs[3]
    assert r["seed"] == sweep_seed(5, 1, 1)
    ref = perturbation_sue(m, xs, m.cam_layer_name, "baseline", 20.0, 3, seed=r["seed"])
    assert torch.equal(r["sue"], ref.sue) and torch.equal(r["draw_pred"], ref.draw_pred)
    kept = sue_sweep(m, xs[:1], m.cam_layer_name, ("gaussian",), (10.0,), 2, seed=0, keep_maps=True)
    assert kept[0]["maps"].shape == (2, 1, 125)


def test_sue_sweep_bad_arguments_raise(x):
    from uqxai_lib.studies.ecg import sue_sweep

    m = _tiny_model()
    with pytest.raises(ValueError, match="unknown perturbation kind"):
        sue_sweep(m, x[:1], m.cam_layer_name, ("thermal",), (10.0,), 2)
    with pytest.raises(ValueError, match="snrs is empty"):
        sue_sweep(m, x[:1], m.cam_layer_name, ("gaussian",), (), 2)
    with pytest.raises(ValueError, match="snr_db must be finite"):
        sue_sweep(m, x[:1], m.cam_layer_name, ("gaussian",), (float("nan"),), 2)


def test_achieved_snr_and_first_draws_reproduce_the_sweeps_inputs(x):
    m = _tiny_model()
    xw = x[:1]
    recs = S.sue_sweep(m, xw, m.cam_layer_name, ("gaussian", "electrode"), (0.0, 12.0), 2, seed=3, keep_maps=True)
    first = S.first_draws(xw, recs)
    assert set(first) == {("gaussian", 0.0), ("electrode", 0.0), ("gaussian", 12.0), ("electrode", 12.0)}
    for r in recs:
        ref = S.draw_inputs(xw, r["kind"], r["snr_db"], 2, seed=r["seed"])[0, 0, 0]
        assert torch.equal(first[(r["kind"], r["snr_db"])], ref)
        got = S.achieved_snr(xw[0, 0], {"k": ref})["k"]
        want = 10 * np.log10(np.mean(xw[0, 0].double().numpy() ** 2) / np.mean((ref - xw[0, 0]).double().numpy() ** 2))
        assert got == pytest.approx(want, abs=1e-6) and got == pytest.approx(r["snr_db"], abs=0.01)
    with pytest.raises(ValueError, match="one window"):
        S.first_draws(x[:2], recs)


def test_best_kind_is_the_highest_auroc_among_kinds_with_errors():
    rows = {"a": {"auroc": 0.9, "n_mis": 0}, "b": {"auroc": 0.6, "n_mis": 3}, "c": {"auroc": 0.7, "n_mis": 1}}
    assert S.best_kind(rows) == "c"
