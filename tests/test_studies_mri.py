"""Tests of the MRI chapter's analysis steps (uqxai_lib.studies.mri)."""
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
    assert "Salvi et al. 2025 (theirs): correct" in table.index and "0.76 ± 0.08" in table.to_string()
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
