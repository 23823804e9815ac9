"""Tests of uqxai_lib.fidelity_image against float64 loops, scipy and hand-made cases."""
import copy

import numpy as np
import pytest
import scipy.ndimage
import torch
from torch import nn

from _support import randomise_bn

from uqxai_lib import fidelity_image as fidelity, saliency


def _net(seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.Conv2d(6, 8, 3, padding=1),
                        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))
    with torch.no_grad():
        net[1].weight.uniform_(0.5, 1.5)
        net[1].bias.normal_()
    return randomise_bn(net).eval()


def _loop_curve(model, x, maps, target, patch, steps, fill_img, insert, order_of):
    """float64 loop: rank patches by the mean of the upsampled map, change them one by one."""
    b, _, h, w = x.shape
    gh, gw = h // patch, w // patch
    n = gh * gw
    up = torch.nn.functional.interpolate(maps[:, None].double(), size=(h, w), mode="bilinear", align_corners=False)[:, 0]
    m64 = copy.deepcopy(model).double()
    out = np.zeros((b, steps + 1))
    for i in range(b):
        if order_of is None:
            scores = [float(up[i, r * patch:(r + 1) * patch, c * patch:(c + 1) * patch].mean())
                      for r in range(gh) for c in range(gw)]
            order = sorted(range(n), key=lambda j: (-scores[j], j))
        else:
            order = order_of[i]
        for t in range(steps + 1):
            k = int(round(t * n / steps))
            img = (fill_img[i] if insert else x[i]).double().clone()
            src = x[i] if insert else fill_img[i]
            for j in order[:k]:
                r, c = divmod(j, gw)
                img[:, r * patch:(r + 1) * patch, c * patch:(c + 1) * patch] = src[:, r * patch:(r + 1) * patch,
                                                                                 c * patch:(c + 1) * patch].double()
            with torch.no_grad():
                out[i, t] = float(m64(img[None]).softmax(-1)[0, target[i]])
    return out


@pytest.mark.parametrize("insert", [False, True])
@pytest.mark.parametrize("fill", ["blur", "mean"])
def test_deletion_and_insertion_curves_equal_a_float64_loop(insert, fill):
    model = _net()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 3, 16, 16, generator=g)
    maps = torch.rand(3, 4, 4, generator=g)
    target = torch.tensor([0, 2, 1])
    fn = fidelity.insertion_curve if insert else fidelity.deletion_curve
    curve = fn(model, x, maps, target, patch=4, steps=8, fill=fill, sigma=2.0)
    ref = _loop_curve(model, x, maps, target, 4, 8, fidelity.fill_image(x, fill, 2.0), insert, None)
    assert curve.shape == (3, 9)
    np.testing.assert_allclose(curve.double().numpy(), ref, atol=1e-5)
    start, end = (fidelity.fill_image(x, fill, 2.0), x) if insert else (x, fidelity.fill_image(x, fill, 2.0))
    with torch.no_grad():
        np.testing.assert_allclose(curve[:, 0].numpy(), model(start).softmax(-1)[range(3), target].numpy(), atol=1e-6)
        np.testing.assert_allclose(curve[:, -1].numpy(), model(end).softmax(-1)[range(3), target].numpy(), atol=1e-6)


def test_random_order_is_a_permutation_from_the_generator_and_equals_the_loop_with_that_order():
    model = _net(2)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 8, 8, generator=g)
    maps = torch.rand(2, 2, 2, generator=g)
    order = fidelity.patch_order(maps, (8, 8), 4, order="random", generator=torch.Generator().manual_seed(5))
    assert sorted(order[0].tolist()) == [0, 1, 2, 3]
    curve = fidelity.deletion_curve(model, x, maps, torch.tensor([1, 1]), patch=4, fill="mean", order="random",
                                    generator=torch.Generator().manual_seed(5))
    ref = _loop_curve(model, x, maps, [1, 1], 4, 4, fidelity.fill_image(x, "mean"), False, order.tolist())
    np.testing.assert_allclose(curve.double().numpy(), ref, atol=1e-5)


def test_blur_equals_scipy_gaussian_filter_in_the_interior_and_mean_fill_is_the_channel_mean():
    x = torch.randn(1, 2, 24, 24, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    b = fidelity.fill_image(x, "blur", 1.5)
    ref = scipy.ndimage.gaussian_filter(x[0].numpy(), sigma=(0, 1.5, 1.5), mode="mirror", truncate=3.0 + 1e-9)
    # torch's reflect padding is scipy's "mirror"; radius ceil(3 sigma) = 5 = scipy's int(3 * 1.5 + 0.5)
    np.testing.assert_allclose(b[0].numpy(), ref, atol=1e-10)
    m = fidelity.fill_image(x, "mean")
    np.testing.assert_allclose(m[0, :, 3, 7].numpy(), x[0].mean((1, 2)).numpy())
    with pytest.raises(ValueError, match="fill"):
        fidelity.fill_image(x, "zeros")


def test_curve_auc_is_the_trapezoid_rule_and_bad_input_is_named():
    c = torch.tensor([[1.0, 0.5, 0.25, 0.0], [0.0, 0.0, 1.0, 1.0]])
    np.testing.assert_allclose(fidelity.curve_auc(c).numpy(), [np.trapezoid(r, np.linspace(0, 1, 4)) for r in c.numpy()])
    with pytest.raises(ValueError, match=r"\[B, T\]"):
        fidelity.curve_auc(torch.ones(3))
    model = _net()
    with pytest.raises(ValueError, match="patch"):
        fidelity.deletion_curve(model, torch.zeros(1, 3, 10, 10), torch.zeros(1, 2, 2), torch.tensor([0]), patch=4)
    with pytest.raises(ValueError, match="steps"):
        fidelity.deletion_curve(model, torch.zeros(1, 3, 8, 8), torch.zeros(1, 2, 2), torch.tensor([0]), patch=4, steps=9)


def test_a_faithful_map_deletes_faster_than_random_on_a_model_that_reads_one_region():
    class Corner(nn.Module):  # logit 1 = mean of the top-left quadrant's first channel
        def forward(self, x):
            s = x[:, 0, :8, :8].mean((1, 2))
            return torch.stack([-s, s], 1)

    x = torch.zeros(4, 3, 16, 16)
    maps = torch.zeros(4, 4, 4)
    maps[:, :2, :2] = 1.0
    target = torch.ones(4, dtype=torch.long)
    d = fidelity.curve_auc(fidelity.deletion_curve(Corner(), x, maps, target, patch=4, fill="mean", steps=16))
    dr = fidelity.curve_auc(fidelity.deletion_curve(Corner(), x, maps, target, patch=4, fill="mean", steps=16,
                                                    order="random", generator=torch.Generator().manual_seed(0)))
    # mean fill of a constant image changes nothing: both curves are flat; with a lesion-like corner it must differ
    x2 = x.clone()
    x2[:, 0, :8, :8] = 1.0
    d2 = fidelity.curve_auc(fidelity.deletion_curve(Corner(), x2, maps, target, patch=4, fill="mean", steps=16))
    dr2 = fidelity.curve_auc(fidelity.deletion_curve(Corner(), x2, maps, target, patch=4, fill="mean", steps=16,
                                                     order="random", generator=torch.Generator().manual_seed(0)))
    assert torch.allclose(d, dr)
    assert (d2 < dr2).all()  # the map points at the evidence: deleting it first lowers the curve sooner


def test_pointing_game_equals_a_loop_over_the_argmax():
    g = torch.Generator().manual_seed(0)
    maps = torch.rand(20, 4, 4, generator=g)
    masks = torch.rand(20, 16, 16, generator=g) > 0.6
    hit = fidelity.pointing_game(maps, masks)
    up = torch.nn.functional.interpolate(maps[:, None].double(), size=(16, 16), mode="bilinear", align_corners=False)[:, 0]
    n_ties = 0
    for i in range(20):
        v = up[i].flatten().tolist()
        top = [j for j, a in enumerate(v) if a == max(v)]  # bilinear upsampling makes plateaus: ties
        n_ties += len(top) > 1
        assert bool(hit[i]) == any(bool(masks[i].flatten()[j]) for j in top)
    assert n_ties > 0
    assert not fidelity.pointing_game(torch.zeros(1, 2, 2), masks[:1])[0]  # a constant map points nowhere


def test_cascading_randomisation_resets_from_the_top_cumulatively_and_leaves_the_model_alone():
    model = _net(4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    seen = []

    def explain(m):
        seen.append({k: v.clone() for k, v in m.state_dict().items()})
        return saliency.grad_cam(m, x, m[4], target=torch.tensor([0, 1]))

    steps = fidelity.cascading_randomisation(model, ["7", "3", "1"], explain, seed=0)
    assert [s[0] for s in steps] == ["7", "3", "1"]
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])  # the model is untouched
    changed = [{k.split(".")[0] for k in s if not torch.equal(s[k], before[k])} for s in seen]
    assert changed[0] == {"7"} and changed[1] == {"7", "3"} and changed[2] == {"7", "3", "1"}
    again = fidelity.cascading_randomisation(model, ["7", "3", "1"], lambda m: m[7].weight.clone(), seed=0)
    assert torch.equal(again[0][1], seen[0]["7.weight"])  # reproducible with the seed
    with pytest.raises(ValueError, match="unknown module"):
        fidelity.cascading_randomisation(model, ["head"], explain)
