"""attribution: every method against captum's own call on 1-D, 2-D and 3-D inputs, the stacks of
every source against loops of single explanations, frozen MC dropout masks, and the fidelity
metrics against Quantus."""
import math

import captum.attr as ca
import numpy as np
import pytest
import torch
from captum._utils.models.linear_model import SkLearnRidge  # noqa: PLC2701 - no public path in captum
from torch import nn

from uqxai_lib import attribution as A
from uqxai_lib import metrics, samplers

CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
POOL = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}
SIZE = {1: (24,), 2: (8, 8), 3: (6, 6, 6)}


def _model(nd, seed=0, p=0.3, channels=2):
    torch.manual_seed(seed)
    return nn.Sequential(CONV[nd](channels, 5, 3, padding=1), nn.ReLU(), nn.Dropout(p), CONV[nd](5, 4, 3, padding=1),
                         nn.ReLU(), POOL[nd](1), nn.Flatten(), nn.Linear(4, 3)).eval()


def _x(nd, b=3, seed=1, channels=2):
    return torch.randn((b, channels) + SIZE[nd], generator=torch.Generator().manual_seed(seed))


def _captum(model, x, target, method):
    """The captum call itself, written out independently of uqxai_lib.attribution."""
    zeros = torch.zeros_like(x)
    spatial = tuple(x.shape[2:])
    patch = tuple(math.ceil(s / A.SEGMENTS_PER_DIM[len(spatial)]) for s in spatial)
    if method == "integrated_gradients":
        return ca.IntegratedGradients(model).attribute(x, baselines=zeros, target=target, n_steps=16)
    if method == "occlusion":
        w = (x.shape[1],) + patch
        return ca.Occlusion(model).attribute(x, sliding_window_shapes=w, strides=w, baselines=0.0, target=target)
    if method == "deeplift":
        return ca.DeepLift(model).attribute(x, baselines=zeros, target=target)
    if method == "input_x_gradient":
        return ca.InputXGradient(model).attribute(x, target=target)
    if method == "smoothgrad":
        sd = 0.15 * float(x.std())
        return ca.NoiseTunnel(ca.Saliency(model)).attribute(x, nt_type="smoothgrad", nt_samples=8, stdevs=sd,
                                                             abs=False, target=target)
    if method == "gradient_shap":
        sd = 0.15 * float(x.std())
        return ca.GradientShap(model).attribute(x, baselines=zeros[:1], n_samples=8, stdevs=sd, target=target)
    # one fixed grid of segments, built here by hand
    idx = torch.stack(torch.meshgrid(*[torch.arange(s) // q for s, q in zip(spatial, patch)], indexing="ij"))
    counts = [math.ceil(s / q) for s, q in zip(spatial, patch)]
    mask = torch.zeros(spatial, dtype=torch.long)
    for axis in range(len(spatial)):
        mask = mask * counts[axis] + idx[axis]
    mask = mask[None, None]
    if method == "lime":
        return ca.Lime(model, interpretable_model=SkLearnRidge(alpha=1.0)).attribute(
            x, baselines=0.0, feature_mask=mask, n_samples=64, perturbations_per_eval=64, target=target)
    return ca.KernelShap(model).attribute(x, baselines=0.0, feature_mask=mask, n_samples=64,
                                          perturbations_per_eval=64, target=target)


def _reduce(attr):
    return attr.detach().abs().sum(1)


DETERMINISTIC = [m for m in A.METHODS if m not in A.RANDOMISED]
PER_EXAMPLE_RANDOM = ["lime", "kernel_shap"]  # captum explains each example on its own, in order


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("method", DETERMINISTIC + PER_EXAMPLE_RANDOM)
def test_each_method_matches_captum_per_sample_calls(method, nd):
    model, x = _model(nd), _x(nd)
    target = torch.tensor([0, 2, 1])
    ours = A.explain(model, x, target, method, normalize=False, generator=torch.Generator().manual_seed(4))
    with A.seeded(torch.Generator().manual_seed(4)):
        want = torch.cat([_reduce(_captum(model, x[i:i + 1], target[i:i + 1], method)) for i in range(len(x))])
    assert ours.shape == (3,) + SIZE[nd]
    torch.testing.assert_close(ours, want.float(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("method", ["smoothgrad", "gradient_shap"])
def test_noisy_methods_match_captum_under_the_same_seed(method, nd):
    # NoiseTunnel and GradientShap draw the noise of the whole batch at once, so the oracle is
    # captum's call on the same batch under the same seed; per item the maps depend on the draw
    model, x = _model(nd), _x(nd)
    target = torch.tensor([1, 0, 2])
    ours = A.explain(model, x, target, method, normalize=False, generator=torch.Generator().manual_seed(9))
    with A.seeded(torch.Generator().manual_seed(9)):
        want = _reduce(_captum(model, x, target, method))
    torch.testing.assert_close(ours, want.float(), rtol=1e-4, atol=1e-6)
    again = A.explain(model, x, target, method, normalize=False, generator=torch.Generator().manual_seed(10))
    assert not torch.allclose(ours, again)  # the seed matters: the noise is really drawn


def test_maps_are_normalised_to_unit_mass_and_pooled_to_a_grid():
    model, x = _model(2), _x(2)
    raw = A.explain(model, x, 0, "input_x_gradient", normalize=False)
    maps = A.explain(model, x, 0, "input_x_gradient")
    torch.testing.assert_close(maps.sum((1, 2)), torch.ones(3))
    torch.testing.assert_close(maps, raw / raw.sum((1, 2), keepdim=True))
    pooled = A.explain(model, x, 0, "input_x_gradient", grid=(4, 4), normalize=False)
    torch.testing.assert_close(pooled, raw.reshape(3, 4, 2, 4, 2).mean((2, 4)))
    assert torch.equal(A.normalize_maps(torch.zeros(2, 5)), torch.zeros(2, 5))


def test_grid_mask_segments_are_the_patches_of_a_regular_grid():
    mask = A.grid_mask((6, 6, 6), (2, 3, 3))[0, 0]
    assert mask.unique().tolist() == list(range(3 * 2 * 2))
    for seg in range(12):
        where = (mask == seg).nonzero()
        extent = (where.max(0).values - where.min(0).values + 1).tolist()
        assert extent == [2, 3, 3] and len(where) == 18
    assert A.grid_mask((10,), 4)[0, 0].tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2]


def test_explain_refuses_training_batchnorm_unknown_methods_and_options():
    m = nn.Sequential(nn.Conv1d(1, 2, 3), nn.BatchNorm1d(2), nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(2, 2))
    with pytest.raises(ValueError, match="BatchNorm"):
        A.explain(m.train(), torch.randn(2, 1, 8), 0, "integrated_gradients")
    with pytest.raises(ValueError, match="unknown attribution method"):
        A.explain(m.eval(), torch.randn(2, 1, 8), 0, "grad_cam")
    with pytest.raises(TypeError, match="does not take"):
        A.explain(m.eval(), torch.randn(2, 1, 8), 0, "occlusion", n_steps=3)


# ----------------------------------------------------------------------------- stacks
@pytest.mark.parametrize("nd", [1, 3])
@pytest.mark.parametrize("method", ["integrated_gradients", "occlusion", "input_x_gradient", "deeplift"])
def test_test_time_stack_equals_a_loop_of_single_explanations(method, nd):
    model, x = _model(nd), _x(nd, b=4)
    jitter = lambda v, g: v + 0.3 * torch.randn(v.shape, generator=g)
    st = A.sample_stack(model, x, source="test_time", method=method, n=5, perturb=jitter,
                        generator=torch.Generator().manual_seed(2), rows=7)  # chunks that cut draws apart
    g = torch.Generator().manual_seed(2)
    draws = [jitter(x, g) for _ in range(5)]
    target = model(x).argmax(1)
    assert torch.equal(st.target, target) and st.maps.shape == (5, 4) + SIZE[nd]
    for s, xp in enumerate(draws):
        torch.testing.assert_close(st.maps[s], A.explain(model, xp, target, method), rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(st.probs[s], model(xp).softmax(-1), rtol=1e-5, atol=1e-6)


def test_randomised_stacks_are_reproducible_by_generator():
    model, x = _model(2), _x(2)
    jitter = lambda v, g: v + 0.2 * torch.randn(v.shape, generator=g)
    for method in A.RANDOMISED:
        opts = {"n_samples": 16} if method in ("lime", "kernel_shap") else {}
        a, b = (A.sample_stack(model, x, source="test_time", method=method, n=2, perturb=jitter,
                               generator=torch.Generator().manual_seed(3), **opts) for _ in range(2))
        assert torch.equal(a.maps, b.maps), method


def test_ensemble_stack_explains_the_reference_class_with_each_model():
    model, x = _model(1), _x(1, b=4)
    members = [_model(1, seed=s) for s in (5, 6)]
    st = A.sample_stack(model, x, source="ensemble", method="integrated_gradients", models=members)
    target = model(x).argmax(1)
    assert torch.equal(st.target, target)
    for k, m in enumerate(members):
        torch.testing.assert_close(st.maps[k], A.explain(m, x, target, "integrated_gradients"))
        torch.testing.assert_close(st.probs[k], m(x).softmax(-1))


def test_rashomon_stack_explains_each_kept_channel_pruned_model():
    model, x = _model(2, p=0.0), _x(2, b=3)
    xv, yv = _x(2, b=30, seed=7), torch.randint(0, 3, (30,), generator=torch.Generator().manual_seed(0))
    rset = samplers.rashomon(model, "3", xv, yv, k=6, prune_ratio=0.25, epsilon=0.5,
                             generator=torch.Generator().manual_seed(11))
    st = A.sample_stack(model, x, source="rashomon", method="occlusion", n=6, layer="3", x_val=xv, y_val=yv,
                        prune_ratio=0.25, epsilon=0.5, generator=torch.Generator().manual_seed(11))
    kept = rset.masks[rset.kept]
    assert len(kept) >= 1 and st.maps.shape[0] == len(kept)
    target = model(x).argmax(1)
    for k, mk in enumerate(kept):
        pruned = _model(2, p=0.0)
        with torch.no_grad():  # an independent pruned model: the pruned channels' filters zeroed
            pruned[3].weight[~mk] = 0.0
            pruned[3].bias[~mk] = 0.0
        torch.testing.assert_close(st.maps[k], A.explain(pruned, x, target, "occlusion"), rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(st.probs[k], pruned(x).softmax(-1), rtol=1e-5, atol=1e-6)
    assert not model[3]._forward_hooks


# ----------------------------------------------------------------------------- frozen MC dropout
def test_frozen_dropout_keeps_one_mask_per_pass_and_restores_the_model():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(6, 50), nn.Dropout(0.4), nn.Linear(50, 3)).eval()
    x = torch.randn(4, 6)
    with A.frozen_dropout(m, generator=torch.Generator().manual_seed(1)) as fd:
        a1, a2 = m(x), m(x[:2])
        mask1 = fd.masks[m[1]].clone()
        fd.new_pass()
        b1 = m(x)
        mask2 = fd.masks[m[1]]
    torch.testing.assert_close(a1[:2], a2)  # the same sub-network for every forward of a pass, any batch size
    assert not torch.allclose(a1, b1)  # a new pass is a new sub-network
    assert mask1.shape == (1, 50) and not torch.equal(mask1, mask2)
    torch.testing.assert_close(a1, m[2](m[0](x) * mask1 / 0.6))  # output = input * mask / (1 - p)
    assert not m[1].training and not m[1]._forward_hooks
    torch.testing.assert_close(m(x), m[2](m[0](x)))  # back to the identity of eval-mode dropout


def test_frozen_dropout_masks_have_the_right_rate_and_channel_shape():
    m = nn.Sequential(nn.Conv2d(1, 64, 1), nn.Dropout2d(0.25), nn.Conv2d(64, 1, 1)).eval()
    keep = []
    with A.frozen_dropout(m, generator=torch.Generator().manual_seed(0)) as fd:
        for _ in range(50):
            fd.new_pass()
            m(torch.randn(2, 1, 4, 4))
            assert fd.masks[m[1]].shape == (1, 64, 1, 1)
            keep.append(fd.masks[m[1]].mean())
    assert abs(float(torch.stack(keep).mean()) - 0.75) < 0.03
    with pytest.raises(ValueError, match="AlphaDropout"):
        with A.frozen_dropout(nn.Sequential(nn.Linear(2, 2), nn.AlphaDropout(0.2))):
            pass


def _positive_linear(d=12, p=0.5):
    """logit_0 = w · dropout(x) + 0.3 with w > 0, logit_1 = 0: for x > 0 every IG attribution is >= 0,
    so the sum of the unnormalised map is logit_0(x) - logit_0(0) of the sub-network that made it."""
    lin = nn.Linear(d, 2)
    with torch.no_grad():
        lin.weight.zero_()
        lin.weight[0] = torch.linspace(0.5, 2.0, d)
        lin.bias.copy_(torch.tensor([0.3, 0.0]))
    return nn.Sequential(nn.Flatten(), nn.Dropout(p), lin).eval()


@pytest.mark.parametrize("method", ["integrated_gradients", "occlusion"])
def test_mc_dropout_pass_is_one_sub_network_for_all_its_forwards(method):
    model = _positive_linear()
    x = torch.rand(3, 1, 12) + 0.5
    st = A.sample_stack(model, x, source="mc_dropout", method=method, n=6, target=0, normalize=False,
                        generator=torch.Generator().manual_seed(0),
                        **({"n_steps": 64} if method != "occlusion" else {"patch": 1}))
    logit0 = torch.log(st.probs[..., 0] / st.probs[..., 1])  # logit_1 is 0
    torch.testing.assert_close(st.maps.sum(-1), logit0 - 0.3, rtol=1e-3, atol=1e-4)
    assert st.maps.sum(-1).std(0).min() > 0  # the passes differ
    # a dropout resampling its mask in every forward breaks that identity
    with samplers.dropout_enabled(model):
        torch.manual_seed(0)
        attr = ca.IntegratedGradients(model).attribute(x, target=0, n_steps=64)
        probs = model(x).softmax(-1)
    mixed = attr.sum((1, 2)) - (torch.log(probs[:, 0] / probs[:, 1]) - 0.3)
    assert mixed.abs().max() > 1e-2


def test_mc_dropout_with_p_zero_gives_the_clean_map_in_every_pass():
    model, x = _model(3), _x(3)
    st = A.sample_stack(model, x, source="mc_dropout", method="integrated_gradients", n=3, p=0.0)
    for s in range(3):
        torch.testing.assert_close(st.maps[s], A.explain(model, x, st.target, "integrated_gradients"))
    assert not model[2]._forward_hooks and not model[2].training


# ----------------------------------------------------------------------------- Quantus
def _maps_and_masks(shape, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.random((8, 1) + shape).astype(np.float32) ** 3
    s = np.zeros_like(a)
    sl = tuple(slice(k // 4, k // 4 + max(1, k // 2)) for k in shape)
    s[(slice(None), slice(None)) + sl] = 1.0
    s[0] = 0.0
    s[(0, 0) + tuple(slice(0, 2) for _ in shape)] = 1.0  # another mask on item 0
    return a, s


@pytest.mark.parametrize("shape", [(8, 8), (6, 10)])
def test_mass_in_mask_and_pointing_game_match_quantus(shape):
    import quantus  # a dev (test) dependency

    a, s = _maps_and_masks(shape)
    x, y = np.zeros_like(a), np.zeros(len(a), dtype=int)
    rma = quantus.RelevanceMassAccuracy(disable_warnings=True)(model=None, x_batch=x, y_batch=y, a_batch=a, s_batch=s)
    ours = metrics.mass_in_mask(torch.tensor(a[:, 0]), torch.tensor(s[:, 0] > 0))
    np.testing.assert_allclose(ours.numpy(), np.asarray(rma, dtype=np.float64), rtol=1e-5)
    pg = quantus.PointingGame(disable_warnings=True)(model=None, x_batch=x, y_batch=y, a_batch=a, s_batch=s)
    ours = metrics.pointing_game(torch.tensor(a[:, 0]), torch.tensor(s[:, 0] > 0))
    np.testing.assert_array_equal(ours.numpy(), np.asarray(pg, dtype=np.float64))


def test_assess_runs_every_source_with_an_attribution_method():
    from uqxai_lib import assess

    model, x = _model(1, p=0.3), _x(1, b=12)
    y = torch.randint(0, 3, (12,), generator=torch.Generator().manual_seed(5))
    jitter = lambda v, g: v + 0.3 * torch.randn(v.shape, generator=g)
    rec = assess(model, x, y, source="test_time", method="integrated_gradients", n=3, perturb=jitter, n_boot=50)
    d = rec.to_dict()
    assert d["config"]["method"] == "integrated_gradients" and d["config"]["spatial_dims"] == 1
    assert len(d["stability"]["rho"]) == 12 and rec.maps.shape == (3, 12, 24)
    rec = assess(model, x, y, source="mc_dropout", method="occlusion", n=3, n_boot=50)
    assert rec.maps.shape == (3, 12, 24) and not model[2].training
    members = [_model(1, seed=s) for s in (7, 8)]
    rec = assess(model, x, y, source="ensemble", method="input_x_gradient", models=members, n=2, n_boot=50)
    torch.testing.assert_close(rec.maps[1], A.explain(members[1], x, model(x).argmax(1), "input_x_gradient"))


def test_rashomon_stack_caps_the_number_of_explained_models():
    model, x = _model(2, p=0.0), _x(2, b=2)
    xv, yv = _x(2, b=20, seed=7), torch.randint(0, 3, (20,), generator=torch.Generator().manual_seed(0))
    kw = dict(source="rashomon", method="input_x_gradient", n=8, layer="3", x_val=xv, y_val=yv, prune_ratio=0.25,
              epsilon=5.0)
    full = A.sample_stack(model, x, generator=torch.Generator().manual_seed(1), **kw)
    capped = A.sample_stack(model, x, generator=torch.Generator().manual_seed(1), max_models=2, **kw)
    assert full.maps.shape[0] == 8 and torch.equal(capped.maps, full.maps[:2])
