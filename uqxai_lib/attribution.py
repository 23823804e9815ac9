r"""Explanation methods beyond the class-activation maps of :mod:`uqxai_lib.saliency`, for any
number of spatial dimensions, and their stacks under every source of uncertainty.

The methods come from captum (integrated gradients, SmoothGrad, occlusion, GradientSHAP, DeepLIFT,
input × gradient, LIME, Kernel SHAP); this module owns what captum leaves to the caller, with one
rule each:

* **Inputs** are ``[B, C, *spatial]`` with 1, 2 or 3 spatial dimensions; **targets** are explicit
  classes ``[B]`` (``None`` takes the model's prediction on the clean input once; a stack never
  re-chooses the class per pass, draw or model).
* **Modes**: nothing here switches a module's train/eval mode. BatchNorm in training mode is an
  error (stacked rows would share its batch statistics).
* **Reduction** (:data:`REDUCTION_RULE`): the attribution ``[B, C, *sp]`` becomes a map
  ``[B, *sp]`` by summing the absolute attribution over channels; ``grid=`` average-pools it to a
  common grid (:func:`to_grid`).
* **Normalisation** (:data:`NORMALISATION_RULE`): each map is divided by its total mass, so every
  method's map is a distribution over positions (an all-zero map stays all zero). Ranks and top-q
  regions are unchanged, so the stability scores (Spearman, top-q Jaccard) compare across methods.
* **LIME and Kernel SHAP** explain every item over ONE fixed feature mask: a regular grid of
  patches (:func:`grid_mask`, :data:`SEGMENTS_PER_DIM` segments per spatial axis), the same for
  every uncertainty sample, so their maps live on the same features. Occlusion slides a window of
  the same patch size with stride = window.
* **Batching** (:func:`sample_stack`): test-time perturbation stacks all ``S × B`` perturbed rows
  into as few captum calls as the memory budget allows (captum's ``internal_batch_size`` for the
  path methods); an ensemble or a Rashomon set needs one call per model, MC dropout one call per
  pass (each pass is one sub-network, see :func:`frozen_dropout`).
* **MC dropout with multi-forward methods**: IG, SmoothGrad, occlusion, LIME and SHAP run many
  forwards per explanation. Letting ``nn.Dropout`` resample its mask in every forward would mix
  sub-networks inside one explanation. :func:`frozen_dropout` instead replaces every dropout
  module's output by ``input * mask / (1 - p)`` with a mask drawn once per pass (shape
  ``[1, *features]`` for element-wise dropout, ``[1, C, 1, ...]`` for ``Dropout1d/2d/3d``) and
  broadcast across every row of every forward of that pass.
"""
from __future__ import annotations

import math
import random
import warnings
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import saliency, samplers
from .samplers import SampleStack
from .samplers import base as sampler_base

__all__ = [
    "METHODS",
    "MULTI_FORWARD",
    "RANDOMISED",
    "SOURCES",
    "DEFAULTS",
    "REDUCTION_RULE",
    "NORMALISATION_RULE",
    "SEGMENTS_PER_DIM",
    "FrozenDropout",
    "attribute",
    "default_patch",
    "explain",
    "frozen_dropout",
    "grid_mask",
    "normalize_maps",
    "reduce_attribution",
    "rows_per_call",
    "sample_stack",
    "seeded",
    "to_grid",
]

REDUCTION_RULE = ("sum over input channels of the absolute attribution, giving one non-negative value per "
                  "spatial position; average-pooled to a common grid when one is asked for")
NORMALISATION_RULE = ("each map divided by its total mass (sum over positions), so that it sums to 1; an all-zero "
                      "map stays all zero")
#: Segments per spatial axis of the LIME / Kernel SHAP feature grid and of the occlusion window:
#: about 32-64 interpretable features per item in every dimension.
SEGMENTS_PER_DIM = {1: 32, 2: 8, 3: 4}

#: Default options of each method (override any by keyword).
DEFAULTS: dict[str, dict[str, Any]] = {
    "integrated_gradients": {"n_steps": 16},
    "smoothgrad": {"nt_samples": 8, "noise": 0.15, "base": "saliency"},
    "occlusion": {"patch": None},
    "gradient_shap": {"n_samples": 8, "noise": 0.15},
    "deeplift": {},
    "input_x_gradient": {},
    "lime": {"n_samples": 64, "patch": None, "ridge_alpha": 1.0},
    "kernel_shap": {"n_samples": 64, "patch": None},
}
#: the registered methods (name -> default options): what :func:`uqxai_lib.protocol.assess` accepts beside the CAMs
METHODS: dict[str, dict[str, Any]] = DEFAULTS
#: methods that run several forwards per explanation (need one frozen sub-network per MC pass)
MULTI_FORWARD = ("integrated_gradients", "smoothgrad", "occlusion", "gradient_shap", "lime", "kernel_shap")
#: methods that draw random numbers (seeded by ``generator``)
RANDOMISED = ("smoothgrad", "gradient_shap", "lime", "kernel_shap")
SOURCES = ("test_time", "mc_dropout", "ensemble", "rashomon")

_ALPHA_DROPOUT = (nn.AlphaDropout, nn.FeatureAlphaDropout)
_CHANNEL_DROPOUT = (nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)


# ----------------------------------------------------------------------------- checks and rules
def _check_x(x: Tensor) -> int:
    if not isinstance(x, Tensor) or x.ndim not in (3, 4, 5) or x.shape[0] < 1:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"x must be [B, C, *spatial] with 1-3 spatial dims and B >= 1, got {shape}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {x.dtype}")
    if not torch.isfinite(x).all():
        raise ValueError("x contains NaN or Inf; clean or impute the input before explaining it")
    return x.ndim - 2


def _check_method(method: str) -> None:
    if method not in DEFAULTS:
        raise ValueError(f"unknown attribution method {method!r}; use one of {list(METHODS)}")


def _check_modes(model: nn.Module) -> None:
    bad = [n for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
    if bad:
        raise ValueError(f"BatchNorm modules in training mode ({bad[:3]}): stacked rows would share batch "
                         "statistics; call model.eval() first (attribution never switches modes)")


def _options(method: str, options: Mapping[str, Any]) -> dict:
    unknown = set(options) - set(DEFAULTS[method]) - {"stdev", "internal_batch_size"}
    if unknown:
        raise TypeError(f"{method} does not take option(s) {sorted(unknown)}; its options are "
                        f"{sorted(DEFAULTS[method])} (+ stdev for the noisy methods, internal_batch_size)")
    return {**DEFAULTS[method], **options}


def default_patch(spatial: Sequence[int]) -> tuple[int, ...]:
    """Patch size of the feature grid: ``ceil(size / SEGMENTS_PER_DIM[nd])`` per axis.

    >>> default_patch((256,)), default_patch((64, 64)), default_patch((32, 32, 32))
    ((8,), (8, 8), (8, 8, 8))
    """
    nd = len(spatial)
    seg = SEGMENTS_PER_DIM[nd]
    return tuple(max(1, math.ceil(int(s) / seg)) for s in spatial)


def _patch(patch, spatial: Sequence[int]) -> tuple[int, ...]:
    if patch is None:
        return default_patch(spatial)
    p = (int(patch),) * len(spatial) if isinstance(patch, (int, np.integer)) else tuple(int(v) for v in patch)
    if len(p) != len(spatial) or any(v < 1 for v in p):
        raise ValueError(f"patch must be a positive int or one per spatial axis ({len(spatial)}), got {patch!r}")
    return p


def grid_mask(spatial: Sequence[int], patch=None, *, device=None) -> Tensor:
    """Feature mask of a regular grid of patches: LongTensor ``[1, 1, *spatial]`` of segment ids
    (row-major over the grid, starting at 0), broadcast over items and channels.

    >>> grid_mask((4,), 2).tolist()
    [[[0, 0, 1, 1]]]
    >>> grid_mask((2, 4), (1, 2))[0, 0].tolist()
    [[0, 0, 1, 1], [2, 2, 3, 3]]
    """
    spatial = tuple(int(s) for s in spatial)
    p = _patch(patch, spatial)
    ids = torch.zeros(spatial, dtype=torch.long, device=device)
    for axis, (size, step) in enumerate(zip(spatial, p)):
        n_after = math.prod(math.ceil(s / q) for s, q in zip(spatial[axis + 1:], p[axis + 1:]))
        idx = (torch.arange(size, device=device) // step) * n_after
        ids = ids + idx.reshape((-1,) + (1,) * (len(spatial) - axis - 1))
    return ids.reshape((1, 1) + spatial)


def reduce_attribution(attr: Tensor) -> Tensor:
    """:data:`REDUCTION_RULE`: ``[B, C, *sp] -> [B, *sp]`` (float32), ``|attr|`` summed over channels.

    >>> reduce_attribution(torch.tensor([[[1., -2.], [-3., 0.]]])).tolist()
    [[4.0, 2.0]]
    """
    return attr.detach().abs().sum(1).float()


def to_grid(maps: Tensor, grid: Sequence[int] | None) -> Tensor:
    """Average-pool maps ``[B, *sp]`` to ``grid`` (``None``: unchanged); adaptive pooling, so the grid
    need not divide the input size."""
    if grid is None:
        return maps
    grid = tuple(int(g) for g in grid)
    nd = maps.ndim - 1
    if len(grid) != nd:
        raise ValueError(f"grid must give one size per spatial axis ({nd}), got {grid}")
    pool = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}[nd]
    return pool(maps.unsqueeze(1), grid).squeeze(1)


def normalize_maps(maps: Tensor, ndim_spatial: int | None = None) -> Tensor:
    """:data:`NORMALISATION_RULE` for maps ``[..., *sp]`` (``ndim_spatial`` default ``maps.ndim - 1``).

    >>> normalize_maps(torch.tensor([[1., 3.], [0., 0.]])).tolist()
    [[0.25, 0.75], [0.0, 0.0]]
    """
    nd = maps.ndim - 1 if ndim_spatial is None else int(ndim_spatial)
    dims = tuple(range(maps.ndim - nd, maps.ndim))
    total = maps.sum(dim=dims, keepdim=True)
    return torch.where(total > 0, maps / torch.where(total > 0, total, torch.ones_like(total)), torch.zeros_like(maps))


#: At most this many rows per forward on the CPU: a CNN-BiLSTM forward + backward on ECG windows costs
#: 0.98 / 0.68 / 0.55 / 0.59 / 0.58 / 0.64 ms per row at 16 / 64 / 128 / 256 / 512 / 1024 rows (one
#: thread), so beyond a few hundred rows a bigger batch only loses cache locality.
CPU_MAX_ROWS = 256


def rows_per_call(x: Tensor) -> int:
    """Rows of one forward within the memory budget of :mod:`uqxai_lib.samplers`
    (``CPU_MAX_INPUT_ELEMENTS`` and at most :data:`CPU_MAX_ROWS` rows on the CPU, ``MAX_INPUT_ELEMENTS``
    elsewhere)."""
    budget = samplers.CPU_MAX_INPUT_ELEMENTS if x.device.type == "cpu" else samplers.MAX_INPUT_ELEMENTS
    rows = max(1, budget // max(1, x[0].numel()))
    return min(rows, CPU_MAX_ROWS) if x.device.type == "cpu" else rows


@contextmanager
def seeded(generator: torch.Generator | None, device: torch.device | None = None) -> Iterator[None]:
    """Seed torch's, NumPy's and Python's global RNGs from ``generator`` inside the block (captum draws
    from all three: noise from torch, GradientSHAP's path points from NumPy) and restore them after.
    ``None``: leave the global RNGs as they are."""
    if generator is None:
        yield
        return
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    seed = int(torch.randint(2**62, (1,), generator=generator, device=generator.device))
    np_state, py_state = np.random.get_state(), random.getstate()
    devices = [device] if device is not None and device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            np.random.seed(seed % 2**32)
            random.seed(seed)
            yield
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)


_target = sampler_base.target_from  # the given classes, or the prediction on the clean x (one forward, no grad)


def _stdev(x: Tensor, noise: float) -> float:
    """Noise level of SmoothGrad / GradientSHAP: ``noise`` × the standard deviation of the clean batch."""
    return float(noise) * float(x.detach().float().std()) if x.numel() > 1 else float(noise)


# ----------------------------------------------------------------------------- the captum calls
def attribute(model: nn.Module, x: Tensor, target: Tensor, method: str, **options) -> Tensor:
    """Raw captum attribution ``[N, C, *sp]`` of ``x`` for the classes ``target [N]`` (one captum call;
    no reduction, no normalisation). ``options`` override :data:`DEFAULTS`; ``stdev`` (absolute noise
    level of smoothgrad / gradient_shap) overrides ``noise`` × std of ``x``."""
    import captum.attr as ca
    from captum._utils.models.linear_model import SkLearnRidge  # noqa: PLC2701 - captum has no public path

    _check_method(method)
    o = _options(method, options)
    spatial = tuple(x.shape[2:])
    ibs = o.get("internal_batch_size")
    zeros = torch.zeros_like(x)
    kw = {"target": target}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(multiple inputs for Lime|requires_grad|Setting forward, backward"
                                ").*")
        warnings.filterwarnings("ignore", category=UserWarning, module="captum")
        if method == "integrated_gradients":
            return ca.IntegratedGradients(model).attribute(x, baselines=zeros, n_steps=int(o["n_steps"]),
                                                          internal_batch_size=ibs, **kw)
        if method == "smoothgrad":
            base = {"saliency": ca.Saliency, "integrated_gradients": ca.IntegratedGradients}[o["base"]](model)
            sd = o.get("stdev", _stdev(x, o["noise"]))
            extra = {"abs": False} if o["base"] == "saliency" else {"baselines": zeros, "n_steps": 8,
                                                                    "internal_batch_size": ibs}
            nt_bs = None if ibs is None else max(1, ibs // max(1, len(x)))
            return ca.NoiseTunnel(base).attribute(x, nt_type="smoothgrad", nt_samples=int(o["nt_samples"]),
                                                  nt_samples_batch_size=nt_bs, stdevs=sd, **extra, **kw)
        if method == "occlusion":
            p = _patch(o["patch"], spatial)
            window = (x.shape[1],) + p
            ppe = max(1, (ibs or rows_per_call(x)) // max(1, len(x)))
            return ca.Occlusion(model).attribute(x, sliding_window_shapes=window, strides=window, baselines=0.0,
                                                 perturbations_per_eval=ppe, **kw)
        if method == "gradient_shap":
            sd = o.get("stdev", _stdev(x, o["noise"]))
            return ca.GradientShap(model).attribute(x, baselines=zeros[:1], n_samples=int(o["n_samples"]),
                                                    stdevs=sd, **kw)
        if method == "deeplift":
            return ca.DeepLift(model).attribute(x, baselines=zeros, **kw)
        if method == "input_x_gradient":
            return ca.InputXGradient(model).attribute(x, **kw)
        mask = grid_mask(spatial, o["patch"], device=x.device)
        n = int(o["n_samples"])
        if method == "lime":
            lime = ca.Lime(model, interpretable_model=SkLearnRidge(alpha=float(o["ridge_alpha"])))
            return lime.attribute(x, baselines=0.0, feature_mask=mask, n_samples=n, perturbations_per_eval=n, **kw)
        return ca.KernelShap(model).attribute(x, baselines=0.0, feature_mask=mask, n_samples=n,
                                              perturbations_per_eval=n, **kw)


def explain(model: nn.Module, x: Tensor, target, method: str, *, grid: Sequence[int] | None = None,
            normalize: bool = True, generator: torch.Generator | None = None, **options) -> Tensor:
    """Maps ``[B, *sp]`` (float32, on ``x``'s device) of ``method`` for the classes ``target``.

    ``target``: ``None`` (the model's prediction on ``x``), an int, or LongTensor ``[B]``. The map is
    :func:`reduce_attribution` of captum's attribution, pooled to ``grid`` (:func:`to_grid`) and, by
    default, :func:`normalize_maps` -ed. ``generator`` seeds the randomised methods (:func:`seeded`).
    ``options`` override :data:`DEFAULTS` of the method.

    >>> m = nn.Sequential(nn.Conv1d(1, 3, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(),
    ...                   nn.Linear(3, 2)).eval()
    >>> maps = explain(m, torch.randn(2, 1, 16), torch.tensor([0, 1]), "integrated_gradients")
    >>> tuple(maps.shape), [round(float(v), 4) for v in maps.sum(1)]
    ((2, 16), [1.0, 1.0])
    """
    _check_method(method)
    _check_x(x)
    _check_modes(model)
    tgt = _target(model, x, target)
    with seeded(generator, x.device):
        attr = attribute(model, x, tgt, method, **options)
    maps = to_grid(reduce_attribution(attr), grid)
    return normalize_maps(maps) if normalize else maps


# ----------------------------------------------------------------------------- MC dropout, one sub-network per pass
class FrozenDropout:
    """Handle of :func:`frozen_dropout`: ``new_pass()`` starts a new sub-network; ``masks`` maps each
    dropout module to the mask of the current pass (drawn at its first forward in the pass)."""

    def __init__(self, modules: Sequence[nn.Module], p: float | None, generator: torch.Generator | None):
        self.modules = list(modules)
        self.p = p
        self.generator = generator
        self.masks: dict[nn.Module, Tensor] = {}
        self.passes = 0

    def new_pass(self) -> None:
        """Forget the current masks: the next forward draws a new sub-network."""
        self.masks = {}
        self.passes += 1

    def rate(self, module: nn.Module) -> float:
        return float(module.p if self.p is None else self.p)

    def _mask(self, module: nn.Module, inp: Tensor) -> Tensor:
        channel = isinstance(module, _CHANNEL_DROPOUT)
        shape = (1, inp.shape[1]) + (1,) * (inp.ndim - 2) if channel else (1,) + tuple(inp.shape[1:])
        m = self.masks.get(module)
        if m is None:
            keep = 1.0 - self.rate(module)
            gen = self.generator
            if gen is not None and gen.device != inp.device:
                raise ValueError(f"the dropout generator is on {gen.device} but the activations are on {inp.device}")
            m = torch.bernoulli(torch.full(shape, keep, device=inp.device), generator=gen).to(inp.dtype)
            self.masks[module] = m
        elif tuple(m.shape) != shape:
            raise RuntimeError(f"a dropout module saw features of shape {tuple(inp.shape[1:])} after "
                               f"{tuple(m.shape[1:])} within one pass; frozen masks need fixed feature shapes")
        return m

    def hook(self, module: nn.Module, inputs: tuple, output: Tensor) -> Tensor:
        inp = inputs[0]
        p = self.rate(module)
        if p == 0.0:
            return inp
        return inp * self._mask(module, inp) / (1.0 - p)


@contextmanager
def frozen_dropout(model: nn.Module, p: float | None = None, *,
                   generator: torch.Generator | None = None) -> Iterator[FrozenDropout]:
    """Inside the block every dropout module of ``model`` outputs ``input * mask / (1 - p)`` with a
    Bernoulli(1 - p) ``mask`` drawn once per pass and broadcast over all rows of all forwards of that
    pass (call ``handle.new_pass()`` between passes). ``p`` overrides every module's rate. The
    modules' modes are not touched (in eval mode the hook replaces their identity output); hooks
    are removed on exit, also when the block raises. Alpha dropout is refused (its mask is not a
    rescaling).

    >>> m = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5)).eval()
    >>> x = torch.randn(3, 4)
    >>> with frozen_dropout(m, generator=torch.Generator().manual_seed(0)) as fd:
    ...     a, b = m(x), m(x)
    >>> bool(torch.equal(a, b)), m[1].training, len(m[1]._forward_hooks)
    (True, False, 0)
    """
    drops = samplers.dropout_modules(model)
    if not drops:
        raise ValueError(f"{type(model).__name__} has no dropout modules, so MC dropout passes would all be "
                         "identical; add nn.Dropout layers or use another source")
    if any(isinstance(d, _ALPHA_DROPOUT) for d in drops):
        raise ValueError("frozen_dropout does not support AlphaDropout / FeatureAlphaDropout")
    if p is not None and not 0.0 <= float(p) < 1.0:
        raise ValueError(f"dropout rate p must be in [0, 1), got {p}")
    handle = FrozenDropout(drops, p, generator)
    hooks = [d.register_forward_hook(handle.hook) for d in drops]
    try:
        yield handle
    finally:
        for h in hooks:
            h.remove()


# ----------------------------------------------------------------------------- stacks
@contextmanager
def _channel_mask(layer: nn.Module, mask: Tensor) -> Iterator[None]:
    def hook(module, inputs, out):
        if not isinstance(out, Tensor) or out.ndim < 2 or out.shape[1] != mask.numel():
            raise ValueError(f"the pruned layer must output [N, {mask.numel()}, ...], got "
                             f"{tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__}")
        return out * mask.to(out.dtype).reshape((1, -1) + (1,) * (out.ndim - 2))

    h = layer.register_forward_hook(hook)
    try:
        yield
    finally:
        h.remove()


def _probs(model: nn.Module, x: Tensor, rows: int) -> Tensor:
    with torch.no_grad():
        return torch.cat([model(x[s:s + rows]).float().softmax(-1) for s in range(0, len(x), rows)])


def _maps(model, x, target, method, grid, normalize, rows, opts) -> Tensor:
    """Maps of the rows ``x`` in captum calls of at most ``rows`` rows each."""
    out = []
    for s in range(0, len(x), rows):
        attr = attribute(model, x[s:s + rows], target[s:s + rows], method, internal_batch_size=rows, **opts)
        m = to_grid(reduce_attribution(attr), grid)
        out.append(normalize_maps(m) if normalize else m)
    return torch.cat(out)


def sample_stack(model: nn.Module, x: Tensor, *, source: str, method: str, n: int | None = None,
                 generator: torch.Generator | None = None, target=None, grid: Sequence[int] | None = None,
                 normalize: bool = True, rows: int | None = None, perturb: Callable | None = None,
                 p: float | None = None, models: Sequence[nn.Module] | None = None,
                 layer: nn.Module | str | None = None,
                 x_val: Tensor | None = None, y_val: Tensor | None = None, prune_ratio: float = 0.2,
                 epsilon: float = 0.05, head: nn.Linear | None = None, class_weight=None, k: int | None = None,
                 max_models: int | None = None, chunk: int | None = None, batch_size: int = 256,
                 **options) -> SampleStack:
    """Maps of ``method`` under one source of uncertainty: ``SampleStack(maps [S, B, *sp], probs [S, B, C],
    target [B])``.

    ``source``:

    ``"test_time"`` (``perturb(x, generator) -> x'``, ``n`` draws)
        all ``n × B`` perturbed rows explained in captum calls of ``rows`` rows (default
        :func:`rows_per_call`), draw-major; draw ``s`` is the ``s``-th call of ``perturb``.
    ``"mc_dropout"`` (``p``: rate of every dropout module, ``None`` = the trained rates; ``n`` passes)
        each pass is one sub-network (:func:`frozen_dropout`) for every forward of that pass.
    ``"ensemble"`` (``models``; ``n`` ignored)
        each model explains the same ``target``; ``S = len(models)``.
    ``"rashomon"`` (``layer``, ``x_val``, ``y_val``, ``prune_ratio``, ``epsilon``, ``head``, ``class_weight``;
    ``k`` candidates, default ``n``)
        :func:`uqxai_lib.samplers.rashomon` masks of ``layer``; each kept mask is applied by a forward
        hook on ``layer`` and the masked model is explained. ``S`` = number of kept models (may be 0 or
        1: the caller decides whether that is enough), at most ``max_models`` (the first kept ones).

    ``rows`` (or its alias ``chunk``): rows per captum call (default :func:`rows_per_call`);
    ``batch_size``: of the Rashomon loss filter.

    ``target``: fixed once from ``model(x)`` (the caller's modes, no dropout mask) unless given.
    ``generator`` seeds the perturbations, the dropout masks and the randomised methods. ``grid``,
    ``normalize`` and ``options`` as in :func:`explain`.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; use one of {SOURCES}")
    _check_method(method)
    _check_x(x)
    _check_modes(model)
    opts = _options(method, options)
    if method in ("smoothgrad", "gradient_shap") and "stdev" not in options:
        opts["stdev"] = _stdev(x, opts["noise"])  # the clean batch's noise level for every sample
    opts.pop("internal_batch_size", None)
    if generator is None:
        generator = torch.Generator().manual_seed(int(torch.randint(2**62, (1,))))
    tgt = _target(model, x, target)
    b = x.shape[0]
    rows = rows if rows is not None else chunk
    rows = rows_per_call(x) if rows is None else max(1, int(rows))

    def need_n() -> int:
        if n is None or isinstance(n, bool) or int(n) < 1:
            raise ValueError(f"source {source!r} needs n >= 1 samples, got {n!r}")
        return int(n)

    if source == "test_time":
        if not callable(perturb):
            raise TypeError("test_time needs perturb=callable(x, generator) -> x' of the same shape")
        draws = []
        for _ in range(need_n()):
            xp = perturb(x, generator)
            if not isinstance(xp, Tensor) or xp.shape != x.shape:
                raise ValueError(f"perturb must return a tensor of shape {tuple(x.shape)}")
            draws.append(xp)
        xs = torch.cat(draws)
        ts = tgt.repeat(len(draws))
        with seeded(generator, x.device):
            maps = _maps(model, xs, ts, method, grid, normalize, rows, opts)
        probs = _probs(model, xs, rows)
        s = len(draws)
        return SampleStack(maps.reshape((s, b) + tuple(maps.shape[1:])), probs.reshape(s, b, -1), tgt)

    per_model: list[tuple[Tensor, Tensor]] = []
    if source == "mc_dropout":
        mask_gen = torch.Generator(device=x.device).manual_seed(
            int(torch.randint(2**62, (1,), generator=generator, device=generator.device)))
        with frozen_dropout(model, p, generator=mask_gen) as fd, seeded(generator, x.device):
            for _ in range(need_n()):
                fd.new_pass()
                pr = _probs(model, x, rows)  # draws this pass's masks; every later forward reuses them
                per_model.append((_maps(model, x, tgt, method, grid, normalize, rows, opts), pr))
    elif source == "ensemble":
        if not models:
            raise ValueError("ensemble needs models=[model, ...] (at least one)")
        with seeded(generator, x.device):
            for m in models:
                _check_modes(m)
                per_model.append((_maps(m, x, tgt, method, grid, normalize, rows, opts), _probs(m, x, rows)))
    else:  # rashomon
        if layer is None or x_val is None or y_val is None:
            raise ValueError("rashomon needs layer (the pruned layer), x_val and y_val (the (1 + epsilon) loss filter)")
        site = saliency.resolve_layer(model, layer)
        rset = samplers.rashomon(model, site, x_val, y_val, k=int(k) if k is not None else need_n(),
                                 prune_ratio=prune_ratio, epsilon=epsilon, generator=generator, head=head,
                                 class_weight=class_weight, batch_size=int(batch_size))
        kept = rset.masks[rset.kept.bool()]
        if max_models is not None:
            kept = kept[: int(max_models)]
        with seeded(generator, x.device):
            for mk in kept:
                with _channel_mask(site, mk):
                    per_model.append((_maps(model, x, tgt, method, grid, normalize, rows, opts),
                                      _probs(model, x, rows)))
        if not per_model:
            with torch.no_grad():
                c = model(x[:1]).shape[-1]
            ref = explain(model, x[:1], tgt[:1], method, grid=grid, generator=generator, **options)
            return SampleStack(x.new_zeros((0, b) + tuple(ref.shape[1:])), x.new_zeros((0, b, c)), tgt)
    return SampleStack(torch.stack([m for m, _ in per_model]), torch.stack([q for _, q in per_model]), tgt)
