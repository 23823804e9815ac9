"""Tests of the derm_vic analysis steps (uqxai_lib.studies.derm)."""
import numpy as np
import pandas as pd
import pytest
import scipy.stats
import torch
from support import derm_maps_and_masks as _maps_and_masks

from uqxai_lib.studies import derm as sd


def test_dice_and_iou_of_the_same_binary_maps_obey_identity_and_jensen_bound():
    maps, masks = _maps_and_masks()
    f = sd.fidelity_scores(maps[0], masks)
    assert torch.allclose(f["dice"], sd.dice_from_iou(f["iou"]), atol=1e-6)
    assert f["dice"].mean() <= sd.dice_upper_bound(f["iou"].mean()) + 1e-9
    # the poster's pair (mean IoU 0.385 with mean Dice 0.878) is impossible for the same binary maps
    assert sd.dice_upper_bound(0.385) < 0.878 and sd.dice_upper_bound(0.408) < 0.923


def test_fidelity_matches_a_float64_hand_computation():
    maps, masks = _maps_and_masks(1)
    f = sd.fidelity_scores(maps[0], masks, ("fraction_of_max", 0.5))
    up = torch.nn.functional.interpolate(maps[0][:, None].double(), size=(32, 32), mode="bilinear",
                                         align_corners=False)[:, 0]
    lo, hi = up.amin((1, 2), keepdim=True), up.amax((1, 2), keepdim=True)
    pred = ((up - lo) / (hi - lo)) >= 0.5
    inter = (pred & masks).sum((1, 2)).double()
    union = (pred | masks).sum((1, 2)).double()
    assert torch.allclose(f["iou"].double(), inter / union, atol=1e-6)


def test_vic_is_mean_and_variability_is_population_sd_of_normalised_maps():
    maps, _ = _maps_and_masks(2)
    vic, var = sd.vic_maps(maps)
    a = maps.double().numpy()
    lo = a.min(axis=(2, 3), keepdims=True)
    hi = a.max(axis=(2, 3), keepdims=True)
    n = (a - lo) / (hi - lo)
    np.testing.assert_allclose(vic.numpy(), n.mean(0), atol=1e-6)
    np.testing.assert_allclose(var.numpy(), n.std(0), atol=1e-6)
    with pytest.raises(ValueError, match=r"\[S, B, h, w\]"):
        sd.vic_maps(maps[0])


def test_per_model_fidelity_equals_a_loop_over_models():
    maps, masks = _maps_and_masks(3, s=7)
    pm = sd.per_model_fidelity(maps, masks, chunk=3)
    loop = torch.stack([sd.fidelity_scores(m, masks)["iou"].mean() for m in maps])
    assert torch.allclose(pm["iou"], loop, atol=1e-6)
    assert torch.allclose(sd.per_model_fidelity(maps, masks)["iou"], loop, atol=1e-6)  # automatic chunk size


def _bootstrap_oracle(d, groups, n_boot, seed):
    """Percentile interval and two-sided p of the mean of d over resampled lesions, a float64 loop."""
    rng = np.random.default_rng(seed)
    uniq = np.unique(groups)
    members = {u: np.flatnonzero(groups == u) for u in uniq}
    vals = []
    for _ in range(n_boot):
        pick = rng.integers(0, uniq.size, uniq.size)
        vals.append(d[np.concatenate([members[uniq[i]] for i in pick])].mean())
    return np.array(vals)


def test_compare_to_optimal_is_a_paired_lesion_bootstrap_with_p_from_the_same_resamples():
    g = np.random.default_rng(0)
    n = 60
    groups = np.repeat(np.arange(20), 3)
    maps, masks = _maps_and_masks(5, s=2, b=n)
    f_opt = sd.fidelity_scores(maps[0], masks)
    vic = maps[1]
    row, f_vic = sd.compare_to_optimal(vic, maps[0], f_opt, masks, torch.as_tensor(groups), n_kept=5, n_boot=2000,
                                       seed=3, site="x")
    d = (f_vic["iou"] - f_opt["iou"]).double().numpy()
    assert row["delta_iou"] == pytest.approx(d.mean())
    boots = _bootstrap_oracle(d, groups, 2000, 11)
    lo_o, hi_o = np.quantile(boots, [0.025, 0.975])
    lo, hi = row["delta_iou_ci95"]
    assert abs(lo - lo_o) < 0.25 * (hi_o - lo_o) and abs(hi - hi_o) < 0.25 * (hi_o - lo_o)
    # p < 0.05 exactly when the interval excludes 0 (one procedure), and the verdict reads the interval
    assert (row["delta_iou_p"] < 0.05) == (lo > 0 or hi < 0)
    assert row["verdict"] == ("higher" if lo > 0 else "lower" if hi < 0 else "no detectable difference")
    assert row["site"] == "x" and row["reason"] is None
    rho = [scipy.stats.spearmanr(vic[i].flatten().numpy(), maps[0][i].flatten().numpy()).statistic for i in range(n)]
    # torch's median of an even count is the lower of the two middle values
    assert row["spearman_vic_optimal_median"] == pytest.approx(float(np.sort(rho)[(n - 1) // 2]), abs=1e-5)
    # simulated paired IoUs with a known difference of 0.03 and a shared lesion effect: the interval
    # over lesions holds 0.03 and excludes 0
    lesion = np.repeat(g.normal(0, 0.1, 20), 3)
    a = torch.as_tensor(0.5 + lesion + g.normal(0, 0.05, n))
    est, ci, p, n_ok = sd.paired_effect(a + 0.03 + torch.as_tensor(g.normal(0, 0.01, n)), a, groups, n_boot=1000,
                                         seed=0)
    assert ci[0] < 0.03 < ci[1] and ci[0] > 0 and p < 0.05 and n_ok == n


def test_compare_to_optimal_is_undefined_below_two_kept_models_never_no_difference():
    maps, masks = _maps_and_masks(6)
    f_opt = sd.fidelity_scores(maps[0], masks)
    for n_kept, vic in ((0, None), (1, maps[1])):
        row, f = sd.compare_to_optimal(vic, maps[0], f_opt, masks, None, n_kept=n_kept, n_boot=100)
        assert row["verdict"] == "undefined" and f is None
        assert f"{n_kept} model" in row["reason"] and "at least 2" in row["reason"]
        assert np.isnan(row["delta_iou"]) and all(np.isnan(row["delta_iou_ci95"]))
    # a single map can be compared on purpose (the blurred-optimal control)
    row, _ = sd.compare_to_optimal(maps[1], maps[0], f_opt, masks, None, n_kept=1, min_models=1, n_boot=100)
    assert row["verdict"] != "undefined"


def test_primary_record_carries_mde_from_the_interval_and_the_posters_effect():
    row = {"delta_iou": 0.01, "delta_iou_ci95": [0.0, 0.02], "delta_iou_p": 0.05, "verdict": "no detectable difference",
           "reason": None, "n_kept": 10}
    prim = sd.primary_record(row, n_test=50, n_lesions=25)
    se = 0.01 / scipy.stats.norm.ppf(0.975)
    assert prim["mde"] == pytest.approx(se * (scipy.stats.norm.ppf(0.975) + scipy.stats.norm.ppf(0.8)))
    assert prim["paper_effect"] == pytest.approx(0.408 - 0.385)
    assert prim["n"] == 50 and prim["n_groups"] == 25 and prim["effect"] == 0.01
    und = sd.primary_record({**row, "delta_iou": float("nan"), "delta_iou_ci95": [float("nan")] * 2,
                             "verdict": "undefined", "reason": "0 models kept"}, n_test=50, n_lesions=25)
    assert und["verdict"] == "undefined" and und["reason"] and np.isnan(und["mde"])


def test_fidelity_table_labels_the_posters_numbers_as_theirs_with_their_dice_bound():
    row = {"iou_optimal": 0.5, "dice_optimal": 0.6, "iou_vic": 0.51, "dice_vic": 0.61}
    t = sd.fidelity_table(row)
    assert list(t.index) == ["optimal model", "VIC"]
    assert t.loc["optimal model", "IoU (poster, theirs)"] == 0.385 and t.loc["VIC", "Dice (poster, theirs)"] == 0.923
    assert t.loc["VIC", "largest Dice its IoU allows (theirs)"] == pytest.approx(round(2 * 0.408 / 1.408, 3))


def test_widget_ratios_keep_at_least_two_models_and_include_the_chapters_ratio():
    table = pd.DataFrame({"ratio": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8], "n_kept": [9, 9, 8, 8, 5, 1, 0, 0]})
    got = sd.widget_ratios(table, 3, include=0.4)
    assert len(got) == 3 and 0.4 in got and all(r <= 0.5 for r in got)
    assert sd.widget_ratios(table, 10) == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert sd.widget_ratios(table.assign(n_kept=1), 3) == []


def test_suggest_ratio_is_the_largest_ratio_with_median_within_tolerance():
    table = pd.DataFrame({"ratio": [0.1, 0.3, 0.5, 0.7], "rel_loss_median": [1.0, 1.04, 1.2, 1.01]})
    assert sd.suggest_ratio(table, 0.05) == 0.7
    assert sd.suggest_ratio(table.iloc[2:3], 0.05) is None


@pytest.fixture(scope="module")
def derm_model():
    from uqxai_lib.models.derm_classifier import build_derm_classifier

    torch.manual_seed(0)
    model = build_derm_classifier("small", small_width=8, small_features=16).eval()
    g = torch.Generator().manual_seed(1)
    x_val = torch.randn(24, 3, 32, 32, generator=g)
    y_val = torch.randint(0, 2, (24,), generator=g)
    x = torch.randn(5, 3, 32, 32, generator=g)
    masks = torch.zeros(5, 32, 32, dtype=torch.bool)
    masks[:, 6:22, 8:26] = True
    table, sets = sd.prune_ratio_sweep(model, "features", x_val, y_val, [0.25, 0.75], k=12, epsilon=0.05, seed=0,
                                       head=model.classifier, class_weight="balanced")
    return model, x, masks, table, sets


def _hand_vic(maps: torch.Tensor) -> torch.Tensor:
    a = maps.double()
    lo, hi = a.amin((2, 3), keepdim=True), a.amax((2, 3), keepdim=True)
    n = torch.where(hi > lo, (a - lo) / (hi - lo).clamp_min(1e-300), torch.zeros_like(a))
    return n.mean(0)


def test_relative_losses_and_kept_at_reproduce_the_samplers_keep_rule(derm_model):
    *_, table, sets = derm_model
    for r, rset in sets.items():
        assert torch.equal(sd.relative_losses(rset) <= 1 + rset.epsilon, rset.kept.cpu())
        assert torch.equal(sd.kept_at(rset, rset.epsilon), rset.kept)
        # monotone in epsilon
        assert (sd.kept_at(rset, 0.0) <= sd.kept_at(rset, 0.5)).all()
    assert table["n_kept"].tolist() == [int(sets[r].kept.sum()) for r in table["ratio"]]
    with pytest.raises(ValueError, match="epsilon"):
        sd.kept_at(sets[0.25], -0.1)


def test_vic_at_tolerance_equals_vic_of_the_reselected_models_via_the_general_path(derm_model):
    from uqxai_lib import samplers

    model, x, _, _, sets = derm_model
    rset = sets[0.25]
    eps = 10.0  # keeps every candidate
    vic, var, n = sd.vic_at_tolerance(model, "features", x, rset, eps, head=model.classifier)
    assert n == len(rset.kept)
    general = samplers.rashomon_maps(model, "features", x, rset._replace(kept=torch.ones_like(rset.kept)), head=None)
    assert torch.allclose(vic.double(), _hand_vic(general.maps), atol=1e-5)
    # every relative loss >= 2 -> a tolerance of 0.5 keeps nothing
    worse = rset._replace(base_loss=float(rset.losses.min()) / 2)
    assert sd.vic_at_tolerance(model, "features", x, worse, 0.5, head=model.classifier) == (None, None, 0)


def test_fidelity_by_ratio_matches_a_loop_over_general_path_maps(derm_model):
    from uqxai_lib import samplers

    model, x, masks, _, sets = derm_model
    sets = dict(sets)
    sets[0.75] = sets[0.75]._replace(kept=torch.zeros_like(sets[0.75].kept))  # a ratio with nothing kept
    sets[0.25] = sets[0.25]._replace(kept=torch.arange(len(sets[0.25].kept)) % 2 == 0)
    table = sd.fidelity_by_ratio(model, "features", x, masks, sets, head=model.classifier)
    assert table["ratio"].tolist() == [0.25, 0.75]
    for row in table.itertuples():
        rset = sets[row.ratio]
        all_maps = samplers.rashomon_maps(model, "features", x, rset, include="all").maps  # general path
        f_all = sd.fidelity_scores(_hand_vic(all_maps).float(), masks)
        assert row.iou_all == pytest.approx(float(f_all["iou"].mean()), abs=1e-5)
        assert row.n_kept == int(rset.kept.sum())
        if row.n_kept:
            f = sd.fidelity_scores(_hand_vic(all_maps[rset.kept]).float(), masks)
            assert row.iou_vic == pytest.approx(float(f["iou"].mean()), abs=1e-5)
            assert row.dice_vic == pytest.approx(float(f["dice"].mean()), abs=1e-5)
        else:
            assert np.isnan(row.iou_vic) and np.isnan(row.dice_vic)


def test_vic_grid_holds_vic_at_tolerance_for_every_cell_and_rejects_bad_input(derm_model):
    model, x, _, _, sets = derm_model
    grid = sd.vic_grid(model, "features", x[:1], sets, [0.25, 0.75], [0.0, 10.0], head=model.classifier)
    assert len(grid) == 2 and all(len(row) == 2 for row in grid)
    for r, row in zip([0.25, 0.75], grid):
        for eps, (v, s, n, k) in zip([0.0, 10.0], row):
            ref = sd.vic_at_tolerance(model, "features", x[:1], sets[r], eps, head=model.classifier)
            assert n == ref[2] and k == len(sets[r].kept)
            if n:
                assert torch.equal(v, ref[0][0]) and torch.equal(s, ref[1][0])
            else:
                assert v is None and s is None
    with pytest.raises(ValueError, match="no Rashomon set"):
        sd.vic_grid(model, "features", x[:1], sets, [0.5], [0.05], head=model.classifier)
    with pytest.raises(ValueError, match="one image"):
        sd.vic_grid(model, "features", x[:2], sets, [0.25], [0.05], head=model.classifier)


def test_kept_at_uses_the_samplers_float64_relative_loss():
    from uqxai_lib.samplers import RashomonSet

    # a loss that is within 1 + eps in float64 but not after a float32 round trip of the ratio
    base = 1.0
    losses = torch.tensor([1.05, 1.05 + 1e-12, 1.0500001], dtype=torch.float64)
    rset = RashomonSet(torch.ones(3, 4, dtype=torch.bool), losses, base, losses / base <= 1.05, 0.5, 0.05)
    assert torch.equal(sd.kept_at(rset, 0.05), rset.kept)
    assert sd.kept_at(rset, 0.05).tolist() == [True, False, False]
    assert sd.relative_losses(rset).dtype == torch.float64


# ----------------------------------------------------------------------------- variants (issue 13)
def test_vic_maps_raw_is_the_plain_mean_and_normalised_is_the_vic():
    maps, _ = _maps_and_masks(6)
    raw, raw_sd = sd.vic_maps(maps * 3, "raw")
    np.testing.assert_allclose(raw.numpy(), (maps * 3).double().mean(0).numpy(), atol=1e-5)
    np.testing.assert_allclose(raw_sd.numpy(), (maps * 3).double().std(0, unbiased=False).numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="aggregation"):
        sd.vic_maps(maps, "median")


def test_temperature_scaled_losses_match_scipy_minimize_scalar():
    from scipy.optimize import minimize_scalar

    g = torch.Generator().manual_seed(0)
    z = torch.randn(50, generator=g)
    y = (torch.rand(50, generator=g) < torch.sigmoid(2 * z)).long()  # labels drawn from a calibrated model
    logits = torch.zeros(3, 50, 2)
    logits[..., 1] = z * torch.tensor([0.3, 2.0, 6.0])[:, None]  # under-, roughly and over-confident
    w = torch.tensor([0.7, 1.8])
    loss, t = sd.temperature_scaled_losses(logits, y, w)
    for i in range(3):
        z = logits[i].double().numpy()
        yy = y.numpy()
        ww = w.double().numpy()[yy]

        def f(logt):
            s = z / np.exp(logt)
            lp = s - np.logaddexp(s[:, 0], s[:, 1])[:, None]
            return float(-(lp[np.arange(50), yy] * ww).sum() / ww.sum())

        ref = minimize_scalar(f, bounds=(-4, 4), method="bounded", options={"xatol": 1e-8})
        assert float(loss[i]) == pytest.approx(ref.fun, abs=1e-5)
        assert float(loss[i]) >= ref.fun - 1e-9
        assert np.log(float(t[i])) == pytest.approx(ref.x, abs=0.05)


def test_binary_auroc_equals_a_pairwise_loop():
    g = torch.Generator().manual_seed(1)
    y = torch.randint(0, 2, (30,), generator=g)
    logits = torch.randn(2, 30, 2, generator=g)
    a = sd.binary_auroc(logits, y)
    for i in range(2):
        s = (logits[i, :, 1] - logits[i, :, 0]).tolist()
        pos = [s[j] for j in range(30) if y[j] == 1]
        neg = [s[j] for j in range(30) if y[j] == 0]
        ref = sum((p > q) + 0.5 * (p == q) for p in pos for q in neg) / (len(pos) * len(neg))
        assert float(a[i]) == pytest.approx(ref)


def test_filter_candidates_undo_a_change_of_scale_and_use_auroc():
    from uqxai_lib.samplers import RashomonSet

    g = torch.Generator().manual_seed(2)
    z = torch.randn(200, generator=g)
    y = (torch.rand(200, generator=g) < torch.sigmoid(z)).long()
    base = torch.zeros(200, 2)
    base[:, 1] = 4 * z  # an over-confident optimal model (calibrated logits would be z)
    shrunk = base * 0.25  # a candidate that only shrinks the logits: better calibrated, same ranking
    flipped = base.flip(-1) * 0.05  # the ranking reversed, near-constant logits
    cand = torch.stack([shrunk, flipped, base])
    losses = sd._weighted_mean_ce(cand, y, None)
    l0 = float(sd._weighted_mean_ce(base, y, None))
    rset = RashomonSet(torch.ones(3, 4, dtype=torch.bool), losses, l0, losses / l0 <= 1.05, 0.5, 0.05)
    assert rset.kept.tolist()[0] and rset.kept.tolist()[2]  # the shrunk one is kept by the loss alone
    assert float(losses[0]) < l0  # ... because it is *better* than the optimum: calibration, not fit
    temp = sd.filter_candidates(rset, base, cand, y, rule="temperature", epsilon=0.05)
    assert temp.tolist() == [True, False, True]  # after scaling, shrinking is neither a gain nor a loss
    both = sd.filter_candidates(rset, base, cand, y, rule="loss_auroc", epsilon=0.05)
    assert both.tolist() == [rset.kept[0].item(), False, True]
    assert torch.equal(sd.filter_candidates(rset, base, cand, y, rule="loss", epsilon=0.05), rset.kept)
    with pytest.raises(ValueError, match="rule"):
        sd.filter_candidates(rset, base, cand, y, rule="accuracy", epsilon=0.05)


def test_run_variants_default_row_equals_the_chapters_pipeline_and_other_sites_run(derm_model):
    from uqxai_lib import saliency, samplers
    from uqxai_lib.models.derm_classifier import prune_sites

    model, x, masks, _, _ = derm_model
    g = torch.Generator().manual_seed(1)
    x_val = torch.randn(24, 3, 32, 32, generator=g)
    y_val = torch.randint(0, 2, (24,), generator=g)
    opt = saliency.grad_cam_pp(model, x, "features")
    f_opt = sd.fidelity_scores(opt, masks)
    groups = torch.tensor([0, 0, 1, 2, 2])
    specs = [dict(site="post_activation", ratio=0.5, target="optimal", aggregation="normalised", filter="loss"),
             dict(site="post_activation", ratio="random", target="own", aggregation="raw", filter="temperature"),
             dict(site="pre_bn", ratio=0.5, target="optimal", aggregation="normalised", filter="loss_auroc"),
             dict(site="earlier_block", ratio=0.5, target="optimal", aggregation="normalised", filter="loss")]
    kw = dict(sites=prune_sites(model), explain_layer="features", head=model.classifier, k=10, k_general=4,
              epsilon=10.0, random_range=(0.1, 0.9), seed=0, n_boot=200)
    rows = sd.run_variants(model, x_val, y_val, x, masks, groups, opt, f_opt, specs, **kw)
    assert [r["site"] for r in rows] == ["post_activation", "post_activation", "pre_bn", "earlier_block"]
    assert [r["n_candidates"] for r in rows] == [10, 10, 4, 4]
    # the first row by hand: the same seeded set, the closed-form maps, the normalised VIC, the fidelity
    salt = 7919 * 1 + 500
    rset = samplers.rashomon(model, "features", x_val, y_val, k=10, prune_ratio=0.5, epsilon=10.0,
                             generator=torch.Generator().manual_seed(salt), head=model.classifier)
    vic, _ = sd.vic_maps(samplers.rashomon_maps(model, "features", x, rset, head=model.classifier).maps)
    f = sd.fidelity_scores(vic, masks)
    assert rows[0]["n_kept"] == int(rset.kept.sum()) == 10
    assert rows[0]["iou_vic"] == pytest.approx(float(f["iou"].mean()), abs=1e-6)
    assert rows[0]["delta_iou"] == pytest.approx(float((f["iou"] - f_opt["iou"]).double().mean()), abs=1e-6)
    lo, hi = rows[0]["delta_iou_ci95"]
    assert lo <= rows[0]["delta_iou"] <= hi
    for r in rows:
        assert r["iou_optimal"] == pytest.approx(float(f_opt["iou"].mean()))
        assert 0 <= r["n_kept"] <= r["n_candidates"]
    # a given set is used as it is (the chapter's own VIC as the first row)
    given = rset._replace(kept=torch.arange(10) < 4)
    row_given = sd.run_variants(model, x_val, y_val, x, masks, groups, opt, f_opt, specs[:1],
                                given_sets={("post_activation", 0.5): given}, **kw)[0]
    vic_g, _ = sd.vic_maps(samplers.rashomon_maps(model, "features", x, given, head=model.classifier).maps)
    assert row_given["n_kept"] == 4
    assert row_given["iou_vic"] == pytest.approx(float(sd.fidelity_scores(vic_g, masks)["iou"].mean()), abs=1e-6)
    # one kept model is no cloud: the row is undefined with its reason
    one = sd.run_variants(model, x_val, y_val, x, masks, groups, opt, f_opt, specs[:1],
                          given_sets={("post_activation", 0.5): rset._replace(kept=torch.arange(10) < 1)}, **kw)[0]
    assert one["verdict"] == "undefined" and one["n_kept"] == 1 and "at least 2" in one["reason"]
    # rows do not depend on which other rows are computed
    alone = sd.run_variants(model, x_val, y_val, x, masks, groups, opt, f_opt, specs[3:], **kw)
    assert alone[0] == rows[3] or (np.isnan(alone[0]["iou_vic"]) and np.isnan(rows[3]["iou_vic"]))


def test_map_roughness_equals_a_loop_and_blur_to_match_recovers_a_known_sigma():
    from uqxai_lib.fidelity import gaussian_blur

    maps, _ = _maps_and_masks(7)
    m = maps[0]
    r = sd.map_roughness(m)
    for i in range(3):
        a = m[i].double()
        a = (a - a.min()) / (a.max() - a.min())
        diffs = [abs(float(a[u, v + 1] - a[u, v])) for u in range(8) for v in range(7)]
        diffs += [abs(float(a[u + 1, v] - a[u, v])) for u in range(7) for v in range(8)]
        assert float(r[i]) == pytest.approx(sum(diffs) / len(diffs), abs=1e-6)
    ref = gaussian_blur(m[:, None].double(), 1.0)[:, 0].float()
    out, sigma = sd.blur_to_match(m, ref)
    assert sigma == pytest.approx(1.0, abs=0.15)
    same, s0 = sd.blur_to_match(m, m)
    assert s0 == 0.0 and torch.equal(same, m)


def test_seed_ensemble_trains_distinct_cached_models_and_its_maps_and_losses_equal_loops():
    import torch.nn.functional as F

    from uqxai_lib.data import LabeledArrays
    from uqxai_lib.models.derm_classifier import build_derm_classifier

    g = torch.Generator().manual_seed(0)
    data = LabeledArrays(torch.randn(16, 3, 16, 16, generator=g), torch.tensor([0, 1] * 8), ("benign", "malignant"))
    kw = dict(seeds=[1, 2], cache_config={"test": "seed_ensemble"},
              fit_kwargs=dict(epochs=1, batch_size=8, lr=0.01, patience=None, device=torch.device("cpu"),
                              name="t", progress=False))
    build = lambda: build_derm_classifier("small", small_width=4, small_features=8)
    models = sd.train_seed_ensemble(build, data, data, **kw)
    again = sd.train_seed_ensemble(build, data, data, **kw)  # from the cache: the same weights
    w = [m.classifier.weight for m in models]
    assert not torch.equal(w[0], w[1])
    assert all(torch.equal(a.classifier.weight, b.classifier.weight) for a, b in zip(models, again))
    # their losses through the one (1 + eps) filter: a float64 cross-entropy oracle
    from uqxai_lib import finetune

    cw = torch.tensor([0.5, 1.5])
    fset = finetune.loss_filter(models, models[0], data, epsilon=0.0, class_weight=cw)
    for m, l in zip(models, fset.losses):
        with torch.no_grad():
            assert float(l) == pytest.approx(float(F.cross_entropy(m(data.x).double(), data.y, weight=cw.double())),
                                             abs=1e-6)
    assert bool(fset.kept[0])  # the reference itself is within 1 + 0


# ----------------------------------------------------------------------------- setup, primary, fine-tuned set
def _tiny_params(**over):
    from uqxai_lib.params import chapter_parameters

    p = chapter_parameters("derm_vic", "tiny")
    p.update(n_lesions=40, image_size=32, epochs=1, small_width=4, k=10, sweep_ratios=[0.2, 0.5], data_dir=None)
    p.update(over)
    return p


def test_setup_and_primary_run_are_the_notebooks_pipeline_and_deterministic(tmp_path):
    from uqxai_lib import saliency
    from uqxai_lib.models.derm_classifier import FEATURE_LAYER

    p = _tiny_params()
    st = sd.setup(p, seed=0)
    again = sd.setup(p, seed=0)
    assert again.from_cache and torch.equal(st.model.classifier.weight, again.model.classifier.weight)
    assert set(st.train_set.group.tolist()).isdisjoint(st.test_set.group.tolist())  # lesions do not leak
    run = sd.vic_run(st, p, seed=0)
    out = sd.primary_run(p, seed=0)
    assert out["claim"] == sd.CLAIM and out["primary"]["effect"] == run.primary["effect"]
    assert out["primary"]["ci95"] == run.primary["ci95"] and out["primary"]["verdict"] == run.primary["verdict"]
    # the record's reference is the optimal model's Grad-CAM++ for its own predicted class
    ref = saliency.grad_cam_pp(st.model, st.test_set.x, FEATURE_LAYER, target=run.target)
    assert torch.allclose(run.opt_maps, ref, atol=1e-6)
    assert run.row["n_kept"] == run.record.config["n_kept"] == int(run.rset.kept.sum())
    if run.row["n_kept"] >= 2:
        assert torch.allclose(run.vic, sd.vic_maps(run.record.maps.cpu())[0])
    # the poster's ratio and the chapter's ratio are in the sweep
    assert {0.6, run.ratio} <= set(run.sweep["ratio"])
    # the verdict ladder: every rung, the headline from the (missing) robustness record
    from uqxai_lib import stats, verdicts

    lad = sd.verdict_ladder(run, robustness_path=tmp_path / "robustness.json")
    assert [r["name"] for r in lad["rungs"]] == list(verdicts.RUNG_ORDER)
    assert lad["headline"] == "undefined" and "synthetic" in lad["data"]
    rung = {r["name"]: r for r in lad["rungs"]}
    if run.primary["verdict"] != "undefined":
        assert rung["direction"]["outcome"] == stats.reproduction(run.primary["verdict"], "higher")
    assert rung["sanity"]["outcome"] == "inconclusive"  # not run in this pipeline (sanity=False)


def test_finetuned_row_is_the_vic_of_the_kept_members_and_undefined_with_fewer_than_two():
    from uqxai_lib import finetune, saliency
    from uqxai_lib.data import LabeledArrays
    from uqxai_lib.models.derm_classifier import build_derm_classifier

    g = torch.Generator().manual_seed(0)
    data = LabeledArrays(torch.randn(16, 3, 16, 16, generator=g), torch.tensor([0, 1] * 8), ("benign", "malignant"))
    masks = torch.zeros(16, 16, 16, dtype=torch.bool)
    masks[:, 4:12, 4:12] = True
    torch.manual_seed(0)
    model = build_derm_classifier("small", small_width=4, small_features=8).eval()
    fset = finetune.finetuned_set(model, data, data, k=3, epochs=1, epsilon=10.0, seed=0, lr=0.01, batch_size=8,
                                  progress=False)
    tgt = torch.zeros(16, dtype=torch.long)
    opt = saliency.grad_cam_pp(model, data.x, "features", target=tgt)
    f_opt = sd.fidelity_scores(opt, masks)
    row, vic, _ = sd.finetuned_row(fset, data.x, "features", opt, f_opt, masks, None, target=tgt, n_boot=200)
    maps = torch.stack([saliency.grad_cam_pp(m, data.x, "features", target=tgt) for m in fset.models])
    assert torch.allclose(vic, sd.vic_maps(maps)[0], atol=1e-6)
    assert row["site"] == "rashomon_finetuned" and row["n_kept"] == 3 and row["n_within_tolerance"] == 3
    assert row["relative_losses"] == pytest.approx(fset.relative_loss.tolist())
    one = fset._replace(kept=torch.tensor([True, False, False]))
    row1, vic1, _ = sd.finetuned_row(one, data.x, "features", opt, f_opt, masks, None, target=tgt, n_boot=200)
    assert row1["verdict"] == "undefined" and vic1 is None
    # include="all": a control of every member, whatever the filter says
    row_all, _, _ = sd.finetuned_row(one, data.x, "features", opt, f_opt, masks, None, target=tgt, n_boot=200,
                                     include="all", site="control_seed_ensemble")
    assert row_all["n_kept"] == 3 and row_all["n_within_tolerance"] == 1 and row_all["filter"] == "none"
    rec = sd.variant_record(row_all)
    assert set(rec) <= set(sd.VARIANT_KEYS) and rec["site"] == "control_seed_ensemble"


def test_within_class_pools_class_means_with_equal_weight_and_is_undefined_for_small_classes():
    g = np.random.default_rng(1)
    n0, n1 = 40, 10
    pred = torch.tensor([0] * n0 + [1] * n1)
    opt = torch.as_tensor(g.uniform(0.4, 0.6, n0 + n1))
    d = torch.as_tensor(np.r_[np.full(n0, 0.05), np.full(n1, -0.05)] + g.normal(0, 0.005, n0 + n1))
    f_opt, f_vic = {"iou": opt}, {"iou": opt + d}
    groups = torch.arange(n0 + n1) // 2
    wc = sd.within_class_comparison(f_vic, f_opt, pred, groups, n_boot=1000)
    means = [float(d[:n0].mean()), float(d[n0:].mean())]
    assert wc["effect"] == pytest.approx(np.mean(means), abs=1e-9)  # not the pooled-by-count mean (+0.03)
    assert wc["per_class"][0]["effect"] == pytest.approx(means[0]) and wc["per_class"][1]["n"] == n1
    assert wc["ci95"][0] < 0 < wc["ci95"][1] and wc["verdict"] == "no detectable difference"
    assert (wc["p"] < 0.05) == (wc["ci95"][0] > 0 or wc["ci95"][1] < 0)
    small = sd.within_class_comparison(f_vic, f_opt, torch.tensor([0] * (n0 + n1 - 3) + [1] * 3), groups)
    assert small["verdict"] == "undefined" and "fewer than 5" in small["reason"]
    assert sd.within_class_comparison(None, f_opt, pred, groups)["verdict"] == "undefined"
