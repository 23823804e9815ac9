"""Shared tensor helpers of the metrics: dtypes, spatial dimensions, flattening."""
from __future__ import annotations

import torch
from torch import Tensor


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def out_dtype(*ts: Tensor) -> torch.dtype:
    fl = [t.dtype for t in ts if t.is_floating_point()]
    if not fl:
        return torch.float32
    dt = fl[0]
    for d in fl[1:]:
        dt = torch.promote_types(dt, d)
    return dt


def work_dtype(t: Tensor) -> torch.dtype:
    return torch.float32 if t.device.type == "mps" else torch.float64


def as_tensor(x, name: str) -> Tensor:
    if isinstance(x, Tensor):
        return x
    try:
        return torch.as_tensor(x)
    except (TypeError, ValueError, RuntimeError) as e:  # pragma: no cover - message only
        raise TypeError(f"{name} must be a tensor (or array-like), got {type(x).__name__}") from e


def resolve_ndim_spatial(t: Tensor, ndim_spatial: int | None, lead: int, name: str) -> int:
    """Resolve ``ndim_spatial``: given, else ``t.ndim - lead`` (at least 1)."""
    nd = max(t.ndim - lead, 1) if ndim_spatial is None else int(ndim_spatial)
    if nd < 1 or nd > t.ndim:
        raise ValueError(
            f"{name}: ndim_spatial={ndim_spatial} does not fit a tensor of shape {tuple(t.shape)}; "
            f"pass 1 <= ndim_spatial <= {t.ndim}"
        )
    return nd


def flatten_spatial(t: Tensor, nd: int) -> Tensor:
    """``[..., *spatial]`` -> ``[..., n]`` (last ``nd`` dims flattened)."""
    return t.reshape(tuple(t.shape[: t.ndim - nd]) + (-1,))
