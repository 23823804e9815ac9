"""Dermoscopy chapter (``derm_vic``): Rashomon sweep, Variable Importance Cloud (VIC), fidelity.

Study helpers (pure tensor / pandas functions) and the chapter's figures. The VIC of an image is
built from the Grad-CAM++ maps of the *kept* pruned models ``maps [S, B, h, w]`` (layer
resolution):

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
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from .common import _fig_ax

__all__ = [
    "POSTER",
    "normalized_stack",
    "vic_and_variability",
    "binarize_maps",
    "fidelity_scores",
    "per_model_fidelity",
    "dice_from_iou",
    "dice_upper_bound",
    "paired_wilcoxon",
    "fidelity_table",
    "relative_losses",
    "kept_at",
    "prune_ratio_sweep",
    "suggest_ratio",
    "plot_relative_losses",
    "plot_sweep",
    "plot_vic_examples",
    "plot_model_fidelity",
    "vic_frame",
    "vic_at_tolerance",
    "vic_frames",
    "plot_samples",
    "performance_table",
    "fidelity_by_ratio",
    "plot_fidelity_by_ratio",
    "display_image",
]

#: The VIC poster's reported numbers (their HAM10000 run), shown beside ours, labelled as theirs.
POSTER = {"prune_ratio": 0.6, "iou_optimal": 0.385, "iou_vic": 0.408, "dice_optimal": 0.878, "dice_vic": 0.923}

#: Default binarisation rule for fidelity (see :func:`binarize_maps`).
DEFAULT_RULE = ("fraction_of_max", 0.5)


# ----------------------------------------------------------------------------- VIC maps
def normalized_stack(maps: Tensor) -> Tensor:
    """Min-max normalise every map of a stack ``[S, B, *spatial]`` (or ``[B, *spatial]``) over its spatial dims.

    Spatial dims are the last two.
    """
    from uqxai_lib.saliency import normalize

    return normalize(maps, ndim_spatial=2)


def vic_and_variability(maps: Tensor) -> tuple[Tensor, Tensor]:
    """VIC (consensus = mean) and variability (population SD) of normalised maps ``[S, B, h, w]``.

    >>> m = torch.stack([torch.tensor([[[0., 1.], [0., 0.]]]), torch.tensor([[[0., 0.], [0., 1.]]])])
    >>> vic, var = vic_and_variability(m)
    >>> vic.tolist(), var.tolist()
    ([[[0.0, 0.5], [0.0, 0.5]]], [[[0.0, 0.5], [0.0, 0.5]]])
    """
    from uqxai_lib import aggregate

    if maps.ndim != 4:
        raise ValueError(f"maps must be [S, B, h, w], got shape {tuple(maps.shape)}")
    m = normalized_stack(maps)
    return aggregate.consensus(m), aggregate.variability(m)


# ----------------------------------------------------------------------------- fidelity
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


def paired_wilcoxon(a: Tensor | Sequence[float], b: Tensor | Sequence[float]) -> float:
    """Two-sided paired Wilcoxon signed-rank p-value (``scipy.stats.wilcoxon``); NaN if all pairs tie."""
    from scipy.stats import wilcoxon

    a = np.asarray(torch.as_tensor(a, dtype=torch.float64).cpu())
    b = np.asarray(torch.as_tensor(b, dtype=torch.float64).cpu())
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length: {a.shape} vs {b.shape}")
    if len(a) == 0 or np.all(a == b):
        return float("nan")
    return float(wilcoxon(a, b, zero_method="wilcox", alternative="two-sided").pvalue)


def fidelity_table(optimal: Mapping[str, Tensor], vic: Mapping[str, Tensor], *, theirs: Mapping[str, float] = POSTER):
    """Poster Fig. 3 as a table: mean +- SD and n of IoU / Dice for the optimal model and VIC,
    paired Wilcoxon p, the Jensen bound, and the poster's values labelled as theirs.

    Returns a pandas DataFrame indexed by metric.
    """
    import pandas as pd

    rows = []
    for metric in ("iou", "dice"):
        a, b = optimal[metric].double(), vic[metric].double()
        rows.append(
            {
                "metric": "IoU" if metric == "iou" else "Dice",
                "optimal (ours)": f"{a.mean():.3f} ± {a.std(unbiased=True):.3f}",
                "VIC (ours)": f"{b.mean():.3f} ± {b.std(unbiased=True):.3f}",
                "n": int(len(a)),
                "Wilcoxon p (ours)": f"{paired_wilcoxon(a, b):.3g}",
                "optimal (poster, theirs)": theirs[f"{metric}_optimal"],
                "VIC (poster, theirs)": theirs[f"{metric}_vic"],
            }
        )
    df = pd.DataFrame(rows).set_index("metric")
    return df


# ----------------------------------------------------------------------------- Rashomon sweep
def relative_losses(rset) -> Tensor:
    """Mean validation loss of each pruned model divided by the unpruned model's (``rset.losses / rset.base_loss``).

    Computed exactly as :func:`uqxai_lib.samplers.rashomon` does before comparing with ``1 + epsilon``
    (then cast to float64), so ``relative_losses(rset) <= 1 + rset.epsilon`` reproduces ``rset.kept``.
    """
    return (rset.losses / rset.base_loss).double()


def kept_at(rset, epsilon: float) -> Tensor:
    """Which candidates of ``rset`` are kept at another tolerance: ``L_m / L* <= 1 + epsilon`` (bool ``[K]``)."""
    if epsilon < 0:
        raise ValueError(f"epsilon must be >= 0, got {epsilon}")
    return (rset.losses / rset.base_loss) <= 1.0 + float(epsilon)


def prune_ratio_sweep(
    model, layer, x_val: Tensor, y_val: Tensor, ratios: Sequence[float], *, k: int, epsilon: float,
    seed: int, head=None, class_weight=None,
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
            head=head, class_weight=class_weight,
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


# ----------------------------------------------------------------------------- figures
def display_image(x: Tensor) -> np.ndarray:
    """A normalised image ``[3, H, W]`` as an RGB array ``[H, W, 3]`` in [0, 1]."""
    from uqxai_lib.data.synthetic_derm import denormalize

    return denormalize(x[None].detach().cpu().float())[0].permute(1, 2, 0).numpy()


def plot_relative_losses(rel: Tensor, *, epsilon: float, ratio: float, ax=None):
    """Histogram of the candidates' relative validation losses at one prune ratio, with ``1 + epsilon``."""
    fig, ax = _fig_ax(ax, figsize=(4.6, 2.6))
    v = torch.as_tensor(rel).detach().cpu().double().numpy()
    keep = v <= 1 + epsilon
    bins = np.linspace(min(v.min(), 1.0) - 1e-9, max(v.max(), 1 + epsilon) + 1e-9, 31)
    ax.hist(v[keep], bins=bins, color="C0", label=f"kept ({int(keep.sum())})")
    ax.hist(v[~keep], bins=bins, color="0.7", label=f"dropped ({int((~keep).sum())})")
    ax.axvline(1.0, color="k", lw=0.8)
    ax.axvline(1 + epsilon, color="k", ls="--", lw=0.8, label=f"1 + ε = {1 + epsilon:g}")
    ax.set_xlabel(f"validation loss / optimum (r = {ratio:g})")
    ax.set_ylabel("candidates")
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def plot_sweep(table, *, epsilon: float, poster_ratio: float = 0.6, suggested: float | None = None, ax=None):
    """Poster Fig. 2: relative loss (median, 25-75 % and 5-95 % bands) and number kept vs prune ratio."""
    fig, ax = _fig_ax(ax, figsize=(6.4, 4.0))
    r = table["ratio"].to_numpy()
    ax.fill_between(r, table["rel_loss_q05"], table["rel_loss_q95"], color="C0", alpha=0.15, lw=0, label="5–95 %")
    ax.fill_between(r, table["rel_loss_q25"], table["rel_loss_q75"], color="C0", alpha=0.3, lw=0, label="25–75 %")
    ax.plot(r, table["rel_loss_median"], "o-", color="C0", ms=3, label="median")
    ax.axhline(1 + epsilon, color="k", ls="--", lw=0.8, label=f"1 + ε = {1 + epsilon:g}")
    ax.axvline(poster_ratio, color="C3", ls=":", lw=1.2, label=f"poster's r = {poster_ratio:g}")
    if suggested is not None:
        ax.axvline(suggested, color="C2", ls="-.", lw=1.2, label=f"ours: r = {suggested:g}")
    ax.set_xlabel("prune ratio r (share of last-layer channels masked)")
    ax.set_ylabel("validation loss / optimum")
    ax2 = ax.twinx()
    ax2.plot(r, table["n_kept"], "s-", color="C1", ms=3, lw=1, label="kept models")
    ax2.set_ylabel("models kept (of %d)" % int(table["n_candidates"].iloc[0]), color="C1")
    ax2.set_ylim(0, int(table["n_candidates"].max()) * 1.05)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=4)
    fig.tight_layout()
    return fig


def _show_map(ax, image: np.ndarray | None, m: Tensor, size: tuple[int, int], cmap: str, title: str | None, vmax=None):
    from uqxai_lib.saliency import upsample

    a = upsample(m.detach().cpu().float()[None], size)[0].numpy()
    if image is not None:
        ax.imshow(image)
        ax.imshow(a, cmap=cmap, alpha=0.5, vmin=0, vmax=vmax if vmax is not None else max(float(a.max()), 1e-12))
    else:
        ax.imshow(a, cmap=cmap, vmin=0, vmax=vmax if vmax is not None else max(float(a.max()), 1e-12))
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)


def plot_vic_examples(
    x: Tensor, masks: Tensor, optimal: Tensor, variability: Tensor, vic: Tensor, *,
    row_labels: Sequence[str] | None = None, size: float = 1.9,
):
    """Poster Fig. 4: one row per image — input, ground-truth mask, Grad-CAM++ of the optimal
    model, variability across kept models (one colour scale for all rows), VIC. Maps at layer
    resolution are upsampled."""
    import matplotlib.pyplot as plt

    from uqxai_lib.saliency import normalize

    n = len(x)
    hw = tuple(x.shape[-2:])
    fig, axes = plt.subplots(n, 5, figsize=(5 * size, n * size), squeeze=False)
    var_max = max(float(variability.max()), 1e-12)  # one colour scale for every row's variability
    cols = ["input", "ground truth", "Grad-CAM++ (optimal)", f"variability (SD, 0–{var_max:.2f})", "VIC (mean)"]
    for i in range(n):
        img = display_image(x[i])
        ax = axes[i]
        ax[0].imshow(img)
        ax[0].set_axis_off()
        ax[1].imshow(masks[i].cpu().numpy(), cmap="gray")
        ax[1].set_axis_off()
        _show_map(ax[2], img, normalize(optimal[i : i + 1], 2)[0], hw, "jet", None, vmax=1.0)
        _show_map(ax[3], None, variability[i], hw, "magma", None, vmax=var_max)
        _show_map(ax[4], img, vic[i], hw, "jet", None, vmax=1.0)
        if row_labels is not None:
            ax[0].text(-0.05, 0.5, row_labels[i], transform=ax[0].transAxes, rotation=90,
                       ha="right", va="center", fontsize=8)
    for j, c in enumerate(cols):
        axes[0, j].set_title(c, fontsize=9)
    fig.tight_layout()
    return fig


def plot_model_fidelity(per_model: Mapping[str, Tensor], optimal: Mapping[str, float], vic: Mapping[str, float]):
    """Poster Fig. 3 (left): distribution over kept models of their mean IoU / Dice, with the
    optimal model and the VIC marked."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(7.0, 2.8))
    for ax, metric, name in zip(axes, ("iou", "dice"), ("IoU", "Dice")):
        v = per_model[metric].detach().cpu().numpy()
        ax.hist(v, bins=min(30, max(5, len(v) // 4)), color="0.7", label=f"{len(v)} kept models")
        ax.axvline(float(optimal[metric]), color="C3", lw=1.5, label="optimal model")
        ax.axvline(float(vic[metric]), color="C0", lw=1.5, ls="--", label="VIC")
        ax.set_xlabel(f"mean {name} vs lesion mask")
        ax.set_ylabel("models")
    axes[0].legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def vic_frame(x: Tensor, vic: Tensor | None, variability: Tensor | None, *, n_kept: int, n_candidates: int,
              ratio: float, epsilon: float | None = None):
    """One widget frame: image with VIC overlay, variability, and the number of kept models."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(4.6, 2.5))
    img = display_image(x)
    hw = tuple(x.shape[-2:])
    if vic is None or n_kept == 0:
        for ax in axes:
            ax.imshow(img)
            ax.set_axis_off()
        axes[1].text(0.5, 0.5, "no model kept", ha="center", va="center", transform=axes[1].transAxes,
                     color="w", fontsize=10, bbox=dict(facecolor="k", alpha=0.6))
    else:
        _show_map(axes[0], img, vic, hw, "jet", "VIC", vmax=1.0)
        _show_map(axes[1], None, variability, hw, "magma", "variability (SD)", vmax=0.5)
    eps = "" if epsilon is None else f", ε = {epsilon:g}"
    fig.suptitle(f"r = {ratio:g}{eps}: {n_kept} of {n_candidates} models kept", fontsize=9)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- widget
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
    vic, var = vic_and_variability(st.maps.detach().cpu())
    return vic, var, n_kept


def vic_frames(model, layer, x: Tensor, sets: Mapping[float, Any], ratios: Sequence[float],
               epsilons: Sequence[float], *, head=None, target=None, dpi: int = 72) -> list[list[bytes]]:
    """Widget frames for one image ``x [1, 3, H, W]``: ``frames[i][j]`` (PNG bytes) shows the VIC and
    the variability at prune ratio ``ratios[i]`` (the Rashomon set ``sets[ratios[i]]``) and tolerance
    ``epsilons[j]``. For :func:`uqxai_lib.widgets.frame_grid` / ``frame_slider``."""
    from uqxai_lib.widgets import figure_to_png

    if x.ndim != 4 or len(x) != 1:
        raise ValueError(f"x must be one image [1, 3, H, W], got shape {tuple(x.shape)}")
    missing = [r for r in ratios if float(r) not in sets]
    if missing:
        raise ValueError(f"no Rashomon set for ratio(s) {missing}; include them in the sweep ratios")
    frames = []
    for r in ratios:
        rset = sets[float(r)]
        row = []
        for eps in epsilons:
            v, s, n = vic_at_tolerance(model, layer, x, rset, eps, head=head, target=target)
            fig = vic_frame(x[0], None if v is None else v[0], None if s is None else s[0], n_kept=n,
                            n_candidates=len(rset.kept), ratio=float(r), epsilon=float(eps))
            row.append(figure_to_png(fig, dpi))
        frames.append(row)
    return frames


def plot_samples(data, per_class: int = 4, *, size: float = 1.5):
    """A few images of each class (first ``per_class`` of each) above their lesion masks."""
    import matplotlib.pyplot as plt

    if data.mask is None:
        raise ValueError("the data set has no lesion masks")
    show = torch.cat([torch.nonzero(data.y == c).flatten()[:per_class] for c in range(len(data.classes))])
    fig, axes = plt.subplots(2, len(show), figsize=(size * len(show), 2 * size + 0.1), squeeze=False)
    for j, i in enumerate(show.tolist()):
        axes[0, j].imshow(display_image(data.x[i]))
        axes[0, j].set_title(data.classes[int(data.y[i])], fontsize=8)
        axes[1, j].imshow(data.mask[i].cpu().numpy(), cmap="gray")
    for a in axes.flat:
        a.set_axis_off()
    fig.tight_layout()
    return fig


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
        f_all = fidelity_scores(vic_and_variability(maps)[0], masks, rule)
        row = {"ratio": float(r), "n_kept": int(kept.sum()), "iou_vic": math.nan, "dice_vic": math.nan,
               "iou_all": float(f_all["iou"].mean()), "dice_all": float(f_all["dice"].mean())}
        if kept.any():
            f = fidelity_scores(vic_and_variability(maps[kept])[0], masks, rule)
            row.update(iou_vic=float(f["iou"].mean()), dice_vic=float(f["dice"].mean()))
        rows.append(row)
    return pd.DataFrame(rows)


def plot_fidelity_by_ratio(table, *, optimal_iou: float, poster_ratio: float = 0.6, chosen: float | None = None,
                           ax=None):
    """Mean IoU of the VIC (kept models, and all candidates) against the prune ratio, with the
    optimal model's mean IoU as a horizontal line."""
    fig, ax = _fig_ax(ax, figsize=(5.6, 3.0))
    r = table["ratio"].to_numpy()
    ax.plot(r, table["iou_all"], "s--", color="0.5", ms=3, label="VIC of all candidates")
    ax.plot(r, table["iou_vic"], "o-", color="C0", ms=4, label="VIC of kept models")
    ax.axhline(float(optimal_iou), color="C3", lw=1.2, label="optimal model")
    ax.axvline(poster_ratio, color="C3", ls=":", lw=1.2, label=f"poster's r = {poster_ratio:g}")
    if chosen is not None:
        ax.axvline(chosen, color="C2", ls="-.", lw=1.2, label=f"ours: r = {chosen:g}")
    ax.set_xlabel("prune ratio r")
    ax.set_ylabel("mean IoU vs lesion mask")
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def performance_table(summary: Mapping[str, Any], auroc: float, *, digits: int = 3):
    """Balanced accuracy, sensitivity, specificity (from :func:`uqxai_lib.metrics.classification_summary`)
    and AUROC as a one-column DataFrame.

    >>> performance_table({"balanced_accuracy": 0.8, "sensitivity": 0.7, "specificity": 0.9}, 0.85)["value"].tolist()
    [0.8, 0.7, 0.9, 0.85]
    """
    import pandas as pd

    values = [float(summary["balanced_accuracy"]), float(summary["sensitivity"]), float(summary["specificity"]),
              float(auroc)]
    index = ["balanced accuracy", "sensitivity", "specificity", "AUROC"]
    return pd.DataFrame({"value": values}, index=index).round(digits)
