"""Shared pieces of the samplers: the stack types, dropout switching, batching and input checks."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, NamedTuple

import torch
from torch import Tensor, nn

from .. import saliency

#: Default memory budget of one batched forward: at most this many rows (``chunk * B``) ...
MAX_ROWS = 64
#: ... and at most this many input elements (64 RGB images of 224 x 224).
MAX_INPUT_ELEMENTS = 64 * 3 * 224 * 224
#: On CPU a forward gains nothing from batching beyond the cores' reach and loses cache locality:
#: measured on ResNet-50 at 224² with B=8, 1 / 2 / 4 passes per forward cost 0.87 / 1.01 / 1.25x the
#: time of T plain forwards (``python -m uqxai_lib.bench``). So CPU forwards take at most this many
#: input elements (8 RGB images of 224 x 224); small inputs (1-D ECG windows, 64² images) still batch.
CPU_MAX_INPUT_ELEMENTS = 8 * 3 * 224 * 224

DROPOUT_TYPES = (nn.modules.dropout._DropoutNd,)  # Dropout, Dropout1d/2d/3d, AlphaDropout, FeatureAlphaDropout


class SampleStack(NamedTuple):
    """A stack of explanations of the same ``B`` inputs.

    Attributes
    ----------
    maps : Tensor ``[S, B, *spatial]``
        float32, ReLU-ed, raw scale, at the layer's resolution, on ``x``'s device.
    probs : Tensor ``[S, B, C]``
        softmax of each sample's logits.
    target : LongTensor ``[B]``
        the explained class of each input (the same for every sample).
    """

    maps: Tensor
    probs: Tensor
    target: Tensor




# ----------------------------------------------------------------------------- helpers
def dropout_modules(model: nn.Module) -> list[nn.Module]:
    """All dropout modules of ``model`` (``nn.Dropout``, ``Dropout1d/2d/3d``, ``AlphaDropout``, ...).

    >>> len(dropout_modules(nn.Sequential(nn.Linear(2, 2), nn.Dropout(), nn.AlphaDropout())))
    2
    """
    return [m for m in model.modules() if isinstance(m, DROPOUT_TYPES)]


@contextmanager
def dropout_enabled(model: nn.Module, p: float | None = None, *, enabled: bool = True) -> Iterator[list[nn.Module]]:
    """Switch only the dropout modules of ``model`` to training mode (``enabled=False``: to eval).

    ``p`` (optional) overrides every dropout's rate inside the block. Modes and rates are restored
    on exit, also when the block raises. Every other module keeps its mode.

    >>> m = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5)).eval()
    >>> with dropout_enabled(m, p=0.1):
    ...     (m[0].training, m[1].training, m[1].p)
    (False, True, 0.1)
    >>> (m[1].training, m[1].p)
    (False, 0.5)
    """
    drops = dropout_modules(model)
    if p is not None and not 0.0 <= float(p) < 1.0:
        raise ValueError(f"dropout rate p must be in [0, 1), got {p}")
    saved = [(d, d.training, d.p) for d in drops]
    try:
        for d in drops:
            d.training = bool(enabled)  # dropout modules have no children; do not recurse
            if p is not None:
                d.p = float(p)
        yield drops
    finally:
        for d, training, rate in saved:
            d.training = training
            d.p = rate


def default_chunk(n: int, x: Tensor) -> int:
    """Passes per forward: as many as fit ``MAX_ROWS`` rows and ``MAX_INPUT_ELEMENTS`` input elements
    (``CPU_MAX_INPUT_ELEMENTS`` when ``x`` is on the CPU).

    >>> default_chunk(20, torch.zeros(8, 3, 224, 224)), default_chunk(20, torch.zeros(4, 3, 64, 64))
    (1, 16)
    >>> default_chunk(20, torch.zeros(100, 1, 500))
    1
    """
    b = max(1, x.shape[0])
    per_sample = max(1, x[0].numel()) if x.shape[0] else 1
    budget = CPU_MAX_INPUT_ELEMENTS if x.device.type == "cpu" else MAX_INPUT_ELEMENTS
    return max(1, min(int(n), MAX_ROWS // b, budget // (b * per_sample)))


def check_count(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int,)) and not (
        isinstance(value, Tensor) and value.ndim == 0 and not value.is_floating_point()
    ):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    value = int(value)
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


def check_chunk(chunk: int | None, n: int, x: Tensor) -> int:
    if chunk is None:
        return default_chunk(n, x)
    return min(check_count(chunk, "chunk"), n)


def check_method(method: str) -> None:
    if method not in saliency.METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {sorted(saliency.METHODS)}")


def check_input(x: Tensor) -> None:
    if not isinstance(x, Tensor) or x.ndim < 2 or x.shape[0] < 1:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"x must be a batch [B, ...] with B >= 1, got {shape}")
    if not torch.isfinite(x).all():
        raise ValueError("x contains NaN or Inf; clean or impute the input before explaining it")


def target_from(model: nn.Module, x: Tensor, target) -> Tensor:
    """Validated ``LongTensor[B]``: the given target, or the argmax of ``model(x)`` without grad."""
    with torch.no_grad():
        logits = model(x)
    if logits.ndim != 2:
        raise ValueError(f"the model must return logits [B, C], got shape {tuple(logits.shape)}")
    return saliency.resolve_target(logits, target)


def seed_from(generator: torch.Generator) -> int:
    return int(torch.randint(2**62, (1,), generator=generator, device=generator.device))


@contextmanager
def rng_from(generator: torch.Generator | None, device: torch.device) -> Iterator[None]:
    """Inside the block torch's global RNG (CPU and ``device``) is seeded from ``generator``; the
    caller's RNG state is restored afterwards. ``None``: use the global RNG as it is."""
    if generator is None:
        yield
        return
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed_from(generator))
        yield


def stack_chunks(model, xs: Tensor, layer, target: Tensor, n: int, b: int, method: str):
    """Maps ``[n, B, *sp]`` and probs ``[n, B, C]`` of the ``n * B`` rows ``xs`` (sample-major)."""
    cap = saliency.activations_and_gradients(model, xs, layer, target.repeat(n))
    maps = saliency.cam_from(cap.activations, cap.gradients, method)
    probs = cap.logits.float().softmax(dim=-1)
    return maps.reshape((n, b) + tuple(maps.shape[1:])), probs.reshape(n, b, -1)
