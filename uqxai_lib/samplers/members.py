"""Ensembles: the same inputs explained by each model of a list."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from .. import saliency
from .base import (
    SampleStack,
    check_input,
    check_method,
    target_from,
)


# ----------------------------------------------------------------------------- ensemble
def ensemble(
    models: Sequence[nn.Module],
    x: Tensor,
    layer: str,
    *,
    method: str = "grad_cam",
    target: int | Tensor | None = None,
) -> SampleStack:
    """Maps of the same inputs under each model of ``models``: ``SampleStack(maps [S, B, *sp], probs, target)``.

    ``layer`` is a dotted module name resolved in every model (the members share an architecture).
    The target is fixed from the *first* model's prediction on ``x`` unless given, so every member
    explains the same class. Each model runs in the mode its caller left it (use ``.eval()``).

    >>> ms = [nn.Sequential(nn.Conv1d(1, 3, 3), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(),
    ...                     nn.Linear(3, 2)).eval() for _ in range(2)]
    >>> st = ensemble(ms, torch.randn(4, 1, 12), "1")
    >>> tuple(st.maps.shape), tuple(st.probs.shape)
    ((2, 4, 10), (2, 4, 2))
    """
    models = list(models)
    if not models or not all(isinstance(m, nn.Module) for m in models):
        raise ValueError("ensemble: models must be a non-empty list of torch modules")
    if not isinstance(layer, str):
        raise TypeError("ensemble: layer must be a dotted module name (resolved in every member)")
    check_method(method)
    check_input(x)
    tgt = target_from(models[0], x, target)
    maps, probs = [], []
    for m in models:
        cap = saliency.activations_and_gradients(m, x, layer, tgt)
        maps.append(saliency.cam_from(cap.activations, cap.gradients, method))
        probs.append(cap.logits.float().softmax(-1))
    return SampleStack(torch.stack(maps), torch.stack(probs), tgt)
