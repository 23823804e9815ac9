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
    "plot_sweep",
    "plot_vic_examples",
    "vic_frame",
    "vic_frames",
    "plot_samples",
    "performance_table",
    "variant_label",
    "variants_table",
    "sweep_table",
    "maps_right_table",
    "plot_variants",
    "display_image",
]


# ----------------------------------------------------------------------------- figures
def display_image(x: Tensor) -> np.ndarray:
    """A normalised image ``[3, H, W]`` as an RGB array ``[H, W, 3]`` in [0, 1]."""
    from uqxai_lib.data.synthetic_derm import denormalize

    return denormalize(x[None].detach().cpu().float())[0].permute(1, 2, 0).numpy()


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


def plot_samples(data, per_class: int = 4, *, size: float | None = None):
    """A few images of each class (first ``per_class`` of each) above their lesion masks; square
    panels ``size`` inches wide (default: the row fits a 6.8 in column)."""
    import matplotlib.pyplot as plt

    if data.mask is None:
        raise ValueError("the data set has no lesion masks")
    show = torch.cat([torch.nonzero(data.y == c).flatten()[:per_class] for c in range(len(data.classes))])
    size = min(1.5, 6.8 / len(show)) if size is None else size
    fig, axes = plt.subplots(2, len(show), figsize=(size * len(show), 2 * size + 0.25), squeeze=False)
    for j, i in enumerate(show.tolist()):
        axes[0, j].imshow(display_image(data.x[i]))
        axes[0, j].set_title(data.classes[int(data.y[i])], fontsize=8)
        axes[1, j].imshow(data.mask[i].cpu().numpy(), cmap="gray")
    for a in axes.flat:
        a.set_axis_off()
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


_SITE_WORDS = {"post_activation": "after last ReLU", "pre_bn": "before last BatchNorm",
               "earlier_block": "previous stage", "rashomon_finetuned": "fine-tuned models",
               "control_blurred": "control: blurred optimal map", "control_seed_ensemble":
               "control: other training seeds"}
_FILTER_WORDS = {"loss": "", "temperature": "temperature filter", "loss_auroc": "loss + AUROC filter",
                 "none": "no filter"}


def variant_label(row: Mapping[str, Any]) -> str:
    """A variant in plain words: where (or how) the models were made, then only what differs from
    the chapter's choices (its ratio, the optimal model's class, normalised maps, the loss filter).

    >>> variant_label({"site": "pre_bn", "ratio": 0.1, "target": "own", "aggregation": "normalised", "filter": "loss"})
    'before last BatchNorm, r = 0.1, own class'
    """
    site = str(row["site"])
    parts = [_SITE_WORDS.get(site, site)]
    if site.startswith("control_blurred"):
        return f"{parts[0]} (σ = {str(row['filter']).split('=')[-1]})"
    r = row.get("ratio")
    if r == "random":
        parts.append("random ratio")
    elif isinstance(r, (int, float)):
        parts.append(f"r = {float(r):g}")
    if row.get("target") == "own":
        parts.append("own class")
    if row.get("aggregation") == "raw":
        parts.append("raw mean")
    f = _FILTER_WORDS.get(str(row.get("filter")), str(row.get("filter")))
    if f and not site.startswith("control"):
        parts.append(f)
    return ", ".join(parts)


def _delta(r: Mapping[str, Any]) -> str:
    """ΔIoU and its interval at one fixed precision (4 decimals), real minus signs."""
    lo, hi = r["delta_iou_ci95"]
    return (f"{r['delta_iou']:+.4f} ({lo:+.4f} to {hi:+.4f})").replace("-", "−")


def variants_table(rows: Sequence[Mapping[str, Any]], *, epsilon: float):
    """The variants as a display table, key columns first: variant (plain words), models kept /
    candidates, median Spearman(VIC, optimal), ΔIoU with its 95 % interval, verdict ("undefined"
    rows show their reason instead of numbers). The numbers come from
    :func:`uqxai_lib.studies.derm.compare_to_optimal`; the full rows are in the results JSON."""
    import pandas as pd

    from uqxai_lib.report import fmt_number

    out = []
    for r in rows:
        undefined = r["verdict"] == "undefined"
        kept = f"{r['n_kept']} / {r['n_candidates']}"
        if "n_within_tolerance" in r and r.get("filter") == "none":
            kept = f"{r['n_kept']} ({r['n_within_tolerance']} within 1 + ε)"
        out.append({"variant": variant_label(r), "models": kept,
                    "ρ (VIC, optimal)": "–" if undefined else fmt_number(r["spearman_vic_optimal_median"]),
                    "ΔIoU (95 % interval)": "–" if undefined else _delta(r),
                    "verdict": r["verdict"] + (" (< 2 models kept)" if undefined else "")})
    return pd.DataFrame(out).set_index("variant")


def sweep_table(table):
    """The prune-ratio sweep for display: ratio, models kept of the candidates, median and 5-95 %
    range of the relative validation loss (3 decimals)."""
    import pandas as pd

    return pd.DataFrame({
        "prune ratio": [f"{r:g}" for r in table["ratio"]],
        "models kept": [f"{int(a)} / {int(b)}" for a, b in zip(table["n_kept"], table["n_candidates"])],
        "loss / optimum, median": [f"{v:.3f}" for v in table["rel_loss_median"]],
        "5–95 %": [f"{a:.3f}–{b:.3f}" for a, b in zip(table["rel_loss_q05"], table["rel_loss_q95"])],
    }).set_index("prune ratio")


def maps_right_table(fidelity: Mapping[str, Any], sanity: Mapping[str, Any] | None,
                     fvs: Mapping[str, Any] | None):
    """The assess record's fidelity, sanity and fidelity-vs-stability sections as one two-column
    table (quantity, value) with formatted numbers."""
    import pandas as pd

    from uqxai_lib.report import fmt_interval, fmt_number

    rows = [("mass in lesion mask (95 % interval)", f"{fmt_number(fidelity['mass_in_mask'])} "
             f"({fmt_interval(fidelity['mass_in_mask_ci95'])})"),
            ("chance (mask area share)", fmt_number(fidelity["chance"])),
            ("pointing game (max in mask)", fmt_number(fidelity["pointing_game"]))]
    if "deletion_auc" in fidelity:
        rows += [("deletion area: map order / random (lower is better)",
                  f"{fmt_number(fidelity['deletion_auc'])} / {fmt_number(fidelity['deletion_auc_random'])}"),
                 ("insertion area: map order / random (higher is better)",
                  f"{fmt_number(fidelity['insertion_auc'])} / {fmt_number(fidelity['insertion_auc_random'])}")]
    for step in (sanity or {}).get("steps", []):
        rows.append((f"sanity: median ρ after randomising {step['randomised']}",
                     fmt_number(step["median_rho"])
                     + (f" ({step['n_constant']} constant)" if step["n_constant"] else "")))
    if sanity:
        rows.append(("sanity outcome", f"{sanity['outcome']} (threshold {fmt_number(sanity['threshold'], 2)})"))
    if fvs:
        rows.append(("Spearman(mass in mask, stability) (95 % interval)",
                     f"{fmt_number(fvs['spearman'])} ({fmt_interval(fvs['ci95'])}), n = {fvs['n']}"))
    return pd.DataFrame(rows, columns=["quantity", "value"]).set_index("quantity")


def plot_variants(rows: Sequence[Mapping[str, Any]], *, poster_delta: float | None = None, ax=None):
    """Forest plot: paired IoU difference VIC − optimal with its 95 % interval for every row, the
    zero line and the poster's difference (theirs) as a dashed line. An "undefined" row (fewer than
    two kept models) is labelled as such, without a point."""
    n = len(rows)
    fig, ax = _fig_ax(ax, figsize=(6.5, 0.24 * n + 1.0))  # labels inside: fits a 6.9 in column
    labels = []
    for i, r in enumerate(rows):
        if r["verdict"] == "undefined":
            ax.text(0, i, "undefined", fontsize=7, va="center", ha="center", color="0.4")
        else:
            lo, hi = r["delta_iou_ci95"]
            colour = {"higher": "C2", "lower": "C3"}.get(r["verdict"], "0.4")
            ax.errorbar([r["delta_iou"]], [i], xerr=[[r["delta_iou"] - lo], [hi - r["delta_iou"]]], fmt="o", ms=3.5,
                        color=colour, capsize=2)
        labels.append(f"{variant_label(r)} ({r['n_kept']})")
    ax.axvline(0, color="k", lw=0.8)
    if poster_delta is not None:
        ax.axvline(poster_delta, color="C3", ls="--", lw=1)
        ax.text(poster_delta, -0.9, f"poster (theirs) {poster_delta:+.3f}", color="C3", fontsize=7, ha="right",
                va="bottom")
    ax.set_yticks(range(n))
    ax.set_yticklabels(labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("ΔIoU, VIC − optimal (95 % interval over lesions)")
    ax.set_ylabel("variant (models in the cloud)", fontsize=8)
    fig.tight_layout()
    return fig


