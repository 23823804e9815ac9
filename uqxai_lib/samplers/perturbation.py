"""Test-time perturbation: S perturbed copies of the input, one target fixed from the clean input."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from .. import saliency
from .base import (
    SampleStack,
    check_chunk,
    check_count,
    check_input,
    check_method,
    stack_chunks,
    target_from,
)


# ----------------------------------------------------------------------------- test-time perturbation
def test_time(
    model: nn.Module,
    x: Tensor,
    layer: nn.Module | str,
    perturb: Callable[[Tensor, torch.Generator], Tensor],
    draws: int,
    *,
    method: str = "grad_cam",
    target: int | Tensor | None = None,
    generator: torch.Generator | None = None,
    chunk: int | None = None,
) -> SampleStack:
    """Maps of ``draws`` perturbed copies ``perturb(x, generator)`` of ``x``.

    The target is fixed from the model's prediction on the *clean* ``x`` (the model in the modes
    the caller left it) unless given. Draw ``s`` is the ``s``-th call of ``perturb(x, generator)``,
    so results do not depend on ``chunk`` (draws per forward, default :func:`default_chunk`).
    ``generator=None`` uses a generator seeded from torch's global RNG.

    >>> m = nn.Sequential(nn.Conv1d(1, 4, 3), nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(4, 2)).eval()
    >>> jitter = lambda x, g: x + 0.1 * torch.randn(x.shape, generator=g)
    >>> st = test_time(m, torch.randn(3, 1, 10), "0", jitter, 4, generator=torch.Generator().manual_seed(0))
    >>> tuple(st.maps.shape), tuple(st.probs.shape)
    ((4, 3, 8), (4, 3, 2))
    """
    draws = check_count(draws, "draws")
    check_method(method)
    check_input(x)
    if not callable(perturb):
        raise TypeError("perturb must be a callable perturb(x, generator) -> x' of the same shape")
    layer = saliency.resolve_layer(model, layer)
    chunk = check_chunk(chunk, draws, x)
    if generator is None:
        generator = torch.Generator().manual_seed(int(torch.randint(2**62, (1,))))
    elif not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    tgt = target_from(model, x, target)
    b = x.shape[0]
    maps, probs = [], []
    done = 0
    while done < draws:
        n = min(chunk, draws - done)
        parts = []
        for _ in range(n):
            xp = perturb(x, generator)
            if not isinstance(xp, Tensor) or xp.shape != x.shape:
                got = tuple(xp.shape) if isinstance(xp, Tensor) else type(xp).__name__
                raise ValueError(f"perturb(x, generator) must return a tensor of x's shape {tuple(x.shape)}, got {got}")
            parts.append(xp.to(device=x.device, dtype=x.dtype))
        m, pr = stack_chunks(model, torch.cat(parts) if n > 1 else parts[0], layer, tgt, n, b, method)
        maps.append(m)
        probs.append(pr)
        done += n
    return SampleStack(torch.cat(maps), torch.cat(probs), tgt)


test_time.__test__ = False  # a sampler, not a pytest test (pytest collects names starting with "test")
