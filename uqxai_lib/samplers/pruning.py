"""Rashomon sets of channel-pruned copies of one model, and their maps (closed forms and general path)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import saliency
from .base import (
    SampleStack,
    check_count,
    check_input,
    check_method,
)


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
    k = check_count(k, "k")
    prune_ratio, epsilon = _check_ratio(prune_ratio), float(epsilon)
    if not epsilon >= 0.0:  # also catches NaN
        raise ValueError(f"epsilon must be >= 0 (kept: loss <= (1 + epsilon) * base loss), got {epsilon}")
    check_input(x_val)
    y_val = torch.as_tensor(y_val)
    if y_val.ndim != 1 or len(y_val) != len(x_val) or y_val.is_floating_point():
        raise ValueError(
            f"y_val must hold one integer label per row of x_val ({len(x_val)}), got shape {tuple(y_val.shape)} "
            f"dtype {y_val.dtype}"
        )
    return k, prune_ratio, epsilon, y_val.long().to(x_val.device), check_count(batch_size, "batch_size")


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
    check_input(x)
    _check_head(head)
    if not isinstance(rset, RashomonSet):
        raise TypeError(f"rset must be a RashomonSet from samplers.rashomon, got {type(rset).__name__}")
    batch_size = check_count(batch_size, "batch_size")
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
    check_method(method)
    check_input(x)
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
