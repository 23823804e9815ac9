"""Tests of the MRI chapter's analysis steps (uqxai_lib.studies.mri)."""
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


def test_prefix_repeatability_equals_repeatability_of_the_first_passes():
    g = torch.Generator().manual_seed(0)
    maps = torch.rand(6, 3, 5, 5, generator=g)
    ref = torch.rand(3, 5, 5, generator=g)
    per_pass = metrics.spearman(maps, ref[None], ndim_spatial=2)  # [S, B]: one rho per pass and image
    per_pass[1, 0] = float("nan")  # a constant map: skipped, as metrics.repeatability skips it
    maps[1, 0] = 0.5
    prefix = sm.prefix_repeatability(per_pass, [1, 4, 6])
    for row, t in zip(prefix, (1, 4, 6)):
        assert torch.allclose(row, metrics.repeatability(maps[:t], ref), atol=1e-6)
    with pytest.raises(ValueError, match="outside 1..6"):
        sm.prefix_repeatability(per_pass, [7])


def test_mc_study_rho_matches_scipy_and_leaves_modes_alone(tiny_model):
    x = torch.randn(5, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    st = sm.mc_study(tiny_model, x, "layer4", 3, p=0.3, seed=0, batch=2)
    assert st.maps.shape == (3, 5, 2, 2) and st.probs.shape == (3, 5, 4) and st.rho.shape == (3, 5)
    assert not any(m.training for m in tiny_model.modules())
    assert {d.p for d in tiny_model.modules() if isinstance(d, torch.nn.Dropout)} == {0.5}  # restored
    up = saliency.upsample(st.maps, (16, 16))
    up_det = saliency.upsample(st.det_map, (16, 16))
    for s in range(3):
        for b in range(5):
            a, r = up[s, b].flatten().numpy(), up_det[b].flatten().numpy()
            want = spearmanr(a, r).statistic if a.std() > 0 and r.std() > 0 else float("nan")
            got = float(st.rho[s, b])
            assert (np.isnan(want) and np.isnan(got)) or abs(got - want) < 1e-4
    # the explained class is the deterministic prediction; seeded passes repeat
    assert torch.equal(st.target, st.det_probs.argmax(1))
    again = sm.mc_study(tiny_model, x, "layer4", 3, p=0.3, seed=0, batch=2)
    assert torch.equal(again.maps, st.maps)
    # the study's repeatability is metrics.repeatability of the upsampled maps
    want = metrics.repeatability(up, up_det)
    got = st.repeatability()
    assert torch.allclose(got.nan_to_num(-9.0), want.nan_to_num(-9.0), atol=1e-5)
    assert torch.allclose(st.repeatability(2).nan_to_num(-9.0),
                          metrics.repeatability(up[:2], up_det).nan_to_num(-9.0), atol=1e-5)


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


def test_mask_overlap_table_splits_tumour_slices_by_correctness():
    g = torch.Generator().manual_seed(6)
    det, mean = torch.rand(4, 4, 4, generator=g), torch.rand(4, 4, 4, generator=g)
    mask = torch.zeros(4, 8, 8, dtype=torch.bool)
    mask[:3, 2:6, 2:6] = True  # image 3 has no tumour
    correct = torch.tensor([True, False, True, True])
    t = sm.mask_overlap_table(det, mean, mask, correct)
    want = sm.mass_in_tumour(det, mask)[[0, 2]].mean()
    assert abs(t.loc["correct (tumour slices)", "deterministic map"] - float(want)) < 1e-6
    assert t.loc["correct (tumour slices)", "n"] == 2 and t.loc["misclassified (tumour slices)", "n"] == 1
    assert abs(t.loc["correct (tumour slices)", "mask area share (uniform map)"] - 16 / 64) < 1e-12


def test_repeatability_and_sweep_tables_use_compare_groups():
    rho = torch.tensor([0.9, 0.8, 0.85, 0.4, 0.5])
    correct = torch.tensor([True, True, True, False, False])
    table, cmp = sm.repeatability_table(rho, correct)
    assert cmp == metrics.compare_groups(rho, correct, higher_in="a")
    assert list(table.index) == ["correct", "misclassified"] and table.loc["misclassified", "images (ours)"] == 2
    assert table.loc["correct", "mean ρ ± SD (theirs: Salvi et al. 2025, SARTAJ)"] == "0.76 ± 0.08"
    assert table.loc["correct", "mean ρ ± SD (ours)"] == f"{cmp.mean_a:.3f} ± {cmp.sd_a:.3f}"
    sweep = sm.sweep_table({0.1: rho, 0.5: 1 - rho, 0.6: rho}, {0.1: correct, 0.5: correct, 0.6: torch.ones(5, dtype=torch.bool)},
                           "dropout p")
    assert sweep.loc[0.1, "auroc"] == 1.0 and sweep.loc[0.5, "auroc"] == 0.0  # reversed ranking
    assert abs(sweep.loc[0.1, "gap"] - (0.85 - 0.45)) < 1e-6
    assert abs(sweep.loc[0.1, "auroc"] - cmp.auroc) < 1e-12 and sweep.loc[0.1, "n_mis"] == 2
    assert sweep.loc[0.6, "n_mis"] == 0 and np.isnan(sweep.loc[0.6, "auroc"])  # no errors: undefined


def test_settling_reaches_zero_change_at_the_longest_run():
    per_pass = torch.rand(10, 7, generator=torch.Generator().manual_seed(2))
    prefix = sm.prefix_repeatability(per_pass, [2, 5, 10])
    s = sm.settling(prefix, [2, 5, 10])
    assert s.iloc[-1, 0] == 0.0 and s.iloc[-1, 1] == 1.0
    assert s.iloc[0, 0] >= s.iloc[1, 0]


def test_mass_in_tumour_equals_mass_in_mask_at_full_resolution_and_upsamples():
    g = torch.Generator().manual_seed(3)
    maps = torch.rand(4, 8, 8, generator=g)
    mask = torch.zeros(4, 8, 8, dtype=torch.bool)
    mask[:, 2:5, 3:6] = True
    assert torch.allclose(sm.mass_in_tumour(maps, mask), metrics.mass_in_mask(maps, mask), atol=1e-6)
    assert torch.isnan(sm.mass_in_tumour(torch.zeros(1, 8, 8), mask[:1])).all()
    # a 2 x 2 map upsampled to 8 x 8: float64 loop over the bilinear upsample of a single map
    m = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    up = torch.nn.functional.interpolate(m[None, None], size=(8, 8), mode="bilinear", align_corners=False)[0, 0].double()
    want = sum(float(up[i, j]) for i in range(8) for j in range(8) if mask[0, i, j]) / float(up.sum())
    assert abs(float(sm.mass_in_tumour(m, mask[0])) - want) < 1e-6




def test_fig4_case_carries_mean_std_and_overlap_of_the_first_passes():
    g = torch.Generator().manual_seed(7)
    st = sm.MCStudy(maps=torch.rand(4, 2, 4, 4, generator=g), probs=torch.full((4, 2, 4), 0.25),
                    target=torch.zeros(2, dtype=torch.long), det_map=torch.rand(2, 4, 4, generator=g),
                    det_probs=torch.full((2, 4), 0.25), rho=torch.rand(4, 2, generator=g))
    mask = torch.zeros(16, 16, dtype=torch.bool)
    mask[2:9, 3:10] = True
    case = sm.fig4_case(st, 1, torch.rand(16, 16), "t", passes=3, mask=mask)
    assert torch.allclose(case["mean"], st.maps[:3, 1].mean(0)) and torch.allclose(case["std"], st.maps[:3, 1].std(0, correction=0))
    assert abs(case["rho_mean"] - float(st.rho[:3, 1].mean())) < 1e-7
    assert abs(case["overlap"]["det"] - float(sm.mass_in_tumour(st.det_map[1], mask))) < 1e-7
    items = sm.mc_frame_items({0.1: st}, [0, 1], [1, 4], [torch.zeros(16, 16)] * 2, ["a", "b"], "wxyz")
    assert len(items) == 1 and len(items[0]) == 2 and len(items[0][1]) == 2
    assert torch.allclose(items[0][1][0]["mean"], st.maps[:, 0].mean(0))


# ---------------------------------------------------------------- primary, secondary, variants
def test_primary_record_is_stats_group_difference_with_scipy_p_and_patient_groups():
    from scipy.stats import mannwhitneyu

    from uqxai_lib import stats

    g = torch.Generator().manual_seed(20)
    correct = torch.rand(80, generator=g) > 0.3
    rho = torch.rand(80, generator=g) * 0.3 + 0.5 + 0.2 * correct.double()  # correct clearly higher
    rec, cmp = sm.primary_record(rho, correct, torch.arange(80))  # one item per patient: item bootstrap
    assert rec["verdict"] == "higher" and rec["ci95"][0] > 0 and rec["name"] == sm.PRIMARY_NAME
    want_p = mannwhitneyu(rho[correct].numpy(), rho[~correct].numpy(), alternative="two-sided").pvalue
    assert abs(rec["p"] - want_p) < 1e-12
    assert abs(rec["effect"] - float(rho[correct].mean() - rho[~correct].mean())) < 1e-9
    assert cmp == stats.group_difference(rho.double(), correct, n_boot=2000, seed=0)
    # two slices per patient: the bootstrap resamples patients (a different, valid interval)
    groups = torch.arange(80) // 2
    assert sm.bootstrap_groups(groups) is not None
    rec2, _ = sm.primary_record(rho, correct, groups)
    assert rec2["effect"] == rec["effect"] and rec2["ci95"] != rec["ci95"]
    assert sm.CLAIM["expected"] == "higher" and sm.CLAIM["source"] == "salvi2025explainability"
    text = sm.verdict_sentence(rec)
    assert "**higher**" in text and "**reproduced**" in text
    rev = dict(rec, verdict="lower")
    assert "**reversed**" in sm.verdict_sentence(rev)


def test_secondary_records_holm_adjust_all_rows():
    comps = {"a": {"effect": 0.1, "ci95": [0.05, 0.2], "p": 0.01}, "b": {"effect": -0.1, "ci95": [-0.2, 0.01], "p": 0.04},
             "c": {"effect": 0.0, "ci95": [-0.1, 0.1], "p": 0.03}}
    rows = sm.secondary_records(comps)
    assert [r["p_holm"] for r in rows] == pytest.approx([0.03, 0.06, 0.06])
    assert [r["verdict"] for r in rows] == ["higher", "no detectable difference", "no detectable difference"]
    # the label follows the Holm-adjusted p, not the unadjusted interval: an interval above 0 at Holm p 0.158
    two = sm.secondary_records({"x": {"effect": 0.02, "ci95": [0.003, 0.04], "p": 0.079},
                                "y": {"effect": 0.03, "ci95": [0.001, 0.05], "p": 0.09}})
    assert [r["p_holm"] for r in two] == pytest.approx([0.158, 0.158])
    assert {r["verdict"] for r in two} == {"no detectable difference"}
    assert sm.holm_label(-0.2, 0.01) == "lower" and sm.holm_label(0.2, float("nan")) == "undefined"


def test_degenerate_passes_and_variant_record_count_undefined_passes_per_group():
    g = torch.Generator().manual_seed(21)
    per_pass = torch.rand(5, 6, generator=g)
    per_pass[0, 1] = per_pass[2, 1] = float("nan")
    per_pass[:, 4] = float("nan")  # an image whose maps are all constant
    correct = torch.tensor([True, True, False, True, False, False])
    d = sm.degenerate_passes(per_pass, correct)
    assert d == {"correct": 2, "misclassified": 5, "images_without_defined_pass": 1, "passes_per_image": 5}
    st = sm.MCStudy(maps=torch.zeros(5, 6, 2, 2), probs=torch.full((5, 6, 4), 0.25), target=torch.zeros(6, dtype=torch.long),
                    det_map=torch.zeros(6, 2, 2), det_probs=torch.full((6, 4), 0.25), rho=per_pass)
    rec = sm.variant_record(st, correct, 5)
    rho = per_pass.double().nanmean(0)
    assert abs(rec["rho_correct_mean"] - float(rho[correct].mean())) < 1e-6
    ok = ~rho.isnan()
    assert abs(rec["rho_mis_mean"] - float(rho[~correct & ok].mean())) < 1e-6
    assert rec["degenerate_passes"] == d and set(rec) >= {"auroc", "auroc_ci95", "mwu_p"}
    table = sm.variants_table({"pre_dropout": rec, "post_dropout": rec})
    assert list(table.index) == ["pre_dropout", "post_dropout"] and table.loc["pre_dropout", "undefined passes (correct / mis)"] == "2 / 5"


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
def test_fidelity_scores_match_float64_loops_and_skip_empty_masks():
    g = torch.Generator().manual_seed(23)
    maps = torch.rand(4, 8, 8, generator=g)
    mask = torch.zeros(4, 8, 8, dtype=torch.bool)
    mask[0, 1:4, 2:6] = True
    mask[1, 5:8, 0:3] = True
    mask[2, 0:2, 0:2] = True  # image 3 has no tumour
    f = sm.fidelity_scores(maps, mask)
    for b in range(3):
        m, k = maps[b].double().numpy(), mask[b].numpy()
        assert float(f["mass"][b]) == pytest.approx(m[k].sum() / m.sum(), abs=1e-6)
        assert float(f["chance"][b]) == pytest.approx(k.mean())
        assert float(f["pointing"][b]) == float(k.ravel()[m.argmax()])
        top = m >= np.quantile(m, 0.9)
        assert float(f["iou"][b]) == pytest.approx((top & k).sum() / (top | k).sum())
    assert all(math.isnan(float(v[3])) for v in f.values())
    s = sm.fidelity_summary(f, torch.tensor([0, 0, 1, 2]), ["x", "y", "z"])
    assert s["n"] == 3 and s["mass_in_mask"] == pytest.approx(float(f["mass"][:3].mean()))
    assert s["mass_in_mask_ci95"][0] <= s["mass_in_mask"] <= s["mass_in_mask_ci95"][1]
    assert set(s["per_class"]) == {"x", "y"} and s["per_class"]["x"]["n"] == 2


def test_blurred_is_torchvisions_gaussian_blur_with_sigma_an_eighth_of_the_side():
    from torchvision.transforms.functional import gaussian_blur

    for h in (16, 32):
        x = torch.rand(2, 3, h, h, generator=torch.Generator().manual_seed(h))
        s = h / 8
        k = 2 * math.ceil(3 * s) + 1  # radius ceil(3 sigma), reflect padding: torchvision's 2-D kernel
        torch.testing.assert_close(sm.blurred(x), gaussian_blur(x, [k, k], [s, s]), atol=1e-5, rtol=0)
    x = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(sm.blurred(x, 1.0), gaussian_blur(x, [7, 7], [1.0, 1.0]), atol=1e-5, rtol=0)


def test_deletion_insertion_and_cascading_randomisation_on_a_small_resnet(tiny_model):
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(25))
    target = tiny_model(x).argmax(1)
    maps = saliency.grad_cam(tiny_model, x, "layer4.1.pre_dropout", target)
    di = sm.deletion_insertion(tiny_model, x, maps, target, steps=4, seed=0)
    assert set(di["auc"]) == {"deletion", "insertion", "deletion_random", "insertion_random"}
    probs = tiny_model(x).softmax(-1).gather(1, target[:, None]).squeeze(1).double()
    assert torch.allclose(di["curves"]["deletion"][0], probs.mean(), atol=1e-5)  # nothing removed yet
    from uqxai_lib import fidelity

    up = saliency.upsample(maps, (16, 16))
    for order, suffix in (("map", ""), ("random", "_random")):
        for name, fn in (("deletion", fidelity.deletion_curve), ("insertion", fidelity.insertion_curve)):
            c = fn(tiny_model, x, up, target, patch=1, steps=4, fill=sm.blurred(x), order=order,
                   generator=torch.Generator().manual_seed(0))
            torch.testing.assert_close(di["per_image"][name + suffix], fidelity.curve_auc(c))
            torch.testing.assert_close(di["curves"][name + suffix], c.mean(0))
    tiny_model.train()
    with pytest.raises(ValueError, match="eval mode"):
        sm.deletion_insertion(tiny_model, x, maps, target, steps=4)
    tiny_model.eval()
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    sc = sm.cascading_randomisation(tiny_model, x, "layer4.1.pre_dropout", target, seed=0)
    assert all(torch.equal(before[k], v) for k, v in tiny_model.state_dict().items())  # the trained model is untouched
    assert [s["randomised_from"] for s in sc["steps"]] == list(sm.CASCADE)
    assert torch.allclose(sc["maps"][0], maps)
    up = saliency.upsample(sc["maps"][1], (16, 16))
    ref = saliency.upsample(maps, (16, 16))
    for b in range(4):
        a, r = up[b].flatten().numpy(), ref[b].flatten().numpy()
        if a.std() > 0 and r.std() > 0:
            assert float(sc["per_image"][0][b]) == pytest.approx(spearmanr(a, r).statistic, abs=1e-4)
    assert isinstance(sc["passes"], bool)
    for step, rho in zip(sc["steps"], sc["per_image"]):  # undefined rho counts as 0 in the median
        want = float(np.median(np.nan_to_num(rho.double().numpy(), nan=0.0)))
        assert step["spearman_to_trained"] == pytest.approx(want) and step["constant_maps"] == int(rho.isnan().sum())


def test_fidelity_vs_stability_is_scipy_spearman_with_an_interval():
    g = torch.Generator().manual_seed(26)
    a = torch.rand(50, generator=g)
    b = a + 0.3 * torch.rand(50, generator=g)
    a[3] = float("nan")
    r = sm.fidelity_vs_stability(a, b)
    ok = ~a.isnan()
    assert r["n"] == 49 and r["spearman"] == pytest.approx(spearmanr(a[ok], b[ok]).statistic, abs=1e-9)
    assert r["ci95"][0] < r["spearman"] < r["ci95"][1]


def test_layer_table_reports_resolution_fidelity_and_stability(tiny_model):
    x = torch.randn(6, 3, 16, 16, generator=torch.Generator().manual_seed(27))
    mask = torch.zeros(6, 16, 16, dtype=torch.bool)
    mask[:, 4:9, 4:9] = True
    correct = torch.tensor([True, False, True, True, False, True])
    t, runs = sm.layer_table(tiny_model, x, mask, correct, ["layer3.1.pre_dropout", "layer4.1.pre_dropout"], 2, p=0.3)
    assert t.loc["layer3.1.pre_dropout", "map size"] == "4×4" and t.loc["layer4.1.pre_dropout", "map size"] == "2×2"
    assert t.loc["layer4.1.pre_dropout", "chance"] == pytest.approx(25 / 256)
    assert t.loc["layer3.1.pre_dropout", "mean ρ"] == pytest.approx(float(runs["layer3.1.pre_dropout"].repeatability().nanmean()))


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


def test_within_class_pools_pairs_inside_each_predicted_class():
    from itertools import product

    g = torch.Generator().manual_seed(30)
    pred = torch.randint(0, 3, (60,), generator=g)
    correct = torch.rand(60, generator=g) > 0.4
    rho = torch.rand(60, generator=g) + 0.5 * (pred == 2)  # class 2 very repeatable
    rho[5] = float("nan")
    w = sm.within_class(rho, correct, pred, ["a", "b", "c"])
    num = den = 0.0  # oracle: count the within-class pairs one by one
    for i, j in product(range(60), range(60)):
        if i == 5 or j == 5 or pred[i] != pred[j] or not correct[i] or correct[j]:
            continue
        den += 1
        num += 1.0 if rho[i] > rho[j] else 0.5 if rho[i] == rho[j] else 0.0
    assert w["auroc_within_predicted_class"] == pytest.approx(num / den)
    mis = ~correct
    top = int(torch.mode(pred[mis]).values)
    assert w["most_common_error_prediction"] == "abc"[top] and w["n_mis"] == int(mis.sum())
    assert w["rho_errors_that_prediction"] == pytest.approx(float(rho[mis & (pred == top)].double().nanmean()))
    text = sm.within_class_sentence(w, {"auroc": 0.3})
    assert f"{w['auroc_within_predicted_class']:.3f}" in text and "0.300" in text


def test_sweep_sentence_reads_the_range_and_sign_of_the_gap():
    s = sm.sweep_sentence({"0.05": {"gap": -0.001, "auroc": 0.5}, "0.3": {"gap": -0.303, "auroc": 0.2}})
    assert "negative" in s and "−0.303" not in s and "-0.303 at p = 0.3" in s and "-0.001 at p = 0.05" in s
    assert "both signs" in sm.sweep_sentence({"0.1": {"gap": 0.1, "auroc": 0.6}, "0.5": {"gap": -0.1, "auroc": 0.4}})
