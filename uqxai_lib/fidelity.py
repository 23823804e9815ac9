r"""Is a saliency map *right*? Fidelity tests against the model (N-D: 1-D ECG, 2-D images, 3-D).

Every function works on a batch ``x`` ``[B, C, *spatial]`` with maps ``[B, *spatial]`` at the
input's resolution (upsample coarser maps first, :func:`uqxai_lib.saliency.upsample`), so one
implementation serves ECG windows, images and volumes. (The pointing game is
:func:`uqxai_lib.metrics.pointing_game`.)

* :func:`patch_scores`, :func:`patch_order` — the map summed over non-overlapping patches (segments
  of an ECG window, tiles of an image, single pixels with ``patch=1``) and the order in which
  evidence is removed: by the map (most salient first, ties by position) or at random (the
  baseline every curve is compared with);
* :func:`deletion_curve` / :func:`insertion_curve` — the model's probability of the explained class
  as patches are replaced by a *fill* in that order (deletion), or restored into the fill
  (insertion) (Petsiuk et al. 2018, RISE); :func:`curve_auc` — the curve's area on ``[0, 1]``
  (trapezoid). A faithful map gives a *low* deletion area and a *high* insertion area compared
  with the random order. The fill (:func:`fill_input`) is a number (ECG: 0, the standardised
  window's mean), a tensor such as a blurred copy of ``x``, or ``"blur"`` (:func:`gaussian_blur`,
  images) / ``"mean"`` (each input's per-channel mean);
* :func:`cascading_randomisation` — maps of cumulatively re-initialised copies of a model, from the
  head down: the cascading model-parameter randomisation of Adebayo et al. (2018, "Sanity checks
  for saliency maps").

>>> m = torch.nn.Sequential(torch.nn.Conv1d(1, 2, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(16, 2)).eval()
>>> x = torch.randn(3, 1, 8); maps = x[:, 0].abs()
>>> c = deletion_curve(m, x, maps, torch.zeros(3, dtype=torch.long), patch=2)
>>> tuple(c.shape), bool(((c >= 0) & (c <= 1)).all())
((3, 5), True)
"""
from __future__ import annotations

import copy
import math
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "cascading_randomisation",
    "curve_auc",
    "deletion_curve",
    "fill_input",
    "gaussian_blur",
    "insertion_curve",
    "patch_order",
    "patch_scores",
]


def _patch_tuple(patch: int | Sequence[int], nd: int) -> tuple[int, ...]:
    p = (int(patch),) * nd if isinstance(patch, int) else tuple(int(v) for v in patch)
    if len(p) != nd or any(v < 1 for v in p):
        raise ValueError(f"patch must be a positive size per spatial dim ({nd} of them), got {patch!r}")
    return p


def _blocks(spatial: Sequence[int], p: tuple[int, ...]) -> tuple[int, ...]:
    if any(s % q for s, q in zip(spatial, p)):
        raise ValueError(f"spatial size {tuple(spatial)} is not divisible by the patch {p}; choose a patch that divides it")
    return tuple(s // q for s, q in zip(spatial, p))


def patch_scores(maps: Tensor, patch: int | Sequence[int]) -> Tensor:
    """Sum of each map ``[B, *spatial]`` over non-overlapping patches -> ``[B, n_patches]`` (row-major).

    >>> patch_scores(torch.arange(8.).reshape(1, 8), 4)
    tensor([[ 6., 22.]])
    """
    maps = torch.as_tensor(maps)
    nd = maps.dim() - 1
    p = _patch_tuple(patch, nd)
    n = _blocks(maps.shape[1:], p)
    shape = [maps.shape[0]]
    for k, q in zip(n, p):
        shape += [k, q]
    v = maps.reshape(shape)
    return v.sum(dim=tuple(range(2, 2 * nd + 1, 2))).reshape(maps.shape[0], -1)


def patch_order(maps: Tensor, patch: int | Sequence[int], *, order: str = "map",
                generator: torch.Generator | None = None) -> Tensor:
    """Order of the patches of each map ``[B, n_patches]``: ``"map"`` most salient first (ties by
    position), ``"random"`` a uniformly random permutation per map from ``generator``."""
    s = patch_scores(maps, patch)
    if order == "map":
        return torch.sort(-s.double(), dim=1, stable=True).indices
    if order == "random":
        return torch.argsort(torch.rand(s.shape, generator=generator, dtype=torch.float64), dim=1)
    raise ValueError(f"order must be 'map' or 'random', got {order!r}")


def _expand_patches(keep: Tensor, spatial: Sequence[int], p: tuple[int, ...]) -> Tensor:
    """Patch-level bool ``[N, n_patches]`` -> sample-level ``[N, *spatial]``."""
    n = _blocks(spatial, p)
    v = keep.reshape(keep.shape[0], *n)
    for d, q in enumerate(p):
        v = v.repeat_interleave(q, dim=d + 1)
    return v


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Gaussian blur of images ``x [B, C, H, W]`` (``sigma`` px, kernel radius ceil(3 sigma); reflect
    padding as far as the image allows, zeros beyond; separable, rows then columns).

    >>> round(float(gaussian_blur(torch.ones(1, 1, 5, 5), 1.0)[0, 0, 2, 2]), 6)  # a constant image stays constant
    1.0
    """
    if x.dim() != 4:
        raise ValueError(f"gaussian_blur takes images [B, C, H, W], got shape {tuple(x.shape)}")
    radius = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    pad_h = min(radius, x.shape[-2] - 1)
    pad_w = min(radius, x.shape[-1] - 1)
    out = F.pad(x, (pad_w, pad_w, 0, 0), mode="reflect")
    out = F.conv2d(out, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c, padding=(0, radius - pad_w))
    out = F.pad(out, (0, 0, pad_h, pad_h), mode="reflect")
    out = F.conv2d(out, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c, padding=(radius - pad_h, 0))
    return out


def fill_input(x: Tensor, fill: float | str | Tensor = 0.0, sigma: float | None = None) -> Tensor:
    """What replaces deleted evidence, shaped like ``x`` ``[B, C, *spatial]``: a number (a constant
    input), a tensor broadcastable to ``x`` (e.g. a blurred copy), ``"mean"`` (each input's
    per-channel mean over its spatial dims) or ``"blur"`` (images only: :func:`gaussian_blur` with
    ``sigma`` px, default a tenth of the image width, at least 1).

    >>> fill_input(torch.tensor([[[1.0, 3.0]]]), "mean").tolist()
    [[[2.0, 2.0]]]
    """
    if isinstance(fill, Tensor):
        try:
            return fill.to(device=x.device, dtype=x.dtype).expand_as(x)
        except RuntimeError:
            raise ValueError(f"a fill tensor must broadcast to x {tuple(x.shape)}, got {tuple(fill.shape)}") from None
    if isinstance(fill, str):
        if fill == "mean":
            return x.mean(dim=tuple(range(2, x.dim())), keepdim=True).expand_as(x).clone()
        if fill == "blur":
            s = float(sigma) if sigma is not None else max(1.0, x.shape[-1] / 10)
            if not s > 0:
                raise ValueError(f"sigma must be > 0, got {sigma}")
            return gaussian_blur(x, s)
        raise ValueError(f"fill must be a number, a tensor, 'blur' or 'mean', got {fill!r}")
    if isinstance(fill, (int, float)) and math.isfinite(float(fill)):
        return torch.full_like(x, float(fill))
    raise ValueError(f"fill must be a finite number, a tensor, 'blur' or 'mean', got {fill!r}")


@torch.no_grad()
def _curve(model: nn.Module, x: Tensor, maps: Tensor, target: Tensor, patch, *, insert: bool, order: str,
           generator: torch.Generator | None, fill, sigma: float | None, steps: int | None, batch: int) -> Tensor:
    if x.dim() < 3 or maps.shape != (x.shape[0], *x.shape[2:]):
        raise ValueError(f"x must be [B, C, *spatial] and maps [B, *spatial] (the input's resolution: upsample "
                         f"coarser maps first); got {tuple(x.shape)} and {tuple(maps.shape)}")
    target = torch.as_tensor(target, dtype=torch.long).reshape(-1)
    if target.numel() != x.shape[0]:
        raise ValueError(f"target must hold one class per input ({x.shape[0]}), got {target.numel()}")
    p = _patch_tuple(patch, x.dim() - 2)
    ranks = patch_order(maps.cpu(), p, order=order, generator=generator)  # [B, K]
    k = ranks.shape[1]
    steps = k if steps is None else int(steps)
    if not 1 <= steps <= k:
        raise ValueError(f"steps must lie in [1, {k}] (the number of patches), got {steps}")
    pos = torch.empty_like(ranks)
    pos.scatter_(1, ranks, torch.arange(k).expand_as(ranks).contiguous())  # rank of each patch
    counts = [round(t * k / steps) for t in range(steps + 1)]  # patches changed at point t (half to even)
    base = fill_input(x, fill, sigma)
    out = torch.empty(x.shape[0], len(counts), dtype=torch.float64)
    for j, c in enumerate(counts):
        changed = pos < c  # the first c patches of the order
        keep = ~changed if not insert else changed
        for lo in range(0, x.shape[0], batch):
            xb = x[lo:lo + batch]
            m = _expand_patches(keep[lo:lo + batch], x.shape[2:], p).to(xb.device).unsqueeze(1)
            xm = torch.where(m, xb, base[lo:lo + batch])
            prob = torch.softmax(model(xm).double(), -1)
            out[lo:lo + batch, j] = prob.gather(1, target[lo:lo + batch, None].to(prob.device))[:, 0].cpu()
    return out


def deletion_curve(model: nn.Module, x: Tensor, maps: Tensor, target: Tensor, *, patch: int | Sequence[int],
                   order: str = "map", generator: torch.Generator | None = None,
                   fill: float | str | Tensor = 0.0, sigma: float | None = None,
                   steps: int | None = None, batch: int = 256) -> Tensor:
    """Probability of ``target`` (float64 softmax) ``[B, steps + 1]`` as 0, ..., all patches are
    replaced by ``fill`` (:func:`fill_input`) in ``order`` (:func:`patch_order`). Point ``t`` has
    ``round(t * n / steps)`` of the ``n`` patches replaced (point 0 is ``x`` itself, the last point
    the fill); ``steps`` defaults to one patch per step. Inputs go through the model ``batch`` at a
    time, one point of the curve after the other. The model is used in the mode the caller left it
    (call ``model.eval()`` first)."""
    return _curve(model, x, maps, target, patch, insert=False, order=order, generator=generator,
                  fill=fill, sigma=sigma, steps=steps, batch=batch)


def insertion_curve(model: nn.Module, x: Tensor, maps: Tensor, target: Tensor, *, patch: int | Sequence[int],
                    order: str = "map", generator: torch.Generator | None = None,
                    fill: float | str | Tensor = 0.0, sigma: float | None = None,
                    steps: int | None = None, batch: int = 256) -> Tensor:
    """Like :func:`deletion_curve`, but starting from the fill and restoring patches of ``x`` in ``order``."""
    return _curve(model, x, maps, target, patch, insert=True, order=order, generator=generator,
                  fill=fill, sigma=sigma, steps=steps, batch=batch)


def curve_auc(curve: Tensor, fractions: Tensor | None = None) -> Tensor:
    """Area under each curve ``[B, T]`` (trapezoid), float64 ``[B]``: over ``T`` evenly spaced
    fractions of ``[0, 1]`` by default, or over the given ``fractions`` ``[T]``.

    >>> curve_auc(torch.tensor([[1.0, 0.5, 0.0]]))
    tensor([0.5000], dtype=torch.float64)
    """
    c = torch.as_tensor(curve).double()
    if c.dim() != 2 or c.shape[1] < 2:
        raise ValueError(f"curve must be [B, T] with T >= 2 points, got {tuple(c.shape)}")
    if fractions is None:
        return torch.trapezoid(c, dx=1.0 / (c.shape[1] - 1), dim=1)
    return torch.trapezoid(c, torch.as_tensor(fractions).double().to(c.device), dim=1)


def _reset(module: nn.Module, only: tuple[type, ...] | None) -> None:
    for sub in module.modules():
        if only is not None and not isinstance(sub, only):
            continue
        if hasattr(sub, "reset_parameters"):
            sub.reset_parameters()
        if hasattr(sub, "reset_running_stats"):
            sub.reset_running_stats()


def cascading_randomisation(model: nn.Module, modules: Sequence[str | Sequence[str]],
                            explain: Callable[[nn.Module], Tensor], *, seed: int = 0, seeding: str = "step",
                            only: tuple[type, ...] | None = None) -> list[tuple[Any, Tensor]]:
    """Maps of cumulatively randomised copies of ``model`` (Adebayo et al. 2018).

    ``modules`` are names of submodules from the output layer down (e.g. ``["classifier",
    "features.12", "features.8", ...]``; an entry may be a list of names randomised together, e.g. a
    convolution and its BatchNorm). Step ``i`` re-initialises modules ``0..i`` of a deep copy of
    ``model`` (in the copy's eval mode) and returns ``(modules[i], explain(copy))``. Re-initialised
    are the submodules with a ``reset_parameters`` method (BatchNorm running statistics too), or only
    those of the types in ``only`` (e.g. ``(nn.Conv2d, nn.Linear)`` keeps every BatchNorm as trained).
    ``seeding="step"``: step ``i`` draws from the seed ``seed + i``; ``seeding="once"``: the draws
    start from ``seed`` before the first step and run on (step ``i`` is then a fresh copy with
    modules ``0..i`` reset one after the other after ``torch.manual_seed(seed)``). The caller's RNG is
    untouched (forked) and ``model`` itself is never changed.
    """
    if seeding not in ("step", "once"):
        raise ValueError(f"seeding must be 'step' or 'once', got {seeding!r}")
    names = dict(model.named_modules())
    groups = [[m] if isinstance(m, str) else list(m) for m in modules]
    missing = [m for g in groups for m in g if m not in names]
    if missing:
        raise ValueError(f"unknown module name(s) {missing}; pick names from model.named_modules()")
    out = []
    work = copy.deepcopy(model).eval()
    with torch.random.fork_rng(devices=[]):
        if seeding == "once":
            torch.manual_seed(int(seed))
        for i, (name, group) in enumerate(zip(modules, groups)):
            if seeding == "step":
                torch.manual_seed(int(seed) + i)
            for g in group:
                _reset(work.get_submodule(g), only)
            out.append((name, explain(work)))
    return out
