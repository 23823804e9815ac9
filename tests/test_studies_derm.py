"""Tests of the derm_vic analysis steps (uqxai_lib.studies.derm)."""
import numpy as np
import pandas as pd
import pytest
import scipy.stats
import torch

from _support import derm_maps_and_masks as _maps_and_masks

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
    up = torch.nn.functional.interpolate(maps[0][:, None].double(), size=(32, 32), mode="bilinear", align_corners=False)[:, 0]
    lo, hi = up.amin((1, 2), keepdim=True), up.amax((1, 2), keepdim=True)
    pred = ((up - lo) / (hi - lo)) >= 0.5
    inter = (pred & masks).sum((1, 2)).double()
    union = (pred | masks).sum((1, 2)).double()
    assert torch.allclose(f["iou"].double(), inter / union, atol=1e-6)


def test_vic_is_mean_and_variability_is_population_sd_of_normalised_maps():
    maps, _ = _maps_and_masks(2)
    vic, var = sd.vic_and_variability(maps)
    a = maps.double().numpy()
    lo = a.min(axis=(2, 3), keepdims=True)
    hi = a.max(axis=(2, 3), keepdims=True)
    n = (a - lo) / (hi - lo)
    np.testing.assert_allclose(vic.numpy(), n.mean(0), atol=1e-6)
    np.testing.assert_allclose(var.numpy(), n.std(0), atol=1e-6)
    with pytest.raises(ValueError, match=r"\[S, B, h, w\]"):
        sd.vic_and_variability(maps[0])


def test_per_model_fidelity_equals_a_loop_over_models():
    maps, masks = _maps_and_masks(3, s=7)
    pm = sd.per_model_fidelity(maps, masks, chunk=3)
    loop = torch.stack([sd.fidelity_scores(m, masks)["iou"].mean() for m in maps])
    assert torch.allclose(pm["iou"], loop, atol=1e-6)
    assert torch.allclose(sd.per_model_fidelity(maps, masks)["iou"], loop, atol=1e-6)  # automatic chunk size


def test_fidelity_comparisons_are_paired_vic_minus_optimal_grouped_by_lesion_with_holm():
    g = np.random.default_rng(0)
    n = 60
    groups = torch.as_tensor(np.repeat(np.arange(20), 3))
    lesion = np.repeat(g.normal(0, 0.1, 20), 3)  # a shared lesion effect makes items of a lesion dependent
    iou_opt = torch.as_tensor(0.5 + lesion + g.normal(0, 0.05, n))
    f_opt = {"iou": iou_opt, "dice": 2 * iou_opt / (1 + iou_opt)}
    iou_vic = iou_opt + 0.03 + torch.as_tensor(g.normal(0, 0.01, n))  # the VIC is better by 0.03
    f_vic = {"iou": iou_vic, "dice": 2 * iou_vic / (1 + iou_vic)}
    prim, comps, sec = sd.fidelity_comparisons(f_opt, f_vic, groups, n_boot=500)
    d = (iou_vic - iou_opt).numpy()
    assert prim["effect"] == pytest.approx(d.mean())
    assert prim["ci95"][0] < 0.03 < prim["ci95"][1] and prim["ci95"][0] > 0
    assert prim["p"] == pytest.approx(scipy.stats.wilcoxon(d).pvalue)
    assert sec[0]["p_holm"] == pytest.approx(sec[0]["p"]) and sec[0]["verdict"] == "higher"
    assert comps["dice"]["effect"] == pytest.approx(float((f_vic["dice"] - f_opt["dice"]).mean()))
    # no difference: the interval covers 0 and the verdict says so
    prim0, _, _ = sd.fidelity_comparisons(f_opt, {"iou": iou_opt + torch.as_tensor(g.normal(0, 0.01, n)),
                                                  "dice": f_opt["dice"]}, groups, n_boot=500)
    assert prim0["ci95"][0] < 0 < prim0["ci95"][1]


def test_fidelity_table_labels_the_posters_numbers_as_theirs():
    maps, masks = _maps_and_masks(4)
    fa, fb = sd.fidelity_scores(maps[0], masks), sd.fidelity_scores(maps[1], masks)
    _, comps, _ = sd.fidelity_comparisons(fa, fb, None, n_boot=200)
    t = sd.fidelity_table(fa, fb, comps)
    assert list(t.index) == ["IoU", "Dice"]
    assert t.loc["IoU", "optimal (poster, theirs)"] == 0.385 and t.loc["Dice", "VIC (poster, theirs)"] == 0.923
    assert (t["n"] == 12).all()


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
    assert torch.equal(sd.vic_maps(maps, "normalised")[0], sd.vic_and_variability(maps)[0])
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
    from uqxai_lib import samplers, saliency
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
    vic, _ = sd.vic_and_variability(samplers.rashomon_maps(model, "features", x, rset, head=model.classifier).maps)
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
    vic_g, _ = sd.vic_and_variability(samplers.rashomon_maps(model, "features", x, given, head=model.classifier).maps)
    assert row_given["n_kept"] == 4
    assert row_given["iou_vic"] == pytest.approx(float(sd.fidelity_scores(vic_g, masks)["iou"].mean()), abs=1e-6)
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

    from uqxai_lib import saliency
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
    tgt = torch.zeros(16, dtype=torch.long)
    maps = sd.ensemble_maps(models, data.x, "features", target=tgt)
    for i, m in enumerate(models):
        assert torch.equal(maps[i], saliency.grad_cam_pp(m, data.x, "features", target=tgt))
    cw = torch.tensor([0.5, 1.5])
    losses = sd.model_losses(models, data.x, data.y, class_weight=cw)
    for m, l in zip(models, losses):
        with torch.no_grad():
            assert l == pytest.approx(float(F.cross_entropy(m(data.x).double(), data.y, weight=cw.double())), abs=1e-6)


# ----------------------------------------------------------------------------- fidelity and sanity (issue 14)
def test_mass_in_mask_scores_equal_a_float64_loop():
    maps, masks = _maps_and_masks(8)
    masks[3, :, :] = False
    masks[3, 0:4, 0:4] = True
    mass, chance = sd.mass_in_mask_scores(maps[0], masks)
    up = torch.nn.functional.interpolate(maps[0][:, None].double(), size=(32, 32), mode="bilinear", align_corners=False)[:, 0]
    for i in range(len(masks)):
        inside = sum(float(up[i, u, v]) for u in range(32) for v in range(32) if masks[i, u, v])
        assert float(mass[i]) == pytest.approx(inside / float(up[i].sum()), abs=1e-5)
        assert float(chance[i]) == pytest.approx(float(masks[i].double().mean()))


def test_fidelity_summary_holds_the_json_keys_and_its_areas_match_the_curves(derm_model):
    from uqxai_lib import fidelity, saliency

    model, x, masks, _, _ = derm_model
    y = torch.tensor([0, 1, 0, 1, 1])
    tgt = model(x).argmax(1)
    maps = saliency.grad_cam_pp(model, x, "features", target=tgt)
    rec, curves = sd.fidelity_summary(model, x, maps, masks, y, tgt, torch.tensor([0, 0, 1, 2, 3]),
                                      classes=("benign", "malignant"), patch=8, steps=8, n_boot=200)
    for key in ("mass_in_mask", "mass_in_mask_ci95", "chance", "pointing_game", "deletion_auc", "deletion_auc_random",
                "insertion_auc", "insertion_auc_random", "per_class"):
        assert key in rec
    lo, hi = rec["mass_in_mask_ci95"]
    assert lo <= rec["mass_in_mask"] <= hi
    up = saliency.upsample(maps, tuple(x.shape[-2:]))  # the curves rank patches of the upsampled map
    d = fidelity.deletion_curve(model, x, up, tgt, patch=8, steps=8, fill="blur")
    assert rec["deletion_auc"] == pytest.approx(float(fidelity.curve_auc(d).mean()), abs=1e-6)
    torch.testing.assert_close(curves["deletion_map"], d.mean(0))
    assert rec["pointing_game"] == pytest.approx(float(sd.pointing_hits(maps, masks).mean()))
    assert sum(c["n"] for c in rec["per_class"].values()) == 5
    assert rec["chance"] == pytest.approx(float(masks.double().mean()))


def test_pointing_hits_equal_a_loop_over_the_maxima_of_the_upsampled_map():
    g = torch.Generator().manual_seed(0)
    maps = torch.rand(20, 4, 4, generator=g)
    masks = torch.rand(20, 16, 16, generator=g) > 0.6
    hit = sd.pointing_hits(maps, masks)
    up = torch.nn.functional.interpolate(maps[:, None].double(), size=(16, 16), mode="bilinear", align_corners=False)[:, 0]
    n_ties = 0
    for i in range(20):
        v = up[i].flatten().tolist()
        top = [j for j, a in enumerate(v) if a == max(v)]  # bilinear upsampling makes plateaus: ties
        n_ties += len(top) > 1
        assert float(hit[i]) == float(any(bool(masks[i].flatten()[j]) for j in top))
    assert n_ties > 0 and hit.dtype == torch.float64
    assert sd.pointing_hits(torch.zeros(1, 2, 2), masks[:1]).tolist() == [0.0]  # an all-zero map points nowhere: a miss
    with pytest.raises(ValueError, match="share B"):
        sd.pointing_hits(maps[:2], masks[:3])


def test_cascading_sanity_spearman_equals_scipy_on_the_randomised_models(derm_model):
    from uqxai_lib import fidelity, saliency

    model, x, _, _, _ = derm_model
    tgt = model(x).argmax(1)
    ref = saliency.grad_cam_pp(model, x, "features", target=tgt)
    modules = ["classifier", ["features.12", "features.13"], ["features.8", "features.9"]]
    rec, ex = sd.cascading_sanity(model, x, ref, tgt, "features", modules, threshold=0.5, seed=3, n_examples=2)
    assert [r["randomised_from"] for r in rec["cascading"]] == ["classifier", "features.12+features.13",
                                                                "features.8+features.9"]
    assert ex.shape[:2] == (3, 2)
    steps = fidelity.cascading_randomisation(
        model, modules, lambda m: saliency.grad_cam_pp(m, x, "features", target=tgt), seed=3)
    for row, (_, maps) in zip(rec["cascading"], steps):
        rhos = [scipy.stats.spearmanr(maps[i].flatten().numpy(), ref[i].flatten().numpy()).statistic
                for i in range(len(x))]
        rhos = [r for r in rhos if np.isfinite(r)]
        if rhos:
            assert row["spearman_to_trained"] == pytest.approx(float(np.median(rhos)), abs=1e-5)
    assert rec["passes"] == all(r["spearman_to_trained"] < 0.5 for r in rec["cascading"])
    assert sd.cascading_sanity(model, x, ref, tgt, "features", modules[:1], threshold=1.01)[0]["passes"]


def test_fidelity_vs_stability_is_the_spearman_of_scores_and_mean_variability():
    g = torch.Generator().manual_seed(0)
    var = torch.rand(40, 4, 4, generator=g)
    f = -var.mean((1, 2)) + 0.05 * torch.randn(40, generator=g)  # more variable -> less faithful
    rec = sd.fidelity_vs_stability(f, var, torch.arange(40) // 2, n_boot=300)
    ref = scipy.stats.spearmanr(f.numpy(), var.mean((1, 2)).numpy()).statistic
    assert rec["spearman"] == pytest.approx(ref)
    assert rec["ci95"][0] <= rec["spearman"] <= rec["ci95"][1] and rec["ci95"][1] < 0
