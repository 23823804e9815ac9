"""uqxai_lib.protocol (assess / evaluate): oracles are scipy, float64 loops and simulated data."""
from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

from uqxai_lib import AssessError, assess, evaluate, rules, stats
from uqxai_lib import protocol as P

CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
POOL = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}
DROP = {1: nn.Dropout1d, 2: nn.Dropout2d, 3: nn.Dropout3d}
SIZE = {1: (48,), 2: (12, 12), 3: (6, 6, 6)}


def make_model(nd: int, *, dropout: bool = True, classes: int = 3, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    layers = [CONV[nd](2, 6, 3, padding=1), nn.ReLU()]
    layers += [DROP[nd](0.3)] if dropout else []
    layers += [POOL[nd](1), nn.Flatten(), nn.Linear(6, classes)]
    return nn.Sequential(*layers).eval()


def data(nd: int, b: int = 10, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn((b, 2) + SIZE[nd], generator=g), torch.randint(0, 3, (b,), generator=g)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_identity_perturbation_gives_rho_and_jaccard_one_on_non_constant_maps(nd):
    model = make_model(nd, dropout=False)
    x, y = data(nd)
    rec = assess(model, x, y, layer="1", source="test_time", n=3, perturb=lambda v, g: v.clone(), q=0.7)
    ref = rec.reference
    nonconst = (ref.flatten(1).amax(1) > ref.flatten(1).amin(1)).numpy()
    assert nonconst.any()
    rho, jac = rec.score("rho"), rec.score("jaccard")
    np.testing.assert_allclose(rho[nonconst], 1.0, atol=1e-6)
    np.testing.assert_allclose(jac[nonconst], 1.0, atol=1e-12)
    assert np.isnan(rho[~nonconst]).all()
    assert rec.config["spatial_dims"] == nd
    json.dumps(rec.to_dict(), allow_nan=False)  # JSON-safe


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_ensemble_of_one_model_twice_gives_rho_and_jaccard_one(nd):
    model = make_model(nd, dropout=False)
    x, y = data(nd)
    rec = assess(model, x, y, layer="1", source="ensemble", models=[model, model], q=0.7)
    ok = np.isfinite(rec.score("rho"))
    assert ok.any()
    np.testing.assert_allclose(rec.score("rho")[ok], 1.0, atol=1e-6)
    np.testing.assert_allclose(rec.score("jaccard")[ok], 1.0)
    # mutual information of identical members is 0
    np.testing.assert_allclose(rec.prediction["mutual_information"], 0.0, atol=1e-12)


def test_model_without_dropout_under_mc_dropout_is_a_clear_error():
    model = make_model(2, dropout=False)
    x, y = data(2)
    with pytest.raises(AssessError, match="no dropout modules"):
        assess(model, x, y, layer="1", source="mc_dropout", n=4)


def test_rho_matches_a_scipy_loop_and_jaccard_a_python_loop_on_an_mc_stack():
    model = make_model(2)
    x, y = data(2, b=8)
    rec = assess(model, x, y, layer="1", source="mc_dropout", n=5, q=0.8, seed=3)
    maps, ref = rec.maps.double().numpy(), rec.reference.double().numpy()
    for b in range(maps.shape[1]):
        rhos = [spearmanr(maps[s, b].ravel(), ref[b].ravel()).statistic for s in range(maps.shape[0])
                if np.ptp(maps[s, b]) > 0 and np.ptp(ref[b]) > 0]
        want = np.mean(rhos) if rhos else math.nan
        got = rec.stability["rho"][b]
        assert (math.isnan(want) and math.isnan(got)) or abs(want - got) < 1e-9
        regions = []
        for s in range(maps.shape[0]):
            m = maps[s, b].ravel()
            thr = np.quantile(m, 0.8)
            regions.append(set(np.flatnonzero((m >= thr) & (m > 0))))
        js = [len(a & c) / len(a | c) for a, c in itertools.combinations(regions, 2) if a and c]
        want_j = np.mean(js) if js else math.nan
        got_j = rec.stability["jaccard"][b]
        assert (math.isnan(want_j) and math.isnan(got_j)) or abs(want_j - got_j) < 1e-12


def test_constant_and_empty_maps_are_undefined_and_counted_never_agreement():
    ref = torch.tensor([[0.0, 1.0, 2.0, 3.0], [0.0, 0.0, 0.0, 0.0]])
    maps = torch.stack([ref, torch.zeros_like(ref), ref])  # sample 1 constant everywhere
    st = P.stability(maps, ref, q=0.5)
    assert st["rho"][0] == pytest.approx(1.0)        # the constant sample is skipped, not 0
    assert math.isnan(st["rho"][1])                  # constant reference: nothing defined
    assert st["n_constant_samples"] == 4 and st["n_constant_reference"] == 1
    assert st["jaccard"][0] == pytest.approx(1.0)    # only the pair (0, 2) is defined
    assert math.isnan(st["jaccard"][1])              # all regions empty: never J = 1
    assert st["n_empty_regions"] == 4 and st["n_undefined_rho"] == 1 and st["n_undefined_jaccard"] == 1


def test_primary_interval_covers_a_known_difference_and_p_agrees_with_the_interval():
    rng = np.random.default_rng(0)
    covered, agree = 0, 0
    reps = 120
    for r in range(reps):
        c = np.r_[np.ones(30, bool), np.zeros(25, bool)]
        v = np.r_[rng.normal(0.3, 1.0, 30), rng.normal(0.0, 1.0, 25)]
        rec = P.primary_section(v, c, n_boot=400, seed=r)
        lo, hi = rec["ci95"]
        covered += lo <= 0.3 <= hi
        agree += (rec["p"] < 0.05) == (lo > 0 or hi < 0)
        assert rec["verdict"] == stats.verdict(rec["ci95"])
    assert agree == reps                        # one procedure: never two answers
    assert 0.85 <= covered / reps <= 1.0        # nominal 95 %


def test_bootstrap_test_p_and_interval_agree_exactly_at_the_boundary():
    rng = np.random.default_rng(1)
    for r in range(300):
        v = rng.normal(rng.uniform(-0.4, 0.4), 1.0, 25)
        t = stats.bootstrap_test(np.mean, v, n_boot=200, seed=r)
        lo, hi = t["ci95"]
        assert (t["p"] < 0.05) == (lo > 0 or hi < 0)


def test_primary_is_undefined_with_a_reason_when_a_group_is_small():
    rec = P.primary_section(np.r_[np.ones(20), np.zeros(4)], np.r_[np.ones(20, bool), np.zeros(4, bool)])
    assert rec["verdict"] == "undefined" and "fewer than 5" in rec["reason"]
    assert math.isnan(rec["p"])


def test_fidelity_mass_in_mask_matches_a_float64_loop_and_chance_is_the_mask_share():
    model = make_model(2, dropout=False)
    x, y = data(2, b=6)
    masks = torch.zeros(6, 12, 12, dtype=torch.bool)
    masks[:, 3:8, 2:9] = True
    rec = assess(model, x, y, layer="1", source="test_time", n=3, masks=masks,
                 perturb=lambda v, g: v + 0.05 * torch.randn(v.shape, generator=g))
    ref = rec.reference.double().numpy()
    want = [(ref[b] * masks[b].numpy()).sum() / ref[b].sum() if ref[b].sum() > 0 else math.nan for b in range(6)]
    np.testing.assert_allclose(rec.fidelity["per_item_mass"], want, rtol=1e-9)
    assert rec.fidelity["chance"] == pytest.approx(35 / 144)
    for k in ("deletion_auc", "deletion_auc_random", "insertion_auc", "insertion_auc_random"):
        assert 0.0 <= rec.fidelity[k] <= 1.0
    assert rec.fidelity_vs_stability["n"] <= 6


def test_sanity_rule_failed_inconclusive_passed():
    ref = torch.rand(8, 5, 5, generator=torch.Generator().manual_seed(12345))
    model = make_model(2, dropout=False)
    x, _ = data(2, b=8)
    same = P.sanity_section(model, x, lambda m: ref.clone(), ref, modules=["3", "0"])
    flat = P.sanity_section(model, x, lambda m: torch.zeros_like(ref), ref, modules=["3", "0"])
    noise = P.sanity_section(model, x, lambda m: torch.rand(ref.shape), ref, modules=["3", "0"])
    assert same["outcome"] == "failed"
    assert flat["outcome"] == "inconclusive" and flat["steps"][0]["n_constant"] == 8
    assert noise["outcome"] == "passed"


def test_assess_runs_the_sanity_check_end_to_end():
    model = make_model(1, dropout=False)
    x, y = data(1)
    rec = assess(model, x, y, layer="0", source="test_time", n=2, sanity=True,
                 perturb=lambda v, g: v + 0.1 * torch.randn(v.shape, generator=g))
    assert [s["randomised"] for s in rec.sanity["steps"]] == ["4", "0"]
    assert rec.sanity["outcome"] in ("passed", "failed", "inconclusive")
    assert not model[0].weight.isnan().any()  # the model itself is untouched


def test_rashomon_with_no_kept_model_is_undefined_not_no_difference():
    model = make_model(2, dropout=False)
    x, y = data(2, b=12)
    rec = assess(model, x, y, layer="1", source="rashomon", n=4, x_val=x, y_val=y, prune_ratio=0.9, epsilon=0.0,
                 head=model[4])
    assert rec.config["n_kept"] < rules.MIN_MODELS  # 5 of 6 channels pruned at epsilon 0: none kept
    assert rec.primary["verdict"] == "undefined" and "fewer than 2" in rec.primary["reason"]
    json.dumps(rec.to_dict(), allow_nan=False)


def test_rashomon_with_kept_models_gives_a_record():
    model = make_model(2, dropout=False)
    x, y = data(2, b=12)
    rec = assess(model, x, y, layer="1", source="rashomon", n=30, x_val=x, y_val=y, prune_ratio=0.2, epsilon=10.0,
                 head=model[4])
    assert rec.config["n_kept"] == 30 and rec.maps.shape[0] == 30


def test_evaluate_on_a_given_stack_equals_assess():
    model = make_model(2)
    x, y = data(2)
    rec = assess(model, x, y, layer="1", source="mc_dropout", n=4, seed=2)
    again = evaluate(rec.maps, rec.reference, rec.probs, rec.clean_probs, y, target=rec.prediction["target"],
                     source="mc_dropout", seed=2)
    assert P.json_safe(again.stability) == P.json_safe(rec.stability)
    assert P.json_safe(again.primary) == P.json_safe(rec.primary)


@pytest.mark.parametrize("call, match", [
    (lambda m, x, y: assess(m, x, y, layer="4", source="test_time", perturb=lambda v, g: v), "without spatial"),
    (lambda m, x, y: assess(m, x[:, :1], y, layer="1", source="test_time", perturb=lambda v, g: v), "channel"),
    (lambda m, x, y: assess(m, x[..., 0], y, layer="1", source="test_time", perturb=lambda v, g: v), "spatial dim"),
    (lambda m, x, y: assess(m, x, y + 5, layer="1", source="test_time", perturb=lambda v, g: v), r"\[0, 2\]"),
    (lambda m, x, y: assess(m, x, y, layer="1", source="test_time"), "needs option"),
    (lambda m, x, y: assess(m, x, y, layer="1", source="mc_dropout", perturb=1), "unknown option"),
    (lambda m, x, y: assess(m, x, y, layer="1", source="bootstrap"), "unknown source"),
    (lambda m, x, y: assess(m, x, y, source="mc_dropout"), "need layer"),
    (lambda m, x, y: assess(m, x, y, layer="1", source="mc_dropout", n=1), "at least 2"),
    (lambda m, x, y: assess(m, x, y, layer="1", source="mc_dropout", method="lrp_xyz"), "unknown method"),
    (lambda m, x, y: assess(m, x, y, layer="1", source="mc_dropout", masks=torch.ones(3, 3)), "masks must be"),
])
def test_bad_input_is_refused_before_any_work_with_the_fix_named(call, match):
    model = make_model(2)
    x, y = data(2)
    with pytest.raises(AssessError, match=match):
        call(model, x, y)


def test_batchnorm_in_training_mode_is_refused():
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 3))
    x, y = data(2)
    with pytest.raises(AssessError, match="model.eval"):
        assess(model, x, y, layer="2", source="test_time", perturb=lambda v, g: v)


def test_assess_leaves_modes_and_rng_untouched():
    model = make_model(2)
    x, y = data(2)
    state = torch.random.get_rng_state()
    assess(model, x, y, layer="1", source="mc_dropout", n=3)
    assert not any(m.training for m in model.modules())
    assert torch.equal(state, torch.random.get_rng_state())
