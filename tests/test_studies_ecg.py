"""Tests of the ECG chapter's pipeline (uqxai_lib.studies.ecg): SUE study, Table 1 rows, records."""
import json

import numpy as np
import pytest
import torch

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


def _records(kinds=("gaussian", "powerline"), seed=0, n=40, s=6, t=20, shift=0.5):
    """Assess records of simulated stacks: correct windows' maps vary less across draws."""
    from uqxai_lib import protocol

    g = torch.Generator().manual_seed(seed)
    y = (torch.arange(n) % 2).long()
    correct = torch.rand(n, generator=g) < 0.7
    target = torch.where(correct, y, 1 - y)
    clean_probs = torch.nn.functional.one_hot(target, 2).double() * 0.8 + 0.1
    base = torch.rand(n, t, generator=g)
    out = {}
    for k in kinds:
        noise = torch.rand(s, n, t, generator=g) * torch.where(correct, 1 - shift, 1.0)[None, :, None]
        maps = base[None] + noise
        r = S.PerturbationSUE(k, 10.0, maps, metrics_sue(maps), target, target[None].repeat(s, 1), target,
                              torch.zeros(n), clean_probs[None].repeat(s, 1, 1).float())
        out[k] = protocol.evaluate(maps, base, r.draw_probs, clean_probs, y, target=target, source="test_time",
                                   score="jaccard", n_boot=200)
    return out, correct


def metrics_sue(maps):
    from uqxai_lib import metrics

    return metrics.sue(maps.double(), quantile=0.9, empty="skip").float()


def test_table_rows_read_the_assess_records_and_match_numpy():
    recs, correct = _records()
    rows = S.table_rows(recs)
    for k, rec in recs.items():
        v = np.asarray(rec.stability["jaccard"])
        a, b = v[correct.numpy()], v[~correct.numpy()]
        r = rows[k]
        assert r["n_correct"] == len(a) and r["n_mis"] == len(b)
        assert r["sue_correct_mean"] == pytest.approx(a.mean()) and r["sue_mis_sd"] == pytest.approx(b.std(ddof=1))
        auc = np.mean([(x > y) + 0.5 * (x == y) for x in a for y in b])
        assert r["auroc"] == pytest.approx(auc) and r["effect"] == pytest.approx(a.mean() - b.mean())
        assert r["p"] == rec.primary["p"] and r["ci95"] == rec.primary["ci95"]
    assert rows["gaussian"]["verdict"] == recs["gaussian"].primary["verdict"] == "higher"
    from uqxai_lib import stats

    assert rows["powerline"]["verdict"] == stats.holm_labels([rows["powerline"]["effect"]], [rows["powerline"]["p"]])[0]
    assert rows["powerline"]["p_holm"] == rows["powerline"]["p"]  # a family of one


def test_secondary_verdicts_follow_holm_over_the_three_other_kinds():
    from uqxai_lib import stats

    recs, _ = _records(kinds=("gaussian", "powerline", "baseline", "electrode"), shift=0.05, n=30)
    rows = S.table_rows(recs)
    others = ["powerline", "baseline", "electrode"]
    ph = stats.holm([rows[k]["p"] for k in others])
    assert [rows[k]["p_holm"] for k in others] == ph and "p_holm" not in rows["gaussian"]
    assert [rows[k]["verdict"] for k in others] == stats.holm_labels([rows[k]["effect"] for k in others],
                                                                     [rows[k]["p"] for k in others])


def test_table_rows_of_another_definition_use_the_same_bootstrap_rule():
    from uqxai_lib import protocol

    recs, correct = _records(kinds=("gaussian",))
    flipped = {"gaussian": ~correct}
    r = S.table_rows(recs, flipped, n_boot=200)["gaussian"]
    want = protocol.primary_section(recs["gaussian"].stability["jaccard"], ~correct, score="jaccard", n_boot=200)
    assert r["ci95"] == want["ci95"] and r["verdict"] == "lower"
    few = torch.ones_like(correct)
    few[:3] = False
    r = S.table_rows(recs, {"gaussian": few}, n_boot=200)["gaussian"]
    assert r["verdict"] == "undefined" and "fewer than 5" in r["reason"]


def test_empty_misclassified_group_gives_none_in_json():
    recs, correct = _records(kinds=("gaussian",))
    rows = {"clean": S.table_rows(recs, {"gaussian": torch.ones_like(correct)}, n_boot=100)}
    h = S.headline_numbers({"accuracy": 1.0, "sensitivity": 1.0, "specificity": 1.0}, rows, snr_db=10.0, skip=None)
    text = json.dumps(h, allow_nan=False, sort_keys=True)  # NaN would make this raise
    assert h["perturbations"]["gaussian"]["sue_mis_mean"] is None and h["perturbations"]["gaussian"]["n_mis"] == 0
    assert h["perturbations"]["gaussian"]["verdict"] == "undefined"
    assert "skip" not in h and h["snr_db"] == 10.0 and "NaN" not in text


def test_headline_numbers_round_to_six_significant_digits_and_name_both_definitions():
    recs, correct = _records(kinds=("powerline",))
    rows = {"clean": S.table_rows(recs), "majority": S.table_rows(recs, {"powerline": correct}, n_boot=100)}
    h = S.headline_numbers({"accuracy": 2 / 3, "sensitivity": 0.123456789, "specificity": 1.0}, rows)
    assert h["accuracy"] == 0.666667 and h["sensitivity"] == 0.123457
    assert set(h) == {"accuracy", "sensitivity", "specificity", "perturbations", "perturbations_majority"}
    assert set(h["perturbations"]["powerline"]) == set(S.ROW_KEYS)
    for v in h["perturbations"]["powerline"].values():
        if isinstance(v, float):
            assert v == float(f"{v:.6g}")


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
    # draw s of each chunk: the clean chunk plus its zero-mean noise at exactly 3 dB, re-standardised
    from uqxai_lib.perturb import restandardize, scaled_noise

    gen = torch.Generator().manual_seed(7)
    for lo in range(0, 5, 2):
        for s in range(3):
            n0 = scaled_noise("electrode", xs[lo:lo + 2], 3.0, gen)
            assert torch.allclose(inputs[s, lo:lo + 2], restandardize(xs[lo:lo + 2], xs[lo:lo + 2] + n0), atol=1e-5)
            xc = xs[lo:lo + 2] - xs[lo:lo + 2].mean(-1, keepdim=True)
            assert torch.allclose(snr_db(xc, n0), torch.full((len(n0),), 3.0, dtype=torch.float64), atol=1e-3)


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
        r2 = np.corrcoef(xw[0, 0].double().numpy(), ref.double().numpy())[0, 1] ** 2  # re-standardised copy
        want = 10 * np.log10(r2 / (1 - r2))
        assert got == pytest.approx(want, abs=1e-6) and got == pytest.approx(r["snr_db"], abs=0.01)
    with pytest.raises(ValueError, match="one window"):
        S.first_draws(x[:2], recs)


# ----------------------------------------------------------------------------- primary, variants, baselines, strata
def _simulated(n_subj=60, per=4, shift=0.25, seed=0):
    """Windows of subjects; misclassified windows have SUE lower by ``shift`` (known direction)."""
    g = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_subj), per)
    correct = g.random(n_subj * per) > 0.25
    sue = np.clip(0.6 + shift * correct + 0.1 * g.standard_normal(n_subj * per), 0, 1)
    return torch.tensor(sue), torch.tensor(correct), torch.tensor(groups)


def test_kind_record_is_evaluate_on_the_stack_and_primary_json_adds_mde_and_the_papers_effect(x):
    from uqxai_lib import protocol, stats

    m = _tiny_model()
    xs = x[:16]
    r = S.perturbation_sue(m, xs, m.cam_layer_name, "gaussian", 5.0, 4, seed=1)
    ref, probs = S.clean_reference(m, xs, m.cam_layer_name)
    y = torch.arange(16) % 2
    rec = S.kind_record(r, ref, probs, y, n_boot=100)
    want = protocol.evaluate(r.maps, ref, r.draw_probs, probs, y, target=r.clean_pred, source="test_time",
                             score="jaccard", n_boot=100)
    assert rec.primary == want.primary and rec.config["kind"] == "gaussian"
    np.testing.assert_allclose(rec.stability["jaccard"], r.sue.double().numpy(), rtol=1e-6)  # one SUE
    pj = S.primary_json(rec)
    assert pj["paper_effect"] == 0.117 and pj["name"].endswith("Gaussian noise")
    v, c = np.asarray(rec.stability["jaccard"]), np.asarray(rec.prediction["correct"])
    if min(c.sum(), (~c).sum()) >= 2:
        from scipy.stats import norm

        se = np.sqrt(v[c].var(ddof=1) / c.sum() + v[~c].var(ddof=1) / (~c).sum())
        assert pj["mde"] == pytest.approx((norm.ppf(0.975) + norm.ppf(0.8)) * se, rel=1e-6)
    assert S.PAPER_EFFECT == {"gaussian": 0.117, "powerline": 0.152, "baseline": 0.383, "electrode": 0.358}
    assert stats.reproduction("higher", S.CLAIM["expected"]) == "reproduced"
    assert set(S.CLAIM) == {"text", "expected", "theirs", "source"}


def test_claim_source_is_a_key_of_the_books_bibliography():
    from pathlib import Path

    bib = (Path(__file__).resolve().parents[1] / "book" / "references.bib").read_text()
    assert f"{{{S.CLAIM['source']}," in bib


def test_sue_variants_pairs_clean_target_equals_the_rule_books_sue_and_counts_empty_windows():
    from uqxai_lib import metrics

    g = torch.Generator().manual_seed(0)
    maps = torch.rand(4, 6, 25, generator=g) - 0.3
    maps = maps.clamp(min=0)
    maps[:, 2] = 0.0  # window 2: every draw empty -> nothing defined
    maps[1:, 4] = 0.0  # window 4: one non-empty draw -> no defined pair
    maps[1, 5] = 0.0  # window 5: one empty draw -> its pairs are skipped, the others count
    clean = torch.rand(6, 25, generator=g)
    own = maps.clone()
    own[0, 0] = torch.rand(25, generator=g)
    v = S.sue_variants(maps, clean, own)
    assert len(v) == 2 * 2 * 4
    assert {(r["reference"], r["target"]) for r in v} == {("pairs", "clean"), ("clean", "clean"), ("pairs", "own"),
                                                          ("clean", "own")}
    r = next(r for r in v if r["reference"] == "pairs" and r["target"] == "clean" and r["q"] == 0.1)
    want = metrics.sue(maps.double(), quantile=0.9, empty="skip")
    keep = torch.tensor([True, True, False, True, False, True])
    assert torch.allclose(r["sue"][keep], want[keep].float()) and r["n_empty"] == 2
    assert torch.isnan(r["sue"][~keep]).all()
    assert float(r["sue"][5]) == pytest.approx(float(metrics.sue(maps[[0, 2, 3], 5:6].double(), quantile=0.9)[0]))
    r3 = next(r for r in v if r["reference"] == "pairs" and r["target"] == "clean" and r["q"] == 0.3)
    ro = next(r for r in v if r["reference"] == "pairs" and r["target"] == "own" and r["q"] == 0.3)
    assert not torch.equal(ro["sue"][0], r3["sue"][0]) and torch.equal(ro["sue"][1], r3["sue"][1])
    rows = S.variant_rows(v, torch.tensor([True, False, True, True, False, True]), n_boot=100)
    assert {"reference", "q", "target", "auroc", "auroc_ci95", "n_empty", "verdict"} <= set(rows[0])
    assert rows[0]["verdict"] == "undefined"  # fewer than 5 windows per group


def test_own_target_maps_recompute_only_flipped_draws_for_their_own_class(x):
    from uqxai_lib import saliency

    m = _tiny_model()
    xs = x[:6]
    r = S.perturbation_sue(m, xs, m.cam_layer_name, "gaussian", -5.0, 4, seed=2)
    own = S.own_target_maps(m, xs, m.cam_layer_name, r, seed=2)
    inputs = S.draw_inputs(xs, "gaussian", -5.0, 4, seed=2)
    for s in range(4):
        want = saliency.grad_cam(m, inputs[s], m.cam_layer_name, target=r.draw_pred[s])
        assert torch.allclose(own[s], want, atol=1e-5)
    same = r.draw_pred == r.clean_pred[None]
    assert torch.equal(own[same], r.maps[same])


def test_baseline_scores_orient_the_records_prediction_scores():
    from scipy.stats import entropy

    recs, _ = _records(kinds=("gaussian",))
    rec = recs["gaussian"]
    sc = S.baseline_scores(rec)
    np.testing.assert_allclose(sc["margin"].numpy(), rec.prediction["margin"])
    np.testing.assert_allclose(sc["entropy"].numpy(), -entropy(rec.probs.double().mean(0).numpy(), axis=-1), atol=1e-9)
    np.testing.assert_allclose(sc["flip_rate"].numpy(), -np.asarray(rec.prediction["flip_rate"]))


def test_strata_rows_count_and_compare_within_each_severity():
    from uqxai_lib import stats

    sue, correct, groups = _simulated(seed=4)
    severity = torch.tensor(np.repeat(np.arange(60) % 3, 4))
    rows = S.strata_rows(sue, correct, severity, groups, n_boot=100)
    assert [r["severity"] for r in rows] == ["healthy", "mild CAD", "marked CAD", "CAD (mild + marked)"]
    for r, m in zip(rows, [severity == 0, severity == 1, severity == 2, severity > 0]):
        assert r["n_correct"] == int(correct[m].sum()) and r["n_mis"] == int((~correct[m]).sum())
        assert r["auroc"] == pytest.approx(stats.auroc(sue[m].numpy(), correct[m].numpy()))


def test_fidelity_by_class_is_the_rule_books_section_per_true_class(x):
    from uqxai_lib import protocol

    d = make_synthetic_ecg(n_subjects=8, windows_per_subject=2, seed=1)
    m = _tiny_model()
    ref, _ = S.clean_reference(m, d.x, m.cam_layer_name)
    by = S.fidelity_by_class(ref, d.mask, d.y, d.group, n_boot=100)
    assert set(by) == {"healthy", "CAD"}
    cad = protocol.fidelity_section(ref[d.y == 1], d.mask[d.y == 1], groups=d.group[d.y == 1], n_boot=100)
    assert by["CAD"]["mass_in_mask"] == cad["mass_in_mask"] and by["CAD"]["chance"] == pytest.approx(
        float(d.mask[d.y == 1].float().mean()))
    json.dumps(by)


def test_cascade_order_goes_from_the_head_down(x):
    m = _tiny_model()
    assert S.cascade_order(m) == ["fc", "lstm", "features.4", "features.2", "features.0"]


def test_region_occlusion_matches_a_direct_computation():
    d = make_synthetic_ecg(n_subjects=8, windows_per_subject=2, seed=2)
    m = _tiny_model()
    rows = S.region_occlusion(m, d.x, d.mask, d.y, seed=0)
    with torch.no_grad():
        p = torch.softmax(m(torch.where(d.mask[:, None], torch.zeros_like(d.x), d.x)).double(), -1)
    want = p.gather(1, d.y[:, None])[:, 0]
    for r, c in zip(rows, (0, 1)):
        assert r["n"] == int((d.y == c).sum())
        assert r["mask occluded"] == pytest.approx(float(want[d.y == c].mean()), rel=1e-9)


def test_prediction_rows_give_mean_and_sd_per_true_and_predicted_class():
    sue = torch.tensor([0.9, 0.8, 0.2, 0.3, 0.7, 0.1])
    pred = torch.tensor([0, 0, 1, 1, 0, 1])
    y = torch.tensor([0, 0, 0, 1, 1, 1])
    rows = S.prediction_rows(sue, pred, y)
    cell = {(r["true"], r["predicted"]): r for r in rows}
    assert cell[("healthy", "healthy")]["n"] == 2 and cell[("healthy", "healthy")]["sue_mean"] == pytest.approx(0.85)
    assert cell[("CAD", "healthy")]["n"] == 1 and np.isnan(cell[("CAD", "healthy")]["sue_sd"])





# ----------------------------------------------------------------------------- within class, beyond baselines
def _class_tracking(seed=0, n_subj=150, per=4):
    """SUE that tracks the *predicted* class only: within each predicted class it is pure noise,
    and errors are commoner in the predicted class with the low SUE (a composition effect)."""
    g = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_subj), per)
    pred = np.repeat(g.random(n_subj) < 0.4, per).astype(int)  # predicted CAD for 40 % of subjects
    p_err = np.where(pred == 1, 0.35, 0.03)
    correct = g.random(len(pred)) > p_err
    y = np.where(correct, pred, 1 - pred)
    sue = np.where(pred == 1, 0.4, 0.8) + 0.05 * g.standard_normal(len(pred))
    return (torch.tensor(sue), torch.tensor(correct), torch.tensor(pred), torch.tensor(y), torch.tensor(groups))


def _pair_auroc_within(v, c, strata):
    num = den = 0.0
    for k in np.unique(strata):
        a, b = v[(strata == k) & c], v[(strata == k) & ~c]
        for x in a:
            for z in b:
                num += (x > z) + 0.5 * (x == z)
                den += 1
    return num / den


def test_within_class_exposes_a_score_that_only_tracks_the_predicted_class():
    from uqxai_lib import stats

    sue, correct, pred, y, groups = _class_tracking(n_subj=600)
    pooled = stats.auroc(sue.numpy(), correct.numpy())
    rec = S.within_class(sue, correct, pred, y, groups, n_boot=200, seed=0)
    assert pooled > 0.7  # pooled, the class-tracking score looks like an error detector
    v, c, p = sue.numpy(), correct.numpy(), pred.numpy()
    assert rec["pooled"]["auroc"] == pytest.approx(_pair_auroc_within(v, c, p))  # pairs only inside a class
    assert abs(rec["pooled"]["auroc"] - 0.5) < 0.06
    # the interval covers 0.5 at about its nominal rate: at most 3 of 10 simulated data sets call it
    verdicts = [S.within_class(*_class_tracking(seed=k), n_boot=200, seed=k)["pooled"]["verdict"] for k in range(10)]
    assert sum(o != "no detectable difference" for o in verdicts) <= 3
    cells = {(r["true"], r["predicted"]): r["n"] for r in rec["cells"]}
    assert sum(cells.values()) == len(sue)
    # a score that really tells errors apart inside each class is "reproduced"
    good = sue + 0.3 * correct.double()
    assert S.within_class(good, correct, pred, y, groups, n_boot=300)["pooled"]["verdict"] == "higher"
    # fewer than 5 errors in every class: undefined with the reason
    few = correct.clone()
    few[:] = True
    few[:3] = False
    und = S.within_class(sue, few, pred, torch.where(few, pred, 1 - pred), groups, n_boot=100)
    assert und["pooled"]["verdict"] == "undefined" and all(r["verdict"] == "undefined" for r in und["rows"])


def test_beyond_baselines_compares_with_the_strongest_baseline_and_detects_a_useful_score():
    g = np.random.default_rng(3)
    n_subj, per = 120, 4
    groups = np.repeat(np.arange(n_subj), per)
    correct = g.random(n_subj * per) > 0.2
    strong = correct + 0.8 * g.standard_normal(len(correct))
    weak = correct + 3.0 * g.standard_normal(len(correct))
    useful = correct + 0.8 * g.standard_normal(len(correct))  # independent information
    t = lambda a: torch.tensor(a)  # noqa: E731
    add = S.beyond_baselines(t(useful), {"strong": t(strong), "weak": t(weak)}, t(correct), t(groups), n_boot=200)
    cands = {**add["auroc_single"], "combination": add["auroc_combination"]}
    assert add["auroc_strongest"] == pytest.approx(max(cands.values()))  # never a weaker combination
    assert add["verdict"] == "higher" and add["delta_ci95"][0] > 0
    copy = S.beyond_baselines(t(strong + 1e-3 * weak), {"strong": t(strong), "weak": t(weak)}, t(correct), t(groups),
                              n_boot=200)
    assert copy["verdict"] != "higher"  # a near copy of the strongest baseline adds nothing
    few = np.ones(len(correct), bool)
    few[:4] = False
    und = S.beyond_baselines(t(useful), {"weak": t(weak)}, t(few), t(groups), n_boot=50)
    assert und["verdict"] == "undefined" and und["reason"]


def test_empty_rule_rows_count_windows_whose_regions_are_empty():
    maps = torch.rand(4, 3, 8)
    maps[:, 0] = 0.0  # window 0: every draw's map is zero -> J = 1 under "agree", undefined under the rule
    r = S.PerturbationSUE("gaussian", 10.0, maps, torch.zeros(3), torch.zeros(3, dtype=torch.long),
                          torch.zeros(4, 3, dtype=torch.long), torch.zeros(3, dtype=torch.long), torch.zeros(3))
    row = S.empty_rule_rows({"gaussian": r})[0]
    from uqxai_lib import metrics

    rest = metrics.sue(maps[:, 1:].double(), quantile=0.9).mean()
    assert row["n_undefined"] == 1 and row["n"] == 3 and row["n_empty"] == 1
    assert row["sue_agree"] == pytest.approx((1.0 + 2 * float(rest)) / 3, rel=1e-5)
    assert row["sue_rule"] == pytest.approx(float(rest), rel=1e-5)


def test_setup_adds_fresh_test_subjects_without_touching_training(tmp_path, monkeypatch):
    monkeypatch.setenv("UQXAI_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("UQXAI_DATA_DIR", raising=False)
    p = dict(n_subjects=20, windows_per_subject=2, cad_fraction=0.3, mild_fraction=0.5, extra_test_subjects=0,
             max_test=1000, data_dir=None, max_windows_per_record=10, fantasia_records=None, incart_records=None,
             incart_cad_records=None, channels=[4, 4, 4], hidden=4, epochs=1, patience=1, batch_size=16, lr=0.01)
    a = S.setup(p, seed=0, device="cpu")
    b = S.setup({**p, "extra_test_subjects": 10}, seed=0, device="cpu")
    assert b.from_cache and a.train_config == b.train_config  # the same model, trained once
    assert torch.equal(a.train.x, b.train.x) and len(b.test) == len(a.test) + 20
    assert torch.equal(b.test.x[:len(a.test)], a.test.x) and len(b.severity) == len(b.test)
    seen = set(b.train.group.tolist()) | set(b.val.group.tolist())
    assert not seen & set(b.test.group.tolist())
    c = S.setup({**p, "extra_test_subjects": 10, "max_test": 15}, seed=0, device="cpu")
    assert len(c.test) == 15 and c.test_key != b.test_key and set(S.SETUP_KEYS) == set(p)


def test_primary_run_is_the_notebooks_primary(tmp_path, monkeypatch):
    from uqxai_lib import perturb as P

    monkeypatch.setenv("UQXAI_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("UQXAI_DATA_DIR", raising=False)
    p = dict(n_subjects=30, windows_per_subject=2, cad_fraction=0.4, mild_fraction=0.5, extra_test_subjects=10,
             max_test=1000, data_dir=None, max_windows_per_record=10, fantasia_records=None, incart_records=None,
             incart_cad_records=None, channels=[4, 4, 4], hidden=4, epochs=1, patience=1, batch_size=16, lr=0.01,
             table_snr_db=5.0, draws=3, sue_quantile=0.9, n_boot=100)
    out = S.primary_run(p, seed=1)
    json.dumps(out, allow_nan=False)
    # the notebook's path: the study of every kind (the primary kind first, same seed), then its record
    st = S.setup(p, seed=1)
    assert P.PERTURBATIONS[0] == S.PRIMARY_KIND
    study = S.sue_study(st.model, st.test.x, st.layer, P.PERTURBATIONS, 5.0, 3, seed=1, quantile=0.9, nstdb=st.nstdb)
    ref, probs = S.clean_reference(st.model, st.test.x, st.layer)
    rec = S.kind_record(S.PerturbationSUE(**study[S.PRIMARY_KIND]), ref, probs, st.test.y, groups=st.test.group,
                        n_boot=100, seed=1)
    from uqxai_lib import protocol

    assert out["primary"] == protocol.json_safe(S.primary_json(rec)) and out["claim"] == S.CLAIM


def test_verdict_ladder_has_the_eight_rungs_and_reads_the_papers_effect(tmp_path):
    from uqxai_lib import verdicts

    primary = {"effect": 0.24, "ci95": [0.21, 0.27], "verdict": "higher", "n_correct": 900, "n_misclassified": 80,
               "paper_effect": 0.117, "mde": 0.03, "reason": None}
    within = {"auroc": 0.42, "ci95": [0.36, 0.47], "verdict": "lower", "n_pos": 900, "n_neg": 80, "reason": None}
    added = {"verdict": "no detectable difference", "delta": 0.001, "delta_ci95": [-0.001, 0.003],
             "strongest": "combination",
             "auroc_strongest": 0.96, "auroc_with_score": 0.961, "reason": None}
    fid = {"mass_in_mask": 0.48, "mass_in_mask_ci95": [0.47, 0.49], "chance": 0.41}
    san = {"outcome": "failed", "reason": "median rho 0.92 >= 0.5 after randomising fc",
           "steps": [{"randomised": "fc", "median_rho": 0.92, "n_constant": 0, "n": 10}], "threshold": 0.5}
    lad = S.verdict_ladder(primary, added=added, fidelity=fid, sanity=san, within=within,
                           robustness_path=tmp_path / "robustness.json")
    out = {r["name"]: r["outcome"] for r in lad["rungs"]}
    assert list(out) == [n for n in verdicts.RUNG_ORDER if n != "across_metrics"]  # the eight of issue 22
    assert out == {"direction": "reproduced", "beyond_baselines": "adds nothing", "maps_right": "above chance",
                   "sanity": "failed", "within_class": "reversed", "across_seeds": "undefined",
                   "across_threads": "undefined", "paper_effect": "excluded"}
    assert lad["headline"] == "undefined" and "synthetic" in lad["data"] and "Fantasia" in lad["data"]
    wide = S.verdict_ladder({**primary, "ci95": [0.0, 0.3]}, added=added, fidelity=None, sanity=None, within=within,
                            robustness_path=tmp_path / "none.json")
    w = {r["name"]: r["outcome"] for r in wide["rungs"]}
    assert w["paper_effect"] == "underpowered" and w["maps_right"] == "undefined" and w["sanity"] == "inconclusive"
