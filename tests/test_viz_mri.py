"""Tests of the MRI chapter's study helpers and figures (uqxai_lib.viz.mri)."""
import matplotlib
import numpy as np
import pytest
import torch
from scipy.stats import rankdata, spearmanr

from uqxai_lib import metrics, saliency
from uqxai_lib.models.resnet_mc import build_resnet_mc
from uqxai_lib.viz import mri as vz

matplotlib.use("Agg")


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
    prefix = vz.prefix_repeatability(per_pass, [1, 4, 6])
    for row, t in zip(prefix, (1, 4, 6)):
        assert torch.allclose(row, metrics.repeatability(maps[:t], ref), atol=1e-6)
    with pytest.raises(ValueError, match="outside 1..6"):
        vz.prefix_repeatability(per_pass, [7])


def test_mc_study_rho_matches_scipy_and_leaves_modes_alone(tiny_model):
    x = torch.randn(5, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    st = vz.mc_study(tiny_model, x, "layer4", 3, p=0.3, seed=0, batch=2)
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
    again = vz.mc_study(tiny_model, x, "layer4", 3, p=0.3, seed=0, batch=2)
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
            vz.mc_study(tiny_model, torch.zeros(1, 3, 16, 16), "layer4", 2)
    finally:
        tiny_model.eval()


def test_rank_average_matches_scipy_ranks():
    a = torch.tensor([0.3, 0.1, 0.9, 0.1])
    b = torch.tensor([2.0, 5.0, 1.0, 3.0])
    want = ((rankdata(a) - 1) / 3 + (rankdata(b) - 1) / 3) / 2
    assert np.allclose(vz.rank_average(a, b).numpy(), want)
    with pytest.raises(ValueError, match="same length"):
        vz.rank_average(a, b[:2])


def test_sweep_subset_keeps_errors_up_to_half_and_fills_with_spaced_correct_images():
    correct = torch.ones(50, dtype=torch.bool)
    correct[[3, 17, 41]] = False
    idx = vz.sweep_subset(correct, 10)
    assert len(idx) == 10 and {3, 17, 41} <= set(idx.tolist())
    assert torch.equal(idx, idx.sort().values) and len(set(idx.tolist())) == 10
    assert int((~correct[vz.sweep_subset(correct, 2)]).sum()) == 1  # one of each
    assert torch.equal(vz.sweep_subset(correct, 100), torch.arange(50))
    many = torch.arange(40) % 4 == 0  # 10 correct, 30 misclassified
    sub = vz.sweep_subset(many, 12)
    assert int(many[sub].sum()) == 6 and int((~many[sub]).sum()) == 6
    assert int(many[vz.sweep_subset(many, 36)].sum()) == 10  # too few correct: errors fill up
    with pytest.raises(ValueError, match="n must be"):
        vz.sweep_subset(correct, 0)


def test_pick_cases_takes_the_most_repeatable_correct_and_least_repeatable_error():
    rho = torch.tensor([0.9, float("nan"), 0.8, 0.5, 0.95])
    correct = torch.tensor([True, False, True, False, True])
    y = torch.tensor([1, 0, 1, 3, 2])
    assert vz.pick_cases(rho, correct, y, avoid_class=2) == [0, 1]  # NaN ranks lowest
    assert vz.pick_cases(rho, correct) == [4, 1]
    assert vz.pick_cases(rho, torch.ones(5, dtype=torch.bool)) == [4]


def test_abstention_handles_nan_scores_and_orders_oracle_first():
    correct = torch.tensor([True, True, False, True, False, True])
    good = torch.tensor([0.9, 0.8, 0.1, 0.7, float("nan"), 0.6])  # NaN = least confident
    bad = -good.nan_to_num(0.0)
    curves, table = vz.abstention(correct, {"good": good, "bad": bad})
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
        vz.abstention(correct, {"short": good[:3]})


def test_uncertainty_table_matches_metrics_and_drops_nan_rho():
    g = torch.Generator().manual_seed(5)
    rho = torch.rand(12, generator=g)
    rho[4] = float("nan")
    ent = torch.rand(12, generator=g)
    correct = torch.rand(12, generator=g) > 0.4
    t = vz.uncertainty_table(rho, {"-entropy": -ent}, correct)
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
    t = vz.mask_overlap_table(det, mean, mask, correct)
    want = vz.mask_overlap(det, mask)[[0, 2]].mean()
    assert abs(t.loc["correct (tumour slices)", "deterministic map"] - float(want)) < 1e-6
    assert t.loc["correct (tumour slices)", "n"] == 2 and t.loc["misclassified (tumour slices)", "n"] == 1
    assert abs(t.loc["correct (tumour slices)", "mask area share (uniform map)"] - 16 / 64) < 1e-12


def test_repeatability_and_sweep_tables_use_compare_groups():
    rho = torch.tensor([0.9, 0.8, 0.85, 0.4, 0.5])
    correct = torch.tensor([True, True, True, False, False])
    table, cmp = vz.repeatability_table(rho, correct)
    assert cmp == metrics.compare_groups(rho, correct, higher_in="a")
    assert "Salvi et al. 2025 (theirs): correct" in table.index and "0.76 ± 0.08" in table.to_string()
    sweep = vz.sweep_table({0.1: rho, 0.5: 1 - rho, 0.6: rho}, {0.1: correct, 0.5: correct, 0.6: torch.ones(5, dtype=torch.bool)},
                           "dropout p")
    assert sweep.loc[0.1, "auroc"] == 1.0 and sweep.loc[0.5, "auroc"] == 0.0  # reversed ranking
    assert abs(sweep.loc[0.1, "gap"] - (0.85 - 0.45)) < 1e-6
    assert abs(sweep.loc[0.1, "auroc"] - cmp.auroc) < 1e-12 and sweep.loc[0.1, "n_mis"] == 2
    assert sweep.loc[0.6, "n_mis"] == 0 and np.isnan(sweep.loc[0.6, "auroc"])  # no errors: undefined


def test_settling_reaches_zero_change_at_the_longest_run():
    per_pass = torch.rand(10, 7, generator=torch.Generator().manual_seed(2))
    prefix = vz.prefix_repeatability(per_pass, [2, 5, 10])
    s = vz.settling(prefix, [2, 5, 10])
    assert s.iloc[-1, 0] == 0.0 and s.iloc[-1, 1] == 1.0
    assert s.iloc[0, 0] >= s.iloc[1, 0]


def test_mask_overlap_equals_mass_in_mask_at_full_resolution():
    g = torch.Generator().manual_seed(3)
    maps = torch.rand(4, 8, 8, generator=g)
    mask = torch.zeros(4, 8, 8, dtype=torch.bool)
    mask[:, 2:5, 3:6] = True
    assert torch.allclose(vz.mask_overlap(maps, mask), metrics.mass_in_mask(maps, mask), atol=1e-6)
    assert torch.isnan(vz.mask_overlap(torch.zeros(1, 8, 8), mask[:1])).all()


def test_figures_are_returned():
    g = torch.Generator().manual_seed(4)
    img = torch.rand(16, 16, generator=g)
    mask = torch.zeros(16, 16, dtype=torch.bool)
    mask[4:8, 4:8] = True
    case = dict(image=img, det=torch.rand(4, 4, generator=g), mc=torch.rand(5, 4, 4, generator=g),
                rho=torch.rand(5, generator=g), mask=mask, title="t", overlap={"det": 0.3, "mean": 0.4})
    figs = [
        vz.plot_fig4([case, dict(case, mask=None, overlap=None)], n_mc=3),
        vz.plot_confusion(metrics.classification_summary(torch.eye(4), torch.arange(4))["confusion"], ("a", "b", "c", "d")),
        vz.plot_gallery([img, img], ["x", "y"], masks=[mask, None]),
        vz.plot_rho_vs_uncertainty(torch.rand(20, generator=g), {"e": torch.rand(20, generator=g)},
                                   torch.rand(20, generator=g) > 0.3),
        vz.plot_mc_frame([dict(image=img, mean=case["det"], std=case["det"], title="a", mask=mask)]),
        vz.plot_rho_groups(torch.tensor([0.9, float("nan"), 0.5, 0.7]), torch.tensor([True, True, False, False])),
        vz.plot_rho_groups(torch.tensor([0.9, 0.8]), torch.tensor([True, True]), title="no errors"),
    ]
    corr = torch.rand(30, generator=g) > 0.2
    curves, table = vz.abstention(corr, {"s": torch.rand(30, generator=g)})
    figs.append(vz.plot_abstention(curves, aurc=table["AURC"].to_dict()))
    sweep = vz.sweep_table({0.1: torch.rand(30, generator=g), 0.5: torch.rand(30, generator=g)},
                           {0.1: corr, 0.5: corr}, "dropout p")
    tsw = vz.sweep_table({2: torch.rand(30, generator=g), 5: torch.rand(30, generator=g)}, {2: corr, 5: corr}, "passes T")
    settle = vz.settling(torch.rand(2, 30, generator=g), [2, 5])
    figs.append(vz.plot_sweeps(sweep, tsw, settle))
    assert all(isinstance(f, matplotlib.figure.Figure) for f in figs)
    st = vz.MCStudy(maps=torch.rand(3, 2, 4, 4, generator=g), probs=torch.softmax(torch.rand(3, 2, 4, generator=g), -1),
                    target=torch.zeros(2, dtype=torch.long), det_map=torch.rand(2, 4, 4, generator=g),
                    det_probs=torch.full((2, 4), 0.25), rho=torch.rand(3, 2, generator=g))
    case = vz.fig4_case(st, 1, img, "t", passes=2, mask=mask)
    assert case["mc"].shape == (2, 4, 4) and set(case["overlap"]) == {"det", "mean"}
    frames = vz.mc_frames({0.1: st, 0.5: st}, [0, 1], [1, 3], [img, img], ["a", "b"], "abcd", masks=[mask, None])
    assert len(frames) == 2 and all(len(r) == 2 for r in frames)
    assert all(f.startswith(b"\x89PNG") for r in frames for f in r)
    import matplotlib.pyplot as plt

    plt.close("all")
