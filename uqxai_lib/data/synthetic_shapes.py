r"""Seeded synthetic shapes with known ground-truth relevance: the data of the ``primer_gradcam`` chapter.

Every image shows **one class-defining shape** (a disk, a square, a triangle or a plus sign; the
class is the shape) and several **distractors** (thin bars and small blobs) on a noisy, smoothly
shaded background. Colours are drawn from the same distribution for the shape and the distractors,
and the shape's size, position and rotation vary, so only the *form* of the shape tells the class.
The boolean ``mask`` marks the pixels of the class-defining shape: the region a faithful
explanation should point at.

Shapes are rasterised with signed-distance tests on the pixel grid (vectorised over images with
torch); distractors are kept a few pixels away from the shape, so the mask is exactly the evidence
for the label.

>>> d = make_synthetic_shapes(n=8, size=32, seed=0)
>>> tuple(d.x.shape), d.x.dtype, tuple(d.mask.shape), d.classes[:2]
((8, 3, 32, 32), torch.float32, (8, 32, 32), ('disk', 'square'))
>>> bool(d.mask.flatten(1).any(1).all())
True
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from . import DataError, LabeledArrays
from . import uniform as _u

__all__ = ["SHAPES", "make_synthetic_shapes", "shape_mask"]

#: Shapes that can define a class, in label order.
SHAPES = ("disk", "square", "triangle", "plus")


def shape_mask(kind: str, u: Tensor, v: Tensor) -> Tensor:
    r"""Inside test of a unit shape in its own frame (``u`` right, ``v`` up; radius about 1).

    * disk: :math:`u^2 + v^2 \le 1`
    * square: :math:`\max(|u|, |v|) \le 0.8`
    * triangle (equilateral, inscribed in the unit circle, apex up):
      :math:`v \ge -\tfrac12` and :math:`v \le 1 - \sqrt3\,|u|`
    * plus: two bars of half-width 0.3 and half-length 1

    >>> u = torch.tensor([0.0, 0.9, 0.0]); v = torch.tensor([0.0, 0.0, 0.9])
    >>> shape_mask("disk", u, v).tolist(), shape_mask("square", u, v).tolist()
    ([True, True, True], [True, False, False])
    """
    if kind == "disk":
        return u * u + v * v <= 1.0
    if kind == "square":
        return torch.maximum(u.abs(), v.abs()) <= 0.8
    if kind == "triangle":
        return (v >= -0.5) & (v <= 1.0 - math.sqrt(3.0) * u.abs())
    if kind == "plus":
        return ((u.abs() <= 0.3) & (v.abs() <= 1.0)) | ((v.abs() <= 0.3) & (u.abs() <= 1.0))
    raise DataError(f"unknown shape {kind!r}; use one of {SHAPES}")


def _colours(g: torch.Generator, *shape: int) -> Tensor:
    """Bright, saturated random colours ``[*shape, 3]`` (same law for shapes and distractors)."""
    c = _u(g, *shape, 3, lo=0.15, hi=1.0)
    return c / c.amax(-1, keepdim=True).clamp_min(1e-6) * _u(g, *shape, 1, lo=0.75, hi=1.0)


def _check(n: int, size: int, classes: Sequence[str], n_distractors: int, noise: float,
           scale: tuple[float, float]) -> tuple[str, ...]:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise DataError(f"n must be an integer >= 1, got {n!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 16:
        raise DataError(f"size must be an integer >= 16 pixels, got {size!r}")
    if isinstance(classes, str):
        raise DataError(f"classes must be a sequence of shape names, not the string {classes!r}")
    classes = tuple(classes)
    bad = [c for c in classes if c not in SHAPES]
    if bad or len(classes) < 2 or len(set(classes)) != len(classes):
        raise DataError(f"classes must be >= 2 distinct names from {SHAPES}, got {classes}")
    if isinstance(n_distractors, bool) or not isinstance(n_distractors, int) or n_distractors < 0:
        raise DataError(f"n_distractors must be an integer >= 0, got {n_distractors!r}")
    if not (0.0 <= noise < 1.0):
        raise DataError(f"noise must be in [0, 1), got {noise!r}")
    lo, hi = scale
    if not (0.1 <= lo <= hi <= 0.45):
        raise DataError(f"scale must be (lo, hi) with 0.1 <= lo <= hi <= 0.45 (share of the image side), got {scale}")
    return classes


def _render_shapes(kinds: Sequence[str], y: Tensor, px: Tensor, py: Tensor, g: torch.Generator,
                   scale: tuple[float, float]) -> Tensor:
    """Masks ``[N, H, W]`` of the class shape of each image (random pose)."""
    n = len(y)
    radius = _u(g, n, lo=scale[0], hi=scale[1]) * 2.0  # in grid units ([-1, 1] spans the image)
    margin = (1.0 - radius).clamp_min(0.0) * 0.9
    cx = (torch.rand(n, generator=g) * 2 - 1) * margin
    cy = (torch.rand(n, generator=g) * 2 - 1) * margin
    rot = _u(g, n, hi=2 * math.pi)
    cos, sin = torch.cos(rot)[:, None, None], torch.sin(rot)[:, None, None]
    dx, dy = px[None] - cx[:, None, None], -(py[None] - cy[:, None, None])  # v points up
    r = radius[:, None, None]
    u = (cos * dx + sin * dy) / r
    v = (-sin * dx + cos * dy) / r
    mask = torch.zeros(n, *px.shape, dtype=torch.bool)
    for label, kind in enumerate(kinds):
        rows = y == label
        if rows.any():
            mask[rows] = shape_mask(kind, u[rows], v[rows])
    return mask


def _render_distractors(n: int, k: int, px: Tensor, py: Tensor, size: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """Coverage ``[N, K, H, W]`` in [0, 1] of ``k`` distractors per image and their colours ``[N, K, 3]``.

    Even-numbered distractors are thin bars, odd-numbered ones small Gaussian blobs.
    """
    pixel = 2.0 / size
    cx = _u(g, n, k, lo=-0.9, hi=0.9)[..., None, None]
    cy = _u(g, n, k, lo=-0.9, hi=0.9)[..., None, None]
    ang = _u(g, n, k, hi=math.pi)[..., None, None]
    half = _u(g, n, k, lo=0.15, hi=0.45)[..., None, None]
    blob = _u(g, n, k, lo=1.2, hi=2.2)[..., None, None] * pixel
    colours = _colours(g, n, k)
    dx, dy = px - cx, py - cy
    along = dx * torch.cos(ang) + dy * torch.sin(ang)
    across = -dx * torch.sin(ang) + dy * torch.cos(ang)
    bar_dist = torch.sqrt((along.abs() - half).clamp_min(0) ** 2 + across**2)
    bar = torch.sigmoid((0.8 * pixel - bar_dist) / (0.35 * pixel))
    spot = torch.exp(-(dx**2 + dy**2) / (2 * blob**2))
    is_bar = (torch.arange(k) % 2 == 0).view(1, k, 1, 1)
    return torch.where(is_bar, bar, spot), colours


def make_synthetic_shapes(
    n: int = 600,
    *,
    size: int = 64,
    classes: Sequence[str] = SHAPES[:3],
    n_distractors: int = 4,
    noise: float = 0.08,
    scale: tuple[float, float] = (0.16, 0.26),
    seed: int = 0,
) -> LabeledArrays:
    """Generate seeded images of one class-defining shape among distractors.

    Parameters
    ----------
    n:
        Number of images; classes are balanced (counts differ by at most one) and shuffled.
    size:
        Image side in pixels (square images, >= 16).
    classes:
        Shape names (>= 2, from :data:`SHAPES`); label ``i`` is ``classes[i]``.
    n_distractors:
        Distractors per image (alternately thin bars and small blobs), never touching the shape.
    noise:
        SD of the additive Gaussian pixel noise (images are in [0, 1] before normalisation).
    scale:
        Range of the shape's circumradius as a share of the image side.
    seed:
        Seed of a private generator (the global RNG state is untouched).

    Returns
    -------
    LabeledArrays
        ``x`` float32 ``[n, 3, size, size]`` (each channel standardised with the fixed mean 0.5 and
        SD 0.25); ``y`` int64 ``[n]``; ``mask`` bool ``[n, size, size]`` (pixels of the
        class-defining shape); ``classes`` the shape names; ``group`` None (images are independent).

    Raises
    ------
    DataError
        On a bad argument (the message says which and what is allowed).
    """
    classes = _check(n, size, classes, n_distractors, noise, tuple(scale))
    g = torch.Generator().manual_seed(int(seed) * 7919 + 0x5A9E)
    c = len(classes)
    y = (torch.arange(n) % c)[torch.randperm(n, generator=g)]
    lin = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1
    py, px = torch.meshgrid(lin, lin, indexing="ij")

    mask = _render_shapes(classes, y, px, py, g, tuple(scale))
    shape_col = _colours(g, n)[:, :, None, None]
    # background: dark, with a smooth linear shading of random direction
    base = _u(g, n, 3, lo=0.05, hi=0.25)[:, :, None, None]
    tilt = torch.randn(n, 2, generator=g) * 0.06
    shade = (tilt[:, 0, None, None] * px + tilt[:, 1, None, None] * py)[:, None]
    img = base + shade
    if n_distractors:
        cover, col = _render_distractors(n, n_distractors, px, py, size, g)
        # keep distractors >= 3 pixels away from the shape: the mask is all the evidence there is
        near = F.max_pool2d(mask[:, None].float(), kernel_size=7, stride=1, padding=3)[:, 0]
        cover = cover * (1 - near)[:, None]
        for j in range(n_distractors):
            a = cover[:, j, None]
            img = img * (1 - a) + col[:, j, :, None, None] * a
    img = torch.where(mask[:, None], shape_col.expand_as(img), img)
    img = img + torch.randn(img.shape, generator=g) * noise
    x = ((img.clamp(0, 1) - 0.5) / 0.25).float()
    return LabeledArrays(x=x, y=y.long(), classes=classes, mask=mask)
