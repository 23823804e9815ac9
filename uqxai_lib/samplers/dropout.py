"""Monte Carlo dropout: S stochastic passes with only the dropout modules switched on."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .. import saliency
from .base import (
    SampleStack,
    check_chunk,
    check_count,
    check_input,
    check_method,
    dropout_enabled,
    dropout_modules,
    rng_from,
    stack_chunks,
    target_from,
)


# ----------------------------------------------------------------------------- MC dropout
def mc_dropout(
    model: nn.Module,
    x: Tensor,
    layer: nn.Module | str,
    passes: int,
    *,
    p: float | None = None,
    method: str = "grad_cam",
    target: int | Tensor | None = None,
    generator: torch.Generator | None = None,
    chunk: int | None = None,
) -> SampleStack:
    """Maps of ``passes`` Monte Carlo dropout passes: ``SampleStack(maps [S, B, *sp], probs [S, B, C], target [B])``.

    Parameters
    ----------
    model, x, layer :
        as in :func:`uqxai_lib.saliency.explain`.
    passes : int
        number of stochastic passes ``S`` (>= 1).
    p : float, optional
        dropout rate of *every* dropout module during the call (restored afterwards).
    method : {"grad_cam", "grad_cam_pp"}
    target : None, int or LongTensor[B]
        ``None``: the model's *deterministic* prediction on ``x`` (dropout off, every other module
        in the mode the caller left it), computed once; the same class is explained in every pass.
    generator : torch.Generator, optional
        makes the passes reproducible: torch's global RNG is forked and seeded with
        ``torch.randint(2**62, (1,), generator=generator)`` for the call, so the caller's global
        RNG state is unchanged. ``None`` draws from the global RNG.
    chunk : int, optional
        passes per forward (the input is repeated ``chunk`` times along the batch); default
        :func:`default_chunk` (at most ``MAX_ROWS`` rows per forward). With ``chunk=1`` the
        passes are exactly a loop of ``saliency.explain`` calls with dropout on under the same seed.

    Only the dropout modules switch to training mode during the call; BatchNorm and everything
    else keep the caller's mode (BatchNorm should be in eval mode, else its statistics would
    mix the repeated passes and its running buffers would change). Modes and rates are restored on
    exit, also on exceptions.

    >>> m = nn.Sequential(nn.Conv1d(1, 4, 3), nn.Dropout(0.5), nn.AdaptiveAvgPool1d(1), nn.Flatten(),
    ...                   nn.Linear(4, 3)).eval()
    >>> st = mc_dropout(m, torch.randn(2, 1, 16), "1", 5, generator=torch.Generator().manual_seed(0))
    >>> tuple(st.maps.shape), tuple(st.probs.shape), tuple(st.target.shape), m[1].training
    ((5, 2, 14), (5, 2, 3), (2,), False)
    """
    passes = check_count(passes, "passes")
    check_method(method)
    check_input(x)
    layer = saliency.resolve_layer(model, layer)
    if not dropout_modules(model):
        raise ValueError(
            f"{type(model).__name__} has no dropout modules, so MC dropout passes would all be identical; "
            "add nn.Dropout layers (e.g. uqxai_lib.models.resnet_mc.build_resnet_mc) or use test_time"
        )
    chunk = check_chunk(chunk, passes, x)
    b = x.shape[0]
    with dropout_enabled(model, enabled=False):
        tgt = target_from(model, x, target)
    maps, probs = [], []
    with dropout_enabled(model, p), rng_from(generator, x.device):
        done = 0
        while done < passes:
            n = min(chunk, passes - done)
            xs = x.repeat((n,) + (1,) * (x.ndim - 1)) if n > 1 else x
            m, pr = stack_chunks(model, xs, layer, tgt, n, b, method)
            maps.append(m)
            probs.append(pr)
            done += n
    return SampleStack(torch.cat(maps), torch.cat(probs), tgt)
