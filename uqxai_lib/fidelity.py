r"""Is a saliency map *right*? Fidelity tests against ground truth and the model (N-D: 1-D ECG, 2-D, 3-D).

Every function works on a batch ``x`` ``[B, C, *spatial]`` with maps ``[B, *spatial]`` at the
input's resolution, so one implementation serves ECG windows, images and volumes.

* :func:`pointing_game` — is the map's maximum inside the relevance mask (energy-free pointing game);
* :func:`patch_scores`, :func:`patch_order` — the map summed over non-overlapping patches (segments
  of an ECG window, tiles of an image) and the order in which evidence is removed: by the map
  (most salient first) or at random (the baseline every curve is compared with);
* :func:`deletion_curve` / :func:`insertion_curve` — the model's probability of the explained class
  as patches are replaced by a baseline value in that order (deletion), or restored into an
  all-baseline input (insertion) (Petsiuk et al. 2018, RISE); :func:`curve_auc` — the curve's area
  on ``[0, 1]`` (trapezoid). A faithful map gives a *low* deletion area and a *high* insertion area
  compared with the random order;
* :func:`randomise_from` — a copy of a model whose parameters from a named module down to the last
  of ``order`` are re-initialised: the cascading model-parameter randomisation of Adebayo et al.
  (2018, "Sanity checks for saliency maps").

>>> m = torch.nn.Sequential(torch.nn.Conv1d(1, 2, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(16, 2)).eval()
>>> x = torch.randn(3, 1, 8); maps = x[:, 0].abs()
>>> c = deletion_curve(m, x, maps, torch.zeros(3, dtype=torch.long), patch=2)
>>> tuple(c.shape), bool(((c >= 0) & (c <= 1)).all())
((3, 5), True)
"""
from __future__ import annotations

import copy
import math
from typing import Sequence

import torch
from torch import Tensor, nn

__all__ = [
    "curve_auc",
    "deletion_curve",
    "insertion_curve",
    "patch_order",
    "patch_scores",
    "pointing_game",
    "randomise_from",
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


def pointing_game(maps: Tensor, mask: Tensor) -> Tensor:
    """1.0 where the map's maximum (first, on ties) lies inside ``mask``, 0.0 where not, NaN for an
    all-zero map (it points nowhere). ``maps`` ``[B, *spatial]``, ``mask`` bool of the same shape.

    >>> pointing_game(torch.tensor([[0., 2., 1.], [3., 0., 0.], [0., 0., 0.]]), torch.tensor([[False, True, False]] * 3))
    tensor([1., 0., nan], dtype=torch.float64)
    """
    maps, mask = torch.as_tensor(maps), torch.as_tensor(mask)
    if maps.shape != mask.shape or mask.dtype != torch.bool:
        raise ValueError(f"pointing_game: maps {tuple(maps.shape)} and a bool mask of the same shape, got "
                         f"{tuple(mask.shape)} {mask.dtype}")
    flat, fm = maps.flatten(1), mask.flatten(1)
    hit = fm.gather(1, flat.argmax(1, keepdim=True))[:, 0].double()
    return torch.where(flat.amax(1) > 0, hit, torch.full_like(hit, math.nan))


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


@torch.no_grad()
def _curve(model: nn.Module, x: Tensor, maps: Tensor, target: Tensor, patch, *, insert: bool, order: str,
           generator: torch.Generator | None, baseline: float, steps: int | None, batch: int) -> Tensor:
    if x.dim() < 3 or maps.shape != (x.shape[0], *x.shape[2:]):
        raise ValueError(f"x must be [B, C, *spatial] and maps [B, *spatial]; got {tuple(x.shape)} and {tuple(maps.shape)}")
    target = torch.as_tensor(target, dtype=torch.long).reshape(-1)
    if target.numel() != x.shape[0]:
        raise ValueError(f"target must hold one class per input ({x.shape[0]}), got {target.numel()}")
    p = _patch_tuple(patch, x.dim() - 2)
    ranks = patch_order(maps.cpu(), p, order=order, generator=generator)  # [B, K]
    k = ranks.shape[1]
    pos = torch.empty_like(ranks)
    pos.scatter_(1, ranks, torch.arange(k).expand_as(ranks).contiguous())  # rank of each patch
    counts = torch.linspace(0, k, (steps or k) + 1).round().long()
    out = torch.empty(x.shape[0], len(counts), dtype=torch.float64)
    for j, c in enumerate(counts.tolist()):
        changed = pos < c  # the first c patches of the order
        keep = ~changed if not insert else changed
        for lo in range(0, x.shape[0], batch):
            xb = x[lo:lo + batch]
            m = _expand_patches(keep[lo:lo + batch], x.shape[2:], p).to(xb.device).unsqueeze(1)
            xm = torch.where(m, xb, torch.full_like(xb, float(baseline)))
            prob = torch.softmax(model(xm).double(), -1)
            out[lo:lo + batch, j] = prob.gather(1, target[lo:lo + batch, None].to(prob.device))[:, 0].cpu()
    return out


def deletion_curve(model: nn.Module, x: Tensor, maps: Tensor, target: Tensor, *, patch: int | Sequence[int],
                   order: str = "map", generator: torch.Generator | None = None, baseline: float = 0.0,
                   steps: int | None = None, batch: int = 256) -> Tensor:
    """Probability of ``target`` ``[B, steps + 1]`` as 0, ..., all patches are replaced by ``baseline``
    in ``order`` (:func:`patch_order`); ``steps`` (default: one per patch) evenly spaced counts. The
    model is used in the mode the caller left it (call ``model.eval()`` first)."""
    return _curve(model, x, maps, target, patch, insert=False, order=order, generator=generator,
                  baseline=baseline, steps=steps, batch=batch)


def insertion_curve(model: nn.Module, x: Tensor, maps: Tensor, target: Tensor, *, patch: int | Sequence[int],
                    order: str = "map", generator: torch.Generator | None = None, baseline: float = 0.0,
                    steps: int | None = None, batch: int = 256) -> Tensor:
    """Like :func:`deletion_curve`, but starting from the all-``baseline`` input and restoring patches
    of ``x`` in ``order``."""
    return _curve(model, x, maps, target, patch, insert=True, order=order, generator=generator,
                  baseline=baseline, steps=steps, batch=batch)


def curve_auc(curve: Tensor) -> Tensor:
    """Area under each curve ``[B, n]`` sampled at evenly spaced fractions of ``[0, 1]`` (trapezoid).

    >>> curve_auc(torch.tensor([[1.0, 0.5, 0.0]]))
    tensor([0.5000], dtype=torch.float64)
    """
    c = torch.as_tensor(curve).double()
    if c.dim() != 2 or c.shape[1] < 2:
        raise ValueError(f"curve must be [B, n >= 2], got {tuple(c.shape)}")
    return torch.trapezoid(c, dx=1.0 / (c.shape[1] - 1), dim=1)


def randomise_from(model: nn.Module, order: Sequence[str], name: str, *, seed: int = 0) -> nn.Module:
    """A deep copy of ``model`` whose modules ``order[:order.index(name) + 1]`` (listed from the head
    down, e.g. ``["fc", "lstm", "features.4", ...]``) have fresh parameters: every submodule with a
    ``reset_parameters`` method is re-initialised (seeded with ``seed``; BatchNorm also resets its
    running statistics). The original model is untouched."""
    if name not in order:
        raise ValueError(f"randomise_from: {name!r} is not in the randomisation order {list(order)}")
    out = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        for n in order[: list(order).index(name) + 1]:
            mod = out.get_submodule(n)
            for sub in mod.modules():
                if hasattr(sub, "reset_parameters"):
                    sub.reset_parameters()
    return out
