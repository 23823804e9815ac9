r"""Aggregates of a stack of explanations ``[S, B, *spatial]`` over its sample dimension.

Pure torch functions; floating inputs keep their dtype, others become float32.

* :func:`consensus` - the pixel-wise mean map :math:`\bar M = \frac1S \sum_s M^{(s)}`.
* :func:`variability` - the pixel-wise population standard deviation
  :math:`\sigma = \sqrt{\frac1S \sum_s (M^{(s)} - \bar M)^2}` (``correction=0``: the stack is the
  whole set of explanations, not a sample from a larger one; a stack of one map has zero variability).
* :func:`summarize` - both at once.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["MapSummary", "consensus", "summarize", "variability"]


def _stack(maps: Tensor, name: str) -> Tensor:
    if not isinstance(maps, Tensor):
        maps = torch.as_tensor(maps)
    if maps.ndim < 2:
        raise ValueError(f"{name}: maps must be a stack [S, B, *spatial] (or [S, *spatial]), got shape {tuple(maps.shape)}")
    if maps.shape[0] < 1:
        raise ValueError(f"{name}: the stack is empty (S = 0)")
    return maps if maps.is_floating_point() else maps.float()


def consensus(maps: Tensor) -> Tensor:
    """Mean over the sample dimension: ``[S, B, *spatial] -> [B, *spatial]``.

    >>> consensus(torch.tensor([[[0., 2.]], [[2., 2.]]]))
    tensor([[1., 2.]])
    """
    return _stack(maps, "consensus").mean(0)


def variability(maps: Tensor) -> Tensor:
    """Population standard deviation over the sample dimension: ``[S, B, *spatial] -> [B, *spatial]``.

    >>> variability(torch.tensor([[[0., 2.]], [[2., 2.]]]))
    tensor([[1., 0.]])
    """
    return _stack(maps, "variability").std(dim=0, correction=0)


class MapSummary(NamedTuple):
    """``consensus`` and ``variability`` maps, each ``[B, *spatial]``."""

    consensus: Tensor
    variability: Tensor


def summarize(maps: Tensor) -> MapSummary:
    """Consensus (mean) and variability (population std) of a stack in one call.

    >>> c, v = summarize(torch.tensor([[[0., 2.]], [[2., 2.]]]))
    >>> c, v
    (tensor([[1., 2.]]), tensor([[1., 0.]]))
    """
    maps = _stack(maps, "summarize")
    var, mean = torch.var_mean(maps, dim=0, correction=0)
    return MapSummary(mean, var.sqrt())
