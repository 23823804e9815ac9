"""perturb_image: each image perturbation against a float64 re-computation with the same draws."""
import math

import numpy as np
import pytest
import torch

from uqxai_lib import perturb_image as PI


def _x(b=3, c=2, h=8, w=8, seed=0):
    return torch.randn(b, c, h, w, generator=torch.Generator().manual_seed(seed))


def test_gaussian_noise_has_the_requested_sd_and_is_seeded():
    x = torch.zeros(4, 1, 64, 64)
    p = PI.gaussian(0.3)
    a = p(x, torch.Generator().manual_seed(1))
    b = p(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert float(a.std()) == pytest.approx(0.3, rel=0.03)
    g = torch.Generator().manual_seed(2)
    assert not torch.equal(p(x, g), p(x, g))  # successive draws differ
    assert torch.equal(PI.gaussian(0.0)(x, g), x)


def test_affine_without_motion_is_the_identity():
    x = _x()
    y = PI.affine(0.0, 0.0)(x, torch.Generator().manual_seed(0))
    assert torch.allclose(y, x, atol=1e-6)


def _bilinear_border(img, r, c):
    h, w = img.shape
    r = min(max(r, 0.0), h - 1.0)
    c = min(max(c, 0.0), w - 1.0)
    r0, c0 = int(math.floor(r)), int(math.floor(c))
    r1, c1 = min(r0 + 1, h - 1), min(c0 + 1, w - 1)
    fr, fc = r - r0, c - c0
    return ((1 - fr) * (1 - fc) * img[r0, c0] + (1 - fr) * fc * img[r0, c1]
            + fr * (1 - fc) * img[r1, c0] + fr * fc * img[r1, c1])


def test_affine_matches_a_float64_loop_with_the_same_draws():
    x = _x(b=2, c=1, h=7, w=9, seed=3)
    deg, shift = 12.0, 0.1
    y = PI.affine(deg, shift)(x, torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)  # replay the draws in the documented order
    ang = ((torch.rand(2, generator=g, dtype=torch.float64) * 2 - 1) * math.radians(deg)).numpy()
    tx = ((torch.rand(2, generator=g, dtype=torch.float64) * 2 - 1) * 2 * shift).numpy()
    ty = ((torch.rand(2, generator=g, dtype=torch.float64) * 2 - 1) * 2 * shift).numpy()
    h, w = 7, 9
    for b in range(2):
        img = x[b, 0].double().numpy()
        want = np.empty((h, w))
        for i in range(h):
            for j in range(w):
                xn, yn = (2 * j + 1) / w - 1, (2 * i + 1) / h - 1
                xs = math.cos(ang[b]) * xn - math.sin(ang[b]) * yn + tx[b]
                ys = math.sin(ang[b]) * xn + math.cos(ang[b]) * yn + ty[b]
                want[i, j] = _bilinear_border(img, ((ys + 1) * h - 1) / 2, ((xs + 1) * w - 1) / 2)
        assert np.allclose(y[b, 0].double().numpy(), want, atol=1e-5)


def test_brightness_contrast_matches_formula_with_the_same_draws():
    x = _x(b=4)
    y = PI.brightness_contrast(0.4, 0.5)(x, torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)
    c = torch.exp((torch.rand(4, generator=g, dtype=torch.float64) * 2 - 1) * math.log1p(0.5))
    beta = (torch.rand(4, generator=g, dtype=torch.float64) * 2 - 1) * 0.4
    xd = x.double()
    m = xd.mean(dim=(1, 2, 3), keepdim=True)
    want = (xd - m) * c.view(4, 1, 1, 1) + m + beta.view(4, 1, 1, 1)
    assert torch.allclose(y.double(), want, atol=1e-5)
    assert ((c >= 1 / 1.5) & (c <= 1.5)).all() and (beta.abs() <= 0.4).all()


@pytest.mark.parametrize("kind", PI.IMAGE_PERTURBATIONS)
def test_make_image_perturbation_keeps_shape_and_zero_strength_is_identity(kind):
    x = _x()
    p = PI.make_image_perturbation(kind, 0.0)
    assert torch.allclose(p(x, torch.Generator().manual_seed(0)), x, atol=1e-6)
    assert PI.make_image_perturbation(kind, 0.7)(x, torch.Generator().manual_seed(0)).shape == x.shape


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unknown image perturbation 'blur'"):
        PI.make_image_perturbation("blur", 0.5)
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        PI.gaussian(0.1)(torch.zeros(3, 8, 8), torch.Generator())
    with pytest.raises(TypeError, match="torch.Generator"):
        PI.gaussian(0.1)(torch.zeros(1, 1, 4, 4), 0)
