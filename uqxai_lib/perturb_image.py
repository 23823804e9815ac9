r"""Test-time perturbations of images, one function per kind, seeded by a ``torch.Generator``.

Each ``make_*`` returns ``perturb(x, generator) -> x'`` for ``x`` ``[B, C, H, W]`` (the inputs as
the model sees them, e.g. standardised), usable as a :func:`uqxai_lib.samplers.test_time`
callable. Every image of the batch gets its own random draw; randomness comes only from the
generator handed in.

``gaussian``
    additive white noise :math:`x + \sigma \varepsilon`, :math:`\varepsilon \sim N(0, 1)` per pixel;
``affine``
    a small random rotation (uniform in :math:`\pm` ``degrees``) and shift (uniform in
    :math:`\pm` ``shift`` of the image side), bilinear, border values repeated;
``brightness_contrast``
    :math:`(x - \bar x_b) \cdot c + \bar x_b + \beta`, with :math:`\bar x_b` the image's mean,
    :math:`\log c` uniform in :math:`\pm \log(1 + \text{contrast})` and :math:`\beta` uniform in
    :math:`\pm` ``brightness`` (in the units of ``x``).

>>> g = torch.Generator().manual_seed(0)
>>> x = torch.zeros(2, 3, 8, 8)
>>> tuple(make_image_perturbation("affine", 0.5)(x, g).shape)
(2, 3, 8, 8)
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["IMAGE_PERTURBATIONS", "affine", "brightness_contrast", "gaussian", "make_image_perturbation"]

IMAGE_PERTURBATIONS = ("gaussian", "affine", "brightness_contrast")
Perturbation = Callable[[Tensor, torch.Generator], Tensor]


def _check_x(x: Tensor) -> None:
    if not isinstance(x, Tensor) or x.ndim != 4:
        raise ValueError(f"image perturbations take x shaped [B, C, H, W], got "
                         f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")


def _check_gen(generator) -> None:
    if not isinstance(generator, torch.Generator):
        raise TypeError("generator must be a torch.Generator (seed it for reproducible draws)")


def _uniform(g: torch.Generator, n: int, half_width: float) -> Tensor:
    return (torch.rand(n, generator=g, dtype=torch.float64) * 2 - 1) * half_width


def gaussian(sigma: float) -> Perturbation:
    """Additive Gaussian noise with standard deviation ``sigma`` (units of ``x``)."""
    if not sigma >= 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")

    def perturb(x: Tensor, generator: torch.Generator) -> Tensor:
        _check_x(x)
        _check_gen(generator)
        e = torch.randn(x.shape, generator=generator, dtype=torch.float32)
        return x + float(sigma) * e.to(device=x.device, dtype=x.dtype)

    perturb.__name__ = f"gaussian_{sigma:g}"
    return perturb


def affine(degrees: float, shift: float) -> Perturbation:
    """Random rotation in ±``degrees`` and shift in ±``shift`` (share of the side), per image."""
    if not (degrees >= 0 and 0 <= shift < 1):
        raise ValueError(f"need degrees >= 0 and 0 <= shift < 1, got {degrees}, {shift}")

    def perturb(x: Tensor, generator: torch.Generator) -> Tensor:
        _check_x(x)
        _check_gen(generator)
        b = x.shape[0]
        ang = _uniform(generator, b, math.radians(degrees))
        tx, ty = _uniform(generator, b, 2 * shift), _uniform(generator, b, 2 * shift)  # grid units span 2
        cos, sin = torch.cos(ang), torch.sin(ang)
        theta = torch.stack([torch.stack([cos, -sin, tx], -1), torch.stack([sin, cos, ty], -1)], 1)
        grid = F.affine_grid(theta.to(device=x.device, dtype=x.dtype), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    perturb.__name__ = f"affine_{degrees:g}deg_{shift:g}"
    return perturb


def brightness_contrast(brightness: float, contrast: float) -> Perturbation:
    """Random brightness offset in ±``brightness`` and contrast factor in [1/(1+c), 1+c], per image."""
    if not (brightness >= 0 and contrast >= 0):
        raise ValueError(f"brightness and contrast must be >= 0, got {brightness}, {contrast}")

    def perturb(x: Tensor, generator: torch.Generator) -> Tensor:
        _check_x(x)
        _check_gen(generator)
        b = x.shape[0]
        c = torch.exp(_uniform(generator, b, math.log1p(contrast))).to(device=x.device, dtype=x.dtype)
        beta = _uniform(generator, b, brightness).to(device=x.device, dtype=x.dtype)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return (x - mean) * c.view(b, 1, 1, 1) + mean + beta.view(b, 1, 1, 1)

    perturb.__name__ = f"brightness_{brightness:g}_contrast_{contrast:g}"
    return perturb


def make_image_perturbation(kind: str, strength: float) -> Perturbation:
    """One knob per kind, ``strength`` in [0, 1]: gaussian σ = strength (x is standardised);
    affine ±15°·strength and ±10 %·strength shift; brightness ±strength, contrast ±50 %·strength.
    """
    if kind not in IMAGE_PERTURBATIONS:
        raise ValueError(f"unknown image perturbation {kind!r}; use one of {IMAGE_PERTURBATIONS}")
    if not 0 <= strength <= 1:
        raise ValueError(f"strength must lie in [0, 1], got {strength}")
    if kind == "gaussian":
        return gaussian(strength)
    if kind == "affine":
        return affine(15.0 * strength, 0.1 * strength)
    return brightness_contrast(strength, 0.5 * strength)
