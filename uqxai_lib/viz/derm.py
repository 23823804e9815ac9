"""Dermoscopy chapter (``derm_vic``): figures and display tables only.

Every function takes data computed by :mod:`uqxai_lib.studies.derm` (maps, tables, records) and
draws it; nothing here runs a model, a sampler or a statistic. Maps are drawn with a colour bar
(viridis for maps, magma for variability).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from .common import _fig_ax, show_map

__all__ = [
    "plot_relative_losses",
    "plot_sweep",
    "plot_vic_examples",
    "plot_model_fidelity",
    "vic_frame",
    "vic_frames",
    "plot_samples",
    "performance_table",
    "plot_fidelity_by_ratio",
    "plot_variants",
    "variants_table",
    "variant_label",
    "plot_deletion_insertion",
    "per_class_fidelity_table",
    "plot_sanity",
    "plot_fidelity_vs_stability",
    "display_image",
]


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


def _map_grid(n_rows: int, n_cols: int, *, panel: float, cbar_cols: Sequence[tuple[int, int]]):
    """A grid of square map panels (``n_rows`` x ``n_cols``, ``panel`` inches each) with one thin row of
    horizontal colour-bar axes below; ``cbar_cols[i] = (first, last)`` columns spanned by bar ``i``.
    Returns ``(fig, axes [n_rows, n_cols], bar axes)``: the figure's shape is the panels' true shape."""
    import matplotlib.pyplot as plt

    title_h, bar_h, gap, below = 0.3, 0.1, 0.1, 0.42  # inches: panel title, bar, gap above it, labels below
    width = n_cols * panel + 0.3
    height = n_rows * (panel + title_h) + gap + bar_h + below
    fig = plt.figure(figsize=(width, height))
    gs = fig.add_gridspec(n_rows + 1, n_cols, height_ratios=[panel + title_h] * n_rows + [gap + bar_h],
                          left=0.3 / width, right=0.99, top=1 - 0.02 / height, bottom=below / height,
                          wspace=0.06, hspace=0.0)
    axes = np.array([[fig.add_subplot(gs[i, j]) for j in range(n_cols)] for i in range(n_rows)])
    bars = []
    for lo, hi in cbar_cols:
        sub = gs[n_rows, lo : hi + 1].subgridspec(2, 1, height_ratios=[gap, bar_h], hspace=0)
        cax = fig.add_subplot(sub[1])
        pos = cax.get_position()  # inset, so that neighbouring bars' end labels do not touch
        cax.set_position([pos.x0 + 0.06 * pos.width, pos.y0, 0.88 * pos.width, pos.height])
        bars.append(cax)
    return fig, axes, bars


def _bar(fig, im, cax, label: str) -> None:
    from matplotlib.cm import ScalarMappable

    from matplotlib.ticker import MaxNLocator

    cb = fig.colorbar(ScalarMappable(norm=im.norm, cmap=im.get_cmap()), cax=cax, orientation="horizontal")
    cb.locator = MaxNLocator(nbins=2 if cax.get_position().width < 0.3 else 5)
    cb.update_ticks()
    cb.set_label(label, fontsize=7.5, labelpad=1)
    cb.ax.tick_params(labelsize=7, length=2, pad=1)


def plot_vic_examples(
    x: Tensor, masks: Tensor, optimal: Tensor, variability: Tensor, vic: Tensor, *,
    row_labels: Sequence[str] | None = None, panel: float = 1.25,
):
    """Poster Fig. 4: one row per image — input, lesion mask, Grad-CAM++ of the optimal model, VIC,
    SD across the kept models (one colour scale for all rows, fitted to the data). Square panels
    (true aspect); the colour bars sit below their columns. Maps at layer resolution are upsampled."""
    from uqxai_lib.saliency import normalize

    n = len(x)
    hw = tuple(x.shape[-2:])
    fig, axes, (bar_map, bar_sd) = _map_grid(n, 5, panel=panel, cbar_cols=[(2, 3), (4, 4)])
    var_max = max(float(variability.max()), 1e-12)  # one colour scale for every row's variability
    cols = ["image", "lesion mask", "optimal model", "VIC (mean)", "SD across models"]
    im_map = im_var = None
    for i in range(n):
        img = display_image(x[i])
        ax = axes[i]
        ax[0].imshow(img)
        ax[1].imshow(masks[i].cpu().numpy(), cmap="gray")
        im_map = show_map(ax[2], img, normalize(optimal[i : i + 1], 2)[0], size=hw, vmin=0, vmax=1.0)
        show_map(ax[3], img, vic[i], size=hw, vmin=0, vmax=1.0)
        im_var = show_map(ax[4], None, variability[i], size=hw, cmap="magma", vmin=0, vmax=var_max)
        for a in ax:
            a.set_axis_off()
        if row_labels is not None:
            ax[0].text(-0.04, 0.5, row_labels[i], transform=ax[0].transAxes, rotation=90,
                       ha="right", va="center", fontsize=7.5)
    for j, c in enumerate(cols):
        axes[0, j].set_title(c, fontsize=8)
    _bar(fig, im_map, bar_map, "normalised map (optimal, VIC)")
    _bar(fig, im_var, bar_sd, "SD")
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


def vic_frame(x: Tensor, optimal: Tensor, vic: Tensor | None, variability: Tensor | None, *, n_kept: int,
              n_candidates: int, ratio: float, epsilon: float | None = None, sd_max: float = 0.1,
              panel: float = 1.45):
    """One widget frame: the optimal model's map, the VIC and the SD across kept models (colour
    range ``0..sd_max``, fitted by the caller to every frame). With fewer than two kept models the
    VIC and SD panels say "no model kept" / "1 model kept: no cloud". Every frame has the same size."""
    from uqxai_lib.saliency import normalize

    fig, axes, (bar_map, bar_sd) = _map_grid(1, 3, panel=panel, cbar_cols=[(0, 1), (2, 2)])
    axes = axes[0]
    img = display_image(x)
    hw = tuple(x.shape[-2:])
    im_map = show_map(axes[0], img, normalize(optimal[None], 2)[0], "optimal model", size=hw, vmin=0, vmax=1.0,
                      fontsize=8)
    if vic is None or n_kept < 2:
        for ax in axes[1:]:
            ax.imshow(img)
            ax.set_axis_off()
        text = "no model kept" if n_kept == 0 else "1 model kept:\nno cloud"
        for ax in axes[1:]:
            ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="w", fontsize=8,
                    bbox=dict(facecolor="k", alpha=0.7))
        axes[1].set_title("VIC", fontsize=8)
        axes[2].set_title("SD across models", fontsize=8)
        im_sd = show_map(axes[2], img, torch.zeros(hw), size=hw, cmap="magma", vmin=0, vmax=sd_max, alpha=0.0)
    else:
        show_map(axes[1], img, vic, "VIC", size=hw, vmin=0, vmax=1.0, fontsize=8)
        im_sd = show_map(axes[2], None, variability, "SD across models", size=hw, cmap="magma", vmin=0,
                         vmax=sd_max, fontsize=8)
    _bar(fig, im_map, bar_map, "normalised map")
    _bar(fig, im_sd, bar_sd, "SD")
    eps = "" if epsilon is None else f", ε = {epsilon:g}"
    axes[0].text(0.0, -0.02, f"r = {ratio:g}{eps}: {n_kept} of {n_candidates} kept", transform=axes[0].transAxes,
                 ha="left", va="top", fontsize=7.5)
    return fig


def vic_frames(grid: Sequence[Sequence[tuple]], x: Tensor, optimal: Tensor, ratios: Sequence[float],
               epsilons: Sequence[float], *, dpi: int = 100) -> list[list[bytes]]:
    """Widget frames (PNG bytes) of one image ``x [1, 3, H, W]`` and its optimal map ``optimal [1, h, w]``
    from :func:`uqxai_lib.studies.derm.vic_grid`: ``frames[i][j]`` shows the optimal map, the VIC and
    the SD at ``ratios[i]`` and ``epsilons[j]``. The SD colour range is fitted to the largest SD of
    the grid (one scale for every frame). For :func:`uqxai_lib.widgets.frame_grid` / ``frame_slider``."""
    from uqxai_lib.widgets import figure_to_png

    if x.ndim != 4 or len(x) != 1:
        raise ValueError(f"x must be one image [1, 3, H, W], got shape {tuple(x.shape)}")
    if len(grid) != len(ratios) or any(len(row) != len(epsilons) for row in grid):
        raise ValueError(f"grid must be {len(ratios)} x {len(epsilons)} (ratios x epsilons)")
    sds = [float(s.max()) for row in grid for (_, s, n, _) in row if s is not None and n >= 2]
    sd_max = max(sds) if sds and max(sds) > 0 else 0.1
    frames = []
    for r, row in zip(ratios, grid):
        out = []
        for eps, (v, s, n, k) in zip(epsilons, row):
            fig = vic_frame(x[0], optimal[0], v, s, n_kept=n, n_candidates=k, ratio=float(r), epsilon=float(eps),
                            sd_max=sd_max)
            out.append(figure_to_png(fig, dpi))
        frames.append(out)
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


def variant_label(row: Mapping[str, Any]) -> str:
    """Short label of a variant row: ``site · r · target · aggregation · filter``."""
    r = row["ratio"] if isinstance(row["ratio"], str) else f"r={float(row['ratio']):g}"
    return f"{row['site']} · {r} · {row['target']} · {row['aggregation']} · {row['filter']}"


def variants_table(rows: Sequence[Mapping[str, Any]], *, digits: int = 3):
    """The variants as a display table (one row each; the numbers come from ``studies.derm.run_variants``)."""
    import pandas as pd

    out = []
    for r in rows:
        lo, hi = r["delta_iou_ci95"]
        out.append({"site": r["site"], "ratio": r["ratio"], "target": r["target"], "aggregation": r["aggregation"],
                    "filter": r["filter"], "kept": f"{r['n_kept']}/{r['n_candidates']}",
                    "IoU optimal": round(r["iou_optimal"], digits), "IoU VIC": round(r["iou_vic"], digits),
                    "ΔIoU [95% CI]": f"{r['delta_iou']:+.4f} [{lo:+.4f}, {hi:+.4f}]",
                    "Dice optimal": round(r["dice_optimal"], digits), "Dice VIC": round(r["dice_vic"], digits),
                    "Spearman(VIC, opt.) median": round(r["spearman_vic_optimal_median"], digits),
                    "verdict": r["verdict"]})
    return pd.DataFrame(out)


def plot_variants(rows: Sequence[Mapping[str, Any]], *, controls: Mapping[str, float] | None = None,
                  poster_delta: float | None = None, ax=None):
    """Forest plot: paired IoU difference VIC − optimal with its 95 % interval for every variant (and
    optional control rows ``{label: delta}`` without interval), the zero line and the poster's
    difference (theirs) as a dashed line."""
    n = len(rows) + (len(controls) if controls else 0)
    fig, ax = _fig_ax(ax, figsize=(7.4, 0.34 * n + 1.2))
    labels = []
    for i, r in enumerate(rows):
        lo, hi = r["delta_iou_ci95"]
        colour = {"higher": "C2", "lower": "C3"}.get(r["verdict"], "0.4")
        ax.errorbar([r["delta_iou"]], [i], xerr=[[r["delta_iou"] - lo], [hi - r["delta_iou"]]], fmt="o", ms=4,
                    color=colour, capsize=2)
        labels.append(f"{variant_label(r)}  (n={r['n_kept']})")
    for j, (name, d) in enumerate((controls or {}).items()):
        ax.plot([d], [len(rows) + j], "D", color="k", ms=4)
        labels.append(name)
    ax.axvline(0, color="k", lw=0.8)
    if poster_delta is not None:
        ax.axvline(poster_delta, color="C3", ls="--", lw=1, label=f"poster (theirs): {poster_delta:+.3f}")
        ax.legend(fontsize=7, frameon=False, loc="lower right")
    ax.set_yticks(range(n))
    ax.set_yticklabels(labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("mean IoU difference, VIC − optimal (95 % interval over lesions)")
    fig.tight_layout()
    return fig


def plot_deletion_insertion(curves: Mapping[str, Tensor], aucs: Mapping[str, float], *, fill: str):
    """Mean deletion and insertion curves in map order and in random order (probability of the
    explained class against the share of patches changed), with their areas in the legend."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(7.2, 2.8), sharey=True)
    for ax, name in zip(axes, ("deletion", "insertion")):
        for order, style in (("map", "-"), ("random", "--")):
            c = torch.as_tensor(curves[f"{name}_{order}"]).double().numpy()
            f = np.linspace(0, 1, len(c))
            key = f"{name}_auc" + ("" if order == "map" else "_random")
            ax.plot(f, c, style, color="C0" if order == "map" else "0.45",
                    label=f"{'map' if order == 'map' else 'random'} order (area {aucs[key]:.3f})")
        ax.set_xlabel(f"share of patches {'deleted' if name == 'deletion' else 'inserted'} ({fill} fill)")
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=7, frameon=False)
    axes[0].set_ylabel("probability of the explained class")
    fig.tight_layout()
    return fig


def plot_sanity(x: Tensor, trained: Tensor, randomised: Tensor, rows: Sequence[Mapping[str, Any]], *, size: float = 1.6):
    """Cascading randomisation: for a few images, the trained model's map and each randomised
    model's map (columns, from the head down), with the step's median Spearman to the trained maps."""
    import matplotlib.pyplot as plt

    from uqxai_lib.saliency import normalize

    n = trained.shape[0]
    cols = 2 + len(rows)
    fig, axes = plt.subplots(n, cols, figsize=(cols * size, n * size + 0.4), squeeze=False)
    hw = tuple(x.shape[-2:])
    im = None
    for i in range(n):
        img = display_image(x[i])
        axes[i, 0].imshow(img)
        axes[i, 0].set_axis_off()
        im = show_map(axes[i, 1], img, normalize(trained[i : i + 1], 2)[0], size=hw, vmin=0, vmax=1.0)
        for j, r in enumerate(rows):
            im = show_map(axes[i, 2 + j], img, normalize(randomised[j, i : i + 1].float(), 2)[0], size=hw, vmin=0,
                          vmax=1.0)
    axes[0, 0].set_title("input", fontsize=8)
    axes[0, 1].set_title("trained", fontsize=8)
    for j, r in enumerate(rows):
        axes[0, 2 + j].set_title(f"random from\n{r['randomised_from']}\nρ = {r['spearman_to_trained']:.2f}", fontsize=7)
    fig.colorbar(im, ax=axes, shrink=0.6, label="normalised map")
    return fig


def plot_fidelity_vs_stability(fidelity: Tensor, variability: Tensor, correct: Tensor, *, chance: float,
                               spearman: float, ci95: Sequence[float], ax=None):
    """One point per test image: mean VIC variability (instability) against the VIC's mass in the
    lesion mask, coloured by correct / misclassified, with the chance level of the mass."""
    fig, ax = _fig_ax(ax, figsize=(4.8, 3.4))
    f = torch.as_tensor(fidelity).double().numpy()
    v = torch.as_tensor(variability).double().flatten(1).mean(1).numpy()
    c = torch.as_tensor(correct).bool().numpy()
    ax.scatter(v[c], f[c], s=10, color="C0", alpha=0.6, label="correct")
    ax.scatter(v[~c], f[~c], s=14, color="C3", marker="x", alpha=0.8, label="misclassified")
    ax.axhline(chance, color="k", ls=":", lw=0.8, label=f"chance ({chance:.2f})")
    ax.set_xlabel("mean VIC variability (SD over kept models)")
    ax.set_ylabel("VIC mass in lesion mask")
    ax.set_title(f"Spearman {spearman:+.2f} [{ci95[0]:+.2f}, {ci95[1]:+.2f}]", fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def per_class_fidelity_table(fid: Mapping[str, Any], *, digits: int = 3):
    """The per-class part of a ``studies.derm.fidelity_summary`` record as a display table."""
    import pandas as pd

    rows = []
    for name, r in fid["per_class"].items():
        lo, hi = r["mass_in_mask_ci95"]
        rows.append({"class": name, "n": r["n"], "mass in mask [95% CI]": f"{r['mass_in_mask']:.{digits}f} "
                     f"[{lo:.{digits}f}, {hi:.{digits}f}]", "chance": round(r["chance"], digits),
                     "pointing game": round(r["pointing_game"], digits)})
    return pd.DataFrame(rows).set_index("class")
