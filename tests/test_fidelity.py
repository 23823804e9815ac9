"""Tests of uqxai_lib.fidelity (N-D deletion / insertion curves with every kind of fill, patch order,
curve areas, Gaussian blur, cascading randomisation) against plain float64 loops, scipy and NumPy."""
import copy

import numpy as np
import pytest
import scipy.ndimage
import torch
from support import randomise_bn
from torch import nn

from uqxai_lib import fidelity as F
from uqxai_lib import saliency


def _model(c_in=1, n=16, nd=1):
    torch.manual_seed(0)
    conv = nn.Conv1d(c_in, 3, 3, padding=1) if nd == 1 else nn.Conv2d(c_in, 3, 3, padding=1)
    return nn.Sequential(conv, nn.ReLU(), nn.Flatten(), nn.Linear(3 * n, 2)).double().eval()


def _net(seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.Conv2d(6, 8, 3, padding=1),
                        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))
    with torch.no_grad():
        net[1].weight.uniform_(0.5, 1.5)
        net[1].bias.normal_()
    return randomise_bn(net).eval()


def _blocks(spatial, patch):
    if len(spatial) == 1:
        return [(slice(k * patch, (k + 1) * patch),) for k in range(spatial[0] // patch)]
    return [(slice(r * patch, (r + 1) * patch), slice(c * patch, (c + 1) * patch))
            for r in range(spatial[0] // patch) for c in range(spatial[1] // patch)]


def _loop_curve(model, x, maps, target, patch, insert, fill_img=None, steps=None, order_of=None):
    """float64 loop: rank patches by the summed map (most salient first, ties by index) or take the
    given order, replace (deletion) or restore (insertion) them ``round(t * n / steps)`` at a time,
    with ``fill_img`` (default zeros) as what replaces the input."""
    b, spatial = x.shape[0], x.shape[2:]
    fill_img = torch.zeros_like(x) if fill_img is None else fill_img
    m64 = copy.deepcopy(model).double()
    blocks = _blocks(spatial, patch)
    n = len(blocks)
    steps = n if steps is None else steps
    out = np.zeros((b, steps + 1))
    for i in range(b):
        if order_of is None:
            m = maps[i].double().numpy()
            scores = [float(m[bl].sum()) for bl in blocks]
            order = sorted(range(n), key=lambda k: (-scores[k], k))
        else:
            order = order_of[i]
        for t in range(steps + 1):
            c = int(round(t * n / steps))
            xi = (fill_img[i] if insert else x[i]).double().clone()
            src = x[i] if insert else fill_img[i]
            for k in order[:c]:
                xi[(slice(None),) + blocks[k]] = src[(slice(None),) + blocks[k]].double()
            with torch.no_grad():
                out[i, t] = float(torch.softmax(m64(xi[None]), -1)[0, target[i]])
    return out


@pytest.mark.parametrize("insert", [False, True])
def test_deletion_and_insertion_curves_match_a_loop_in_1d_and_2d(insert):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 1, 16, generator=g, dtype=torch.float64)
    maps = torch.rand(4, 16, generator=g, dtype=torch.float64)
    tgt = torch.tensor([0, 1, 1, 0])
    fn = F.insertion_curve if insert else F.deletion_curve
    np.testing.assert_allclose(fn(_model(), x, maps, tgt, patch=4, batch=3).numpy(),
                               _loop_curve(_model(), x, maps, tgt, 4, insert), atol=1e-12)
    x2 = torch.randn(3, 2, 4, 4, generator=g, dtype=torch.float64)
    m2 = torch.rand(3, 4, 4, generator=g, dtype=torch.float64)
    model2 = _model(c_in=2, n=16, nd=2)
    np.testing.assert_allclose(fn(model2, x2, m2, tgt[:3], patch=2).numpy(),
                               _loop_curve(model2, x2, m2, tgt[:3], 2, insert), atol=1e-12)


@pytest.mark.parametrize("insert", [False, True])
@pytest.mark.parametrize("fill", [0.7, "mean", "tensor"])
def test_every_fill_matches_the_loop_in_1d_and_2d_with_uneven_steps(insert, fill):
    g = torch.Generator().manual_seed(7)
    fn = F.insertion_curve if insert else F.deletion_curve
    for x, maps, model, patch in (
        (torch.randn(3, 1, 16, generator=g, dtype=torch.float64), torch.rand(3, 16, generator=g, dtype=torch.float64),
         _model(), 2),
        (torch.randn(3, 2, 4, 4, generator=g, dtype=torch.float64),
         torch.rand(3, 4, 4, generator=g, dtype=torch.float64), _model(c_in=2, n=16, nd=2), 1),
    ):
        tgt = torch.tensor([1, 0, 1])
        f = torch.randn(x.shape, generator=g, dtype=torch.float64) if fill == "tensor" else fill
        if fill == "mean":
            want_fill = x.mean(dim=tuple(range(2, x.dim())), keepdim=True).expand_as(x)
        elif fill == "tensor":
            want_fill = f
        else:
            want_fill = torch.full_like(x, fill)
        got = fn(model, x, maps, tgt, patch=patch, fill=f, steps=5)  # 8 or 16 patches in 5 steps: rounding
        np.testing.assert_allclose(got.numpy(), _loop_curve(model, x, maps, tgt, patch, insert, want_fill, 5),
                                   atol=1e-12)


@pytest.mark.parametrize("insert", [False, True])
@pytest.mark.parametrize("fill", ["blur", "mean"])
def test_image_curves_on_upsampled_maps_equal_a_float64_loop(insert, fill):
    model = _net()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 3, 16, 16, generator=g)
    maps = saliency.upsample(torch.rand(3, 4, 4, generator=g), (16, 16))
    target = torch.tensor([0, 2, 1])
    fn = F.insertion_curve if insert else F.deletion_curve
    curve = fn(model, x, maps, target, patch=4, steps=8, fill=fill, sigma=2.0)
    ref = _loop_curve(model, x, maps, target, 4, insert, F.fill_input(x, fill, 2.0), 8)
    assert curve.shape == (3, 9)
    np.testing.assert_allclose(curve.numpy(), ref, atol=1e-5)
    start, end = (F.fill_input(x, fill, 2.0), x) if insert else (x, F.fill_input(x, fill, 2.0))
    with torch.no_grad():
        np.testing.assert_allclose(curve[:, 0].numpy(), model(start).softmax(-1)[range(3), target].numpy(), atol=1e-6)
        np.testing.assert_allclose(curve[:, -1].numpy(), model(end).softmax(-1)[range(3), target].numpy(), atol=1e-6)


def test_pixel_curves_with_a_tensor_fill_match_a_numpy_softmax_loop():
    class LinearSoftmax(nn.Module):
        def __init__(self, w):
            super().__init__()
            self.w = nn.Parameter(w)

        def forward(self, x):
            return x.flatten(1) @ self.w

    g = torch.Generator().manual_seed(24)
    x = torch.rand(3, 1, 4, 4, generator=g, dtype=torch.float64)
    fill = torch.rand(3, 1, 4, 4, generator=g, dtype=torch.float64)
    w = torch.randn(16, 3, generator=g, dtype=torch.float64)
    model = LinearSoftmax(w).eval()
    maps = torch.rand(3, 4, 4, generator=g)
    target = torch.tensor([0, 2, 1])
    d = F.deletion_curve(model, x, maps, target, patch=1, steps=4, fill=fill)
    i = F.insertion_curve(model, x, maps, target, patch=1, steps=4, fill=fill)
    for b in range(3):
        ranked = np.argsort(-maps[b].numpy().ravel(), kind="stable")
        xv, fv = x[b, 0].reshape(-1).numpy(), fill[b, 0].reshape(-1).numpy()
        for k in range(5):
            gone = set(ranked[: round(k * 16 / 4)].tolist())
            xd = np.array([fv[p] if p in gone else xv[p] for p in range(16)])
            xi = np.array([xv[p] if p in gone else fv[p] for p in range(16)])
            for v, curve in ((xd, d), (xi, i)):
                z = v @ w.numpy()
                pr = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
                assert float(curve[b, k]) == pytest.approx(pr[target[b]], abs=1e-12)


def test_curves_start_and_end_where_they_must_and_random_order_is_a_permutation():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(5, 1, 16, generator=g, dtype=torch.float64)
    maps = torch.rand(5, 16, generator=g, dtype=torch.float64)
    tgt = torch.zeros(5, dtype=torch.long)
    m = _model()
    with torch.no_grad():
        p_full = torch.softmax(m(x), -1)[:, 0]
        p_empty = torch.softmax(m(torch.zeros_like(x)), -1)[:, 0]
    d = F.deletion_curve(m, x, maps, tgt, patch=4, order="random", generator=torch.Generator().manual_seed(0))
    i = F.insertion_curve(m, x, maps, tgt, patch=4, steps=2)
    assert torch.allclose(d[:, 0], p_full) and torch.allclose(d[:, -1], p_empty)
    assert i.shape == (5, 3) and torch.allclose(i[:, 0], p_empty) and torch.allclose(i[:, -1], p_full)
    o = F.patch_order(maps, 4, order="random", generator=torch.Generator().manual_seed(3))
    assert all(sorted(r) == [0, 1, 2, 3] for r in o.tolist())
    with pytest.raises(ValueError, match="not divisible"):
        F.deletion_curve(m, x, maps, tgt, patch=5)
    with pytest.raises(ValueError, match="'map' or 'random'"):
        F.patch_order(maps, 4, order="best")


def test_random_order_comes_from_the_generator_and_equals_the_loop_with_that_order():
    model = _net(2)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 8, 8, generator=g)
    maps = torch.rand(2, 8, 8, generator=g)
    order = F.patch_order(maps, 4, order="random", generator=torch.Generator().manual_seed(5))
    assert sorted(order[0].tolist()) == [0, 1, 2, 3]
    assert torch.equal(order, F.patch_order(maps, 4, order="random", generator=torch.Generator().manual_seed(5)))
    curve = F.deletion_curve(model, x, maps, torch.tensor([1, 1]), patch=4, fill="mean", order="random",
                             generator=torch.Generator().manual_seed(5))
    ref = _loop_curve(model, x, maps, [1, 1], 4, False, F.fill_input(x, "mean"), 4, order.tolist())
    np.testing.assert_allclose(curve.numpy(), ref, atol=1e-5)


def test_blur_equals_scipy_gaussian_filter_in_the_interior_and_mean_fill_is_the_channel_mean():
    x = torch.randn(1, 2, 24, 24, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    b = F.fill_input(x, "blur", 1.5)
    ref = scipy.ndimage.gaussian_filter(x[0].numpy(), sigma=(0, 1.5, 1.5), mode="mirror", truncate=3.0 + 1e-9)
    # torch's reflect padding is scipy's "mirror"; radius ceil(3 sigma) = 5 = scipy's int(3 * 1.5 + 0.5)
    np.testing.assert_allclose(b[0].numpy(), ref, atol=1e-10)
    m = F.fill_input(x, "mean")
    np.testing.assert_allclose(m[0, :, 3, 7].numpy(), x[0].mean((1, 2)).numpy())
    np.testing.assert_allclose(F.fill_input(x[:, :, 0], "mean")[0, :, 5].numpy(), x[0, :, 0].mean(1).numpy())  # 1-D
    with pytest.raises(ValueError, match="fill"):
        F.fill_input(x, "zeros")
    with pytest.raises(ValueError, match="broadcast"):
        F.fill_input(x, torch.zeros(2, 2, 24, 24))
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        F.fill_input(x[:, :, 0], "blur")


def test_curve_auc_is_the_trapezoid_area_on_the_unit_interval():
    c = torch.tensor([[1.0, 0.8, 0.2, 0.0], [0.5, 0.5, 0.5, 0.5], [0.0, 0.0, 1.0, 1.0]])
    want = [np.trapezoid(r, np.linspace(0, 1, 4)) for r in c.numpy()]
    np.testing.assert_allclose(F.curve_auc(c).numpy(), want, atol=1e-12)
    f = torch.tensor([0.0, 0.1, 0.5, 1.0])
    np.testing.assert_allclose(F.curve_auc(c, f).numpy(), [np.trapezoid(r, f.numpy()) for r in c.numpy()], atol=1e-12)
    with pytest.raises(ValueError, match=r"\[B, T\] with T >= 2"):
        F.curve_auc(torch.ones(2, 1))
    with pytest.raises(ValueError, match=r"\[B, T\]"):
        F.curve_auc(torch.ones(3))


def test_bad_shapes_and_steps_are_named():
    model = _net()
    with pytest.raises(ValueError, match="patch"):
        F.deletion_curve(model, torch.zeros(1, 3, 10, 10), torch.zeros(1, 10, 10), torch.tensor([0]), patch=4)
    with pytest.raises(ValueError, match="upsample coarser maps"):
        F.deletion_curve(model, torch.zeros(1, 3, 8, 8), torch.zeros(1, 2, 2), torch.tensor([0]), patch=4)
    with pytest.raises(ValueError, match="steps"):
        F.deletion_curve(model, torch.zeros(1, 3, 8, 8), torch.zeros(1, 8, 8), torch.tensor([0]), patch=4, steps=9)
    with pytest.raises(ValueError, match="one class per input"):
        F.deletion_curve(model, torch.zeros(2, 3, 8, 8), torch.zeros(2, 8, 8), torch.tensor([0]), patch=4)


def test_a_faithful_map_deletes_faster_than_random_on_a_model_that_reads_one_region():
    class Corner(nn.Module):  # logit 1 = mean of the top-left quadrant's first channel
        def forward(self, x):
            s = x[:, 0, :8, :8].mean((1, 2))
            return torch.stack([-s, s], 1)

    x = torch.zeros(4, 3, 16, 16)
    maps = torch.zeros(4, 16, 16)
    maps[:, :8, :8] = 1.0
    target = torch.ones(4, dtype=torch.long)

    def areas(xx):
        d = F.curve_auc(F.deletion_curve(Corner(), xx, maps, target, patch=4, fill="mean", steps=16))
        dr = F.curve_auc(F.deletion_curve(Corner(), xx, maps, target, patch=4, fill="mean", steps=16,
                                          order="random", generator=torch.Generator().manual_seed(0)))
        return d, dr

    # mean fill of a constant image changes nothing: both curves are flat; with a lesion-like corner it must differ
    d, dr = areas(x)
    x2 = x.clone()
    x2[:, 0, :8, :8] = 1.0
    d2, dr2 = areas(x2)
    assert torch.allclose(d, dr)
    assert (d2 < dr2).all()  # the map points at the evidence: deleting it first lowers the curve sooner


def _reset_loop(model, names, only=None):
    for n in names:
        for sub in model.get_submodule(n).modules():
            if only is None or isinstance(sub, only):
                if hasattr(sub, "reset_parameters"):
                    sub.reset_parameters()


def test_cascading_randomisation_resets_from_the_top_cumulatively_and_leaves_the_model_alone():
    model = _net(4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    seen = []

    def explain(m):
        seen.append({k: v.clone() for k, v in m.state_dict().items()})
        return saliency.grad_cam(m, x, m[4], target=torch.tensor([0, 1]))

    steps = F.cascading_randomisation(model, ["7", "3", "1"], explain, seed=0)
    assert [s[0] for s in steps] == ["7", "3", "1"]
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])  # the model is untouched
    changed = [{k.split(".")[0] for k in s if not torch.equal(s[k], before[k])} for s in seen]
    assert changed[0] == {"7"} and changed[1] == {"7", "3"} and changed[2] == {"7", "3", "1"}
    again = F.cascading_randomisation(model, ["7", "3", "1"], lambda m: m[7].weight.clone(), seed=0)
    assert torch.equal(again[0][1], seen[0]["7.weight"])  # reproducible with the seed
    ref = copy.deepcopy(model)  # seeding "step": step i draws from seed + i
    for i, n in enumerate(["7", "3", "1"]):
        torch.manual_seed(i)
        _reset_loop(ref, [n])
        assert all(torch.equal(seen[i][k], v) for k, v in ref.state_dict().items())
    with pytest.raises(ValueError, match="unknown module"):
        F.cascading_randomisation(model, ["head"], explain)
    with pytest.raises(ValueError, match="seeding"):
        F.cascading_randomisation(model, ["7"], explain, seeding="each")


@pytest.mark.parametrize("only", [None, (nn.Conv1d, nn.Linear)])
def test_seeded_once_step_k_is_a_fresh_copy_with_the_first_k_modules_reset_in_turn(only):
    torch.manual_seed(5)
    m = nn.Sequential(nn.Conv1d(1, 2, 3), nn.BatchNorm1d(2), nn.Flatten(), nn.Linear(12, 2))
    randomise_bn(m)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    order = ["3", "1", "0"]
    state = torch.random.get_rng_state()
    got = F.cascading_randomisation(m, order, lambda r: {k: v.clone() for k, v in r.state_dict().items()},
                                    seed=0, seeding="once", only=only)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's RNG is untouched
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in before.items())
    for k, (name, sd) in enumerate(got):
        ref = copy.deepcopy(m)
        torch.manual_seed(0)
        _reset_loop(ref, order[: k + 1], only)
        assert name == order[k]
        assert all(torch.equal(sd[key], v) for key, v in ref.state_dict().items())
    bn_kept = torch.equal(got[1][1]["1.running_var"], m[1].running_var)
    assert bn_kept == (only is not None)  # a type filter without BatchNorm keeps its statistics
    assert not torch.equal(got[0][1]["3.weight"], m[3].weight) and torch.equal(got[0][1]["0.weight"], m[0].weight)
