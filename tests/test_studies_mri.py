"""Tests of the MRI chapter's analysis steps (uqxai_lib.studies.mri)."""
import json
import math

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from uqxai_lib import metrics, saliency
from uqxai_lib.models.resnet_mc import build_resnet_mc
from uqxai_lib.studies import mri as sm


@pytest.fixture(scope="module")
def tiny_model():
    return build_resnet_mc("resnet18", num_classes=4, width=4, small_input=True, seed=0).eval()


def test_mc_study_refuses_a_model_in_training_mode(tiny_model):
    tiny_model.train()
    try:
        with pytest.raises(ValueError, match="eval mode"):
            sm.mc_study(tiny_model, torch.zeros(1, 3, 16, 16), "layer4", 2)
    finally:
        tiny_model.eval()


def test_sweep_subset_keeps_errors_up_to_half_and_fills_with_spaced_correct_images():
    correct = torch.ones(50, dtype=torch.bool)
    correct[[3, 17, 41]] = False
    idx = sm.sweep_subset(correct, 10)
    assert len(idx) == 10 and {3, 17, 41} <= set(idx.tolist())
    assert torch.equal(idx, idx.sort().values) and len(set(idx.tolist())) == 10
    assert int((~correct[sm.sweep_subset(correct, 2)]).sum()) == 1  # one of each
    assert torch.equal(sm.sweep_subset(correct, 100), torch.arange(50))
    many = torch.arange(40) % 4 == 0  # 10 correct, 30 misclassified
    sub = sm.sweep_subset(many, 12)
    assert int(many[sub].sum()) == 6 and int((~many[sub]).sum()) == 6
    assert int(many[sm.sweep_subset(many, 36)].sum()) == 10  # too few correct: errors fill up
    with pytest.raises(ValueError, match="n must be"):
        sm.sweep_subset(correct, 0)


def test_pick_cases_takes_the_most_repeatable_correct_and_least_repeatable_error():
    rho = torch.tensor([0.9, float("nan"), 0.8, 0.5, 0.95])
    correct = torch.tensor([True, False, True, False, True])
    y = torch.tensor([1, 0, 1, 3, 2])
    assert sm.pick_cases(rho, correct, y, avoid_class=2) == [0, 1]  # NaN ranks lowest
    assert sm.pick_cases(rho, correct) == [4, 1]
    assert sm.pick_cases(rho, torch.ones(5, dtype=torch.bool)) == [4]


def test_abstention_handles_nan_scores_and_orders_oracle_first():
    correct = torch.tensor([True, True, False, True, False, True])
    good = torch.tensor([0.9, 0.8, 0.1, 0.7, float("nan"), 0.6])  # NaN = least confident
    bad = -good.nan_to_num(0.0)
    curves, table = sm.abstention(correct, {"good": good, "bad": bad})
    # "good" ranks all errors last: its AURC is the oracle's, the mean risk of the k most confident
    want = np.mean([0, 0, 0, 0, 1 / 5, 2 / 6])
    assert abs(table.loc["good", "AURC"] - want) < 1e-12
    assert abs(table.loc["oracle (knows the errors)", "AURC"] - want) < 1e-12
    assert table.loc["good", "AURC"] < table.loc["bad", "AURC"]
    assert abs(table.loc["random (expected)", "AURC"] - 2 / 6) < 1e-12
    # the curves are metrics.risk_coverage with NaN placed below every defined score
    cov, risk = metrics.risk_coverage(correct, good.nan_to_num(-1.0))
    assert torch.allclose(curves["good"][0], cov) and torch.allclose(curves["good"][1], 1 - risk)
    assert float(curves["good"][0][-1]) == 1.0 and abs(float(curves["good"][1][-1]) - 4 / 6) < 1e-9
    with pytest.raises(ValueError, match="entries"):
        sm.abstention(correct, {"short": good[:3]})


def test_uncertainty_table_matches_metrics_and_drops_nan_rho():
    g = torch.Generator().manual_seed(5)
    rho = torch.rand(12, generator=g)
    rho[4] = float("nan")
    ent = torch.rand(12, generator=g)
    correct = torch.rand(12, generator=g) > 0.4
    t = sm.uncertainty_table(rho, {"-entropy": -ent}, correct)
    ok = ~rho.isnan()
    from sklearn.metrics import roc_auc_score

    want = roc_auc_score(correct[ok].numpy(), -ent[ok].double().numpy())
    assert abs(t.loc["-entropy", "AUROC correct vs mis"] - want) < 1e-6
    assert abs(t.loc["-entropy", "Spearman with ρ"] - spearmanr(-ent[ok], rho[ok]).statistic) < 1e-6
    assert abs(t.loc["ρ (repeatability)", "Spearman with ρ"] - 1.0) < 1e-9 and t.attrs["n"] == 11


def test_repeatability_and_sweep_tables_use_compare_groups():
    rho = torch.tensor([0.9, 0.8, 0.85, 0.4, 0.5])
    correct = torch.tensor([True, True, True, False, False])
    table, cmp = sm.repeatability_table(rho, correct)
    assert cmp == metrics.compare_groups(rho, correct, higher_in="a")
    assert list(table.index) == ["correct", "misclassified"] and table.loc["misclassified", "images (ours)"] == 2
    assert table.loc["correct", "mean ρ ± SD (theirs: Salvi et al. 2025, SARTAJ)"] == "0.76 ± 0.08"
    assert table.loc["correct", "mean ρ ± SD (ours)"] == f"{cmp.mean_a:.3f} ± {cmp.sd_a:.3f}"
    sweep = sm.sweep_table({0.1: rho, 0.5: 1 - rho, 0.6: rho},
                           {0.1: correct, 0.5: correct, 0.6: torch.ones(5, dtype=torch.bool)},
                           "dropout p")
    assert sweep.loc[0.1, "auroc"] == 1.0 and sweep.loc[0.5, "auroc"] == 0.0  # reversed ranking
    assert abs(sweep.loc[0.1, "gap"] - (0.85 - 0.45)) < 1e-6
    assert abs(sweep.loc[0.1, "auroc"] - cmp.auroc) < 1e-12 and sweep.loc[0.1, "n_mis"] == 2
    assert sweep.loc[0.6, "n_mis"] == 0 and np.isnan(sweep.loc[0.6, "auroc"])  # no errors: undefined


# ---------------------------------------------------------------- primary, secondary, variants


def test_secondary_records_holm_adjust_all_rows():
    comps = {"a": {"effect": 0.1, "ci95": [0.05, 0.2], "p": 0.01},
             "b": {"effect": -0.1, "ci95": [-0.2, 0.01], "p": 0.04},
             "c": {"effect": 0.0, "ci95": [-0.1, 0.1], "p": 0.03}}
    rows = sm.secondary_records(comps)
    assert [r["p_holm"] for r in rows] == pytest.approx([0.03, 0.06, 0.06])
    assert [r["verdict"] for r in rows] == ["higher", "no detectable difference", "no detectable difference"]
    # the label follows the Holm-adjusted p, not the unadjusted interval: an interval above 0 at Holm p 0.158
    two = sm.secondary_records({"x": {"effect": 0.02, "ci95": [0.003, 0.04], "p": 0.079},
                                "y": {"effect": 0.03, "ci95": [0.001, 0.05], "p": 0.09}})
    assert [r["p_holm"] for r in two] == pytest.approx([0.158, 0.158])
    assert {r["verdict"] for r in two} == {"no detectable difference"}


def test_strata_table_is_compare_groups_within_each_level():
    g = torch.Generator().manual_seed(22)
    rho = torch.rand(40, generator=g)
    correct = torch.rand(40, generator=g) > 0.4
    cls = [["a", "b", "c"][i % 3] for i in range(40)]
    t = sm.strata_table(rho, correct, {"true class": cls})
    for lev in "abc":
        sel = torch.tensor([c == lev for c in cls])
        want = metrics.compare_groups(rho[sel], correct[sel])
        assert t.loc[("true class", lev), "AUROC"] == pytest.approx(want.auroc)
        assert t.loc[("true class", lev), "n_mis"] == want.n_b
    # an item labelled None is not in that split (e.g. a slice without a tumour under "tumour size")
    t2 = sm.strata_table(rho, correct, {"size": [None if c == "c" else c for c in cls]})
    assert [lev for _, lev in t2.index] == ["a", "b"]
    labels = sm.tercile_labels(torch.arange(9.0))
    assert labels == ["small"] * 3 + ["medium"] * 3 + ["large"] * 3


def test_per_class_accuracy_counts_each_true_class():
    y = torch.tensor([0, 0, 1, 1, 1, 2])
    pred = torch.tensor([0, 1, 1, 1, 0, 2])
    t = sm.per_class_accuracy(pred, y, ["a", "b", "c"])
    assert t.loc["a", "accuracy"] == 0.5 and t.loc["b", "accuracy"] == pytest.approx(2 / 3)
    assert t.loc["b", "most frequent error"] == "a" and t.loc["c", "most frequent error"] == "—"


# ---------------------------------------------------------------- fidelity, deletion / insertion, sanity


def test_strata_labels_describe_tumour_slices_once_and_leave_no_tumour_slices_out():
    from uqxai_lib.data import LabeledArrays

    mask = torch.zeros(6, 8, 8, dtype=torch.bool)
    for i, side in enumerate([1, 2, 3, 4, 0, 0]):
        mask[i, :side, :side] = True
    test = LabeledArrays(torch.zeros(6, 3, 8, 8), torch.tensor([0, 1, 2, 0, 3, 3]), ("g", "m", "p", "n"), mask=mask)
    attrs = {"ambiguous": torch.tensor([1, 0, 0, 1, 0, 0]).bool(), "faint": torch.tensor([1, 0, 0, 0, 0, 0]).bool()}
    lab = sm.strata_labels(test, torch.tensor([0, 1, 3, 3, 3, 3]), test.classes, attrs)
    assert lab["true class"] == ["g", "m", "p", "g", "n", "n"] and lab["predicted class"][2] == "n"
    assert lab["tumour size"] == ["small", "small", "medium", "large", None, None]
    assert lab["borderline (generator)"] == ["borderline", "typical", "typical", "borderline", None, None]
    assert lab["contrast"] == ["faint", "clear", "clear", "clear", None, None]
    rho = torch.tensor([0.9, 0.8, 0.3, 0.2, 0.95, 0.97])
    t = sm.strata_table(rho, torch.tensor([1, 1, 0, 0, 1, 1]).bool(), lab)
    assert "no tumour" not in {lev for _, lev in t.index} and len(t.loc["contrast"]) == 2


def _record(rho, correct, pred, *, groups=None):
    """A stand-in Assessment with the fields the chapter's ladder reads."""
    from types import SimpleNamespace

    rho = np.asarray(rho, float)
    n = len(rho)
    r = np.linspace(0.1, 0.9, n)
    pr = {"pred": [int(v) for v in pred], "correct": [bool(c) for c in correct], "entropy": list(1 - r),
          "margin": list(r), "mutual_information": list(0.1 * (1 - r)), "flip_rate": list(0.2 * (1 - r)),
          "confidence": list(r)}
    return SimpleNamespace(score=lambda name=None: rho, correct=np.asarray(correct, bool), prediction=pr)


def test_within_class_pools_pairs_inside_each_predicted_class():
    from itertools import product

    g = torch.Generator().manual_seed(30)
    pred = torch.randint(0, 3, (60,), generator=g)
    correct = torch.rand(60, generator=g) > 0.4
    rho = torch.rand(60, generator=g) + 0.5 * (pred == 2)  # class 2 very repeatable
    rho[5] = float("nan")
    rec = _record(rho, correct, pred)
    strat = sm.class_stratified(rec)
    w = sm.within_class(rho, correct, pred, ["a", "b", "c"], strat)
    num = den = 0.0  # oracle: count the within-class pairs one by one
    for i, j in product(range(60), range(60)):
        if i == 5 or j == 5 or pred[i] != pred[j] or not correct[i] or correct[j]:
            continue
        den += 1
        num += 1.0 if rho[i] > rho[j] else 0.5 if rho[i] == rho[j] else 0.0
    assert w["auroc_within_predicted_class"] == pytest.approx(num / den) and w["ci95"] == strat["ci95"]
    assert strat["ci95"][0] < num / den < strat["ci95"][1]
    mis = ~correct
    top = int(torch.mode(pred[mis]).values)
    assert w["most_common_error_prediction"] == "abc"[top] and w["n_mis"] == int(mis.sum())
    assert w["rho_errors_that_prediction"] == pytest.approx(float(rho[mis & (pred == top)].double().nanmean()))
    text = sm.within_class_sentence(w, {"auroc": 0.3})
    assert f"{w['auroc_within_predicted_class']:.3f}" in text and "0.300" in text


def test_sweep_sentence_reads_the_range_and_sign_of_the_gap():
    s = sm.sweep_sentence({"0.05": {"gap": -0.001, "auroc": 0.5}, "0.3": {"gap": -0.303, "auroc": 0.2}})
    assert "negative" in s and "−0.303 at p = 0.3" in s and "−0.001 at p = 0.05" in s
    assert "both signs" in sm.sweep_sentence({"0.1": {"gap": 0.1, "auroc": 0.6}, "0.5": {"gap": -0.1, "auroc": 0.4}})


# ---------------------------------------------------------------- the chapter on the instrument
def _stack(g, s=6, b=5, c=4, side=4):
    return sm.MCStudy(maps=torch.rand(s, b, side, side, generator=g),
                      probs=torch.softmax(torch.rand(s, b, c, generator=g), -1),
                      target=torch.zeros(b, dtype=torch.long), det_map=torch.rand(b, side, side, generator=g),
                      det_probs=torch.full((b, c), 1.0 / c))


def test_mc_study_is_the_samplers_stack_and_its_repeatability_is_scipy_spearman_at_the_layer(tiny_model):
    from uqxai_lib import samplers

    x = torch.randn(5, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    st = sm.mc_study(tiny_model, x, "layer4", 3, p=0.3, seed=0, batch=2)
    assert st.maps.shape == (3, 5, 2, 2) and st.probs.shape == (3, 5, 4) and st.det_map.shape == (5, 2, 2)
    assert not any(m.training for m in tiny_model.modules())
    assert {d.p for d in tiny_model.modules() if isinstance(d, torch.nn.Dropout)} == {0.5}  # restored
    assert torch.equal(st.target, st.det_probs.argmax(1))  # the deterministic prediction is explained
    first = samplers.mc_dropout(tiny_model, x[:2], "layer4", 3, p=0.3, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(first.maps, st.maps[:, :2])
    assert torch.allclose(saliency.grad_cam(tiny_model, x, "layer4", st.target), st.det_map, atol=1e-6)
    rho = st.repeatability()
    for b in range(5):  # mean over passes of scipy's Spearman at the layer's resolution; constant maps skipped
        r = st.det_map[b].flatten().numpy()
        vals = [spearmanr(st.maps[s, b].flatten().numpy(), r).statistic for s in range(3)
                if st.maps[s, b].std() > 0 and r.std() > 0]
        want = np.mean(vals) if vals else float("nan")
        assert (math.isnan(want) and math.isnan(float(rho[b]))) or abs(float(rho[b]) - want) < 1e-9
    assert torch.allclose(st.per_pass_rho(1).nanmean(), rho[1], equal_nan=True)
    with pytest.raises(ValueError, match="outside 2..3"):
        sm.prefix_repeatability(st, [1])


def test_prefix_repeatability_and_settling_read_the_first_passes():
    st = _stack(torch.Generator().manual_seed(2), s=10, b=7)
    prefix = sm.prefix_repeatability(st, [2, 5, 10])
    assert torch.allclose(prefix[1], st.repeatability(5)) and torch.allclose(prefix[2], st.repeatability())
    s = sm.settling(prefix, [2, 5, 10])
    assert s.iloc[-1, 0] == 0.0 and s.iloc[-1, 1] == 1.0


def test_fig4_case_and_widget_frames_use_the_first_passes():
    g = torch.Generator().manual_seed(7)
    st = _stack(g, s=4, b=2)
    case = sm.fig4_case(st, 1, torch.rand(16, 16), "t", passes=3, mass=0.25)
    assert torch.allclose(case["mean"], st.maps[:3, 1].mean(0))
    assert torch.allclose(case["std"], st.maps[:3, 1].std(0, correction=0))
    assert case["rho_mean"] == pytest.approx(float(st.repeatability(3)[1])) and case["overlap"] == {"det": 0.25}
    assert sm.fig4_case(st, 0, torch.rand(16, 16), "t", mass=float("nan"))["overlap"] == {}
    items = sm.mc_frame_items({0.1: st}, [0, 1], [2, 4], [torch.zeros(16, 16)] * 2, ["a", "b"], "wxyz")
    assert len(items) == 1 and len(items[0]) == 2 and len(items[0][1]) == 2
    assert torch.allclose(items[0][1][0]["mean"], st.maps[:, 0].mean(0))
    assert f"ρ = {float(st.repeatability(2)[1]):.2f}" in items[0][0][1]["title"]
    with pytest.raises(ValueError, match="at least 2 passes"):
        sm.mc_frame_items({0.1: st}, [0], [1, 4], [torch.zeros(16, 16)], ["a"], "wxyz")


def test_compare_is_the_primary_bootstrap_whose_p_agrees_with_its_interval():
    from uqxai_lib import protocol

    g = torch.Generator().manual_seed(20)
    correct = torch.rand(80, generator=g) > 0.3
    rho = torch.rand(80, generator=g) * 0.3 + 0.5 + 0.2 * correct.double()  # correct clearly higher
    rec = sm.compare(rho, correct, torch.arange(80), score="rho")  # one item per patient: item bootstrap
    assert rec == protocol.primary_section(rho.numpy(), correct.numpy(), score="rho")
    assert rec["verdict"] == "higher" and rec["ci95"][0] > 0 and rec["p"] < 0.05
    assert rec["effect"] == pytest.approx(float(rho[correct].mean() - rho[~correct].mean()))
    groups = torch.arange(80) // 2  # two slices per patient: patients are resampled
    rec2 = sm.compare(rho, correct, groups, score="rho")
    assert rec2["effect"] == rec["effect"] and rec2["ci95"] != rec["ci95"]
    text = sm.verdict_sentence({**rec, "name": sm.PRIMARY_NAME})
    assert "**higher**" in text and "**reproduced**" in text and "bootstrap p" in text and "Mann" not in text
    assert "**reversed**" in sm.verdict_sentence(dict(rec, verdict="lower"))
    few = sm.compare(rho[:12], torch.tensor([True] * 10 + [False] * 2), score="rho")
    assert few["verdict"] == "undefined" and "undefined" in sm.verdict_sentence(few)


def test_assessment_is_evaluate_of_the_stack_and_variants_count_constant_maps():
    from uqxai_lib import evaluate
    from uqxai_lib.data import LabeledArrays

    g = torch.Generator().manual_seed(23)
    st = _stack(g, s=5, b=24)
    st.maps[0, 3] = 0.0  # a constant MC map: skipped and counted
    y = torch.randint(0, 4, (24,), generator=g)
    test = LabeledArrays(torch.zeros(24, 3, 8, 8), y, ("a", "b", "c", "d"), group=torch.arange(24))
    s = sm.Setup(None, None, test, torch.nn.Linear(2, 2), list("abcd"), "layer4", None, None, "phantom", {})
    rec = sm.assessment(s, st, passes=4, seed=0, full=False)
    want = evaluate(st.maps[:4], st.det_map, st.probs[:4], st.det_probs, y, target=st.target, source="mc_dropout",
                    score="rho", seed=0)
    assert rec.primary == want.primary and rec.stability["rho"] == want.stability["rho"]
    assert sm.primary_record(rec)["name"] == sm.PRIMARY_NAME
    v = sm.variant_record(rec)
    assert v["n_constant_samples"] == 1 and v["effect"] == rec.primary["effect"]
    table = sm.variants_table({"pre_dropout": v, "post_dropout": v})
    assert list(table.index) == ["pre_dropout", "post_dropout"] and table.loc["pre_dropout", "constant MC maps"] == 1
    assert list(table.columns)[0] == "verdict"


def test_setup_refuses_missing_parameters_and_primary_run_is_the_notebooks_primary(tmp_path, monkeypatch):
    monkeypatch.setenv("UQXAI_CACHE_DIR", str(tmp_path))
    with pytest.raises(ValueError, match="needs the chapter parameters"):
        sm.setup({"image_size": 32}, seed=0)
    params = dict(image_size=32, n_patients=60, ambiguity=0.3, split=[0.5, 0.2, 0.3], max_test=400, data_dir=None,
                  sartaj_classes=None, sartaj_val_size=None, sartaj_check_counts=True, arch="resnet18", width=4,
                  small_input=True, weights=None, train_dropout=0.1, epochs=1, patience=1, batch_size=16, lr=0.002,
                  explain_point="pre_dropout", passes=3, t_grid=[2, 4], dropout=0.1)
    s = sm.setup(params, seed=0)
    assert len(s.test) == 18 and s.layer.startswith("layer4") and s.attrs is not None
    assert "synthetic brain MRI" in s.data
    assert not s.model.training and s.config["data"]["n_patients"] == 60
    run = sm.primary_run(params, seed=0)
    rec = sm.assessment(s, sm.study(s, passes=4, p=0.1, seed=0), passes=3, seed=0, full=False)
    assert run["primary"] == sm.primary_record(rec) and run["claim"] == sm.CLAIM
    json.dumps(run)  # the robustness sweep stores it


def test_fidelity_table_rows_are_the_instruments_fidelity_section_per_class():
    from uqxai_lib import protocol
    from uqxai_lib.data import LabeledArrays

    g = torch.Generator().manual_seed(24)
    mask = torch.zeros(12, 8, 8, dtype=torch.bool)
    mask[:8, 2:5, 2:6] = True  # the last four slices have no tumour
    y = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
    test = LabeledArrays(torch.zeros(12, 3, 8, 8), y, ("g", "m", "n"), mask=mask)
    s = sm.Setup(None, None, test, None, ["g", "m", "n"], "layer4", None, None, "phantom", {})
    st = _stack(g, s=3, b=12)
    from uqxai_lib import evaluate

    rec = evaluate(st.maps, st.det_map, st.probs, st.det_probs, y, target=st.target, source="mc_dropout", masks=mask)
    t = sm.fidelity_table(s, rec)
    assert list(t.index) == ["all tumour slices", "g", "m"] and t.loc["all tumour slices", "images"] == 8
    want = protocol.fidelity_section(st.det_map[:4], mask[:4])
    assert t.loc["g", "chance"] == f"{want['chance']:.3g}" and t.loc["g", "images"] == 4
    m = protocol.fidelity_section(st.det_map[4:8], mask[4:8])["mass_in_mask"]
    assert t.loc["m", "mass in mask (95% CI)"].startswith(f"{m:.3g}")


def test_sanity_table_and_sentence_show_the_instruments_outcome():
    san = {"steps": [{"randomised": "fc", "median_rho": 0.12, "n_constant": 3, "n": 10},
                     {"randomised": "layer4", "median_rho": float("nan"), "n_constant": 10, "n": 10}],
           "outcome": "inconclusive", "reason": "10 of 10 randomised maps are constant after randomising layer4"}
    t = sm.sanity_table(san)
    assert list(t.index) == ["fc", "layer4"] and t.loc["layer4", "constant randomised maps"] == "10 of 10"
    assert t.loc["layer4", "median ρ with the trained map"] == "n/a"
    assert "**inconclusive**" in sm.sanity_sentence(san) and "10 of 10" in sm.sanity_sentence(san)


def test_primary_record_carries_the_mde_and_the_papers_effect():
    from uqxai_lib import protocol

    g = np.random.default_rng(3)
    correct = np.r_[np.ones(60, bool), np.zeros(20, bool)]
    rho = np.r_[g.normal(0.8, 0.1, 60), g.normal(0.75, 0.1, 20)]
    rec = _record(rho, correct, np.zeros(80))
    rec.primary = protocol.primary_section(rho, correct, score="rho")
    prim = sm.primary_record(rec)
    se = math.sqrt(rho[correct].var(ddof=1) / 60 + rho[~correct].var(ddof=1) / 20)
    assert prim["mde"] == pytest.approx((1.959964 + 0.841621) * se, rel=1e-4) and prim["paper_effect"] == 0.22
    assert sm.PAPER_EFFECT == pytest.approx(sm.PAPER_RHO["correct"][0] - sm.PAPER_RHO["misclassified"][0])


def test_ladder_has_the_eight_rungs_and_reads_a_composition_effect(tmp_path):
    """Simulated: within each predicted class correct images are more repeatable, but most errors are
    predicted as a class whose maps are very repeatable, so the pooled direction reverses while the
    within-class rung reproduces the paper; a narrow interval far from +0.22 excludes the paper's effect."""
    from uqxai_lib import protocol, verdicts
    from uqxai_lib.data import LabeledArrays

    g = np.random.default_rng(4)
    pred = np.r_[np.zeros(150, int), np.ones(150, int)]
    correct = np.r_[g.random(150) < 0.95, g.random(150) < 0.4]  # class 1 ("no tumour") holds most errors
    rho = np.where(pred == 1, 0.9, 0.6) + np.where(correct, 0.04, 0.0) + g.normal(0, 0.02, 300)
    rec = _record(rho, correct, pred)
    rec.primary = protocol.primary_section(rho, correct, score="rho")
    rec.fidelity = {"mass_in_mask": 0.05, "mass_in_mask_ci95": [0.045, 0.055], "chance": 0.035}
    rec.sanity = {"outcome": "inconclusive", "reason": "92 of 180 randomised maps are constant", "threshold": 0.5,
                  "steps": [{"randomised": "fc", "median_rho": 0.2, "n_constant": 92, "n": 180}]}
    test = LabeledArrays(torch.zeros(300, 1, 2, 2), torch.zeros(300, dtype=torch.long), ("a", "b"),
                         group=torch.arange(300))
    s = sm.Setup(None, None, test, None, ["a", "b"], "layer4", None, {"y": None}, "synthetic brain MRI", {})
    lad, ev = sm.ladder(s, rec, robustness_path=tmp_path / "robustness.json")
    rungs = {r["name"]: r for r in lad["rungs"]}
    eight = ("direction", "beyond_baselines", "maps_right", "sanity", "within_class", "across_seeds", "across_threads",
             "paper_effect")
    assert tuple(rungs) == eight and all(r["outcome"] in verdicts.OUTCOMES[n] for n, r in rungs.items())
    assert lad["headline"] == rungs["across_seeds"]["outcome"] == "undefined"
    assert rungs["direction"]["outcome"] == "reversed" and rungs["within_class"]["outcome"] == "reproduced"
    assert rungs["paper_effect"]["outcome"] == "excluded" and rungs["sanity"]["outcome"] == "inconclusive"
    assert rungs["maps_right"]["outcome"] == "above chance" and "robustness" in rungs["across_threads"]["reason"]
    assert lad["data"].startswith("embedded synthetic phantom (synthetic brain MRI)") and "SARTAJ" in lad["data"]
    assert ev["within_class"]["auroc"] > 0.5 > rec.primary["auroc"]
    text = sm.summary({"verdict": lad})
    assert text.count("- ") == len(lad["rungs"]) and "This run: **reversed**" in text
    assert "(the robustness chapter has not run" in text and "0.0" not in text  # numbers stay in the box


def test_layer_table_reads_each_layers_stack_with_the_instruments_pieces(tiny_model, tmp_path, monkeypatch):
    from uqxai_lib import protocol
    from uqxai_lib.data import LabeledArrays

    monkeypatch.setenv("UQXAI_CACHE_DIR", str(tmp_path))
    g = torch.Generator().manual_seed(31)
    mask = torch.zeros(8, 16, 16, dtype=torch.bool)
    mask[:6, 4:10, 4:10] = True
    test = LabeledArrays(torch.randn(8, 3, 16, 16, generator=g), torch.randint(0, 4, (8,), generator=g),
                         ("a", "b", "c", "d"), mask=mask)
    s = sm.Setup(None, None, test, tiny_model, list("abcd"), "layer4", None, None, "phantom", {"data": "t"})
    correct = torch.tensor([True, False] * 4)
    sub = torch.arange(8)
    t = sm.layer_table(s, sub, correct, ["layer3", "layer4"], 3, p=0.3, seed=0)
    assert list(t.index) == ["layer3", "layer4"] and t.loc["layer3", "map size"] == "4×4"
    st = sm.study(s, passes=3, p=0.3, seed=0, layer="layer4", subset=sub)
    assert t.loc["layer4", "mean ρ"] == f"{float(st.repeatability().nanmean()):.3g}"
    f = protocol.fidelity_section(st.det_map, mask)
    assert t.loc["layer4", "chance"] == f"{f['chance']:.3g}"
    again = sm.study(s, passes=3, p=0.3, seed=0, layer="layer4", subset=sub)  # from the cache
    assert torch.equal(again.maps, st.maps)
