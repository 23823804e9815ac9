"""Samplers against independent oracles: manual loops of ``saliency.explain``, the general (masked
forward) path, pytorch-grad-cam's Grad-CAM++ on an explicitly masked model, plus mode, hook, RNG
and memory guarantees."""
from __future__ import annotations

import gc

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from support import randomise_bn
from torch import nn

from uqxai_lib import saliency, samplers

torch.set_num_threads(2)


class MCNet(nn.Module):
    """Conv-BN-ReLU-Dropout2d -> conv block (explained) -> Dropout -> GAP -> Linear."""

    def __init__(self, classes: int = 3):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout2d(0.3))
        self.block = nn.Sequential(nn.Conv2d(8, 12, 3, padding=1), nn.BatchNorm2d(12), nn.ReLU())
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(12, classes)

    def forward(self, x):
        h = self.block(self.stem(x))
        return self.fc(self.drop(h.mean((2, 3))))


class GapNet(nn.Module):
    """features (explained / pruned) -> GAP -> Linear: the closed forms apply with head=fc."""

    def __init__(self, channels: int = 16, classes: int = 3):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, channels, 3, padding=1, stride=2), nn.BatchNorm2d(channels), nn.ReLU(),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, classes)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


class Masked(nn.Module):
    """Multiplies its input by a fixed channel mask (an explicitly pruned copy of a model)."""

    def __init__(self, mask: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", mask.float().reshape(1, -1, 1, 1))

    def forward(self, a):
        return a * self.mask


def _seeded(cls, seed=0, **kw):
    torch.manual_seed(seed)
    return randomise_bn(cls(**kw)).eval()


@pytest.fixture
def mcnet():
    return _seeded(MCNet)


@pytest.fixture(scope="module")
def gapnet():
    return _seeded(GapNet, seed=2)


@pytest.fixture(scope="module")
def images():
    return torch.randn(4, 3, 10, 10, generator=torch.Generator().manual_seed(3))


def _modes(model):
    return {n: m.training for n, m in model.named_modules()}


def _buffers(model):
    return {n: b.clone() for n, b in model.named_buffers()}


def _set_dropout_training(model, on: bool):
    for m in samplers.dropout_modules(model):
        m.training = on


# --------------------------------------------------------------------------- MC dropout
@pytest.mark.parametrize("method", ["grad_cam", "grad_cam_pp"])
def test_mc_dropout_chunk1_equals_manual_explain_loop_with_dropout_on(mcnet, images, method):
    st = samplers.mc_dropout(mcnet, images, "block", 5, method=method, chunk=1,
                             generator=torch.Generator().manual_seed(7))
    # oracle: the documented seeding, then a plain loop of saliency.explain with dropout switched on
    target = mcnet(images).argmax(1)
    seed = int(torch.randint(2**62, (1,), generator=torch.Generator().manual_seed(7)))
    torch.manual_seed(seed)
    _set_dropout_training(mcnet, True)
    try:
        ref = torch.stack([saliency.explain(mcnet, images, "block", target, method) for _ in range(5)])
    finally:
        _set_dropout_training(mcnet, False)
    torch.testing.assert_close(st.maps, ref)
    assert torch.equal(st.target, target)
    assert st.maps.dtype == torch.float32 and st.maps.shape == (5, 4, 10, 10)
    assert not torch.allclose(st.maps[0], st.maps[1])  # dropout was on


def test_mc_dropout_batched_passes_equal_manual_loop_on_repeated_input(mcnet, images):
    st = samplers.mc_dropout(mcnet, images, "block", 7, chunk=3, generator=torch.Generator().manual_seed(1))
    target = mcnet(images).argmax(1)
    torch.manual_seed(int(torch.randint(2**62, (1,), generator=torch.Generator().manual_seed(1))))
    _set_dropout_training(mcnet, True)
    parts, probs = [], []
    try:
        for n in (3, 3, 1):
            xs = images.repeat(n, 1, 1, 1)
            cap = saliency.activations_and_gradients(mcnet, xs, "block", target.repeat(n))
            parts.append(saliency.cam_from(cap.activations, cap.gradients).reshape(n, 4, 10, 10))
            probs.append(F.softmax(cap.logits, -1).reshape(n, 4, -1))
    finally:
        _set_dropout_training(mcnet, False)
    torch.testing.assert_close(st.maps, torch.cat(parts))
    torch.testing.assert_close(st.probs, torch.cat(probs))
    torch.testing.assert_close(st.probs.sum(-1), torch.ones(7, 4))


def test_mc_dropout_with_rate_zero_equals_deterministic_maps_for_any_chunk(mcnet, images):
    ref = saliency.grad_cam(mcnet, images, "block")
    for chunk in (1, 2, None):
        st = samplers.mc_dropout(mcnet, images, "block", 4, p=0.0, chunk=chunk)
        torch.testing.assert_close(st.maps, ref.expand(4, *ref.shape), rtol=1e-5, atol=1e-6)


def test_mc_dropout_switches_only_dropout_and_restores_modes_rates_and_bn_buffers(mcnet, images):
    mcnet.stem[2].train()  # a caller's odd mix of modes (a ReLU in train mode) is kept as it is
    modes, buffers = _modes(mcnet), _buffers(mcnet)
    seen = []
    handle = mcnet.block.register_forward_pre_hook(
        lambda m, i: seen.append((mcnet.drop.training, mcnet.stem[3].training, mcnet.block[1].training, mcnet.drop.p))
    )
    try:
        samplers.mc_dropout(mcnet, images, "block", 3, p=0.2, chunk=2)
    finally:
        handle.remove()
    # first forward: the deterministic target (dropout off); then the passes (dropout on at p=0.2)
    assert seen[0] == (False, False, False, 0.5)
    assert all(s == (True, True, False, 0.2) for s in seen[1:]) and len(seen) == 3
    assert _modes(mcnet) == modes
    assert mcnet.drop.p == 0.5 and mcnet.stem[3].p == 0.3
    after = _buffers(mcnet)
    assert all(torch.equal(buffers[k], after[k]) for k in buffers)  # incl. num_batches_tracked


def test_mc_dropout_restores_modes_and_rates_when_a_pass_raises(mcnet, images):
    def boom(module, inputs):
        if mcnet.drop.training:
            raise RuntimeError("boom")

    handle = mcnet.block.register_forward_pre_hook(boom)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            samplers.mc_dropout(mcnet, images, "block", 2, p=0.9)
    finally:
        handle.remove()
    assert all(not m.training for m in mcnet.modules())
    assert mcnet.drop.p == 0.5 and mcnet.stem[3].p == 0.3
    assert all(not m._forward_hooks for m in mcnet.modules())


def test_mc_dropout_generator_reproducible_and_global_rng_untouched(mcnet, images):
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = samplers.mc_dropout(mcnet, images, "block", 4, generator=torch.Generator().manual_seed(5))
    assert torch.equal(torch.get_rng_state(), state)
    b = samplers.mc_dropout(mcnet, images, "block", 4, generator=torch.Generator().manual_seed(5))
    c = samplers.mc_dropout(mcnet, images, "block", 4, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a.maps, b.maps) and torch.equal(a.probs, b.probs)
    assert not torch.equal(a.maps, c.maps)


def test_mc_dropout_target_fixed_from_deterministic_prediction(mcnet, images):
    deterministic = mcnet(images).argmax(1)
    _set_dropout_training(mcnet, True)  # even if the caller left dropout on
    st = samplers.mc_dropout(mcnet, images, "block", 6, p=0.9, generator=torch.Generator().manual_seed(0))
    assert torch.equal(st.target, deterministic)
    assert all(m.training for m in samplers.dropout_modules(mcnet))  # caller's modes restored
    # the passes' own argmax varies at p=0.9, the explained class does not: check against explicit target
    _set_dropout_training(mcnet, False)
    other = (deterministic + 1) % 3
    st2 = samplers.mc_dropout(mcnet, images, "block", 3, target=other, chunk=1,
                              generator=torch.Generator().manual_seed(0))
    assert torch.equal(st2.target, other)
    torch.manual_seed(int(torch.randint(2**62, (1,), generator=torch.Generator().manual_seed(0))))
    _set_dropout_training(mcnet, True)
    try:
        ref = saliency.grad_cam(mcnet, images, "block", other)
    finally:
        _set_dropout_training(mcnet, False)
    torch.testing.assert_close(st2.maps[0], ref)


def test_mc_dropout_bad_inputs_raise_clear_errors(mcnet, images):
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)).eval()
    with pytest.raises(ValueError, match="no dropout"):
        samplers.mc_dropout(plain, images, "0", 3)
    with pytest.raises(ValueError, match="passes must be >= 1"):
        samplers.mc_dropout(mcnet, images, "block", 0)
    with pytest.raises(TypeError, match="passes must be an integer"):
        samplers.mc_dropout(mcnet, images, "block", 2.5)
    with pytest.raises(ValueError, match="dropout rate"):
        samplers.mc_dropout(mcnet, images, "block", 2, p=1.0)
    with pytest.raises(ValueError, match="unknown method"):
        samplers.mc_dropout(mcnet, images, "block", 2, method="gradcam")
    with pytest.raises(ValueError, match="not a submodule"):
        samplers.mc_dropout(mcnet, images, "nope", 2)
    with pytest.raises(ValueError, match="target classes"):
        samplers.mc_dropout(mcnet, images, "block", 2, target=7)
    with pytest.raises(ValueError, match="NaN"):
        samplers.mc_dropout(mcnet, images * float("nan"), "block", 2)
    assert mcnet.drop.p == 0.5 and not mcnet.drop.training


def test_thousand_calls_leave_no_hooks_and_no_memory_growth():
    model = _seeded(MCNet)
    x = torch.randn(2, 3, 6, 6)
    g = torch.Generator().manual_seed(0)
    for _ in range(50):  # warm-up
        samplers.mc_dropout(model, x, "block", 2, generator=g)
    gc.collect()
    before = len(gc.get_objects())  # live gc-tracked objects (tracemalloc would make this 6x slower)
    for _ in range(1000):
        samplers.mc_dropout(model, x, "block", 2, generator=g)
    gc.collect()
    growth = len(gc.get_objects()) - before
    assert growth < 200, f"{growth} more live Python objects after 1000 calls (a leak)"
    assert all(not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks for m in model.modules())
    assert all(not m.training for m in model.modules())


def test_default_chunk_bounds_rows_per_forward():
    assert samplers.default_chunk(20, torch.zeros(8, 3, 224, 224, device="meta")) == 8  # accelerator budget
    assert samplers.default_chunk(20, torch.zeros(8, 3, 224, 224)) == 1  # CPU budget: one pass of B=8 at 224²
    assert samplers.default_chunk(20, torch.zeros(2, 3, 224, 224)) == 4
    assert samplers.default_chunk(3, torch.zeros(8, 3, 8, 8)) == 3
    assert samplers.default_chunk(20, torch.zeros(200, 1, 100)) == 1


# --------------------------------------------------------------------------- test-time perturbation
def _jitter(x, g):
    return x + 0.3 * torch.randn(x.shape, generator=g)


def test_test_time_equals_manual_loop_and_does_not_depend_on_chunk(gapnet, images):
    ref_gen = torch.Generator().manual_seed(4)
    target = gapnet(images).argmax(1)
    ref = torch.stack([saliency.grad_cam_pp(gapnet, _jitter(images, ref_gen), "features", target) for _ in range(5)])
    for chunk in (1, 2, None):
        st = samplers.test_time(gapnet, images, "features", _jitter, 5, method="grad_cam_pp", chunk=chunk,
                                generator=torch.Generator().manual_seed(4))
        torch.testing.assert_close(st.maps, ref, rtol=1e-5, atol=1e-6)
        assert torch.equal(st.target, target)


def test_test_time_target_fixed_from_clean_input(gapnet, images):
    clean = gapnet(images).argmax(1)
    # a replacement input that changes at least one prediction (searched, so the test does not rest
    # on one seed's luck)
    for seed in range(50):
        other = 20 * torch.randn(images.shape, generator=torch.Generator().manual_seed(seed))
        if not torch.equal(gapnet(other).argmax(1), clean):
            break
    else:
        pytest.fail("no replacement input changed a prediction")
    st = samplers.test_time(gapnet, images, "features", lambda x, g: other, 2)
    assert torch.equal(st.target, clean)
    torch.testing.assert_close(st.maps[0], saliency.grad_cam(gapnet, other, "features", clean))
    assert not torch.equal(st.probs[0].argmax(-1), clean)  # the perturbation did change predictions


def test_test_time_bad_inputs_raise(gapnet, images):
    with pytest.raises(ValueError, match="draws must be >= 1"):
        samplers.test_time(gapnet, images, "features", _jitter, 0)
    with pytest.raises(ValueError, match="same shape|x's shape"):
        samplers.test_time(gapnet, images, "features", lambda x, g: x[:, :, :5], 2)
    with pytest.raises(TypeError, match="callable"):
        samplers.test_time(gapnet, images, "features", "gaussian", 2)


# --------------------------------------------------------------------------- Rashomon
@pytest.fixture(scope="module")
def val_data():
    g = torch.Generator().manual_seed(9)
    return torch.randn(40, 3, 10, 10, generator=g), torch.randint(0, 3, (40,), generator=g)


@pytest.mark.parametrize("class_weight", [None, torch.tensor([0.5, 2.0, 1.0])])
def test_rashomon_closed_form_equals_general_path_and_hand_computation(gapnet, val_data, class_weight):
    x, y = val_data
    kw = dict(k=12, prune_ratio=0.25, epsilon=0.05, class_weight=class_weight, batch_size=16)
    closed = samplers.rashomon(gapnet, "features", x, y, generator=torch.Generator().manual_seed(0), head=gapnet.fc,
                               **kw)
    general = samplers.rashomon(gapnet, "features", x, y, generator=torch.Generator().manual_seed(0), **kw)
    assert torch.equal(closed.masks, general.masks)
    assert closed.masks.shape == (12, 16) and (~closed.masks).sum(1).tolist() == [4] * 12
    torch.testing.assert_close(closed.losses, general.losses, rtol=1e-5, atol=1e-6)
    assert abs(closed.base_loss - general.base_loss) < 1e-5
    # hand computation in float64 for one mask: a Masked module in an explicit copy of the model
    m = closed.masks[3]
    with torch.no_grad():
        feats = gapnet.features(x).double() * m.double()[None, :, None, None]
        logits = feats.mean((2, 3)) @ gapnet.fc.weight.double().t() + gapnet.fc.bias.double()
        ref = F.cross_entropy(logits, y, weight=None if class_weight is None else class_weight.double())
    assert abs(float(closed.losses[3]) - float(ref)) < 1e-5
    assert torch.equal(closed.kept, closed.losses / closed.base_loss <= 1 + 0.05)
    torch.testing.assert_close(closed.relative_loss, closed.losses / closed.base_loss)


def test_rashomon_kept_rule_is_one_sided_and_monotone_in_epsilon(gapnet, val_data):
    x, y = val_data
    sets = [samplers.rashomon(gapnet, "features", x, y, k=40, prune_ratio=0.3, epsilon=e, head=gapnet.fc,
                              generator=torch.Generator().manual_seed(1)) for e in (0.0, 0.05, 10.0)]
    assert torch.equal(sets[0].losses, sets[2].losses)
    assert torch.equal(sets[0].kept, sets[0].losses <= sets[0].base_loss * (1 + 1e-12))  # better ones are kept
    assert sets[0].kept.sum() <= sets[1].kept.sum() <= sets[2].kept.sum() == 40
    assert sets[1].epsilon == 0.05 and sets[1].prune_ratio == 0.3


def test_rashomon_bad_inputs_raise_clear_errors(gapnet, val_data):
    x, y = val_data
    ok = dict(k=3, prune_ratio=0.5, epsilon=0.1)
    for bad, match in [(dict(epsilon=-0.1), "epsilon"), (dict(prune_ratio=0.0), "prune_ratio"),
                       (dict(prune_ratio=1.0), "prune_ratio"), (dict(k=0), "k must be >= 1")]:
        with pytest.raises(ValueError, match=match):
            samplers.rashomon(gapnet, "features", x, y, **{**ok, **bad})
    with pytest.raises(ValueError, match="head does not match"):
        samplers.rashomon(gapnet, "features", x, y, head=nn.Linear(16, 3), **ok)
    with pytest.raises(ValueError, match="head does not match"):
        samplers.rashomon(gapnet, "features", x, y, head=nn.Linear(8, 3), **ok)
    with pytest.raises(ValueError, match="y_val"):
        samplers.rashomon(gapnet, "features", x, y[:5], **ok)
    with pytest.raises(ValueError, match="labels must lie"):
        samplers.rashomon(gapnet, "features", x, y + 3, **ok)
    assert all(not m._forward_hooks for m in gapnet.modules())


@pytest.mark.parametrize("method", ["grad_cam", "grad_cam_pp"])
def test_rashomon_maps_closed_form_equals_general_path(gapnet, val_data, images, method):
    x, y = val_data
    rset = samplers.rashomon(gapnet, "features", x, y, k=10, prune_ratio=0.4, epsilon=0.5, head=gapnet.fc,
                             generator=torch.Generator().manual_seed(2))
    closed = samplers.rashomon_maps(gapnet, "features", images, rset, method=method, head=gapnet.fc, include="all")
    general = samplers.rashomon_maps(gapnet, "features", images, rset, method=method, include="all")
    assert closed.maps.shape == (10, 4, 5, 5)
    scale = float(general.maps.abs().max())
    torch.testing.assert_close(closed.maps, general.maps, rtol=1e-5, atol=1e-5 * scale)
    torch.testing.assert_close(closed.probs, general.probs, rtol=1e-5, atol=1e-6)
    assert torch.equal(closed.target, gapnet(images).argmax(1))  # from the unpruned model
    kept = samplers.rashomon_maps(gapnet, "features", images, rset, method=method, head=gapnet.fc)
    torch.testing.assert_close(kept.maps, closed.maps[rset.kept])
    assert scale > 0


def test_rashomon_maps_equal_pytorch_grad_cam_pp_on_explicitly_masked_models(gapnet, val_data, images):
    from pytorch_grad_cam import GradCAMPlusPlus
    from pytorch_grad_cam.utils.image import scale_cam_image
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    x, y = val_data
    rset = samplers.rashomon(gapnet, "features", x, y, k=4, prune_ratio=0.5, epsilon=1.0, head=gapnet.fc,
                             generator=torch.Generator().manual_seed(3))
    st = samplers.rashomon_maps(gapnet, "features", images, rset, method="grad_cam_pp", head=gapnet.fc,
                                include="all")
    size = (images.shape[-1], images.shape[-2])
    for i, mask in enumerate(rset.masks):
        masker = Masked(mask)
        pruned = nn.Sequential(gapnet.features, masker, gapnet.pool, nn.Flatten(), gapnet.fc).eval()
        with GradCAMPlusPlus(model=pruned, target_layers=[masker]) as cam:
            theirs = cam(input_tensor=images, targets=[ClassifierOutputTarget(int(t)) for t in st.target])
        expected = scale_cam_image(scale_cam_image(st.maps[i].numpy(), size))
        np.testing.assert_allclose(theirs, expected, atol=2e-4)
        assert np.ptp(theirs) > 0.5


def test_rashomon_maps_bad_inputs_raise(gapnet, val_data, images):
    x, y = val_data
    rset = samplers.rashomon(gapnet, "features", x, y, k=3, prune_ratio=0.5, epsilon=0.0, head=gapnet.fc,
                             generator=torch.Generator().manual_seed(0))
    none_kept = rset._replace(kept=torch.zeros(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="keeps no model"):
        samplers.rashomon_maps(gapnet, "features", images, none_kept, head=gapnet.fc)
    with pytest.raises(ValueError, match="channels"):
        samplers.rashomon_maps(gapnet, "features.0", images, rset)
    with pytest.raises(ValueError, match="include"):
        samplers.rashomon_maps(gapnet, "features", images, rset, include="some")
    with pytest.raises(ValueError, match="head does not match"):
        samplers.rashomon_maps(gapnet, "features", images, rset, head=nn.Linear(16, 3), include="all")


# --------------------------------------------------------------------------- Rashomon variants (sites, ratios, targets)
class _Rebuilt(nn.Module):
    """An explicitly pruned copy of GapNet: ``Masked(mask)`` inserted after ``features[site]``."""

    def __init__(self, net, site: int, mask):
        super().__init__()
        f = list(net.features)
        self.features = nn.Sequential(*f[: site + 1], Masked(mask), *f[site + 1:])
        self.pool, self.fc = net.pool, net.fc

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


def test_rashomon_random_ratio_draws_one_ratio_per_candidate_within_the_range(gapnet, val_data):
    x, y = val_data
    rset = samplers.rashomon(gapnet, "features", x, y, k=200, prune_ratio=(0.1, 0.9), epsilon=0.05, head=gapnet.fc,
                             generator=torch.Generator().manual_seed(4))
    pruned = (~rset.masks).sum(1)
    assert pruned.min() >= round(0.1 * 16) and pruned.max() <= round(0.9 * 16)
    assert len(pruned.unique()) >= 8  # the ratios vary between candidates
    assert rset.prune_ratio == (0.1, 0.9)
    # a float64 loop oracle of the losses of three candidates
    for i in (0, 57, 199):
        with torch.no_grad():
            f = gapnet.features(x).double() * rset.masks[i].double()[None, :, None, None]
            ref = F.cross_entropy(f.mean((2, 3)) @ gapnet.fc.weight.double().t() + gapnet.fc.bias.double(), y)
        assert abs(float(rset.losses[i]) - float(ref)) < 1e-5
    # a degenerate range equals the fixed ratio's channel count
    same = samplers.rashomon(gapnet, "features", x, y, k=5, prune_ratio=(0.25, 0.25), epsilon=0.05, head=gapnet.fc,
                             generator=torch.Generator().manual_seed(4))
    assert (~same.masks).sum(1).tolist() == [4] * 5
    with pytest.raises(ValueError, match="range"):
        samplers.rashomon(gapnet, "features", x, y, k=3, prune_ratio=(0.5, 0.2), epsilon=0.1)


@pytest.mark.parametrize("site", [3, 2])  # the last conv before its BatchNorm; the first block's ReLU output
def test_rashomon_at_an_earlier_site_equals_an_explicitly_pruned_model(gapnet, val_data, images, site):
    x, y = val_data
    layer = f"features.{site}"
    rset = samplers.rashomon(gapnet, layer, x, y, k=4, prune_ratio=0.5, epsilon=10.0,
                             generator=torch.Generator().manual_seed(5))
    st = samplers.rashomon_maps(gapnet, layer, images, rset, method="grad_cam_pp", include="all",
                                explain_layer="features")
    base, cand = samplers.rashomon_logits(gapnet, layer, x, rset)
    for i, m in enumerate(rset.masks):
        pruned = _Rebuilt(gapnet, site, m).eval()
        with torch.no_grad():
            logits = pruned(x.double().float())
        assert abs(float(F.cross_entropy(logits.double(), y)) - float(rset.losses[i])) < 1e-5
        torch.testing.assert_close(cand[i], logits, rtol=1e-5, atol=1e-5)
        ref = saliency.grad_cam_pp(pruned, images, pruned.features[-1], target=st.target)
        torch.testing.assert_close(st.maps[i], ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(base, gapnet(x))
    # the suffix path (layers before the site run once) gives the same set, logits and maps
    suffix = nn.Sequential(*list(gapnet.features)[site + 1:], gapnet.pool, nn.Flatten(1), gapnet.fc).eval()
    fast = samplers.rashomon(gapnet, layer, x, y, k=4, prune_ratio=0.5, epsilon=10.0, suffix=suffix,
                             generator=torch.Generator().manual_seed(5))
    assert torch.equal(fast.masks, rset.masks)
    torch.testing.assert_close(fast.losses, rset.losses, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(samplers.rashomon_logits(gapnet, layer, x, rset, suffix=suffix)[1], cand,
                               rtol=1e-5, atol=1e-5)
    st_fast = samplers.rashomon_maps(gapnet, layer, images, rset, method="grad_cam_pp", include="all",
                                     explain_layer=gapnet.features[-1], suffix=suffix)
    torch.testing.assert_close(st_fast.maps, st.maps, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="suffix does not match"):
        samplers.rashomon(gapnet, layer, x, y, k=2, prune_ratio=0.5, epsilon=1.0, suffix=nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.LazyLinear(3)))
    if site == 3:  # a channel pruned before BatchNorm becomes a constant, not zero
        m = rset.masks[0]
        with torch.no_grad():
            a = _Rebuilt(gapnet, site, m).eval().features(images)
        off = a[:, ~m]
        assert torch.allclose(off, off[..., :1, :1].expand_as(off)) and off.abs().sum() > 0
    with pytest.raises(ValueError, match="closed form"):
        samplers.rashomon_maps(gapnet, layer, images, rset, explain_layer="features", head=gapnet.fc, include="all")


@pytest.mark.parametrize("method", ["grad_cam", "grad_cam_pp"])
def test_rashomon_maps_own_target_closed_form_equals_general_path(gapnet, val_data, images, method):
    import copy

    x, y = val_data
    gapnet = copy.deepcopy(gapnet)
    with torch.no_grad():
        gapnet.fc.bias.zero_()  # without the bias (which decides every prediction here) pruning changes predictions
    images = x[:10]  # enough images that some pruned models change their prediction
    rset = samplers.rashomon(gapnet, "features", x, y, k=12, prune_ratio=0.85, epsilon=10.0, head=gapnet.fc,
                             generator=torch.Generator().manual_seed(6))
    closed = samplers.rashomon_maps(gapnet, "features", images, rset, method=method, head=gapnet.fc, target="own",
                                    include="all")
    general = samplers.rashomon_maps(gapnet, "features", images, rset, method=method, target="own", include="all")
    assert closed.target.shape == (12, 10)
    assert torch.equal(closed.target, general.target)
    torch.testing.assert_close(closed.maps, general.maps, rtol=1e-5, atol=1e-5 * float(general.maps.abs().max()))
    for i, m in enumerate(rset.masks):  # each pruned model explains its own prediction
        pruned = _Rebuilt(gapnet, 5, m).eval()
        assert torch.equal(closed.target[i], pruned(images).argmax(1))
    fixed = samplers.rashomon_maps(gapnet, "features", images, rset, method=method, head=gapnet.fc, include="all")
    same = closed.target == fixed.target[None]
    assert not same.all()  # this set has models that change their prediction
    torch.testing.assert_close(closed.maps[same], fixed.maps[same])
    with pytest.raises(ValueError, match="own"):
        samplers.rashomon_maps(gapnet, "features", images, rset, target="mine")


def test_rashomon_logits_closed_form_equals_general_and_reproduce_the_losses(gapnet, val_data):
    x, y = val_data
    rset = samplers.rashomon(gapnet, "features", x, y, k=6, prune_ratio=0.4, epsilon=0.05, head=gapnet.fc,
                             generator=torch.Generator().manual_seed(7))
    b1, c1 = samplers.rashomon_logits(gapnet, "features", x, rset, head=gapnet.fc, batch_size=16)
    b2, c2 = samplers.rashomon_logits(gapnet, "features", x, rset, batch_size=16)
    torch.testing.assert_close(c1, c2, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(b1, b2)
    ce = torch.stack([F.cross_entropy(c.double(), y) for c in c1])
    torch.testing.assert_close(ce, rset.losses, rtol=1e-5, atol=1e-6)
    assert all(not m._forward_hooks for m in gapnet.modules())
