r"""Class-activation maps for any number of spatial dimensions: Grad-CAM and Grad-CAM++.

One capture routine owns the hook, the target and the gradient; each method only says how the
channel weights are computed from activations :math:`A` and gradients :math:`G = \partial y_c /
\partial A` (the split of pytorch-grad-cam's ``BaseCAM``). Tensors are shaped ``[B, K, *spatial]``
with any number of spatial dimensions, so one code path serves 1-D ECG, 2-D images and 3-D volumes
(as in MONAI's ``class_activation_maps``).

Guarantees (tested):

* The model's train/eval modes are never touched: MC dropout stays on if the caller switched it on.
* The forward hook lives in a context manager and is removed, also when the forward raises.
* Only the part of the network *above* ``layer`` is recorded by autograd; the part below runs
  without it. This also makes the call work inside :func:`torch.no_grad` and with parameters that
  do not require gradients.
* The captured activation is a private leaf tensor; the network continues with a copy, so in-place
  operations after the layer (torchvision's DenseNet applies ``relu(inplace=True)`` to ``features``)
  cannot corrupt it.
* Per-sample gradients come from one backward pass of the summed selected logits (samples do not
  interact as long as BatchNorm is in eval mode).
* Maps are ReLU-ed, raw scale (not normalised), at the layer's resolution, float32, on ``x``'s device.
  :func:`upsample` and :func:`normalize` are separate steps.
"""
from __future__ import annotations

from contextlib import contextmanager, nullcontext
from typing import Callable, Iterator, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "Capture",
    "activations_and_gradients",
    "cam_from",
    "explain",
    "grad_cam",
    "grad_cam_pp",
    "grad_cam_weights",
    "grad_cam_pp_weights",
    "METHODS",
    "normalize",
    "resolve_layer",
    "resolve_target",
    "upsample",
]

#: Added to the Grad-CAM++ denominator, as in pytorch-grad-cam (``eps = 1e-6``).
GRAD_CAM_PP_EPS = 1e-6


class Capture(NamedTuple):
    """Activations ``[B, K, *sp]``, gradients ``[B, K, *sp]``, logits ``[B, C]``, target ``[B]``."""

    activations: Tensor
    gradients: Tensor
    logits: Tensor
    target: Tensor


def resolve_layer(model: nn.Module, layer: nn.Module | str) -> nn.Module:
    """Return ``layer`` as a module of ``model``; ``layer`` is a module or its dotted name.

    >>> m = nn.Sequential(nn.Conv1d(1, 2, 3), nn.ReLU())
    >>> resolve_layer(m, "0") is m[0]
    True
    """
    if isinstance(layer, str):
        try:
            return model.get_submodule(layer)
        except AttributeError:
            names = [n for n, _ in model.named_modules() if n][:12]
            raise ValueError(
                f"layer {layer!r} is not a submodule of {type(model).__name__}; "
                f"pass a dotted name such as {names}"
            ) from None
    if not isinstance(layer, nn.Module):
        raise TypeError(f"layer must be an nn.Module or a dotted name, got {type(layer).__name__}")
    if not any(m is layer for m in model.modules()):
        raise ValueError(
            f"layer {type(layer).__name__} is not inside the model; pass one of model.named_modules()"
        )
    return layer


def resolve_target(logits: Tensor, target: int | Tensor | None) -> Tensor:
    """Target classes as ``LongTensor[B]`` on the logits' device.

    ``None`` takes the argmax of ``logits`` (the model's own prediction on that input), an ``int``
    is broadcast, a tensor must hold one class per sample.
    """
    b, c = logits.shape[0], logits.shape[-1]
    if target is None:
        return logits.detach().argmax(dim=-1)
    t = torch.as_tensor(target, device=logits.device)
    if t.is_floating_point() or t.is_complex():
        raise TypeError(f"target must hold integer class indices, got dtype {t.dtype}")
    t = t.long()
    if t.ndim == 0:
        t = t.expand(b)
    if t.shape != (b,):
        raise ValueError(f"target must be an int or have shape ({b},), got {tuple(t.shape)}")
    if (t < 0).any() or (t >= c).any():
        raise ValueError(f"target classes must lie in [0, {c - 1}], got {t.tolist()}")
    return t


@contextmanager
def _capture_hook(
    layer: nn.Module, store: dict, transform: Callable[[Tensor], Tensor] | None
) -> Iterator[None]:
    """Hook ``layer`` so that its output becomes a fresh leaf and autograd starts there."""

    def hook(module: nn.Module, inputs: tuple, output: Tensor) -> Tensor:
        if not isinstance(output, Tensor):
            raise TypeError(
                f"the explained layer must return a tensor, {type(module).__name__} returned "
                f"{type(output).__name__}; hook a convolutional layer or block instead"
            )
        if "acts" in store:
            raise RuntimeError(
                f"layer {type(module).__name__} ran twice in one forward pass; "
                "explain a layer that runs once"
            )
        out = transform(output) if transform is not None else output
        leaf = out.detach().requires_grad_(True)
        store["acts"] = leaf
        # From here on autograd records: the caller's no_grad context restores the mode on exit.
        torch.set_grad_enabled(True)
        return leaf.clone()  # the network may modify this copy in place; `leaf` stays intact

    handle = layer.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def _rnn_guard(model: nn.Module, x: Tensor):
    """cuDNN cannot backpropagate through an RNN in eval mode; use the native kernel there."""
    if x.is_cuda and any(isinstance(m, nn.RNNBase) and not m.training for m in model.modules()):
        return torch.backends.cudnn.flags(enabled=False)
    return nullcontext()


def activations_and_gradients(
    model: nn.Module,
    x: Tensor,
    layer: nn.Module | str,
    target: int | Tensor | None = None,
    *,
    transform: Callable[[Tensor], Tensor] | None = None,
) -> Capture:
    """Run ``model(x)`` once and return the layer's activations and ``d logit_target / d acts``.

    ``transform`` (optional) is applied to the layer's output before it is captured and passed on,
    e.g. a channel mask that turns the model into a pruned copy.
    """
    layer = resolve_layer(model, layer)
    if not torch.isfinite(x).all():
        raise ValueError("x contains NaN or Inf; clean or impute the input before explaining it")
    store: dict = {}
    with torch.inference_mode(False), torch.no_grad(), _rnn_guard(model, x):
        with _capture_hook(layer, store, transform):
            logits = model(x)
    if "acts" not in store:
        raise RuntimeError(f"layer {type(layer).__name__} did not run in model(x); pick a layer on the forward path")
    if logits.ndim != 2:
        raise ValueError(f"the model must return logits [B, C], got shape {tuple(logits.shape)}")
    acts = store["acts"]
    tgt = resolve_target(logits, target)
    with torch.enable_grad():  # the caller may be inside torch.no_grad()
        selected = logits.gather(1, tgt[:, None]).sum()
        (grads,) = torch.autograd.grad(selected, acts)
    return Capture(acts.detach(), grads.detach(), logits.detach(), tgt)


def _spatial(t: Tensor) -> tuple[int, ...]:
    return tuple(range(2, t.ndim))


def _expand(w: Tensor, like: Tensor) -> Tensor:
    return w.reshape(w.shape + (1,) * (like.ndim - w.ndim))


def grad_cam_weights(acts: Tensor, grads: Tensor) -> Tensor:
    r"""Grad-CAM channel weights :math:`w_k = \frac{1}{Z}\sum_i G_{k,i}` (Selvaraju et al. 2017)."""
    return grads.mean(dim=_spatial(grads))


def grad_cam_pp_weights(acts: Tensor, grads: Tensor, eps: float = GRAD_CAM_PP_EPS) -> Tensor:
    r"""Grad-CAM++ channel weights in the closed form of Chattopadhay et al. (2018, eq. 19).

    With :math:`G` the gradient of the class score and :math:`S_k = \sum_j A_{k,j}`,

    .. math::
        \alpha_{k,i} = \frac{G_{k,i}^2}{2 G_{k,i}^2 + S_k\, G_{k,i}^3 + \epsilon},\qquad
        \alpha_{k,i} = 0 \text{ where } G_{k,i} = 0,\qquad
        w_k = \sum_i \alpha_{k,i}\,\max(G_{k,i}, 0),

    exactly as pytorch-grad-cam computes it (raw score, :math:`\epsilon = 10^{-6}`).
    """
    dims = _spatial(grads)
    g2 = grads * grads
    g3 = g2 * grads
    s = _expand(acts.sum(dim=dims), acts)
    alpha = g2 / (2 * g2 + s * g3 + eps)
    alpha = torch.where(grads != 0, alpha, torch.zeros_like(alpha))
    return (alpha * grads.clamp(min=0)).sum(dim=dims)


#: method name -> function (activations, gradients) -> channel weights [B, K]
METHODS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "grad_cam": grad_cam_weights,
    "grad_cam_pp": grad_cam_pp_weights,
}


def cam_from(acts: Tensor, grads: Tensor, method: str = "grad_cam") -> Tensor:
    r"""Map :math:`\mathrm{ReLU}(\sum_k w_k A_k)` from activations and gradients ``[B, K, *sp]``.

    Pure function (no model): the closed forms of :mod:`uqxai_lib.samplers` call it too.

    >>> a = torch.ones(1, 2, 3); g = torch.tensor([[[1., 1., 1.], [-1., -1., -1.]]])
    >>> cam_from(a * torch.tensor([[[1.], [3.]]]), g)
    tensor([[0., 0., 0.]])
    >>> cam_from(a, g.flip(1) * 2)
    tensor([[0., 0., 0.]])
    """
    try:
        weigh = METHODS[method]
    except KeyError:
        raise ValueError(f"unknown method {method!r}; use one of {sorted(METHODS)}") from None
    if acts.shape != grads.shape or acts.ndim < 3:
        raise ValueError(
            f"activations and gradients must share a shape [B, K, *spatial], got "
            f"{tuple(acts.shape)} and {tuple(grads.shape)}"
        )
    w = weigh(acts, grads)
    return (_expand(w, acts) * acts).sum(dim=1).clamp(min=0).float()


def explain(
    model: nn.Module,
    x: Tensor,
    layer: nn.Module | str,
    target: int | Tensor | None = None,
    method: str = "grad_cam",
) -> Tensor:
    """Class-activation map ``[B, *spatial]`` of ``method`` for ``model(x)`` at ``layer``."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {sorted(METHODS)}")
    cap = activations_and_gradients(model, x, layer, target)
    return cam_from(cap.activations, cap.gradients, method)


def grad_cam(model: nn.Module, x: Tensor, layer: nn.Module | str, target: int | Tensor | None = None) -> Tensor:
    """Grad-CAM map ``[B, *spatial]`` (ReLU-ed, raw scale, layer resolution)."""
    return explain(model, x, layer, target, "grad_cam")


def grad_cam_pp(model: nn.Module, x: Tensor, layer: nn.Module | str, target: int | Tensor | None = None) -> Tensor:
    """Grad-CAM++ map ``[B, *spatial]`` (ReLU-ed, raw scale, layer resolution)."""
    return explain(model, x, layer, target, "grad_cam_pp")


_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}


def upsample(maps: Tensor, size: int | tuple[int, ...]) -> Tensor:
    """Resize maps ``[..., *spatial]`` to ``size`` (linear / bilinear / trilinear, half-pixel centres).

    The number of spatial dimensions is ``len(size)``; any leading dimensions (``[B]``,
    ``[S, B]``) are kept.

    >>> upsample(torch.tensor([[0., 1.]]), 4)
    tensor([[0.0000, 0.2500, 0.7500, 1.0000]])
    """
    size = (size,) if isinstance(size, int) else tuple(size)
    nd = len(size)
    if nd not in _MODES or maps.ndim < nd:
        raise ValueError(f"cannot resize maps of shape {tuple(maps.shape)} to {size}")
    lead = maps.shape[:-nd]
    flat = maps.reshape((-1, 1) + tuple(maps.shape[-nd:]))
    out = F.interpolate(flat.float(), size=size, mode=_MODES[nd], align_corners=False)
    return out.reshape(lead + size)


def normalize(maps: Tensor, ndim_spatial: int | None = None) -> Tensor:
    """Min-max scale each map to [0, 1] over its last ``ndim_spatial`` dims; constant maps become 0.

    ``ndim_spatial`` defaults to ``maps.ndim - 1`` (maps ``[B, *spatial]``).

    >>> normalize(torch.tensor([[1., 3.], [2., 2.]]))
    tensor([[0., 1.],
            [0., 0.]])
    """
    nd = maps.ndim - 1 if ndim_spatial is None else ndim_spatial
    dims = tuple(range(maps.ndim - nd, maps.ndim))
    lo = maps.amin(dim=dims, keepdim=True)
    span = maps.amax(dim=dims, keepdim=True) - lo
    return torch.where(span > 0, (maps - lo) / span.clamp(min=torch.finfo(maps.dtype).tiny), torch.zeros_like(maps))
