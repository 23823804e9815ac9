"""Dermoscopy chapter (``derm_vic``): the analysis steps of the Rashomon set and the Variable Importance Cloud (VIC).

Plain functions on tensors and small tables; the figures are in :mod:`uqxai_lib.viz.derm`.
Entry points: :func:`setup` (data + trained model, one cache key; also used by the robustness and
cross-study chapters), :func:`vic_run` (the Rashomon set through :func:`uqxai_lib.assess`, the VIC
and the primary comparison), :func:`primary_run` (the primary alone, for the robustness sweep) and
:func:`verdict_ladder`. The VIC of an image is built from the Grad-CAM++ maps of the *kept* pruned models ``maps [S, B,
h, w]`` (layer resolution):

1. each map is min-max normalised to [0, 1] (every nearly-optimal model gets the same vote);
2. consensus = mean over models (the VIC map), variability = population SD over models;
3. for fidelity, a map is upsampled bilinearly to the image size, min-max normalised again and
   binarised with one stated rule (default: pixels >= 50 % of the map's maximum), then compared
   with the lesion mask by IoU and Dice.

For one binarised map and one mask, ``Dice = 2 IoU / (1 + IoU)`` exactly; as this function is
concave, the *mean* Dice over images is at most ``2 m / (1 + m)`` for a mean IoU ``m``
(Jensen), see :func:`dice_upper_bound`.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from uqxai_lib import rules

__all__ = [
    "POSTER",
    "CLAIM",
    "DEFAULT_RULE",
    "DermSetup",
    "setup",
    "VicRun",
    "vic_run",
    "primary_run",
    "normalized_stack",
    "vic_maps",
    "binarize_maps",
    "fidelity_scores",
    "per_model_fidelity",
    "dice_from_iou",
    "dice_upper_bound",
    "paired_effect",
    "compare_to_optimal",
    "primary_record",
    "fidelity_table",
    "within_class_comparison",
    "verdict_ladder",
    "PHANTOM",
    "relative_losses",
    "kept_at",
    "prune_ratio_sweep",
    "suggest_ratio",
    "widget_ratios",
    "vic_at_tolerance",
    "vic_grid",
    "fidelity_by_ratio",
    "temperature_scaled_losses",
    "binary_auroc",
    "filter_candidates",
    "run_variants",
    "finetuned_row",
    "VARIANT_KEYS",
    "variant_record",
    "map_roughness",
    "blur_to_match",
    "train_seed_ensemble",
]

#: The VIC poster's reported numbers (their HAM10000 run), shown beside ours, labelled as theirs.
POSTER = {"prune_ratio": 0.6, "iou_optimal": 0.385, "iou_vic": 0.408, "dice_optimal": 0.878, "dice_vic": 0.923}

#: The poster's claim tested by the chapter's primary comparison (for the results JSON).
CLAIM = {
    "text": "The VIC (mean of the nearly-optimal pruned models' Grad-CAM++ maps) overlaps the lesion mask better "
            "than the single optimal model's map: higher mean IoU (and Dice).",
    "expected": "higher",
    "theirs": "IoU 0.385 -> 0.408, DSC 0.878 -> 0.923 (HAM10000, prune ratio 0.6)",
    "source": "vic_poster",
}

#: The data line of the verdict ladder (what the numbers come from, and what the poster used).
PHANTOM = ("synthetic dermoscopy, uqxai_lib.data.synthetic_derm", "HAM10000")

#: Default binarisation rule for fidelity (see :func:`binarize_maps`).
DEFAULT_RULE = ("fraction_of_max", 0.5)



# ----------------------------------------------------------------------------- setup and primary (issue 21)
class DermSetup(NamedTuple):
    """The chapter's data and trained model (:func:`setup`), shared by the notebook, the robustness
    and the cross-study chapters. ``class_weight`` [2] on ``device`` (balanced, from the training
    labels) is the loss weight of training and of every (1 + epsilon) filter."""

    train_set: Any
    val_set: Any
    test_set: Any
    model: nn.Module
    source: str
    cache_config: dict
    class_weight: Tensor
    best_epoch: int
    n_epochs: int
    from_cache: bool
    device: torch.device


def setup(params: Mapping[str, Any], *, seed: int, device: torch.device | str = "cpu",
          progress: bool = False, member_seed: int | None = None) -> DermSetup:
    """Data (synthetic dermoscopy, or HAM10000 from ``params["data_dir"]``), the lesion-grouped
    60 / 20 / 20 split and the classifier trained by :func:`uqxai_lib.train.fit` under ONE cache
    key (``cache_config``). ``params`` are the chapter's parameters (the notebook's defaults
    overlaid with a profile, :func:`uqxai_lib.params.chapter_parameters`). Data sets are on ``device``.
    ``member_seed`` (not ``None``, not ``seed``): the same data and split, the model initialised and
    trained with that seed under the key plus ``member_seed`` (a member of a seed ensemble)."""
    from uqxai_lib import train, utils
    from uqxai_lib.data import group_split
    from uqxai_lib.data.ham10000 import load_ham10000
    from uqxai_lib.data.synthetic_derm import make_synthetic_derm
    from uqxai_lib.models.derm_classifier import build_derm_classifier, derm_augment

    p = params
    dev = torch.device(device)
    root = utils.resolve_data_dir(p.get("data_dir"))
    if root is None:
        data = make_synthetic_derm(n_lesions=p["n_lesions"], size=p["image_size"], separation=p["separation"],
                                   seed=seed)
        source = "synthetic dermoscopy"
    else:
        data = load_ham10000(root, size=p["image_size"], limit=p.get("ham_limit"), seed=seed,
                             image_ids=p.get("ham_image_ids"), skip_missing=p.get("ham_skip_missing", False))
        source = "HAM10000" + (f" ({data.skipped} images without their files skipped)" if data.skipped else "")
    parts = group_split(data.group, [0.6, 0.2, 0.2], seed=seed)
    train_set, val_set, test_set = (data.subset(q).to(dev) for q in parts)
    arch = p["arch"]
    cfg = {"chapter": "derm_vic", "source": source, "arch": arch, "small_width": p["small_width"],
           "image_size": p["image_size"], "n_lesions": p["n_lesions"], "separation": p["separation"],
           "ham_limit": p.get("ham_limit"), "seed": seed, "epochs": p["epochs"], "lr": p["lr"],
           "weight_decay": p["weight_decay"], "batch_size": p["batch_size"], "patience": p["patience"],
           "weights_path": p.get("weights_path")}
    model_seed = seed if member_seed is None else int(member_seed)
    if model_seed != seed:
        cfg["member_seed"] = model_seed
    torch.manual_seed(model_seed)
    model = build_derm_classifier(arch, weights_path=p.get("weights_path"), small_width=p["small_width"])
    fit = train.fit(model, train_set, val_set, epochs=p["epochs"], batch_size=p["batch_size"], lr=p["lr"],
                    weight_decay=p["weight_decay"], class_weight="balanced", patience=p["patience"], seed=model_seed,
                    device=dev, cache_config=cfg, name=f"derm_vic_{arch}", augment=derm_augment, progress=progress)
    cw = train.class_weights(train_set.y.cpu(), len(train_set.classes)).to(dev)
    return DermSetup(train_set, val_set, test_set, fit.model.eval(), source, cfg, cw, fit.best_epoch,
                     len(fit.history), fit.from_cache, dev)


class VicRun(NamedTuple):
    """The chapter's Rashomon set, VIC and primary comparison (:func:`vic_run`)."""

    sweep: Any  # DataFrame of prune_ratio_sweep
    sets: dict  # ratio -> RashomonSet of the sweep
    suggested: float | None
    ratio: float
    record: Any  # the uqxai_lib.assess Assessment of the chapter's Rashomon set (source "rashomon")
    rset: Any  # that Rashomon set (the same seeded draw as assess's), for the variants at the chapter's ratio
    target: Tensor  # [B] the optimal model's predicted class (every model explains it)
    opt_maps: Tensor  # [B, h, w] the optimal model's Grad-CAM++ (the record's reference)
    vic: Tensor | None
    variability: Tensor | None
    f_opt: dict
    f_vic: dict | None
    row: dict  # compare_to_optimal
    primary: dict  # primary_record
    groups: Tensor  # [B] lesion of each test image


def vic_run(st: DermSetup, params: Mapping[str, Any], *, seed: int, sanity: bool = False,
            checks: bool = True) -> VicRun:
    """The chapter's pipeline up to its primary comparison: the prune-ratio sweep
    (:func:`prune_ratio_sweep` over ``sweep_ratios`` and the poster's ratio), the chapter's ratio
    (``prune_ratio``, else :func:`suggest_ratio`, else the smallest swept ratio), then
    :func:`uqxai_lib.assess` with ``source="rashomon"`` (``k`` candidates at that ratio, kept within
    ``1 + epsilon``; Grad-CAM++ of the kept models and of the optimal model for the optimal model's
    class; with ``checks`` the record's fidelity sections against the lesion masks, with ``sanity``
    the cascading sanity check), the VIC of the kept maps (:func:`vic_maps`) and
    :func:`compare_to_optimal` -> :func:`primary_record`. The primary does not depend on ``checks``
    or ``sanity`` (the same maps, the same set), so :func:`primary_run` skips them."""
    from uqxai_lib import assess, samplers
    from uqxai_lib.models.derm_classifier import FEATURE_LAYER, cascade_groups

    p = params
    model, val, test = st.model, st.val_set, st.test_set
    head = model.classifier
    rule = tuple(p["fidelity_rule"]) if isinstance(p["fidelity_rule"], (list, tuple)) else p["fidelity_rule"]
    ratios = sorted({float(r) for r in [*p["sweep_ratios"], p["poster_ratio"], p["prune_ratio"]] if r is not None})
    sweep, sets = prune_ratio_sweep(model, FEATURE_LAYER, val.x, val.y, ratios, k=p["k"], epsilon=p["epsilon"],
                                    seed=seed, head=head, class_weight=st.class_weight)
    suggested = suggest_ratio(sweep, p["epsilon"])
    ratio = float(p["prune_ratio"]) if p["prune_ratio"] is not None else (suggested if suggested is not None
                                                                          else min(ratios))
    rec = assess(model, test.x, test.y, layer=FEATURE_LAYER, source="rashomon", method="grad_cam_pp",
                 masks=test.mask if checks else None, groups=test.group.cpu(), n=int(p["k"]), seed=seed,
                 x_val=val.x, y_val=val.y, prune_ratio=ratio, epsilon=float(p["epsilon"]), head=head, k=int(p["k"]),
                 class_weight=st.class_weight, sanity=sanity, sanity_modules=cascade_groups(model) if sanity else None)
    n_kept = int(rec.config["n_kept"])
    # the same draw as assess's (seeded generator, same arguments): the variants at this ratio change one choice
    rset = samplers.rashomon(model, FEATURE_LAYER, val.x, val.y, k=int(p["k"]), prune_ratio=ratio,
                             epsilon=float(p["epsilon"]), generator=torch.Generator().manual_seed(int(seed)), head=head,
                             class_weight=st.class_weight)
    if int(rset.kept.sum()) != n_kept:
        raise RuntimeError(f"the Rashomon set redrawn for the variants keeps {int(rset.kept.sum())} models, assess's "
                           f"{n_kept}: assess's seeding of the rashomon source changed; update vic_run")
    target = torch.as_tensor(rec.prediction["target"]).long().cpu()
    if rec.reference is not None:
        opt_maps = rec.reference.detach().cpu()
    else:  # fewer than two kept models: assess has no stack; the optimal map is still needed
        from uqxai_lib import saliency

        opt_maps = saliency.grad_cam_pp(model, test.x, FEATURE_LAYER, target=target.to(test.x.device)).detach().cpu()
    vic = var = None
    if rec.maps is not None and n_kept >= rules.MIN_MODELS:
        vic, var = vic_maps(rec.maps.detach().cpu())
    masks = test.mask.cpu()
    f_opt = fidelity_scores(opt_maps, masks, rule)
    row, f_vic = compare_to_optimal(vic, opt_maps, f_opt, masks, test.group.cpu(), n_kept=n_kept, rule=rule,
                                    seed=seed, site="post_activation", ratio=ratio, target="optimal",
                                    aggregation="normalised", filter="loss", n_candidates=int(p["k"]))
    primary = primary_record(row, n_test=len(test), n_lesions=len(test.group.unique()))
    return VicRun(sweep, sets, suggested, ratio, rec, rset, target, opt_maps, vic, var, f_opt, f_vic, row, primary,
                  test.group.cpu())


def primary_run(params: Mapping[str, Any], *, seed: int, device: torch.device | str = "cpu") -> dict:
    """The chapter's primary comparison exactly as the notebook computes it (:func:`setup` then
    :func:`vic_run`): ``{"primary": ..., "claim": CLAIM}``, for the robustness chapter's tasks."""
    st = setup(params, seed=seed, device=device)
    return {"primary": vic_run(st, params, seed=seed, checks=False).primary, "claim": CLAIM}


def normalized_stack(maps: Tensor) -> Tensor:
    """Min-max normalise every map of a stack ``[S, B, *spatial]`` (or ``[B, *spatial]``) over its spatial dims.

    Spatial dims are the last two.
    """
    from uqxai_lib.saliency import normalize

    return normalize(maps, ndim_spatial=2)


def vic_maps(maps: Tensor, aggregation: str = "normalised") -> tuple[Tensor, Tensor]:
    """The VIC (consensus = mean over models) and variability (population SD over models) of a stack
    ``[S, B, h, w]`` — the one VIC of the chapter. ``"normalised"``: each map min-max normalised first
    (every nearly-optimal model gets the same vote, the poster's figures); ``"raw"``: the raw maps
    (larger maps weigh more).

    >>> m = torch.stack([torch.tensor([[[0., 1.], [0., 0.]]]), torch.tensor([[[0., 0.], [0., 1.]]])])
    >>> vic, var = vic_maps(m)
    >>> vic.tolist(), var.tolist()
    ([[[0.0, 0.5], [0.0, 0.5]]], [[[0.0, 0.5], [0.0, 0.5]]])
    """
    from uqxai_lib import aggregate

    if maps.ndim != 4:
        raise ValueError(f"maps must be [S, B, h, w], got shape {tuple(maps.shape)}")
    if aggregation == "normalised":
        maps = normalized_stack(maps)
    elif aggregation != "raw":
        raise ValueError(f"aggregation must be 'normalised' or 'raw', got {aggregation!r}")
    return aggregate.consensus(maps), aggregate.variability(maps)


def binarize_maps(maps: Tensor, size: int | tuple[int, int], rule: Any = DEFAULT_RULE) -> Tensor:
    """Upsample maps ``[..., h, w]`` to ``size``, min-max normalise each, binarise with ``rule``.

    ``rule`` is passed to :func:`uqxai_lib.metrics.binarize` (``"otsu"``, ``("quantile", q)`` or
    ``("fraction_of_max", t)``). Returns bool ``[..., H, W]``.
    """
    from uqxai_lib import metrics
    from uqxai_lib.saliency import normalize, upsample

    size = (size, size) if isinstance(size, int) else tuple(size)
    m = normalize(upsample(maps, size), ndim_spatial=2)
    return metrics.binarize(m, rule if not isinstance(rule, list) else tuple(rule))


def fidelity_scores(maps: Tensor, masks: Tensor, rule: Any = DEFAULT_RULE) -> dict[str, Tensor]:
    """Per-image IoU and Dice of binarised maps ``[B, h, w]`` against lesion masks ``[B, H, W]``."""
    from uqxai_lib import metrics

    pred = binarize_maps(maps, tuple(masks.shape[-2:]), rule)
    masks = masks.to(pred.device).bool()
    return {"iou": metrics.iou(pred, masks).float(), "dice": metrics.dice(pred, masks).float()}


def per_model_fidelity(maps: Tensor, masks: Tensor, rule: Any = DEFAULT_RULE, *, chunk: int | None = None
                       ) -> dict[str, Tensor]:
    """Mean IoU and Dice over images of every model in a stack ``[S, B, h, w]`` -> ``{"iou": [S], "dice": [S]}``.

    Works ``chunk`` models at a time (upsampled stacks can be large); by default as many as keep
    one upsampled chunk under ~2**25 values (e.g. 1 model of 1000 images at 224 px).
    """
    if chunk is None:
        chunk = max(1, (1 << 25) // max(1, masks[0].numel() * len(masks)))
    ious, dices = [], []
    for s0 in range(0, maps.shape[0], chunk):
        part = maps[s0 : s0 + chunk]
        f = fidelity_scores(part.reshape(-1, *part.shape[-2:]), masks.repeat(len(part), 1, 1), rule)
        ious.append(f["iou"].view(len(part), -1).mean(1))
        dices.append(f["dice"].view(len(part), -1).mean(1))
    return {"iou": torch.cat(ious), "dice": torch.cat(dices)}


def dice_from_iou(iou: Tensor | float) -> Tensor | float:
    """Dice of one binarised map from its IoU: ``2 IoU / (1 + IoU)``.

    >>> round(dice_from_iou(0.385), 4)
    0.556
    """
    return 2 * iou / (1 + iou)


def dice_upper_bound(mean_iou: float) -> float:
    """Largest possible mean Dice for a given mean IoU (Jensen: Dice = 2x/(1+x) is concave).

    >>> round(dice_upper_bound(0.385), 3), round(dice_upper_bound(0.408), 3)
    (0.556, 0.58)
    """
    return float(dice_from_iou(float(mean_iou)))


def paired_effect(a: Tensor, b: Tensor, groups, *, n_boot: int,
                  seed: int) -> tuple[float, list[float], float | None, int]:
    """Mean of the paired differences ``a - b`` per image, its 95 % bootstrap interval over ``groups``
    (lesions) and the p-value of the same resamples (:func:`uqxai_lib.stats.bootstrap_test`), and
    the number of finite pairs."""
    from uqxai_lib import stats

    d = (torch.as_tensor(a).double() - torch.as_tensor(b).double()).cpu().numpy()
    ok = np.isfinite(d)
    g = None if groups is None else np.asarray(torch.as_tensor(groups).cpu())[ok]
    if not ok.any():
        return math.nan, [math.nan, math.nan], None, 0
    r = stats.bootstrap_test(np.mean, d[ok], groups=g, n_boot=n_boot, seed=seed)
    return float(r["estimate"]), [float(v) for v in r["ci95"]], float(r["p"]), int(ok.sum())


def compare_to_optimal(vic: Tensor | None, reference: Tensor, f_opt: Mapping[str, Tensor], masks: Tensor, groups, *,
                       n_kept: int, rule: Any = DEFAULT_RULE, n_boot: int = rules.N_BOOT, seed: int = 0,
                       min_models: int = rules.MIN_MODELS, **labels) -> tuple[dict, dict | None]:
    """The chapter's one comparison of a VIC with the optimal model's map ``reference [B, h, w]``
    (``f_opt`` its :func:`fidelity_scores`): IoU / Dice of both (means over images), the paired IoU
    difference VIC − optimal per image with its 95 % interval over ``groups`` (lesions) and p from
    the same bootstrap, the median Spearman of VIC and optimal map, ``n_kept`` and a ``verdict``
    ("higher" / "lower" / "no detectable difference" from the interval).

    With fewer than ``min_models`` kept models (:data:`uqxai_lib.rules.MIN_MODELS`; a single model is no cloud) the
    row has no numbers of the VIC and its verdict is ``"undefined"`` with a ``reason``.
    Returns ``(row, per-image scores of the VIC or None)``.
    """
    from uqxai_lib import metrics, stats

    row = {**labels, "n_kept": int(n_kept), "iou_optimal": float(f_opt["iou"].mean()),
           "dice_optimal": float(f_opt["dice"].mean()), "iou_vic": math.nan, "dice_vic": math.nan,
           "delta_iou": math.nan, "delta_iou_ci95": [math.nan, math.nan], "delta_iou_p": None,
           "spearman_vic_optimal_median": math.nan, "verdict": "undefined", "reason": None}
    if vic is None or n_kept < min_models:
        row["reason"] = (f"{int(n_kept)} model{'s' if n_kept != 1 else ''} kept; a cloud needs at least "
                         f"{min_models} (rules.MIN_MODELS)")
        return row, None
    f = fidelity_scores(vic, masks, rule)
    est, ci, p, _ = paired_effect(f["iou"], f_opt["iou"], groups, n_boot=n_boot, seed=seed)
    rho = metrics.spearman(vic.float(), reference.float())
    row.update(iou_vic=float(f["iou"].mean()), dice_vic=float(f["dice"].mean()), delta_iou=est,
               delta_iou_ci95=ci, delta_iou_p=p, spearman_vic_optimal_median=float(rho.nanmedian()),
               verdict=stats.verdict(ci))
    return row, f


def primary_record(row: Mapping[str, Any], *, n_test: int, n_lesions: int) -> dict:
    """The results JSON's ``primary`` from the chapter's :func:`compare_to_optimal` row: ``name,
    effect, ci95, p`` (same bootstrap as the interval), ``verdict``, ``reason``, ``n_kept``, ``n``
    (images), ``n_groups`` (lesions), ``mde`` (the smallest true difference this interval detects
    with 80 % power at the 5 % level, :func:`uqxai_lib.stats.mde_from_se` of half-width / 1.96) and
    ``paper_effect`` (the poster's ΔIoU, theirs)."""
    from scipy.stats import norm

    from uqxai_lib import stats

    lo, hi = row["delta_iou_ci95"]
    half = (hi - lo) / 2 if math.isfinite(lo) and math.isfinite(hi) else math.nan
    mde = stats.mde_from_se(half / norm.ppf(0.975)) if math.isfinite(half) else math.nan
    return {"name": "IoU, VIC − optimal (paired per image; bootstrap over lesions)",
            "effect": row["delta_iou"], "ci95": list(row["delta_iou_ci95"]), "p": row["delta_iou_p"],
            "auroc": math.nan, "auroc_ci95": [math.nan, math.nan],
            "verdict": row["verdict"], "reason": row["reason"], "n_kept": row["n_kept"], "n": int(n_test),
            "n_groups": int(n_lesions), "mde": mde,
            "paper_effect": round(POSTER["iou_vic"] - POSTER["iou_optimal"], 6)}


def within_class_comparison(f_vic: Mapping[str, Tensor] | None, f_opt: Mapping[str, Tensor], pred: Tensor, groups, *,
                            n_boot: int = rules.N_BOOT, seed: int = 0) -> dict:
    """The primary comparison inside each predicted class, pooled so that class cannot stand in for
    the effect: per class the mean paired IoU difference VIC − optimal, pooled as the unweighted mean
    over classes, its interval and p from one lesion bootstrap (:func:`uqxai_lib.stats.bootstrap_test`).
    A class with fewer than :data:`uqxai_lib.rules.MIN_GROUP_SIZE` images, or no VIC, makes it
    ``"undefined"`` with a ``reason``. Returns ``{effect, ci95, p, verdict, reason, per_class}``."""
    from uqxai_lib import stats

    pred = torch.as_tensor(pred).long().cpu().numpy()
    classes = sorted(set(pred.tolist()))
    out = {"effect": math.nan, "ci95": [math.nan, math.nan], "p": None, "verdict": "undefined", "reason": None,
           "per_class": {}}
    if f_vic is None:
        out["reason"] = "no VIC (fewer than 2 kept models)"
        return out
    d = (f_vic["iou"].double() - f_opt["iou"].double()).cpu().numpy()
    counts = {c: int((pred == c).sum()) for c in classes}
    out["per_class"] = {int(c): {"n": counts[c], "effect": float(d[pred == c].mean())} for c in classes}
    small = [c for c in classes if counts[c] < rules.MIN_GROUP_SIZE]
    if len(classes) < 2 or small:
        out["reason"] = (f"predicted class(es) {small} hold fewer than {rules.MIN_GROUP_SIZE} images" if small
                         else "every image is predicted as one class")
        return out

    def pooled(dd, pp):
        means = [dd[pp == c].mean() for c in classes if (pp == c).any()]
        return float(np.mean(means)) if len(means) == len(classes) else math.nan

    g = None if groups is None else np.asarray(torch.as_tensor(groups).cpu())
    r = stats.bootstrap_test(pooled, d, pred, groups=g, n_boot=n_boot, seed=seed)
    out.update(effect=pooled(d, pred), ci95=[float(v) for v in r["ci95"]], p=float(r["p"]),
               verdict=stats.verdict(r["ci95"]))
    return out


def verdict_ladder(run: VicRun, *, robustness_path=None, seed: int = 0, classes: Sequence[str] = ("benign",
                                                                                                 "malignant")) -> dict:
    """The chapter's verdict ladder (:func:`uqxai_lib.verdicts.ladder`) from its :class:`VicRun`:
    ``direction`` and ``paper_effect`` (the poster's ΔIoU, theirs) of the primary; ``beyond_baselines``
    (does the stability of the maps across the kept models, ρ, add to entropy / margin / flip rate as
    an error detector, out of sample, :func:`uqxai_lib.stats.added_value`); ``maps_right`` and
    ``sanity`` from the assess record; ``across_metrics`` (IoU and Dice, both in the chapter's table);
    ``within_class`` (:func:`within_class_comparison`, read by the
    direction rule); ``across_seeds`` / ``across_threads`` from the robustness record."""
    from uqxai_lib import stats, verdicts
    from uqxai_lib.report import fmt_number

    rec, prim = run.record, run.primary
    pred = rec.prediction
    if rec.maps is not None:
        added = stats.added_value(rec.stability["rho"], {k: pred[k] for k in ("entropy", "margin", "flip_rate")},
                                  pred["correct"], groups=np.asarray(run.groups), seed=seed)
        beyond = verdicts.beyond_baselines(added, score_name="the maps' stability across the kept models (ρ)")
    else:
        beyond = verdicts.beyond_baselines({"verdict": "undefined", "reason": prim["reason"]})
    wc = within_class_comparison(run.f_vic, run.f_opt, torch.as_tensor(pred["pred"]), run.groups, seed=seed)
    within = verdicts.direction(wc, "higher")
    names = {int(c): n for c, n in enumerate(classes)}
    per = "; ".join(f"predicted {names.get(c, c)} {fmt_number(r['effect'])} (n = {r['n']})"
                    for c, r in wc["per_class"].items())
    within = {**within, "name": "within_class",
              "evidence": (within["evidence"] + " pooled over predicted classes" + (f"; {per}" if per else ""))}
    metrics_ = {"IoU": prim}
    if run.f_vic is not None:  # the table shows Dice too: the verdict covers it (one bootstrap each)
        est, ci, _, _ = paired_effect(run.f_vic["dice"], run.f_opt["dice"], run.groups, n_boot=rules.N_BOOT, seed=seed)
        metrics_["Dice"] = {"effect": est, "ci95": ci}
    direction = verdicts.direction(prim, "higher")
    at = run.sweep.set_index("ratio")
    if float(POSTER["prune_ratio"]) in at.index:  # the box says what the poster's own setting gives here
        n_p = int(at.loc[float(POSTER["prune_ratio"]), "n_kept"])
        direction["evidence"] += (f"; VIC at r = {run.ratio:g} from {prim['n_kept']} kept models; at the poster's "
                                  f"r = {POSTER['prune_ratio']:g}, {n_p} of {int(at['n_candidates'].iloc[0])} kept"
                                  + (" (no cloud)" if n_p < rules.MIN_MODELS else ""))
    rungs = [direction, beyond, verdicts.maps_right(rec.fidelity),
             verdicts.across_metrics(metrics_, "higher"),
             verdicts.sanity(rec.sanity), within,
             *verdicts.robustness_rungs("derm_vic", "higher", path=robustness_path),
             verdicts.paper_effect(prim, prim["paper_effect"], mde=prim["mde"])]
    return verdicts.ladder(CLAIM, verdicts.data_line(*PHANTOM), rungs)


def fidelity_table(row: Mapping[str, Any], *, theirs: Mapping[str, float] = POSTER):
    """Poster Fig. 3 as a table: mean IoU and Dice of the optimal model's map and of the VIC (ours,
    from a :func:`compare_to_optimal` row) beside the poster's (theirs), and the largest mean Dice
    the mean IoU allows (:func:`dice_upper_bound`). Returns a DataFrame, one row per map."""
    import pandas as pd

    rows = []
    for who, key in (("optimal model", "optimal"), ("VIC", "vic")):
        rows.append({"map": who, "IoU (ours)": round(row[f"iou_{key}"], 3), "Dice (ours)": round(row[f"dice_{key}"], 3),
                     "IoU (poster, theirs)": theirs[f"iou_{key}"], "Dice (poster, theirs)": theirs[f"dice_{key}"],
                     "largest Dice its IoU allows (theirs)": round(dice_upper_bound(theirs[f"iou_{key}"]), 3)})
    return pd.DataFrame(rows).set_index("map")


def relative_losses(rset) -> Tensor:
    """Mean validation loss of each pruned model divided by the unpruned model's: the sampler's
    float64 :attr:`uqxai_lib.samplers.RashomonSet.relative_loss`, so ``relative_losses(rset) <= 1 +
    rset.epsilon`` reproduces ``rset.kept``."""
    return rset.relative_loss


def kept_at(rset, epsilon: float) -> Tensor:
    """Which candidates of ``rset`` are kept at another tolerance: ``L_m / L* <= 1 + epsilon`` (bool ``[K]``)."""
    if epsilon < 0:
        raise ValueError(f"epsilon must be >= 0, got {epsilon}")
    return relative_losses(rset) <= 1.0 + float(epsilon)


def prune_ratio_sweep(
    model, layer, x_val: Tensor, y_val: Tensor, ratios: Sequence[float], *, k: int, epsilon: float,
    seed: int, head=None, class_weight=None, suffix=None,
):
    """Sample ``k`` pruned models at every ratio; summarise their relative validation loss.

    Calls :func:`uqxai_lib.samplers.rashomon` once per ratio, with a generator seeded from
    ``seed`` and the ratio's index. Returns ``(table, sets)``: a DataFrame with columns ``ratio,
    rel_loss_median, rel_loss_q05, rel_loss_q25, rel_loss_q75, rel_loss_q95, n_kept, n_candidates``
    and a dict ``ratio -> RashomonSet``.
    """
    import pandas as pd

    from uqxai_lib import samplers

    rows, sets = [], {}
    for i, r in enumerate(ratios):
        g = torch.Generator().manual_seed(int(seed) * 1009 + i)
        rset = samplers.rashomon(
            model, layer, x_val, y_val, k=k, prune_ratio=float(r), epsilon=epsilon, generator=g,
            head=head, class_weight=class_weight, suffix=suffix,
        )
        rel = relative_losses(rset).cpu()
        q = torch.quantile(rel, torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95], dtype=rel.dtype))
        rows.append(
            {
                "ratio": float(r), "rel_loss_median": float(q[2]), "rel_loss_q05": float(q[0]),
                "rel_loss_q25": float(q[1]), "rel_loss_q75": float(q[3]), "rel_loss_q95": float(q[4]),
                "n_kept": int(rset.kept.sum()), "n_candidates": int(len(rset.kept)),
            }
        )
        sets[float(r)] = rset
    return pd.DataFrame(rows), sets


def suggest_ratio(table, epsilon: float) -> float | None:
    """Largest ratio whose *median* relative loss is within ``1 + epsilon`` (so at least half of
    the candidates are nearly optimal), or None if no ratio qualifies."""
    ok = table[table["rel_loss_median"] <= 1 + epsilon]
    return None if ok.empty else float(ok["ratio"].max())


def widget_ratios(table, n: int, *, min_models: int = rules.MIN_MODELS, include: float | None = None) -> list[float]:
    """Up to ``n`` swept ratios that keep at least ``min_models`` models (so every widget position
    shows a cloud), spread evenly over the qualifying ratios of ``table`` (:func:`prune_ratio_sweep`),
    always with ``include`` (e.g. the chapter's ratio) when it qualifies. Empty when none qualifies."""
    ok = sorted(float(r) for r, k in zip(table["ratio"], table["n_kept"]) if int(k) >= min_models)
    if len(ok) <= n:
        return ok
    idx = sorted({int(round(i)) for i in np.linspace(0, len(ok) - 1, n)})
    pick = [ok[i] for i in idx]
    if include is not None and float(include) in ok and float(include) not in pick:
        nearest = min(range(len(pick)), key=lambda i: abs(pick[i] - float(include)))
        pick[nearest] = float(include)
    return sorted(set(pick))


def vic_at_tolerance(model, layer, x: Tensor, rset, epsilon: float, *, head=None, target=None,
                     method: str = "grad_cam_pp") -> tuple[Tensor | None, Tensor | None, int]:
    """VIC and variability of images ``x`` from the candidates of ``rset`` kept at tolerance ``epsilon``.

    The candidates are re-selected with :func:`kept_at` (no new sampling) and explained with
    :func:`uqxai_lib.samplers.rashomon_maps`. Returns ``(vic [B, h, w], variability [B, h, w],
    n_kept)``, with ``None`` maps when no candidate is kept.
    """
    from uqxai_lib import samplers

    keep = kept_at(rset, epsilon)
    n_kept = int(keep.sum())
    if n_kept == 0:
        return None, None, 0
    sub = rset._replace(kept=keep, epsilon=float(epsilon))
    st = samplers.rashomon_maps(model, layer, x, sub, method=method, head=head, target=target)
    vic, var = vic_maps(st.maps.detach().cpu())
    return vic, var, n_kept


def vic_grid(model, layer, x: Tensor, sets: Mapping[float, Any], ratios: Sequence[float],
             epsilons: Sequence[float], *, head=None, target=None) -> list[list[tuple]]:
    """VIC of one image ``x [1, 3, H, W]`` on a grid of prune ratios and tolerances (for the widget).

    ``grid[i][j] = (vic [h, w] or None, variability [h, w] or None, n_kept, n_candidates)`` at
    prune ratio ``ratios[i]`` (the Rashomon set ``sets[ratios[i]]``) and tolerance ``epsilons[j]``
    (:func:`vic_at_tolerance`; candidates are re-selected, nothing is re-sampled). Drawn by
    :func:`uqxai_lib.viz.derm.vic_frames`.
    """
    if x.ndim != 4 or len(x) != 1:
        raise ValueError(f"x must be one image [1, 3, H, W], got shape {tuple(x.shape)}")
    missing = [r for r in ratios if float(r) not in sets]
    if missing:
        raise ValueError(f"no Rashomon set for ratio(s) {missing}; include them in the sweep ratios")
    grid = []
    for r in ratios:
        rset = sets[float(r)]
        row = []
        for eps in epsilons:
            v, s, n = vic_at_tolerance(model, layer, x, rset, eps, head=head, target=target)
            row.append((None if v is None else v[0], None if s is None else s[0], n, len(rset.kept)))
        grid.append(row)
    return grid


def fidelity_by_ratio(model, layer, x: Tensor, masks: Tensor, sets: Mapping[float, Any], *,
                      rule: Any = DEFAULT_RULE, head=None, target=None):
    """VIC fidelity at every prune ratio of a sweep.

    For each ``ratio -> RashomonSet`` in ``sets`` the Grad-CAM++ maps of *all* candidates are
    computed once (:func:`uqxai_lib.samplers.rashomon_maps` with ``include="all"``); the VIC of the
    kept candidates and, for comparison, the VIC of all candidates (no loss filter) are scored
    against ``masks`` with :func:`fidelity_scores`. Returns a DataFrame with columns ``ratio,
    n_kept, iou_vic, dice_vic, iou_all, dice_all`` (means over images; NaN where no model is kept).
    """
    import pandas as pd

    from uqxai_lib import samplers

    rows = []
    for r in sorted(sets):
        rset = sets[r]
        maps = samplers.rashomon_maps(model, layer, x, rset, include="all", head=head, target=target).maps.cpu()
        kept = torch.as_tensor(rset.kept).cpu().bool()
        f_all = fidelity_scores(vic_maps(maps)[0], masks, rule)
        row = {"ratio": float(r), "n_kept": int(kept.sum()), "iou_vic": math.nan, "dice_vic": math.nan,
               "iou_all": float(f_all["iou"].mean()), "dice_all": float(f_all["dice"].mean())}
        if kept.any():
            f = fidelity_scores(vic_maps(maps[kept])[0], masks, rule)
            row.update(iou_vic=float(f["iou"].mean()), dice_vic=float(f["dice"].mean()))
        rows.append(row)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- variants (issue 13)
def _weighted_mean_ce(logits: Tensor, y: Tensor, weight: Tensor | None) -> Tensor:
    """Class-weighted mean cross-entropy over the last-but-one dim of ``logits [..., N, O]`` (float64)."""
    lp = torch.log_softmax(logits.double(), dim=-1)
    nll = -lp.gather(-1, y.expand(lp.shape[:-1])[..., None])[..., 0]
    w = torch.ones_like(nll) if weight is None else weight.double().to(nll.device)[y].expand_as(nll)
    return (nll * w).sum(-1) / w.sum(-1)


def temperature_scaled_losses(logits: Tensor, y: Tensor, weight: Tensor | None = None, *,
                              log_t: Sequence[float] | None = None) -> tuple[Tensor, Tensor]:
    """Each model's loss after temperature scaling on the same data: ``min_T L(logits / T)``.

    ``logits [..., N, O]``; the temperature is chosen from a grid of ``log T`` (default 481 points
    on [-4, 4], step 1/60, i.e. T from 0.018 to 55), so the minimum is found to within the
    grid's resolution. Returns ``(losses [...], temperatures [...])`` (float64). Masking channels
    shrinks the logits; the scaled loss compares models after undoing such a change of scale.
    """
    grid = torch.linspace(-4, 4, 481, dtype=torch.float64) if log_t is None else torch.as_tensor(log_t).double()
    t = grid.exp().to(logits.device)
    lg = logits.double()
    losses = torch.stack([_weighted_mean_ce(lg / ti, y, weight) for ti in t], dim=-1)  # [..., G]
    best, idx = losses.min(dim=-1)
    return best, t[idx]


def binary_auroc(logits: Tensor, y: Tensor) -> Tensor:
    """AUROC of class 1 from logits ``[..., N, 2]`` against labels ``y [N]`` (Mann-Whitney with mid-ranks)."""
    from uqxai_lib import metrics

    if logits.shape[-1] != 2:
        raise ValueError(f"binary_auroc needs two classes, got {logits.shape[-1]}")
    score = (logits[..., 1] - logits[..., 0]).double()
    flat = score.reshape(-1, score.shape[-1])
    return torch.stack([torch.as_tensor(float(metrics.auroc(s, y))) for s in flat]).reshape(score.shape[:-1])


def filter_candidates(rset, base_logits: Tensor, cand_logits: Tensor, y: Tensor, *, rule: str, epsilon: float,
                      class_weight: Tensor | None = None, auroc_tolerance: float = 0.01) -> Tensor:
    """Which candidates are nearly optimal under a keep rule (bool ``[K]``):

    * ``"loss"``: the sampler's rule ``L_m <= (1 + epsilon) L*`` (``rset.kept``);
    * ``"temperature"``: the same after temperature-scaling the optimal model and every candidate
      on the validation data (:func:`temperature_scaled_losses`), so a candidate is not kept
      only because its shrunk logits are better calibrated;
    * ``"loss_auroc"``: the loss rule *and* a validation AUROC within ``auroc_tolerance`` of the
      optimal model's (AUROC ignores the scale of the logits).
    """
    if rule == "loss":
        return torch.as_tensor(rset.kept).cpu().bool()
    y = y.to(cand_logits.device)
    if rule == "temperature":
        base, _ = temperature_scaled_losses(base_logits, y, class_weight)
        cand, _ = temperature_scaled_losses(cand_logits, y, class_weight)
        return (cand / base <= 1.0 + float(epsilon)).cpu()
    if rule == "loss_auroc":
        a0 = binary_auroc(base_logits, y)
        a = binary_auroc(cand_logits, y)
        return torch.as_tensor(rset.kept).cpu().bool() & (a >= a0 - float(auroc_tolerance)).cpu()
    raise ValueError(f"rule must be 'loss', 'temperature' or 'loss_auroc', got {rule!r}")


def run_variants(model, x_val: Tensor, y_val: Tensor, x: Tensor, masks: Tensor, groups, opt_maps: Tensor,
                 f_opt: Mapping[str, Tensor], specs: Sequence[Mapping[str, Any]], *, sites: Mapping[str, str],
                 explain_layer: str, head, k: int, k_general: int, epsilon: float, random_range: Sequence[float],
                 seed: int, class_weight=None, rule: Any = DEFAULT_RULE, optimal_target: Tensor | None = None,
                 auroc_tolerance: float = 0.01, n_boot: int = rules.N_BOOT,
                 given_sets: Mapping[tuple, Any] | None = None) -> list[dict]:
    """The variants table: one :func:`compare_to_optimal` row per spec ``{site, ratio, target, aggregation, filter}``.

    ``site`` is a key of ``sites`` (module names, :func:`uqxai_lib.models.derm_classifier.prune_sites`);
    ``ratio`` a number or ``"random"`` (each candidate draws its ratio from ``U(*random_range)``);
    ``target`` ``"optimal"`` (the optimal model's class) or ``"own"``; ``aggregation`` as in
    :func:`vic_maps`; ``filter`` as in :func:`filter_candidates`. The site of the explained layer
    uses the closed forms with ``head`` and ``k`` candidates; other sites the general masked path
    with ``k_general`` candidates. Rashomon sets, candidate logits and maps are computed once per
    (site, ratio[, target]) and shared by the specs that need them; every set has its own seeded
    generator, so rows do not depend on which other rows are computed. ``given_sets`` maps
    ``(site, ratio)`` to an existing Rashomon set to use instead (e.g. the chapter's own set, so the
    default row is the chapter's VIC).
    """
    from uqxai_lib import samplers
    from uqxai_lib.models.derm_classifier import site_suffix

    cache_sets: dict = {key: [rs, None] for key, rs in (given_sets or {}).items()}
    cache_maps: dict = {}
    rows = []
    for spec in specs:
        site, ratio = spec["site"], spec["ratio"]
        layer = sites[site]
        closed = layer == explain_layer
        # other sites: the rest of the model after the site, so the layers before it run once
        suffix, explained = (None, explain_layer) if closed else site_suffix(model, layer)
        key = (site, ratio)
        if key not in cache_sets:
            pr = tuple(float(v) for v in random_range) if ratio == "random" else float(ratio)
            salt = 7919 * (list(sites).index(site) + 1) + (1000 if ratio == "random"
                                                           else int(round(1000 * float(ratio))))
            gen = torch.Generator().manual_seed(int(seed) * 100003 + salt)
            rset = samplers.rashomon(model, layer, x_val, y_val, k=k if closed else k_general, prune_ratio=pr,
                                     epsilon=epsilon, generator=gen, head=head if closed else None,
                                     class_weight=class_weight, suffix=suffix)
            cache_sets[key] = [rset, None]
        rset, logits = cache_sets[key]
        if logits is None and spec["filter"] != "loss":  # the loss rule needs no logits: skip that pass
            logits = samplers.rashomon_logits(model, layer, x_val, rset, head=head if closed else None, suffix=suffix)
            cache_sets[key][1] = logits
        base_logits, cand_logits = logits if logits is not None else (torch.empty(0), torch.empty(0))
        mkey = (site, ratio, spec["target"])
        if mkey not in cache_maps:
            tgt = "own" if spec["target"] == "own" else optimal_target
            st = samplers.rashomon_maps(model, layer, x, rset, include="all", head=head if closed else None,
                                        target=tgt, explain_layer=explained, suffix=suffix)
            cache_maps[mkey] = st.maps.detach().cpu()
        keep = filter_candidates(rset, base_logits.cpu(), cand_logits.cpu(), y_val.cpu(), rule=spec["filter"],
                                 epsilon=epsilon, class_weight=None if class_weight is None else class_weight.cpu(),
                                 auroc_tolerance=auroc_tolerance)
        labels = {"site": site, "layer": layer, "ratio": ratio, "target": spec["target"],
                  "aggregation": spec["aggregation"], "filter": spec["filter"], "n_candidates": int(len(keep))}
        n_keep = int(keep.sum())
        vic = vic_maps(cache_maps[mkey][keep], spec["aggregation"])[0] if n_keep >= rules.MIN_MODELS else None
        row, _ = compare_to_optimal(vic, opt_maps, f_opt, masks, groups, n_kept=n_keep, rule=rule, n_boot=n_boot,
                                    seed=seed, **labels)
        rows.append(row)
    return rows


def map_roughness(maps: Tensor) -> Tensor:
    """Mean absolute difference between neighbouring pixels of each min-max normalised map ``[B, h, w]``
    (a total variation per pixel pair; smoother maps score lower): ``[B]``."""
    m = normalized_stack(maps.float())
    dx = (m[..., :, 1:] - m[..., :, :-1]).abs().flatten(-2)
    dy = (m[..., 1:, :] - m[..., :-1, :]).abs().flatten(-2)
    return torch.cat([dx, dy], dim=-1).mean(-1)


def blur_to_match(maps: Tensor, reference: Tensor, sigmas: Sequence[float] = tuple(np.round(np.arange(0, 4.01, 0.1), 2))
                  ) -> tuple[Tensor, float]:
    """Gaussian-blur ``maps [B, h, w]`` with the one ``sigma`` (layer pixels, from ``sigmas``) whose
    mean :func:`map_roughness` is closest to that of ``reference`` (e.g. the VIC). ``sigma = 0``
    leaves the maps unchanged. Returns ``(blurred maps, sigma)``. The control "does any smoothing
    improve the overlap?"."""
    from uqxai_lib.fidelity import gaussian_blur

    target = float(map_roughness(reference).mean())
    best, best_s, best_err = maps, 0.0, abs(float(map_roughness(maps).mean()) - target)
    for s in sigmas:
        if s <= 0:
            continue
        b = gaussian_blur(maps[:, None].double(), float(s))[:, 0].float()
        err = abs(float(map_roughness(b).mean()) - target)
        if err < best_err:
            best, best_s, best_err = b, float(s), err
    return best, best_s


def train_seed_ensemble(build, train_set, val_set, *, seeds: Sequence[int], cache_config: Mapping[str, Any],
                        fit_kwargs: Mapping[str, Any]) -> list:
    """Independently trained models (other seeds; a Rashomon set only as far as they fall within
    ``1 + epsilon`` of the optimal model's held-out loss): for each training seed ``s``,
    ``torch.manual_seed(s)``, ``build()`` and :func:`uqxai_lib.train.fit` with ``seed=s`` on the same
    data, cached under ``{**cache_config, "train_seed": s}``. Returns the models in eval mode."""
    from uqxai_lib import train

    models = []
    for s in seeds:
        torch.manual_seed(int(s))
        fit = train.fit(build(), train_set, val_set, seed=int(s), cache_config={**cache_config, "train_seed": int(s)},
                        **fit_kwargs)
        models.append(fit.model.eval())
    return models


def finetuned_row(fset, x: Tensor, layer: str, opt_maps: Tensor, f_opt: Mapping[str, Tensor], masks: Tensor, groups, *,
                  target: Tensor, rule: Any = DEFAULT_RULE, n_boot: int = rules.N_BOOT, seed: int = 0,
                  method: str = "grad_cam_pp", include: str = "kept",
                  **labels) -> tuple[dict, Tensor | None, Tensor | None]:
    """The VIC of a set of whole models (a :class:`uqxai_lib.finetune.FinetunedSet`: fine-tuned
    models from :func:`uqxai_lib.finetune.finetuned_set`, or other models through
    :func:`uqxai_lib.finetune.loss_filter`) against the optimal map, as a variants row
    (:func:`compare_to_optimal`, labelled ``rashomon_finetuned`` unless ``labels`` say otherwise)
    with the members' relative held-out losses and how many are within ``1 + epsilon``
    (``n_within_tolerance``). ``include="all"`` builds the VIC of every member (a control), else of
    the kept ones. Returns ``(row, vic, variability)`` (maps None below :data:`uqxai_lib.rules.MIN_MODELS`)."""
    from uqxai_lib import finetune

    n_used = int(fset.kept.sum()) if include == "kept" else len(fset.models)
    vic = var = None
    if n_used >= rules.MIN_MODELS:
        st = finetune.finetuned(fset, x, layer, target=target, method=method, include=include)
        vic, var = vic_maps(st.maps.detach().cpu())
    lab = {"site": "rashomon_finetuned", "layer": "all weights", "ratio": "-", "target": "optimal",
           "aggregation": "normalised", "filter": "loss" if include == "kept" else "none",
           "n_candidates": int(len(fset.kept)), **labels}
    row, _ = compare_to_optimal(vic, opt_maps, f_opt, masks, groups, n_kept=n_used, rule=rule, n_boot=n_boot,
                                seed=seed, **lab)
    row["relative_losses"] = [float(v) for v in fset.relative_loss]
    row["n_within_tolerance"] = int(fset.kept.sum())
    return row, vic, var


#: the keys of a variants row kept in the results JSON (:func:`variant_record`)
VARIANT_KEYS = ("site", "ratio", "target", "aggregation", "filter", "n_kept", "n_candidates", "iou_optimal",
                "iou_vic", "delta_iou", "delta_iou_ci95", "delta_iou_p", "verdict", "reason", "dice_optimal",
                "dice_vic", "spearman_vic_optimal_median", "n_within_tolerance", "relative_losses")


def variant_record(row: Mapping[str, Any]) -> dict:
    """A variants row as stored in ``derm_vic.json["variants"]`` (the :data:`VARIANT_KEYS` it has)."""
    return {k: row[k] for k in VARIANT_KEYS if k in row}
