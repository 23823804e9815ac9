r"""Fidelity and sanity checks of saliency maps for images: deletion / insertion curves, the pointing
game, cascading model-parameter randomisation.

General functions (any classifier of images ``[B, C, H, W]`` with maps ``[B, h, w]``); the chapters'
study modules call them. Conventions:

* **Patches.** Evidence is removed or added by square patches of ``patch`` pixels (the image is
  cut into a ``H / patch x W / patch`` grid). A map ranks the patches by its mean value inside each
  patch after bilinear upsampling to the image size (ties: lower patch index first).
* **Deletion** (Petsiuk et al. 2018, "RISE"): starting from the image, the highest-ranked patches
  are replaced by a *fill* image step by step; the curve is the softmax probability of the target
  class after each step. A faithful map makes it fall fast (small area). **Insertion**: starting
  from the fill image, patches of the real image are put back in map order; a faithful map makes
  it rise fast (large area). The *random-order* baseline uses a random permutation of patches.
* **Fill**: ``"blur"`` (Gaussian blur of the image, ``sigma`` pixels, reflect padding) or
  ``"mean"`` (each image's per-channel mean).
* **Area**: trapezoid rule over the fraction of patches changed, in [0, 1].
* **Cascading randomisation** (Adebayo et al. 2018, "Sanity checks for saliency maps"): the
  parameters of the model are re-initialised from the output layer down, cumulatively; a map that
  depends on what the model learned changes (low rank correlation with the trained model's map).

This is the image-specific twin of :mod:`uqxai_lib.fidelity` (N-D, used by the ECG chapter), kept
apart until the blur / mean fills here become the N-D module's baseline argument.
"""
from __future__ import annotations

import copy
import math
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "patch_scores",
    "patch_order",
    "fill_image",
    "gaussian_blur",
    "deletion_curve",
    "insertion_curve",
    "curve_auc",
    "pointing_game",
    "cascading_randomisation",
]


def _check_images_maps(x: Tensor, maps: Tensor, patch: int) -> tuple[int, int]:
    if x.ndim != 4:
        raise ValueError(f"x must be images [B, C, H, W], got shape {tuple(x.shape)}")
    if maps.ndim != 3 or maps.shape[0] != x.shape[0]:
        raise ValueError(f"maps must be [B, h, w] with B = {x.shape[0]}, got shape {tuple(maps.shape)}")
    h, w = x.shape[-2:]
    if patch < 1 or h % patch or w % patch:
        raise ValueError(f"patch ({patch}) must divide the image size {h} x {w}")
    return h // patch, w // patch


def patch_scores(maps: Tensor, size: tuple[int, int], patch: int) -> Tensor:
    """Mean of each map, upsampled bilinearly to ``size``, inside every ``patch x patch`` cell: ``[B, n_patches]``
    (row-major over the patch grid)."""
    up = F.interpolate(maps[:, None].float(), size=tuple(size), mode="bilinear", align_corners=False)
    return F.avg_pool2d(up, patch).flatten(1)


def patch_order(maps: Tensor, size: tuple[int, int], patch: int, *, order: str = "map",
                generator: torch.Generator | None = None) -> Tensor:
    """Patch indices ``[B, n_patches]`` from most to least salient (``order="map"``, stable: ties keep
    the lower index first) or a random permutation per image (``order="random"``, from ``generator``)."""
    s = patch_scores(maps, size, patch)
    if order == "map":
        return torch.sort(-s, dim=1, stable=True).indices
    if order == "random":
        return torch.rand(s.shape, generator=generator).argsort(dim=1).to(s.device)
    raise ValueError(f"order must be 'map' or 'random', got {order!r}")


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Gaussian blur of ``x [B, C, H, W]`` (``sigma`` px, kernel radius ceil(3 sigma); reflect padding
    as far as the image allows, zeros beyond).

    >>> round(float(gaussian_blur(torch.ones(1, 1, 5, 5), 1.0)[0, 0, 2, 2]), 6)  # a constant image stays constant
    1.0
    """
    radius = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    pad_h = min(radius, x.shape[-2] - 1)
    pad_w = min(radius, x.shape[-1] - 1)
    out = x
    # separable: rows then columns; reflect padding (as far as the image allows), zero beyond
    out = F.pad(out, (pad_w, pad_w, 0, 0), mode="reflect")
    out = F.conv2d(out, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c, padding=(0, radius - pad_w))
    out = F.pad(out, (0, 0, pad_h, pad_h), mode="reflect")
    out = F.conv2d(out, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c, padding=(radius - pad_h, 0))
    return out


def fill_image(x: Tensor, fill: str = "blur", sigma: float | None = None) -> Tensor:
    """The image that replaces deleted evidence: ``"blur"`` (Gaussian, ``sigma`` px, default a
    tenth of the image side) or ``"mean"`` (per-image, per-channel mean)."""
    if fill == "mean":
        return x.mean(dim=(-2, -1), keepdim=True).expand_as(x).clone()
    if fill == "blur":
        s = float(sigma) if sigma is not None else max(1.0, x.shape[-1] / 10)
        if not s > 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        return gaussian_blur(x, s)
    raise ValueError(f"fill must be 'blur' or 'mean', got {fill!r}")


def _curve(model, x, maps, target, *, insert: bool, patch: int, steps: int | None, fill: str, sigma, order: str,
           generator, batch_size: int) -> Tensor:
    gh, gw = _check_images_maps(x, maps, patch)
    n = gh * gw
    steps = n if steps is None else int(steps)
    if not 1 <= steps <= n:
        raise ValueError(f"steps must lie in [1, {n}] (the number of patches), got {steps}")
    target = torch.as_tensor(target, device=x.device).long().reshape(-1)
    if target.shape != (x.shape[0],):
        raise ValueError(f"target must hold one class per image ({x.shape[0]}), got shape {tuple(target.shape)}")
    ranks = patch_order(maps, tuple(x.shape[-2:]), patch, order=order, generator=generator).to(x.device)
    # rank of every patch: patch j is changed at step t when its rank < counts[t]
    pos = torch.empty_like(ranks).scatter_(1, ranks, torch.arange(n, device=x.device).expand_as(ranks))
    counts = torch.round(torch.linspace(0, n, steps + 1)).long().tolist()
    base = fill_image(x, fill, sigma)
    src, dst = (base, x) if insert else (x, base)  # start image, image the changed patches come from
    out = []
    with torch.no_grad():
        for c in counts:
            changed = (pos < c).view(-1, 1, gh, gw).to(x.dtype)
            m = F.interpolate(changed, scale_factor=patch, mode="nearest")
            img = src * (1 - m) + dst * m
            probs = torch.cat([model(img[s : s + batch_size]).float().softmax(-1) for s in range(0, len(img), batch_size)])
            out.append(probs.gather(1, target[:, None])[:, 0])
    return torch.stack(out, dim=1)


def deletion_curve(model: nn.Module, x: Tensor, maps: Tensor, target: Tensor, *, patch: int = 8,
                   steps: int | None = None, fill: str = "blur", sigma: float | None = None, order: str = "map",
                   generator: torch.Generator | None = None, batch_size: int = 256) -> Tensor:
    """Probability of ``target`` as patches are deleted in ``maps`` order: ``[B, steps + 1]``.

    Point ``t`` has ``round(t * n / steps)`` of the ``n`` patches replaced by :func:`fill_image`
    (point 0 is the image itself, the last point the fill image). ``steps`` defaults to one patch
    per step. The model runs in the mode the caller left it (use ``model.eval()``).
    """
    return _curve(model, x, maps, target, insert=False, patch=patch, steps=steps, fill=fill, sigma=sigma,
                  order=order, generator=generator, batch_size=batch_size)


def insertion_curve(model: nn.Module, x: Tensor, maps: Tensor, target: Tensor, *, patch: int = 8,
                    steps: int | None = None, fill: str = "blur", sigma: float | None = None, order: str = "map",
                    generator: torch.Generator | None = None, batch_size: int = 256) -> Tensor:
    """Probability of ``target`` as patches of ``x`` are inserted into the fill image in ``maps`` order: ``[B, steps + 1]``."""
    return _curve(model, x, maps, target, insert=True, patch=patch, steps=steps, fill=fill, sigma=sigma,
                  order=order, generator=generator, batch_size=batch_size)


def curve_auc(curves: Tensor, fractions: Tensor | None = None) -> Tensor:
    """Area under each curve ``[B, T]`` over the fraction changed (trapezoid rule; default ``T``
    equally spaced points in [0, 1]): ``[B]`` (float64).

    >>> curve_auc(torch.tensor([[1.0, 0.5, 0.0]])).tolist()
    [0.5]
    """
    c = torch.as_tensor(curves).double()
    if c.ndim != 2 or c.shape[1] < 2:
        raise ValueError(f"curves must be [B, T] with T >= 2, got shape {tuple(c.shape)}")
    f = torch.linspace(0, 1, c.shape[1], dtype=torch.float64) if fractions is None else torch.as_tensor(fractions).double()
    return torch.trapezoid(c, f.to(c.device), dim=1)


def pointing_game(maps: Tensor, masks: Tensor) -> Tensor:
    """Whether each map's maximum, after bilinear upsampling to the mask size, lies inside the mask: bool ``[B]``.

    Ties for the maximum count as a hit when any maximal pixel is inside (the energy-free reading of
    Zhang et al. 2018); a constant (e.g. all-zero) map is a hit only if its mask covers the image.

    >>> pointing_game(torch.tensor([[[0., 1.], [0., 0.]]]), torch.tensor([[[False, True], [False, False]]])).tolist()
    [True]
    """
    if maps.ndim != 3 or masks.ndim != 3 or maps.shape[0] != masks.shape[0]:
        raise ValueError(f"maps [B, h, w] and masks [B, H, W] must share B, got {tuple(maps.shape)}, {tuple(masks.shape)}")
    up = F.interpolate(maps[:, None].double(), size=tuple(masks.shape[-2:]), mode="bilinear", align_corners=False)[:, 0]
    top = up == up.amax(dim=(1, 2), keepdim=True)  # float64: bilinear plateaus give exact ties
    mk = masks.to(up.device).bool()
    if top.all(dim=(1, 2)).any():  # constant maps: every pixel is "the maximum"
        const = top.all(dim=(1, 2))
        hit = (top & mk).any(dim=(1, 2))
        return torch.where(const, mk.all(dim=(1, 2)), hit)
    return (top & mk).any(dim=(1, 2))


def cascading_randomisation(model: nn.Module, modules: Sequence[str | Sequence[str]],
                            explain: Callable[[nn.Module], Tensor], *, seed: int = 0) -> list[tuple[Any, Tensor]]:
    """Maps of cumulatively randomised copies of ``model`` (Adebayo et al. 2018).

    ``modules`` are names of submodules from the output layer down (e.g. ``["classifier",
    "features.12", "features.8", ...]``; an entry may be a list of names randomised together, e.g. a
    convolution and its BatchNorm). Step ``i`` re-initialises (``reset_parameters`` of every
    submodule that has it, BatchNorm running statistics included) modules ``0..i`` of a deep copy
    of ``model``, in the copy's eval mode, and returns ``(modules[i], explain(copy))``. The
    generator is seeded with ``seed + i`` for step ``i`` inside a forked RNG, so the caller's RNG is
    untouched and every step is reproducible. ``model`` itself is never changed.
    """
    names = dict(model.named_modules())
    groups = [[m] if isinstance(m, str) else list(m) for m in modules]
    missing = [m for g in groups for m in g if m not in names]
    if missing:
        raise ValueError(f"unknown module name(s) {missing}; pick names from model.named_modules()")
    out = []
    work = copy.deepcopy(model).eval()
    wnames = dict(work.named_modules())
    for i, (name, group) in enumerate(zip(modules, groups)):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed) + i)
            for sub in (s for g in group for s in wnames[g].modules()):
                if hasattr(sub, "reset_parameters"):
                    sub.reset_parameters()
                if hasattr(sub, "reset_running_stats"):
                    sub.reset_running_stats()
        out.append((name, explain(work)))
    return out
