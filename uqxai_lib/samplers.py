r"""Uncertainty samplers: stacks of explanations ``[S, B, *spatial]`` of the same inputs.

Three sources of variation, one return type (:class:`SampleStack`):

:func:`mc_dropout`
    ``S`` stochastic forward passes with only the dropout modules switched on (Monte Carlo
    dropout); several passes share one forward by repeating the input along the batch.
:func:`test_time`
    ``S`` perturbed copies of the input (test-time augmentation / noise), e.g. the ECG noise
    models of :mod:`uqxai_lib.perturb`.
:func:`ensemble`
    the same inputs explained by each model of a list (an ensemble of independently trained
    models), for the class the first (reference) model predicts.
:func:`rashomon` / :func:`rashomon_maps`
    a Rashomon set of channel-pruned copies of one trained model: random channel masks on the
    explained layer, kept when their held-out loss is within :math:`(1+\varepsilon)` of the
    unpruned model's; closed forms when the layer is followed by global average pooling and one
    ``nn.Linear`` (``head``).

Every map is computed by :mod:`uqxai_lib.saliency` (ReLU-ed, raw scale, at the layer's
resolution, float32, on ``x``'s device) for a target class that is fixed once per input — it is
never re-chosen per pass, draw or model. Metrics (:mod:`uqxai_lib.metrics`,
:mod:`uqxai_lib.aggregate`) consume the stacks.

No sampler leaves a hook behind or changes a module's mode after it returns; :func:`mc_dropout`
switches *only* dropout modules to training mode during the call and restores them (also when
the call raises).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import saliency

__all__ = [
    "SampleStack",
    "RashomonSet",
    "mc_dropout",
    "test_time",
    "rashomon",
    "rashomon_maps",
    "rashomon_logits",
    "ensemble",
    "dropout_modules",
    "dropout_enabled",
    "default_chunk",
    "MAX_ROWS",
    "MAX_INPUT_ELEMENTS",
]

#: Default memory budget of one batched forward: at most this many rows (``chunk * B``) ...
MAX_ROWS = 64
#: ... and at most this many input elements (64 RGB images of 224 x 224).
MAX_INPUT_ELEMENTS = 64 * 3 * 224 * 224
#: On CPU a forward gains nothing from batching beyond the cores' reach and loses cache locality:
#: measured on ResNet-50 at 224² with B=8, 1 / 2 / 4 passes per forward cost 0.87 / 1.01 / 1.25x the
#: time of T plain forwards (``python -m uqxai_lib.bench``). So CPU forwards take at most this many
#: input elements (8 RGB images of 224 x 224); small inputs (1-D ECG windows, 64² images) still batch.
CPU_MAX_INPUT_ELEMENTS = 8 * 3 * 224 * 224

_DROPOUT_TYPES = (nn.modules.dropout._DropoutNd,)  # Dropout, Dropout1d/2d/3d, AlphaDropout, FeatureAlphaDropout


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


class RashomonSet(NamedTuple):
    r"""Random channel masks of one layer and their held-out losses.

    Attributes
    ----------
    masks : bool ``[K, C_layer]``
        ``True`` = channel kept, ``False`` = channel pruned (its activation set to zero).
    losses : float64 ``[K]``
        mean (optionally class-weighted) cross-entropy of each masked model on the held-out set.
    base_loss : float
        the same loss of the unpruned model :math:`L^\ast`.
    kept : bool ``[K]``
        :math:`L_k / L^\ast \le 1 + \varepsilon` (one-sided, see :func:`rashomon`).
    prune_ratio : float or (float, float)
        the argument that built the set: one ratio for every candidate, or the range ``(lo, hi)``
        from which each candidate drew its own ratio (its share pruned is ``(~masks[k]).float().mean()``).
    epsilon : float
        the tolerance that built ``kept``.
    """

    masks: Tensor
    losses: Tensor
    base_loss: float
    kept: Tensor
    prune_ratio: float | tuple
    epsilon: float

    @property
    def relative_loss(self) -> Tensor:
        """``losses / base_loss`` (float64 ``[K]``); kept models have ``relative_loss <= 1 + epsilon``."""
        return self.losses.double() / float(self.base_loss)


# ----------------------------------------------------------------------------- helpers
def dropout_modules(model: nn.Module) -> list[nn.Module]:
    """All dropout modules of ``model`` (``nn.Dropout``, ``Dropout1d/2d/3d``, ``AlphaDropout``, ...).

    >>> len(dropout_modules(nn.Sequential(nn.Linear(2, 2), nn.Dropout(), nn.AlphaDropout())))
    2
    """
    return [m for m in model.modules() if isinstance(m, _DROPOUT_TYPES)]


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


def _check_count(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int,)) and not (
        isinstance(value, Tensor) and value.ndim == 0 and not value.is_floating_point()
    ):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    value = int(value)
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


def _check_chunk(chunk: int | None, n: int, x: Tensor) -> int:
    if chunk is None:
        return default_chunk(n, x)
    return min(_check_count(chunk, "chunk"), n)


def _check_method(method: str) -> None:
    if method not in saliency.METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {sorted(saliency.METHODS)}")


def _check_input(x: Tensor) -> None:
    if not isinstance(x, Tensor) or x.ndim < 2 or x.shape[0] < 1:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"x must be a batch [B, ...] with B >= 1, got {shape}")
    if not torch.isfinite(x).all():
        raise ValueError("x contains NaN or Inf; clean or impute the input before explaining it")


def _target_from(model: nn.Module, x: Tensor, target) -> Tensor:
    """Validated ``LongTensor[B]``: the given target, or the argmax of ``model(x)`` without grad."""
    with torch.no_grad():
        logits = model(x)
    if logits.ndim != 2:
        raise ValueError(f"the model must return logits [B, C], got shape {tuple(logits.shape)}")
    return saliency.resolve_target(logits, target)


def _seed_from(generator: torch.Generator) -> int:
    return int(torch.randint(2**62, (1,), generator=generator, device=generator.device))


@contextmanager
def _rng_from(generator: torch.Generator | None, device: torch.device) -> Iterator[None]:
    """Inside the block torch's global RNG (CPU and ``device``) is seeded from ``generator``; the
    caller's RNG state is restored afterwards. ``None``: use the global RNG as it is."""
    if generator is None:
        yield
        return
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(_seed_from(generator))
        yield


def _stack_chunks(model, xs: Tensor, layer, target: Tensor, n: int, b: int, method: str):
    """Maps ``[n, B, *sp]`` and probs ``[n, B, C]`` of the ``n * B`` rows ``xs`` (sample-major)."""
    cap = saliency.activations_and_gradients(model, xs, layer, target.repeat(n))
    maps = saliency.cam_from(cap.activations, cap.gradients, method)
    probs = cap.logits.float().softmax(dim=-1)
    return maps.reshape((n, b) + tuple(maps.shape[1:])), probs.reshape(n, b, -1)


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
    passes = _check_count(passes, "passes")
    _check_method(method)
    _check_input(x)
    layer = saliency.resolve_layer(model, layer)
    if not dropout_modules(model):
        raise ValueError(
            f"{type(model).__name__} has no dropout modules, so MC dropout passes would all be identical; "
            "add nn.Dropout layers (e.g. uqxai_lib.models.resnet_mc.build_resnet_mc) or use test_time"
        )
    chunk = _check_chunk(chunk, passes, x)
    b = x.shape[0]
    with dropout_enabled(model, enabled=False):
        tgt = _target_from(model, x, target)
    maps, probs = [], []
    with dropout_enabled(model, p), _rng_from(generator, x.device):
        done = 0
        while done < passes:
            n = min(chunk, passes - done)
            xs = x.repeat((n,) + (1,) * (x.ndim - 1)) if n > 1 else x
            m, pr = _stack_chunks(model, xs, layer, tgt, n, b, method)
            maps.append(m)
            probs.append(pr)
            done += n
    return SampleStack(torch.cat(maps), torch.cat(probs), tgt)


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
    draws = _check_count(draws, "draws")
    _check_method(method)
    _check_input(x)
    if not callable(perturb):
        raise TypeError("perturb must be a callable perturb(x, generator) -> x' of the same shape")
    layer = saliency.resolve_layer(model, layer)
    chunk = _check_chunk(chunk, draws, x)
    if generator is None:
        generator = torch.Generator().manual_seed(int(torch.randint(2**62, (1,))))
    elif not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    tgt = _target_from(model, x, target)
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
        m, pr = _stack_chunks(model, torch.cat(parts) if n > 1 else parts[0], layer, tgt, n, b, method)
        maps.append(m)
        probs.append(pr)
        done += n
    return SampleStack(torch.cat(maps), torch.cat(probs), tgt)


test_time.__test__ = False  # a sampler, not a pytest test (pytest collects names starting with "test")


# ----------------------------------------------------------------------------- Rashomon set
def _spatial_dims(t: Tensor) -> tuple[int, ...]:
    if t.ndim < 3:
        raise ValueError(
            f"the pruned layer must output [B, C, *spatial] (at least one spatial dim), got {tuple(t.shape)}"
        )
    return tuple(range(2, t.ndim))


def _channel_view(mask: Tensor, like: Tensor) -> Tensor:
    return mask.to(device=like.device, dtype=like.dtype).reshape((1, -1) + (1,) * (like.ndim - 2))


@contextmanager
def _layer_hook(layer: nn.Module, fn: Callable[[Tensor], Tensor | None]) -> Iterator[None]:
    """Forward hook on ``layer`` calling ``fn(output)``; removed on exit (also on exceptions)."""
    handle = layer.register_forward_hook(lambda module, inputs, output: fn(output))
    try:
        yield
    finally:
        handle.remove()


def _check_head(head: nn.Linear | None) -> None:
    if head is not None and not isinstance(head, nn.Linear):
        raise TypeError(
            f"head must be the nn.Linear applied after global average pooling of the layer, got "
            f"{type(head).__name__}; pass head=None for the general path"
        )


def _verify_head(head: nn.Linear, gap: Tensor, logits: Tensor) -> None:
    if gap.shape[-1] != head.in_features:
        raise ValueError(
            f"head does not match the model: the layer has {gap.shape[-1]} channels but head expects "
            f"{head.in_features} features; pass the nn.Linear that follows global average pooling of the layer"
        )
    with torch.no_grad():
        pred = head(gap.to(head.weight.dtype))
    tol = 1e-4 * (1.0 + float(logits.abs().max()))
    if pred.shape != logits.shape or not torch.allclose(pred.float(), logits.float(), rtol=1e-4, atol=tol):
        err = float((pred.float() - logits.float()).abs().max()) if pred.shape == logits.shape else float("nan")
        raise ValueError(
            "head does not match the model: head(global-average-pool(layer output)) differs from model(x) "
            f"(max |difference| {err:.3g}). The closed form needs model(x) == head(GAP(layer(x))) with dropout "
            "off (call model.eval()); for other heads pass head=None to use the general path"
        )


def _weighted_ce(logits: Tensor, y: Tensor, weight: Tensor | None) -> tuple[Tensor, Tensor]:
    """Sum of (weighted) per-sample cross-entropies over the last-but-one dim, and sum of weights (float64)."""
    c = logits.shape[-1]
    lead = logits.shape[:-1]
    yy = y.expand(lead)
    losses = F.cross_entropy(logits.reshape(-1, c).float(), yy.reshape(-1), reduction="none").reshape(lead)
    w = weight[yy] if weight is not None else torch.ones_like(losses)
    return (losses.double() * w.double()).sum(-1), w.double().sum(-1)


def _resolve_class_weight(class_weight, y: Tensor, c: int) -> Tensor | None:
    if class_weight is None:
        return None
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise ValueError(f"class_weight must be None, 'balanced' or a tensor [C], got {class_weight!r}")
        counts = torch.bincount(y, minlength=c).double().clamp(min=1)
        return (len(y) / (c * counts)).float()
    w = torch.as_tensor(class_weight, dtype=torch.float32, device=y.device)
    if w.shape != (c,) or not torch.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"class_weight must be None, 'balanced' or {c} non-negative finite weights, got {tuple(w.shape)}")
    return w


def _random_masks(k: int, c: int, n_pruned: int, generator: torch.Generator | None) -> Tensor:
    """``k`` bool masks ``[k, c]`` with exactly ``n_pruned`` False entries each (uniform without replacement)."""
    gdev = generator.device if generator is not None else torch.device("cpu")
    order = torch.rand(k, c, generator=generator, device=gdev).argsort(dim=1)
    masks = torch.ones(k, c, dtype=torch.bool, device=gdev)
    return masks.scatter(1, order[:, :n_pruned], False)


def _random_counts(k: int, c: int, lo: float, hi: float, generator: torch.Generator | None) -> Tensor:
    """Pruned-channel counts ``[k]`` of candidates whose ratios are drawn ``U(lo, hi)``, rounded and
    clamped to ``[1, c - 1]`` like a fixed ratio."""
    gdev = generator.device if generator is not None else torch.device("cpu")
    r = lo + (hi - lo) * torch.rand(k, generator=generator, device=gdev, dtype=torch.float64)
    return (r * c).round().long().clamp(1, c - 1)


def _random_masks_varying(k: int, c: int, n_pruned: Tensor, generator: torch.Generator | None) -> Tensor:
    """``k`` bool masks ``[k, c]``; row ``i`` has exactly ``n_pruned[i]`` False entries (uniform without replacement)."""
    gdev = generator.device if generator is not None else torch.device("cpu")
    order = torch.rand(k, c, generator=generator, device=gdev).argsort(dim=1)
    pruned_rank = torch.arange(c, device=gdev)[None, :] < n_pruned.to(gdev)[:, None]  # first n_i positions
    return torch.ones(k, c, dtype=torch.bool, device=gdev).scatter(1, order, ~pruned_rank)


def _weights_and_masks(y_val, n_classes, c_layer, class_weight, k, prune_ratio, generator):
    """Check labels and channel count, resolve the class weights, draw the ``k`` masks."""
    if (y_val < 0).any() or (y_val >= n_classes).any():
        raise ValueError(f"y_val labels must lie in [0, {n_classes - 1}], got range [{int(y_val.min())}, {int(y_val.max())}]")
    if c_layer < 2:
        raise ValueError(f"the layer has {c_layer} channel(s); pruning needs at least 2")
    return _resolve_class_weight(class_weight, y_val, n_classes), _draw_masks(k, c_layer, prune_ratio, generator)


def _draw_masks(k: int, c: int, prune_ratio, generator: torch.Generator | None) -> Tensor:
    """``k`` random masks of ``c`` channels at a fixed ratio or with a ratio ``U(lo, hi)`` per candidate."""
    if isinstance(prune_ratio, tuple):
        return _random_masks_varying(k, c, _random_counts(k, c, *prune_ratio, generator), generator)
    n_pruned = min(max(int(round(prune_ratio * c)), 1), c - 1)
    return _random_masks(k, c, n_pruned, generator)


def _check_ratio(prune_ratio) -> float | tuple[float, float]:
    if isinstance(prune_ratio, (tuple, list)):
        if len(prune_ratio) != 2:
            raise ValueError(f"a random prune_ratio must be a range (lo, hi), got {prune_ratio!r}")
        lo, hi = (float(v) for v in prune_ratio)
        if not 0.0 < lo <= hi < 1.0:
            raise ValueError(f"prune_ratio range must satisfy 0 < lo <= hi < 1, got ({lo}, {hi})")
        return (lo, hi)
    prune_ratio = float(prune_ratio)
    if not 0.0 < prune_ratio < 1.0:
        raise ValueError(f"prune_ratio must be in (0, 1) (share of channels set to zero), got {prune_ratio}")
    return prune_ratio


def _check_rashomon_args(k, prune_ratio, epsilon, x_val, y_val, batch_size):
    k = _check_count(k, "k")
    prune_ratio, epsilon = _check_ratio(prune_ratio), float(epsilon)
    if not epsilon >= 0.0:  # also catches NaN
        raise ValueError(f"epsilon must be >= 0 (kept: loss <= (1 + epsilon) * base loss), got {epsilon}")
    _check_input(x_val)
    y_val = torch.as_tensor(y_val)
    if y_val.ndim != 1 or len(y_val) != len(x_val) or y_val.is_floating_point():
        raise ValueError(
            f"y_val must hold one integer label per row of x_val ({len(x_val)}), got shape {tuple(y_val.shape)} "
            f"dtype {y_val.dtype}"
        )
    return k, prune_ratio, epsilon, y_val.long().to(x_val.device), _check_count(batch_size, "batch_size")


def rashomon(
    model: nn.Module,
    layer: nn.Module | str,
    x_val: Tensor,
    y_val: Tensor,
    *,
    k: int,
    prune_ratio: float | tuple[float, float],
    epsilon: float,
    generator: torch.Generator | None = None,
    head: nn.Linear | None = None,
    class_weight: Tensor | Sequence[float] | str | None = None,
    batch_size: int = 256,
    suffix: nn.Module | None = None,
) -> RashomonSet:
    r"""Sample ``k`` channel-pruned copies of ``model`` and keep the nearly optimal ones.

    Candidate :math:`m` sets ``n = round(prune_ratio * C)`` random channels of ``layer``'s output
    to zero (``C`` channels; ``n`` clamped to ``[1, C - 1]`` so that a candidate differs from the
    model and keeps at least one channel); nothing is retrained. ``prune_ratio = (lo, hi)`` draws
    each candidate's ratio from ``U(lo, hi)`` (the poster's "random pruning ratio"), then its
    channels. ``layer`` is the *pruned* layer; it may lie before the explained one (e.g. the
    convolution before a BatchNorm, or an earlier block), then only the general path applies;
    ``suffix`` (the rest of the model after ``layer``: ``suffix(layer output) == model(x)``, checked)
    makes it cheaper: the layers before ``layer`` run once and each candidate runs only the suffix. Its loss :math:`L_m` is the mean
    cross-entropy on ``(x_val, y_val)`` (with ``class_weight``: :math:`\sum_i w_{y_i} \ell_i /
    \sum_i w_{y_i}`, as ``F.cross_entropy(weight=...)``; ``"balanced"`` computes scikit-learn's
    weights from ``y_val``). :math:`L^\ast` is the unpruned model's loss. Kept:

    .. math:: \mathcal{R}_\varepsilon = \{m : L_m / L^\ast \le 1 + \varepsilon\}.

    The "1 ± ε" of the literature is read one-sidedly: candidates *better* than the optimum on
    held-out data are kept (a two-sided rule would drop them, which makes no sense for a set of
    nearly optimal models). ``epsilon = 0`` keeps only candidates at least as good as the model.

    With ``head`` (the ``nn.Linear`` applied to the global average pool of ``layer``'s output) the
    closed form is used: one pass caches the pooled features :math:`g \in \mathbb{R}^{N \times C}`
    (checked: ``head(g)`` reproduces ``model(x)``), and every candidate's logits are
    :math:`(m \odot g) W^\top + b`, batched over candidates. Without ``head`` each masked model
    is evaluated by a forward hook that multiplies the layer's output by the mask (general path,
    any head). The model runs in the modes the caller left it (use ``model.eval()``).

    Raises ``ValueError`` for ``k < 1``, ``prune_ratio`` outside (0, 1), ``epsilon < 0``,
    mismatched data, or a ``head`` that does not reproduce the model.
    """
    k, prune_ratio, epsilon, y_val, batch_size = _check_rashomon_args(k, prune_ratio, epsilon, x_val, y_val, batch_size)
    _check_head(head)
    layer = saliency.resolve_layer(model, layer)
    n_rows = len(x_val)
    if suffix is not None:
        if head is not None:
            raise ValueError("pass either head (closed form at the explained layer) or suffix (general path), not both")
        acts, logits = _site_outputs(model, layer, x_val, batch_size)
        _check_suffix(suffix, acts, logits)
        c_layer, n_classes = acts.shape[1], logits.shape[-1]
        weight, masks = _weights_and_masks(y_val, n_classes, c_layer, class_weight, k, prune_ratio, generator)
        masks = masks.to(x_val.device)

        def loss(mask):
            t, w = _weighted_ce(_suffix_logits(suffix, acts, mask, batch_size), y_val, weight)
            return float(t / w)

        base = loss(None)
        losses = torch.tensor([loss(m) for m in masks], dtype=torch.float64, device=masks.device)
        return RashomonSet(masks, losses, base, (losses / base) <= 1.0 + epsilon, prune_ratio, epsilon)

    # One pass: layer output pooled over space (closed form) or its channel count (general path).
    gaps, logits_all = [], []

    def grab(out: Tensor) -> None:
        if not isinstance(out, Tensor):
            raise TypeError(f"the pruned layer must return a tensor, got {type(out).__name__}")
        gaps.append(out.detach().mean(dim=_spatial_dims(out)).float())

    with torch.no_grad(), _layer_hook(layer, grab):
        for s in range(0, n_rows if head is not None else min(n_rows, batch_size), batch_size):
            before = len(gaps)
            logits_all.append(model(x_val[s : s + batch_size]).float())
            if len(gaps) != before + 1:
                raise RuntimeError("the pruned layer must run exactly once per forward; pick a layer on the forward path")
    c_layer = gaps[0].shape[-1]
    n_classes = logits_all[0].shape[-1]
    weight, masks = _weights_and_masks(y_val, n_classes, c_layer, class_weight, k, prune_ratio, generator)
    masks = masks.to(x_val.device)

    if head is not None:
        g = torch.cat(gaps)
        _verify_head(head, g[: min(n_rows, batch_size)], logits_all[0])
        losses, base = _closed_form_losses(head, g, y_val, weight, masks)
    else:
        losses, base = _general_losses(model, layer, x_val, y_val, weight, masks, batch_size)
    kept = (losses / base) <= 1.0 + epsilon
    return RashomonSet(masks, losses, base, kept, prune_ratio, epsilon)


def _site_outputs(model: nn.Module, layer: nn.Module, x: Tensor, batch_size: int) -> tuple[Tensor, Tensor]:
    """Output of ``layer`` ``[N, C, *sp]`` and the model's logits ``[N, O]`` on ``x`` (no grad, batched)."""
    acts, logits = [], []
    with torch.no_grad(), _layer_hook(layer, lambda out: acts.append(out.detach().clone())):
        for s in range(0, len(x), batch_size):
            before = len(acts)
            logits.append(model(x[s : s + batch_size]).float())
            if len(acts) != before + 1:
                raise RuntimeError("the pruned layer must run exactly once per forward; pick a layer on the forward path")
    return torch.cat(acts), torch.cat(logits)


def _check_suffix(suffix: nn.Module, acts: Tensor, logits: Tensor) -> None:
    with torch.no_grad():
        pred = suffix(acts[: min(len(acts), 64)]).float()
    ref = logits[: len(pred)]
    tol = 1e-4 * (1.0 + float(ref.abs().max()))
    if pred.shape != ref.shape or not torch.allclose(pred, ref, rtol=1e-4, atol=tol):
        raise ValueError(
            "suffix does not match the model: suffix(output of the pruned layer) differs from model(x); pass the "
            "rest of the model after that layer (e.g. uqxai_lib.models.derm_classifier.site_suffix) in eval mode"
        )


def _suffix_logits(suffix: nn.Module, acts: Tensor, mask: Tensor | None, batch_size: int) -> Tensor:
    with torch.no_grad():
        a = acts if mask is None else acts * _channel_view(mask, acts)
        return torch.cat([suffix(a[s : s + batch_size]).float() for s in range(0, len(a), batch_size)])


def _closed_form_losses(head: nn.Linear, g: Tensor, y: Tensor, weight: Tensor | None, masks: Tensor):
    """Losses of all masked models from pooled features ``g [N, C]``: logits_k = (m_k ⊙ g) Wᵀ + b."""
    with torch.no_grad():
        w_t = head.weight.detach().float().t()  # [C, O]
        bias = head.bias.detach().float() if head.bias is not None else torch.zeros(w_t.shape[1], device=w_t.device)
        g = g.to(w_t.device)
        y = y.to(w_t.device)
        wt = weight.to(w_t.device) if weight is not None else None
        base_sum, wsum = _weighted_ce(g @ w_t + bias, y, wt)
        base = float(base_sum / wsum)
        n, c = g.shape
        step = max(1, (1 << 24) // max(1, n * w_t.shape[1]))  # candidates per matmul: ~16M logits
        out = []
        for mk in masks.to(w_t.device).split(step):
            logits = g @ (mk.float()[:, :, None] * w_t)  # [k, N, O]
            s, ws = _weighted_ce(logits + bias, y, wt)
            out.append(s / ws)
    return torch.cat(out).to(masks.device), base


def _general_losses(model, layer, x_val, y_val, weight, masks, batch_size):
    """Losses of each masked model by evaluating it (forward hook multiplying the layer's output)."""
    state: dict = {"mask": None}

    def apply(out: Tensor) -> Tensor | None:
        m = state["mask"]
        return None if m is None else out * _channel_view(m, out)

    def loss_of(mask: Tensor | None) -> float:
        state["mask"] = mask
        total = torch.zeros((), dtype=torch.float64, device=x_val.device)
        wsum = torch.zeros((), dtype=torch.float64, device=x_val.device)
        for s in range(0, len(x_val), batch_size):
            logits = model(x_val[s : s + batch_size])
            t, w = _weighted_ce(logits, y_val[s : s + batch_size], weight)
            total, wsum = total + t, wsum + w
        return float(total / wsum)

    with torch.no_grad(), _layer_hook(layer, apply):
        base = loss_of(None)
        losses = [loss_of(m) for m in masks]
    return torch.tensor(losses, dtype=torch.float64, device=masks.device), base


def rashomon_logits(
    model: nn.Module,
    layer: nn.Module | str,
    x: Tensor,
    rset: RashomonSet,
    *,
    head: nn.Linear | None = None,
    batch_size: int = 256,
    suffix: nn.Module | None = None,
) -> tuple[Tensor, Tensor]:
    r"""Logits of the unpruned model ``[N, O]`` and of every candidate of ``rset`` ``[K, N, O]`` on ``x``.

    For keep rules other than the loss (temperature-scaled loss, AUROC). Closed form with ``head``
    (``(m \odot g) W^\top + b`` from the pooled features of ``layer``), else each masked model is
    evaluated with a forward hook on ``layer`` (any pruning site), or from the layer's cached output
    through ``suffix`` (as in :func:`rashomon`). float32, no gradients.
    """
    _check_input(x)
    _check_head(head)
    if not isinstance(rset, RashomonSet):
        raise TypeError(f"rset must be a RashomonSet from samplers.rashomon, got {type(rset).__name__}")
    batch_size = _check_count(batch_size, "batch_size")
    layer = saliency.resolve_layer(model, layer)
    masks = rset.masks.to(x.device)
    if suffix is not None:
        acts, base = _site_outputs(model, layer, x, batch_size)
        _check_suffix(suffix, acts, base)
        if acts.shape[1] != masks.shape[1]:
            raise ValueError(f"rset has masks for {masks.shape[1]} channels but the layer outputs {acts.shape[1]}")
        return base, torch.stack([_suffix_logits(suffix, acts, m, batch_size) for m in masks])
    state: dict = {"mask": None}
    gaps: list = []

    def apply(out: Tensor) -> Tensor | None:
        if not isinstance(out, Tensor):
            raise TypeError(f"the pruned layer must return a tensor, got {type(out).__name__}")
        if out.shape[1] != masks.shape[1]:
            raise ValueError(f"rset has masks for {masks.shape[1]} channels but the layer outputs {out.shape[1]}")
        if state["mask"] is None:
            gaps.append(out.detach().mean(dim=_spatial_dims(out)).float())
            return None
        return out * _channel_view(state["mask"], out)

    def run(mask):
        state["mask"] = mask
        return torch.cat([model(x[s : s + batch_size]).float() for s in range(0, len(x), batch_size)])

    with torch.no_grad(), _layer_hook(layer, apply):
        base = run(None)
        if head is not None:
            g = torch.cat(gaps)
            _verify_head(head, g, base)
            w_t = head.weight.detach().float().t()
            bias = head.bias.detach().float() if head.bias is not None else 0.0
            cand = torch.stack([(g * m.float()) @ w_t + bias for m in masks])
        else:
            cand = torch.stack([run(m) for m in masks])
    return base, cand


def rashomon_maps(
    model: nn.Module,
    layer: nn.Module | str,
    x: Tensor,
    rset: RashomonSet,
    *,
    method: str = "grad_cam_pp",
    head: nn.Linear | None = None,
    target: int | Tensor | str | None = None,
    include: str = "kept",
    explain_layer: nn.Module | str | None = None,
    suffix: nn.Module | None = None,
) -> SampleStack:
    r"""Maps of the models of a Rashomon set: ``SampleStack(maps [S, B, *sp], probs [S, B, C], target)``.

    ``include="kept"`` (default) explains the kept models (``S = rset.kept.sum()``), ``"all"``
    every candidate. The target is fixed from the *unpruned* (optimal) model's prediction on ``x``
    unless given, so every pruned model explains the same class (``target [B]``);
    ``target="own"`` lets each pruned model explain its *own* predicted class (``target [S, B]``).

    ``layer`` is the pruned layer (the one ``rset`` was built on); ``explain_layer`` (default: the
    same) is where Grad-CAM(++) is taken. When they differ the mask is applied by a forward hook
    on ``layer`` and the maps come from the general path (``head`` must be None); with ``suffix``
    (the rest of the model after ``layer``, containing ``explain_layer``) each model runs only the
    suffix on the masked cached output of ``layer``.

    Closed form (``head`` given, the ``nn.Linear`` after global average pooling of the layer): one
    forward of the unpruned model captures :math:`A \in \mathbb{R}^{B \times K \times \text{sp}}`.
    The masked model's activation is :math:`m \odot A` and the gradient of its class-:math:`c`
    logit is :math:`W_{c,k} / Z` (:math:`Z` spatial positions), constant over space. The saliency
    weight functions evaluated on :math:`(A, W_c / Z)` then give each kept channel's weight
    :math:`w_k` — for Grad-CAM++ too, since :math:`\sum_i (m \odot A)_{k,i} = \sum_i A_{k,i}` on
    kept channels — and every model's map is :math:`\mathrm{ReLU}(\sum_k m_k w_k A_k)`, one
    matrix product for all models (equal to the general path to float rounding).

    General path (no ``head``): ``saliency.activations_and_gradients(..., transform=mask)`` and
    ``saliency.cam_from`` for each model.
    """
    _check_method(method)
    _check_input(x)
    _check_head(head)
    own = isinstance(target, str)
    if own and target != "own":
        raise ValueError(f"target must be None, a class, a LongTensor [B] or 'own', got {target!r}")
    if not isinstance(rset, RashomonSet):
        raise TypeError(f"rset must be a RashomonSet from samplers.rashomon, got {type(rset).__name__}")
    if include not in ("kept", "all"):
        raise ValueError(f"include must be 'kept' or 'all', got {include!r}")
    layer = saliency.resolve_layer(model, layer)
    explain = layer if explain_layer is None else saliency.resolve_layer(model, explain_layer)
    if explain is not layer and head is not None:
        raise ValueError(
            "the closed form needs the pruned layer to be the explained layer; pass head=None when "
            "explain_layer differs from layer"
        )
    masks = rset.masks.to(x.device)
    if include == "kept":
        kept = torch.as_tensor(rset.kept, device=x.device).bool()
        if kept.shape != masks.shape[:1]:
            raise ValueError(f"rset.kept must have shape ({len(masks)},), got {tuple(kept.shape)}")
        masks = masks[kept]
    if len(masks) == 0:
        raise ValueError(
            "the Rashomon set keeps no model; raise epsilon, lower prune_ratio, or pass include='all'"
        )

    store: dict = {}

    def grab(out: Tensor) -> None:
        if not isinstance(out, Tensor):
            raise TypeError(f"the explained layer must return a tensor, got {type(out).__name__}")
        store["acts"] = out.detach().clone()

    with torch.no_grad(), _layer_hook(layer, grab):
        logits = model(x)
    if "acts" not in store:
        raise RuntimeError(f"layer {type(layer).__name__} did not run in model(x); pick a layer on the forward path")
    acts = store["acts"]
    if acts.shape[1] != masks.shape[1]:
        raise ValueError(
            f"rset has masks for {masks.shape[1]} channels but the layer outputs {acts.shape[1]}; "
            "use the model and layer the Rashomon set was built from"
        )
    if logits.ndim != 2:
        raise ValueError(f"the model must return logits [B, C], got shape {tuple(logits.shape)}")
    tgt = saliency.resolve_target(logits, None if own else target)
    if head is not None:
        if own:
            return _closed_form_maps_own(head, acts, logits, masks, method)
        return _closed_form_maps(head, acts, logits, masks, tgt, method)
    maps, probs, tgts = [], [], []
    if suffix is not None:
        if explain is layer or not any(mod is explain for mod in suffix.modules()):
            raise ValueError("with suffix, explain_layer must be a module inside the suffix (after the pruned layer)")
        _check_suffix(suffix, acts, logits)
    for m in masks:
        view = _channel_view(m, acts)
        if suffix is not None:
            cap = saliency.activations_and_gradients(suffix, acts * view, explain, None if own else tgt)
        elif explain is layer:
            cap = saliency.activations_and_gradients(model, x, layer, None if own else tgt,
                                                     transform=lambda a, v=view: a * v)
        else:
            with _layer_hook(layer, lambda out, v=view: out * v):
                cap = saliency.activations_and_gradients(model, x, explain, None if own else tgt)
        maps.append(saliency.cam_from(cap.activations, cap.gradients, method))
        probs.append(cap.logits.float().softmax(-1))
        tgts.append(cap.target)
    return SampleStack(torch.stack(maps), torch.stack(probs), torch.stack(tgts) if own else tgt)


def _closed_form_maps_own(head: nn.Linear, acts: Tensor, logits: Tensor, masks: Tensor, method: str):
    """Closed form with each masked model explaining its own predicted class: the maps of every
    class are formed (channel weights per class as in :func:`_closed_form_maps`) and each model's
    row takes the class its masked logits pick. ``target [S, B]``."""
    dims = _spatial_dims(acts)
    z = acts.shape[2:].numel()
    gap = acts.mean(dim=dims)
    _verify_head(head, gap, logits)
    with torch.no_grad():
        weight = head.weight.detach().to(acts.dtype)
        bias = head.bias.detach().to(acts.dtype) if head.bias is not None else 0.0
        mf = masks.to(acts.dtype)
        masked_logits = (gap[None] * mf[:, None, :]) @ weight.t() + bias  # [S, B, O]
        own = masked_logits.argmax(-1)  # [S, B]
        maps = torch.zeros((len(masks), acts.shape[0], acts.shape[2:].numel()), dtype=acts.dtype, device=acts.device)
        for c in own.unique().tolist():
            g = (weight[c] / z).reshape((1, -1) + (1,) * len(dims)).expand_as(acts)
            w = saliency.METHODS[method](acts, g)  # [B, K]
            mc = torch.matmul(mf, w[:, :, None] * acts.flatten(2)).clamp(min=0).transpose(0, 1)  # [S, B, P]
            maps = torch.where((own == c)[:, :, None], mc, maps)
        maps = maps.reshape((len(masks),) + tuple(acts.shape[:1]) + tuple(acts.shape[2:])).float()
        probs = masked_logits.float().softmax(-1)
    return SampleStack(maps.contiguous(), probs, own)


def _closed_form_maps(head: nn.Linear, acts: Tensor, logits: Tensor, masks: Tensor, tgt: Tensor, method: str):
    dims = _spatial_dims(acts)
    z = acts.shape[2:].numel()  # spatial positions
    gap = acts.mean(dim=dims)
    _verify_head(head, gap, logits)
    with torch.no_grad():
        weight = head.weight.detach().to(acts.dtype)
        grads_bk = weight[tgt] / z  # [B, K]: d logit_c / d (m ⊙ A)_{k,i}, the same at every position
        grads = grads_bk.reshape(grads_bk.shape + (1,) * len(dims)).expand_as(acts)
        w = saliency.METHODS[method](acts, grads)  # [B, K]
        wa = (w[:, :, None] * acts.flatten(2))  # [B, K, P]
        mf = masks.to(acts.dtype)
        maps = torch.matmul(mf, wa).clamp(min=0).transpose(0, 1)  # [S, B, P]
        maps = maps.reshape((len(masks),) + tuple(acts.shape[:1]) + tuple(acts.shape[2:])).float()
        bias = head.bias.detach().to(acts.dtype) if head.bias is not None else 0.0
        masked_logits = (gap[None] * mf[:, None, :]) @ weight.t() + bias  # [S, B, O]
        probs = masked_logits.float().softmax(-1)
    return SampleStack(maps.contiguous(), probs, tgt)


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
    _check_method(method)
    _check_input(x)
    tgt = _target_from(models[0], x, target)
    maps, probs = [], []
    for m in models:
        cap = saliency.activations_and_gradients(m, x, layer, tgt)
        maps.append(saliency.cam_from(cap.activations, cap.gradients, method))
        probs.append(cap.logits.float().softmax(-1))
    return SampleStack(torch.stack(maps), torch.stack(probs), tgt)
