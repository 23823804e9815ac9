r"""The book's one instrument: :func:`assess` — uncertainty of explanations for any torch classifier.

``assess`` samples a stack of explanations of the same inputs from one uncertainty source, and
:func:`evaluate` turns any such stack into one record (:class:`Assessment`) whose sections are each
computed by exactly one function of this module, under the rules of :mod:`uqxai_lib.rules`:

=========================  ==================================================================
section                    what it holds
=========================  ==================================================================
``stability``              per item ``rho`` (mean Spearman of each sample's map with the
                           reference map) and ``jaccard`` (SUE: mean top-q Jaccard over sample
                           pairs), counts of constant maps and empty regions
``prediction``             per item ``correct``, ``entropy``, ``margin``, ``flip_rate``,
                           ``mutual_information`` (not for test-time perturbation), ``confidence``
``primary``                correct vs misclassified for the chosen score: effect, interval,
                           AUROC, p and verdict from one bootstrap; "undefined" with a reason
``fidelity``               (masks given) mass in mask vs chance, pointing game, top-q IoU,
                           deletion / insertion AUC beside their random-order baselines
``sanity``                 (``sanity=True``) cascading randomisation: passed / failed / inconclusive
``fidelity_vs_stability``  (masks given) Spearman of per-item mass in mask with stability
=========================  ==================================================================

The reference map of an item is the model's own explanation of the clean input (dropout off), for
the class the model predicts on it; every sample explains that same class. Inputs are
``[B, C, *spatial]`` with 1, 2 or 3 spatial dimensions: one code path.

A 1-D model under test-time noise:

>>> import torch
>>> from torch import nn
>>> torch.manual_seed(0) is not None
True
>>> net = nn.Sequential(nn.Conv1d(1, 8, 5, padding=2), nn.ReLU(), nn.AdaptiveAvgPool1d(1),
...                     nn.Flatten(), nn.Linear(8, 2)).eval()
>>> x, y = torch.randn(24, 1, 64), torch.randint(0, 2, (24,))
>>> rec = assess(net, x, y, layer="1", source="test_time", n=6,
...              perturb=lambda v, g: v + 0.1 * torch.randn(v.shape, generator=g))
>>> sorted(rec.to_dict()), len(rec.stability["rho"])
(['config', 'fidelity', 'fidelity_vs_stability', 'prediction', 'primary', 'sanity', 'stability'], 24)
>>> rec.primary["verdict"] in ("higher", "lower", "no detectable difference", "undefined")
True

A 3-D model under MC dropout, with a ground-truth mask:

>>> vol = nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.ReLU(), nn.Dropout3d(0.3),
...                     nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(4, 3)).eval()
>>> v, masks = torch.randn(6, 1, 8, 8, 8), torch.zeros(6, 8, 8, 8, dtype=torch.bool)
>>> masks[:, 2:5, 2:5, 2:5] = True
>>> rec = assess(vol, v, torch.randint(0, 3, (6,)), layer="1", source="mc_dropout", n=4, masks=masks)
>>> rec.config["spatial_dims"], rec.fidelity["chance"] == 27 / 512
(3, True)
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from . import fidelity as fid
from . import metrics, rules, saliency, samplers, stats

__all__ = [
    "Assessment",
    "AssessError",
    "SOURCES",
    "SCORES",
    "assess",
    "evaluate",
    "stability",
    "prediction_scores",
    "primary_section",
    "fidelity_section",
    "sanity_section",
    "fidelity_vs_stability",
    "default_sanity_modules",
    "json_safe",
]

#: Uncertainty sources and the options each one needs (required, optional).
SOURCES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "test_time": (("perturb",), ("chunk",)),
    "mc_dropout": ((), ("p", "chunk")),
    "rashomon": (("x_val", "y_val", "prune_ratio", "epsilon"), ("head", "k", "class_weight", "batch_size")),
    "ensemble": (("models",), ()),
}
#: Stability scores the primary comparison can use.
SCORES = ("rho", "jaccard")
_SOURCES_WITH_MI = ("mc_dropout", "ensemble", "rashomon")


class AssessError(ValueError):
    """Bad input to :func:`assess`: the message names what is wrong and how to fix it."""


# ----------------------------------------------------------------------------------- the record
def json_safe(v: Any) -> Any:
    """``v`` with tensors / arrays as lists and NaN / Inf as ``None`` (JSON has no NaN).

    >>> json_safe({"a": torch.tensor([1.0, float("nan")]), "b": (np.float32(2), None)})
    {'a': [1.0, None], 'b': [2.0, None]}
    """
    if isinstance(v, Tensor):
        v = v.detach().cpu().tolist()
    if isinstance(v, np.ndarray):
        v = v.tolist()
    if isinstance(v, Mapping):
        return {str(k): json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(float(v)) else None
    return v


@dataclass
class Assessment:
    """One record of the protocol. Sections are plain dicts (``None`` where not computed);
    :meth:`to_dict` is JSON-safe. The tensors the record was computed from stay on the object:
    ``maps [S, B, *sp]``, ``reference [B, *sp]``, ``probs [S, B, C]``, ``clean_probs [B, C]``."""

    config: dict
    stability: dict
    prediction: dict
    primary: dict
    fidelity: dict | None = None
    sanity: dict | None = None
    fidelity_vs_stability: dict | None = None
    maps: Tensor | None = field(default=None, repr=False)
    reference: Tensor | None = field(default=None, repr=False)
    probs: Tensor | None = field(default=None, repr=False)
    clean_probs: Tensor | None = field(default=None, repr=False)

    SECTIONS = ("config", "stability", "prediction", "primary", "fidelity", "sanity", "fidelity_vs_stability")

    def to_dict(self) -> dict:
        """The record's sections, JSON-safe (NaN -> None, tensors -> lists)."""
        return {k: json_safe(getattr(self, k)) for k in self.SECTIONS}

    def score(self, name: str | None = None) -> np.ndarray:
        """Per-item stability score ``name`` (default: the primary's), float64 ``[B]`` with NaN."""
        return np.asarray(self.stability[name or self.config["score"]], dtype=np.float64)

    @property
    def correct(self) -> np.ndarray:
        """Per-item bool: the clean prediction equals the label."""
        return np.asarray(self.prediction["correct"], dtype=bool)


# ----------------------------------------------------------------------------------- sections
def _f64(v: Any) -> np.ndarray:
    if isinstance(v, Tensor):
        v = v.detach().cpu().double().numpy()
    return np.asarray(v, dtype=np.float64).reshape(-1)


def _constant(maps: Tensor, nd: int) -> Tensor:
    flat = maps.reshape(tuple(maps.shape[: maps.ndim - nd]) + (-1,))
    return flat.amax(-1) == flat.amin(-1)


def stability(maps: Tensor, reference: Tensor, *, q: float = rules.TOP_Q) -> dict:
    """Per-item stability of a stack ``maps [S, B, *sp]`` around ``reference [B, *sp]``.

    ``rho``: :func:`uqxai_lib.metrics.repeatability` (mean Spearman of each sample with the
    reference over the samples where it is defined, :data:`~uqxai_lib.rules.CONSTANT_MAP_RULE`);
    ``jaccard``: SUE over sample pairs with ``empty="skip"``
    (:data:`~uqxai_lib.rules.EMPTY_REGION_RULE`). Both NaN where nothing is defined, counted.

    >>> ref = torch.tensor([[0., 1., 2., 3.], [1., 1., 1., 1.]])
    >>> st = stability(torch.stack([ref, ref, torch.zeros_like(ref)]), ref, q=0.5)
    >>> st["rho"][0], st["n_constant_reference"], st["n_constant_samples"], st["jaccard"]
    (1.0, 1, 4, [1.0, 1.0])
    """
    maps, reference = torch.as_tensor(maps), torch.as_tensor(reference)
    if maps.ndim != reference.ndim + 1 or tuple(maps.shape[1:]) != tuple(reference.shape):
        raise AssessError(f"maps must be [S, *reference.shape]; got maps {tuple(maps.shape)} and reference "
                          f"{tuple(reference.shape)}")
    if maps.shape[0] < rules.MIN_SAMPLES:
        raise AssessError(f"stability needs at least {rules.MIN_SAMPLES} samples per item, got {maps.shape[0]}")
    nd = reference.ndim - 1
    m64, r64 = maps.detach().cpu().double(), reference.detach().cpu().double()
    rho = metrics.repeatability(m64, r64, ndim_spatial=nd)
    jac = metrics.sue(m64, quantile=q, ndim_spatial=nd, empty="skip")
    const_s, const_r = _constant(m64, nd), _constant(r64, nd)
    empty = (metrics.binarize(m64, ("quantile", q), ndim_spatial=nd).reshape(m64.shape[0], m64.shape[1], -1)
             .sum(-1) == 0)
    return {
        "rho": _f64(rho).tolist(),
        "jaccard": _f64(jac).tolist(),
        "n_constant_samples": int(const_s.sum()),
        "n_constant_reference": int(const_r.sum()),
        "n_empty_regions": int(empty.sum()),
        "n_undefined_rho": int(torch.isnan(rho).sum()),
        "n_undefined_jaccard": int(torch.isnan(jac).sum()),
        "q": float(q),
        "rule": rules.CONSTANT_MAP_RULE + " " + rules.EMPTY_REGION_RULE,
    }


def prediction_scores(probs: Tensor, clean_probs: Tensor, y: Tensor, target: Tensor, *, source: str) -> dict:
    """Prediction-only scores of each item from the samples' softmax ``probs [S, B, C]`` and the
    clean input's ``clean_probs [B, C]``: ``correct`` (clean argmax == ``y``), ``pred``,
    ``target``, ``confidence`` (max clean probability), ``entropy`` and ``margin`` (top-1 minus
    top-2) of the mean sample probabilities, ``flip_rate`` (share of samples whose argmax is not the
    target) and ``mutual_information`` (sources that sample models; ``None`` for test_time).

    >>> p = torch.tensor([[[0.9, 0.1], [0.4, 0.6]], [[0.7, 0.3], [0.6, 0.4]]])
    >>> clean = torch.tensor([[0.8, 0.2], [0.3, 0.7]])
    >>> s = prediction_scores(p, clean, torch.tensor([0, 0]), torch.tensor([0, 1]), source="test_time")
    >>> s["correct"], s["flip_rate"], s["mutual_information"]
    ([True, False], [0.0, 0.5], None)
    """
    probs, clean_probs = torch.as_tensor(probs).detach().cpu().double(), torch.as_tensor(clean_probs).detach().cpu().double()
    y, target = torch.as_tensor(y).cpu().long(), torch.as_tensor(target).cpu().long()
    mean = probs.mean(0)
    top2 = mean.topk(min(2, mean.shape[-1]), dim=-1).values
    margin = top2[:, 0] - (top2[:, 1] if top2.shape[-1] > 1 else 0.0)
    pred = clean_probs.argmax(-1)
    flips = (probs.argmax(-1) != target[None]).double().mean(0)
    mi = metrics.mutual_information(probs) if source in _SOURCES_WITH_MI else None
    return {
        "correct": (pred == y).tolist(),
        "pred": pred.tolist(),
        "target": target.tolist(),
        "confidence": _f64(clean_probs.amax(-1)).tolist(),
        "entropy": _f64(metrics.predictive_entropy(probs)).tolist(),
        "margin": _f64(margin).tolist(),
        "flip_rate": _f64(flips).tolist(),
        "mutual_information": None if mi is None else _f64(mi).tolist(),
    }


def _diff_and_auroc(v: np.ndarray, a: np.ndarray) -> np.ndarray:
    if not a.any() or a.all():
        return np.array([math.nan, math.nan])
    return np.array([v[a].mean() - v[~a].mean(), stats.auroc(v, a)])


def primary_section(values: Any, correct: Any, *, groups: Any = None, score: str = "score",
                    n_boot: int = rules.N_BOOT, level: float = rules.LEVEL, seed: int = 0) -> dict:
    """Correct vs misclassified items of a per-item score: ``effect`` (mean correct − mean
    misclassified) with ``ci95`` and ``p``, ``auroc`` with ``auroc_ci95`` (P(score of a correct
    item > score of an error)), all from ONE bootstrap (:func:`uqxai_lib.stats.bootstrap_test`:
    stratified by correctness, or over ``groups``), and ``verdict`` from the interval. Items with an
    undefined (NaN) score are left out and counted; fewer than :data:`~uqxai_lib.rules.MIN_GROUP_SIZE`
    defined items in a group give ``verdict = "undefined"`` with the ``reason``.

    >>> rng = np.random.default_rng(0)
    >>> c = np.r_[np.ones(40, bool), np.zeros(40, bool)]
    >>> r = primary_section(np.r_[rng.normal(1, 1, 40), rng.normal(0, 1, 40)], c, n_boot=500)
    >>> r["verdict"], r["p"] < 0.05
    ('higher', True)
    >>> primary_section(np.r_[np.ones(10), np.zeros(3)], np.r_[np.ones(10, bool), np.zeros(3, bool)])["verdict"]
    'undefined'
    """
    v, a = _f64(values), np.asarray(_f64(correct) > 0.5)
    if v.shape != a.shape:
        raise AssessError(f"primary: {v.size} scores but {a.size} correctness flags")
    g = None if groups is None else np.asarray(groups).reshape(-1)
    if g is not None and g.size != v.size:
        raise AssessError(f"primary: groups has {g.size} entries for {v.size} items")
    ok = np.isfinite(v)
    v, a = v[ok], a[ok]
    g = None if g is None else g[ok]
    na, nb = int(a.sum()), int((~a).sum())
    out = {"score": score, "n_correct": na, "n_misclassified": nb, "n_undefined": int((~ok).sum()),
           "mean_correct": float(v[a].mean()) if na else math.nan,
           "mean_misclassified": float(v[~a].mean()) if nb else math.nan,
           "effect": math.nan, "ci95": [math.nan, math.nan], "auroc": math.nan,
           "auroc_ci95": [math.nan, math.nan], "p": math.nan, "verdict": "undefined", "reason": None,
           "n_boot": int(n_boot)}
    if min(na, nb) < rules.MIN_GROUP_SIZE:
        out["reason"] = (f"{na} correct and {nb} misclassified items with a defined {score}: a group has fewer "
                         f"than {rules.MIN_GROUP_SIZE}")
        return out
    t = stats.bootstrap_test(_diff_and_auroc, v, a, groups=g, strata=None if g is not None else a,
                             null=[0.0, 0.5], n_boot=n_boot, level=level, seed=seed)
    (effect, auc), (ci, auc_ci), (p, _) = t["estimate"], t["ci95"], t["p"]
    out.update(effect=effect, ci95=ci, auroc=auc, auroc_ci95=auc_ci, p=p)
    if not all(map(math.isfinite, ci)):
        out["reason"] = "fewer than half of the bootstrap resamples held both groups"
        return out
    out["verdict"] = stats.verdict(ci)
    return out


def _to_grid(maps: Tensor, size: Sequence[int]) -> Tensor:
    maps = maps.float()
    return maps if tuple(maps.shape[-len(size):]) == tuple(size) else saliency.upsample(maps, tuple(size))


def _default_patch(spatial: Sequence[int]) -> tuple[int, ...]:
    per_axis = {1: 16, 2: 8, 3: 4}[len(spatial)]
    return tuple(max(1, s // per_axis) for s in spatial)


def fidelity_section(reference: Tensor, masks: Tensor, *, q: float = rules.TOP_Q, groups: Any = None,
                     model: nn.Module | None = None, x: Tensor | None = None, target: Tensor | None = None,
                     patch: int | Sequence[int] | None = None, steps: int = rules.DELETION_STEPS,
                     seed: int = 0, n_boot: int = rules.N_BOOT) -> dict:
    """Are the reference maps right? Against ground-truth ``masks [B, *input spatial]``: mean
    ``mass_in_mask`` (interval over items or ``groups``) vs ``chance`` (the masks' mean area share),
    ``pointing_game`` hit rate, ``iou_top_q`` (top-q region vs mask), and with ``model``/``x``/
    ``target`` the deletion and insertion AUCs of the map's order beside a random order (one seeded
    random scheme). Maps are upsampled to the mask grid first. Items with an empty mask are skipped."""
    masks = torch.as_tensor(masks).bool().cpu()
    ref = _to_grid(torch.as_tensor(reference).detach().cpu(), masks.shape[1:]).clamp(min=0)
    if ref.shape != masks.shape:
        raise AssessError(f"masks must be [B, *input spatial] = {tuple(ref.shape)}, got {tuple(masks.shape)}")
    has = masks.flatten(1).any(1)
    mass = metrics.mass_in_mask(ref.double(), masks)
    mass = torch.where(has, mass, torch.full_like(mass, math.nan))
    g = None if groups is None else np.asarray(groups).reshape(-1)
    m, ci = stats.mean_ci(_f64(mass), groups=g, n_boot=n_boot, seed=seed)
    pg = metrics.pointing_game(ref, masks)
    iou = metrics.iou(metrics.binarize(ref, ("quantile", q)), masks)
    out = {"mass_in_mask": m, "mass_in_mask_ci95": ci,
           "chance": float(masks[has].flatten(1).double().mean(1).mean()) if has.any() else math.nan,
           "pointing_game": float(np.nanmean(_f64(pg))) if torch.isfinite(pg).any() else math.nan,
           "iou_top_q": float(_f64(iou)[_f64(has) > 0].mean()) if has.any() else math.nan,
           "per_item_mass": _f64(mass).tolist(), "n_items": int(has.sum())}
    if model is not None and x is not None and target is not None:
        sp = tuple(x.shape[2:])
        p = _default_patch(sp) if patch is None else patch
        up = _to_grid(torch.as_tensor(reference).detach().cpu(), sp).to(x.device)
        aucs = {}
        for kind, curve in (("deletion", fid.deletion_curve), ("insertion", fid.insertion_curve)):
            for order in ("map", "random"):
                gen = torch.Generator().manual_seed(int(seed))
                c = curve(model, x, up, target, patch=p, order=order, generator=gen, steps=steps)
                aucs[f"{kind}_auc" + ("" if order == "map" else "_random")] = float(fid.curve_auc(c).mean())
        out.update(aucs, deletion_patch=list(p) if not isinstance(p, int) else [p], deletion_steps=int(steps))
    return out


def default_sanity_modules(model: nn.Module) -> list[str]:
    """The model's top-level children that hold parameters, from the output down (one cascading
    step each), e.g. ``["fc", "layer4", ..., "conv1"]`` for a torchvision ResNet."""
    names = [n for n, m in model.named_children() if any(True for _ in m.parameters())]
    if not names:
        raise AssessError("the model has no child module with parameters to randomise; pass sanity_modules=[...]")
    return names[::-1]


def sanity_section(model: nn.Module, x: Tensor, explain: Callable[[nn.Module], Tensor], reference: Tensor, *,
                   modules: Sequence[str | Sequence[str]] | None = None, seed: int = 0) -> dict:
    """Cascading randomisation (:func:`uqxai_lib.fidelity.cascading_randomisation`) judged by one
    rule (:data:`~uqxai_lib.rules.SANITY_AGGREGATION`): per step the median Spearman over items whose
    randomised map is not constant; ``outcome`` "failed" / "inconclusive" / "passed".
    ``explain(model) -> maps [B, *sp]`` explains ``x`` with a (randomised) copy of the model."""
    modules = list(modules) if modules is not None else default_sanity_modules(model)
    ref = torch.as_tensor(reference).detach().cpu().double()
    nd = ref.ndim - 1
    steps = []
    for name, maps in fid.cascading_randomisation(model, modules, explain, seed=seed, seeding="once"):
        mp = maps.detach().cpu().double()
        rho = metrics.spearman(mp, ref, ndim_spatial=nd)
        const = _constant(mp, nd)
        ok = torch.isfinite(rho) & ~const
        steps.append({"randomised": name if isinstance(name, str) else "+".join(name),
                      "median_rho": float(np.median(_f64(rho[ok]))) if ok.any() else math.nan,
                      "n_constant": int(const.sum()), "n": int(rho.numel())})
    failed = [s for s in steps if math.isfinite(s["median_rho"]) and s["median_rho"] >= rules.SANITY_MAX_SPEARMAN]
    flat = [s for s in steps if s["n_constant"] > rules.SANITY_MAX_CONSTANT_SHARE * s["n"] or not math.isfinite(s["median_rho"])]
    if failed:
        outcome = "failed"
        reason = (f"median rho {failed[0]['median_rho']:.2f} >= {rules.SANITY_MAX_SPEARMAN} after randomising "
                  f"{failed[0]['randomised']}")
    elif flat:
        outcome = "inconclusive"
        reason = (f"{flat[0]['n_constant']} of {flat[0]['n']} randomised maps are constant after randomising "
                  f"{flat[0]['randomised']}: there is nothing to compare")
    else:
        outcome, reason = "passed", f"every step's median rho < {rules.SANITY_MAX_SPEARMAN}"
    return {"steps": steps, "outcome": outcome, "reason": reason, "threshold": rules.SANITY_MAX_SPEARMAN,
            "aggregation": rules.SANITY_AGGREGATION}


def _spearman_1d(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(spearmanr(a, b).statistic)


def fidelity_vs_stability(per_item_fidelity: Any, stability_score: Any, *, groups: Any = None,
                          n_boot: int = rules.N_BOOT, seed: int = 0) -> dict:
    """Spearman correlation over items of a per-item fidelity score (mass in mask) with a per-item
    stability score, with its bootstrap interval (whole ``groups`` resampled when given):
    ``{"spearman", "ci95", "n"}``.

    >>> a = np.arange(30.0)
    >>> r = fidelity_vs_stability(a, a ** 2, n_boot=200)
    >>> r["spearman"], r["n"]
    (1.0, 30)
    """
    a, b = _f64(per_item_fidelity), _f64(stability_score)
    if a.shape != b.shape:
        raise AssessError(f"fidelity_vs_stability: {a.size} fidelity scores but {b.size} stability scores")
    ok = np.isfinite(a) & np.isfinite(b)
    g = None if groups is None else np.asarray(groups).reshape(-1)[ok]
    ci = stats.bootstrap_ci(_spearman_1d, a[ok], b[ok], groups=g, n_boot=n_boot, seed=seed) if ok.sum() >= 3 \
        else (math.nan, math.nan)
    return {"spearman": _spearman_1d(a[ok], b[ok]), "ci95": list(ci), "n": int(ok.sum())}


# ----------------------------------------------------------------------------------- checks
_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


def _first_conv(model: nn.Module) -> nn.Module | None:
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            return m
    return None


def _layer_names(model: nn.Module, types=(nn.Conv1d, nn.Conv2d, nn.Conv3d)) -> list[str]:
    return [n for n, m in model.named_modules() if n and isinstance(m, types)]


def _check_model_and_input(model: nn.Module, x: Tensor, y: Any) -> tuple[Tensor, Tensor]:
    if not isinstance(model, nn.Module):
        raise AssessError(f"model must be a torch.nn.Module (a classifier returning logits [B, C]), got "
                          f"{type(model).__name__}")
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise AssessError(f"x must be a float tensor [B, C, *spatial], got "
                          f"{type(x).__name__ if not isinstance(x, Tensor) else x.dtype}")
    if x.ndim not in (3, 4, 5):
        raise AssessError(f"x must be [B, C, *spatial] with 1, 2 or 3 spatial dimensions, got shape {tuple(x.shape)}; "
                          "add the channel dimension (x[:, None]) for single-channel data")
    if not torch.isfinite(x).all():
        raise AssessError("x contains NaN or Inf; clean or impute the input before explaining it")
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training:
            raise AssessError("the model has BatchNorm in training mode, which would mix the items of a batch and "
                              "change its running statistics; call model.eval() first (assess switches only what "
                              "a source needs, e.g. dropout for mc_dropout)")
    conv = _first_conv(model)
    if conv is not None:
        nd = x.ndim - 2
        if not isinstance(conv, _CONV[nd]):
            raise AssessError(f"x has {nd} spatial dimension(s) but the model's first convolution is "
                              f"{type(conv).__name__}; pass inputs of the rank the model was built for")
        if conv.in_channels != x.shape[1]:
            raise AssessError(f"x has {x.shape[1]} channel(s) but the model's first convolution expects "
                              f"{conv.in_channels}; x must be [B, {conv.in_channels}, *spatial]")
    y = torch.as_tensor(y)
    if y.is_floating_point() or y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise AssessError(f"y must hold one integer class label per item ({x.shape[0]}), got shape "
                          f"{tuple(y.shape)} dtype {y.dtype}")
    with torch.no_grad():
        try:
            logits = model(x[:1])
        except RuntimeError as e:
            raise AssessError(f"model(x) failed for x of shape {tuple(x.shape)}: {e}. Check the input's channels and "
                              "size against the model") from None
    if not isinstance(logits, Tensor) or logits.ndim != 2:
        raise AssessError(f"the model must return logits [B, C], got {getattr(logits, 'shape', type(logits).__name__)}")
    c = logits.shape[1]
    if (y < 0).any() or (y >= c).any():
        raise AssessError(f"labels y must lie in [0, {c - 1}] (the model has {c} outputs), got range "
                          f"[{int(y.min())}, {int(y.max())}]")
    return x, y.long().to(x.device)


def _check_layer(model: nn.Module, x: Tensor, layer: Any) -> nn.Module:
    if layer is None:
        raise AssessError(f"Grad-CAM methods need layer=...: the name of a convolutional layer or block whose output "
                          f"is [B, K, *spatial], e.g. {_layer_names(model)[-3:]}")
    try:
        mod = saliency.resolve_layer(model, layer)
    except (ValueError, TypeError) as e:
        raise AssessError(str(e)) from None
    shapes: list = []
    handle = mod.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape) if isinstance(o, Tensor) else None))
    try:
        with torch.no_grad():
            model(x[:1])
    finally:
        handle.remove()
    if not shapes:
        raise AssessError(f"layer {layer!r} did not run in model(x); pick a layer on the forward path")
    if shapes[0] is None or len(shapes[0]) < 3:
        raise AssessError(f"layer {layer!r} ({type(mod).__name__}) outputs shape {shapes[0]} without spatial "
                          f"dimensions; Grad-CAM needs a layer whose output is [B, K, *spatial], e.g. one of "
                          f"{_layer_names(model)[-3:]}")
    return mod


def _check_options(source: str, options: Mapping[str, Any], model: nn.Module) -> None:
    if source not in SOURCES:
        raise AssessError(f"unknown source {source!r}; use one of {sorted(SOURCES)}")
    required, optional = SOURCES[source]
    missing = [k for k in required if k not in options]
    if missing:
        raise AssessError(f"source {source!r} needs option(s) {missing} (pass them to assess as keywords)")
    unknown = sorted(set(options) - set(required) - set(optional))
    if unknown:
        raise AssessError(f"unknown option(s) {unknown} for source {source!r}; it takes {list(required + optional)}")
    if source == "test_time" and not callable(options["perturb"]):
        raise AssessError("perturb must be a callable perturb(x, generator) -> x' of the same shape")
    if source == "mc_dropout" and not samplers.dropout_modules(model):
        raise AssessError(f"{type(model).__name__} has no dropout modules, so MC dropout passes would all be "
                          "identical; add nn.Dropout layers or use source='test_time' / 'ensemble'")
    if source == "ensemble":
        ms = options["models"]
        if not isinstance(ms, (list, tuple)) or not ms or not all(isinstance(m, nn.Module) for m in ms):
            raise AssessError("models must be a non-empty list of torch modules of the same architecture")


# ----------------------------------------------------------------------------------- assess
def _is_cam(method: str) -> bool:
    return method in saliency.METHODS


def _attribution():
    try:
        from . import attribution
    except ImportError:  # pragma: no cover - before the attribution module exists
        return None
    return attribution


def _check_method(method: str) -> None:
    if _is_cam(method):
        return
    attr = _attribution()
    known = sorted(saliency.METHODS) + (sorted(getattr(attr, "METHODS", {})) if attr else [])
    if attr is None or method not in getattr(attr, "METHODS", {}):
        raise AssessError(f"unknown method {method!r}; use one of {known}")


def _reference(model: nn.Module, x: Tensor, layer, method: str, target: Tensor) -> Tensor:
    with samplers.dropout_enabled(model, enabled=False):
        if _is_cam(method):
            return saliency.explain(model, x, layer, target, method)
        return _attribution().explain(model, x, target, method)


def _sample(model, x, layer, method, source, n, generator, target, options):
    if not _is_cam(method):
        return _attribution().sample_stack(model, x, source=source, method=method, n=n, generator=generator,
                                           target=target, layer=layer, **options), None
    if source == "test_time":
        return samplers.test_time(model, x, layer, options["perturb"], n, method=method, target=target,
                                  generator=generator, chunk=options.get("chunk")), None
    if source == "mc_dropout":
        return samplers.mc_dropout(model, x, layer, n, p=options.get("p"), method=method, target=target,
                                   generator=generator, chunk=options.get("chunk")), None
    if source == "ensemble":
        return samplers.ensemble(options["models"], x, layer, method=method, target=target), None
    rset = samplers.rashomon(model, layer, options["x_val"], options["y_val"], k=int(options.get("k", n)),
                             prune_ratio=options["prune_ratio"], epsilon=options["epsilon"], generator=generator,
                             head=options.get("head"), class_weight=options.get("class_weight"),
                             batch_size=int(options.get("batch_size", 256)))
    info = {"n_candidates": int(len(rset.kept)), "n_kept": int(rset.kept.sum())}
    if info["n_kept"] < rules.MIN_MODELS:
        return None, info
    return samplers.rashomon_maps(model, layer, x, rset, method=method, head=options.get("head"),
                                  target=target), info


def evaluate(maps: Tensor, reference: Tensor, probs: Tensor, clean_probs: Tensor, y: Any, *, target: Any,
             source: str, method: str = "grad_cam", masks: Any = None, groups: Any = None, score: str = "rho",
             q: float = rules.TOP_Q, seed: int = 0, n_boot: int = rules.N_BOOT, model: nn.Module | None = None,
             x: Tensor | None = None, layer: Any = None, sanity: bool = False,
             sanity_modules: Sequence | None = None, fidelity_patch: Any = None, config: Mapping | None = None
             ) -> Assessment:
    """The :class:`Assessment` of a stack you already have: ``maps [S, B, *sp]`` around the model's
    own ``reference [B, *sp]``, the samples' ``probs [S, B, C]``, ``clean_probs [B, C]``, labels
    ``y [B]`` and the explained ``target [B]``. ``model``, ``x`` and ``layer`` are needed for the
    deletion / insertion curves (with ``masks``) and for ``sanity``."""
    if score not in SCORES:
        raise AssessError(f"score must be one of {SCORES}, got {score!r}")
    maps, reference = torch.as_tensor(maps), torch.as_tensor(reference)
    target = torch.as_tensor(target).long().reshape(-1)
    y = torch.as_tensor(y).long().reshape(-1)
    b = reference.shape[0]
    if y.shape[0] != b or target.shape[0] != b:
        raise AssessError(f"y ({y.shape[0]}) and target ({target.shape[0]}) must hold one entry per item ({b})")
    if groups is not None and len(np.asarray(groups).reshape(-1)) != b:
        raise AssessError(f"groups must hold one id per item ({b}), got {len(np.asarray(groups).reshape(-1))}")
    g = None if groups is None else np.asarray(groups.cpu() if isinstance(groups, Tensor) else groups).reshape(-1)
    stab = stability(maps, reference, q=q)
    pred = prediction_scores(probs, clean_probs, y, target, source=source)
    prim = primary_section(stab[score], pred["correct"], groups=g, score=score, n_boot=n_boot, seed=seed)
    cfg = {"source": source, "method": method, "n_samples": int(maps.shape[0]), "n_items": int(b), "q": float(q),
           "score": score, "seed": int(seed), "layer": layer if isinstance(layer, str) or layer is None else
           type(layer).__name__, "spatial_dims": int(reference.ndim - 1), **dict(config or {})}
    rec = Assessment(cfg, stab, pred, prim, maps=maps, reference=reference, probs=torch.as_tensor(probs),
                     clean_probs=torch.as_tensor(clean_probs))
    if masks is not None:
        masks = torch.as_tensor(masks)
        if masks.shape[0] != b:
            raise AssessError(f"masks must hold one mask per item ({b}), got shape {tuple(masks.shape)}")
        rec.fidelity = fidelity_section(reference, masks, q=q, groups=g, model=model, x=x, target=target,
                                        patch=fidelity_patch, seed=seed, n_boot=n_boot)
        rec.fidelity_vs_stability = fidelity_vs_stability(rec.fidelity["per_item_mass"], stab[score], groups=g,
                                                          n_boot=n_boot, seed=seed)
    if sanity:
        if model is None or x is None:
            raise AssessError("sanity=True needs model and x")

        def explain(m: nn.Module) -> Tensor:
            if _is_cam(method):
                return saliency.explain(m, x, layer, target.to(x.device), method).cpu()
            return _attribution().explain(m, x, target.to(x.device), method).cpu()

        rec.sanity = sanity_section(model, x, explain, reference, modules=sanity_modules, seed=seed)
    return rec


def _undefined_record(cfg: dict, reason: str, y: Tensor, clean_probs: Tensor, target: Tensor,
                      source: str) -> Assessment:
    b = int(y.shape[0])
    nan = [math.nan] * b
    stab = {"rho": nan, "jaccard": nan, "n_constant_samples": 0, "n_constant_reference": 0, "n_empty_regions": 0,
            "n_undefined_rho": b, "n_undefined_jaccard": b, "q": cfg["q"], "rule": reason}
    probs = clean_probs[None].repeat(2, 1, 1)
    pred = prediction_scores(probs, clean_probs, y, target, source=source)
    prim = primary_section(nan, pred["correct"], score=cfg["score"])
    prim["reason"] = reason
    return Assessment(cfg, stab, pred, prim, clean_probs=clean_probs)


def assess(model: nn.Module, x: Tensor, y: Any, *, layer: Any = None, source: str, method: str = "grad_cam",
           masks: Any = None, groups: Any = None, n: int = 20, seed: int = 0, score: str = "rho",
           q: float = rules.TOP_Q, sanity: bool = False, sanity_modules: Sequence | None = None,
           n_boot: int = rules.N_BOOT, target: Any = None, fidelity_patch: Any = None, **options: Any) -> Assessment:
    """Assess the uncertainty of ``method``'s explanations of ``model`` on ``x`` under ``source``.

    Parameters
    ----------
    model : a torch classifier returning logits ``[B, C]``, in eval mode (never switched here;
        ``mc_dropout`` switches only the dropout modules on during sampling).
    x, y : inputs ``[B, C, *spatial]`` (1-D, 2-D or 3-D) and integer labels ``[B]``.
    layer : the explained layer (module or dotted name) for Grad-CAM / Grad-CAM++.
    source : ``"test_time"`` (option ``perturb``: callable ``(x, generator) -> x``), ``"mc_dropout"``
        (option ``p``), ``"rashomon"`` (options ``x_val``, ``y_val``, ``prune_ratio``, ``epsilon``,
        optional ``head``, ``k`` candidates, default ``n``), ``"ensemble"`` (option ``models``).
    method : ``"grad_cam"``, ``"grad_cam_pp"`` or a method of :mod:`uqxai_lib.attribution`.
    masks, groups : optional ground-truth masks ``[B, *spatial]`` (fidelity sections) and a group id
        per item (patient, subject, lesion: intervals resample whole groups).
    n, seed : samples per item and the seed of every random draw.
    score : the stability score of the primary comparison, ``"rho"`` or ``"jaccard"``.
    sanity : run the cascading randomisation check (``sanity_modules``: default
        :func:`default_sanity_modules`).

    Returns an :class:`Assessment`; bad input raises :class:`AssessError` before any work.
    """
    x, y = _check_model_and_input(model, x, y)
    _check_method(method)
    if _is_cam(method):
        layer_mod = _check_layer(model, x, layer)
        layer = next(name for name, m in model.named_modules() if m is layer_mod)  # a name survives deep copies
    else:
        layer_mod = layer
    _check_options(source, options, model)
    n = int(n)
    if n < rules.MIN_SAMPLES:
        raise AssessError(f"n must be at least {rules.MIN_SAMPLES} samples per item to measure stability, got {n}")
    if score not in SCORES:
        raise AssessError(f"score must be one of {SCORES}, got {score!r}")
    if masks is not None:
        masks = torch.as_tensor(masks)
        if tuple(masks.shape) != (x.shape[0],) + tuple(x.shape[2:]):
            raise AssessError(f"masks must be [B, *spatial] = {(x.shape[0],) + tuple(x.shape[2:])} (one mask per "
                              f"input at the input's resolution), got {tuple(masks.shape)}")
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad(), samplers.dropout_enabled(model, enabled=False):
        clean_logits = model(x)
    tgt = saliency.resolve_target(clean_logits, target)
    clean_probs = clean_logits.float().softmax(-1).cpu()
    cfg = {"source": source, "method": method, "n_samples": n, "n_items": int(x.shape[0]), "q": float(q),
           "score": score, "seed": int(seed), "layer": layer if isinstance(layer, str) or layer is None else
           type(layer).__name__, "spatial_dims": int(x.ndim - 2)}
    stack, info = _sample(model, x, layer, method, source, n, gen, tgt, options)
    if info:
        cfg.update(info)
    if stack is None:
        reason = (f"{info['n_kept']} of {info['n_candidates']} candidate models kept within 1 + epsilon: fewer than "
                  f"{rules.MIN_MODELS}, so there is no variation to measure")
        return _undefined_record(cfg, reason, y.cpu(), clean_probs, tgt.cpu(), source)
    ref = _reference(model, x, layer, method, tgt)
    return evaluate(stack.maps.cpu(), ref.cpu(), stack.probs.cpu(), clean_probs, y.cpu(), target=tgt.cpu(),
                    source=source, method=method, masks=masks, groups=groups, score=score, q=q, seed=seed,
                    n_boot=n_boot, model=model, x=x, layer=layer, sanity=sanity, sanity_modules=sanity_modules,
                    fidelity_patch=fidelity_patch, config=cfg)
