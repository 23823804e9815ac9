"""Figures of the ``mri_mc_dropout`` chapter (MC-dropout Grad-CAM on brain MRI): drawing only.

Every function takes data computed by :mod:`uqxai_lib.studies.mri` (or plain tensors) and returns a
matplotlib figure (``ax=`` where one panel suffices): the image gallery, the confusion matrix, the
Fig. 4 replica, repeatability of correct vs misclassified images, repeatability vs predictive
uncertainty, accuracy-coverage curves, the sweeps and the widget frames. Maps are drawn with
perceptually uniform colour maps (viridis for maps, magma for spreads) and a colour bar.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from uqxai_lib.report import fmt_number
from uqxai_lib.viz.common import TEXT_WIDTH_IN, show_map, to_numpy

#: width of the figures of this chapter in inches at 100 px per inch: the text column is 688 px wide
#: (654 px at 1280 px windows with the side bars open), so 650 px figures are never scaled down
COLUMN_IN = min(TEXT_WIDTH_IN, 6.5)

__all__ = [
    "mc_frames",
    "plot_abstention",
    "plot_confusion",
    "plot_fidelity_vs_stability",
    "plot_fig4",
    "plot_gallery",
    "plot_mc_frame",
    "plot_rho_groups",
    "plot_rho_vs_uncertainty",
    "plot_sanity",
    "plot_sweeps",
    "plot_training",
]


def plot_gallery(images: Sequence[Any], titles: Sequence[str], *, masks: Sequence[Any] | None = None,
                 ncols: int | None = None):
    """Gray images in a row (or grid) with titles and, if given, the tumour outline in red."""
    import matplotlib.pyplot as plt

    n = len(images)
    ncols = ncols or n
    nrows = (n + ncols - 1) // ncols
    side = min(1.9, COLUMN_IN / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(side * ncols, (side + 0.2) * nrows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if k >= n:
            continue
        ax.imshow(to_numpy(images[k]), cmap="gray", vmin=0, vmax=1)
        if masks is not None and masks[k] is not None and to_numpy(masks[k]).any():
            ax.contour(to_numpy(masks[k]).astype(float), levels=[0.5], colors="red", linewidths=0.8)
        ax.set_title(titles[k], fontsize=8)
    fig.tight_layout()
    return fig


def plot_confusion(confusion: Any, classes: Sequence[str], ax=None, *, title: str | None = None):
    """Confusion matrix (rows true, columns predicted) with counts.

    ``confusion`` as returned by :func:`uqxai_lib.metrics.classification_summary` (``["confusion"]``).
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3.8, 3.4)) if ax is None else (ax.figure, ax)
    c = to_numpy(confusion).astype(int)
    ax.imshow(c, cmap="Blues")
    for i in range(c.shape[0]):
        for j in range(c.shape[1]):
            ax.text(j, i, str(c[i, j]), ha="center", va="center",
                    color="white" if c[i, j] > c.max() / 2 else "black", fontsize=9)
    ax.set_xticks(range(len(classes)), classes, rotation=30, ha="right", fontsize=7)
    ax.set_yticks(range(len(classes)), classes, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def _colorbar(fig, handle, ax, label: str, *, cax=None) -> None:
    """A slim, opaque colour bar for ``handle`` beside ``ax`` (or in ``cax``)."""
    from matplotlib.cm import ScalarMappable

    opaque = ScalarMappable(norm=handle.norm, cmap=handle.get_cmap())  # the map is drawn with alpha; its bar is not
    cb = fig.colorbar(opaque, ax=ax, cax=cax, fraction=0.046, pad=0.03)
    cb.ax.tick_params(labelsize=6)
    cb.set_label(label, fontsize=6)


def plot_fig4(cases: Sequence[Mapping[str, Any]], *, n_mc: int = 4, width: float = COLUMN_IN):
    """Replica of Salvi et al. (2025) Fig. 4 for a text column: two rows of four panels per case.

    Each case is a mapping as :func:`uqxai_lib.studies.mri.fig4_case` returns it: ``image`` (gray
    [H, W] in [0, 1]), ``det`` (deterministic map), ``mc`` ([S, h, w] MC maps), ``rho`` ([S] per-pass
    rho), ``mean`` / ``std`` (MC mean and standard deviation maps), ``rho_mean``, ``title`` (the
    case's heading) and optionally ``mask`` (bool [H, W]) and ``overlap`` (name -> share of map mass
    inside the mask). First row: input (tumour outline), deterministic map, MC mean, MC standard
    deviation (own colour bar); second row: the first ``n_mc`` (at most 4) MC maps with their rho.
    Maps are min-max scaled (one colour bar per case).
    """
    import matplotlib.pyplot as plt

    n_mc = min(int(n_mc), 4)
    panel = width / 4.6
    fig = plt.figure(figsize=(width, len(cases) * (2 * panel + 1.0)))
    subs = fig.subfigures(len(cases), 1, squeeze=False)[:, 0]
    for sub, case in zip(subs, cases):
        grid = sub.subplots(2, 5, gridspec_kw={"width_ratios": [1, 1, 1, 1, 0.07], "wspace": 0.08})
        axes = grid[:, :4]
        img = to_numpy(case["image"])
        mc = torch.as_tensor(case["mc"])
        rho = to_numpy(case["rho"])
        mask = case.get("mask")
        ov = case.get("overlap") or {}
        sub.suptitle(case["title"], fontsize=8.5, x=0.02, ha="left")
        axes[0, 0].imshow(img, cmap="gray", vmin=0, vmax=1)
        if mask is not None and to_numpy(mask).any():
            axes[0, 0].contour(to_numpy(mask).astype(float), levels=[0.5], colors="red", linewidths=0.8)
        axes[0, 0].set_title("input\n", fontsize=7.5)
        axes[0, 0].set_axis_off()
        show_map(axes[0, 1], img, case["det"], "deterministic" + (f"\nin mask {ov['det']:.2f}" if "det" in ov else ""),
                 mask=mask, normalize=True)
        h = show_map(axes[0, 2], img, case["mean"], f"MC mean\nρ̄ = {fmt_number(case['rho_mean'], 2)}", mask=mask,
                     normalize=True)
        hs = show_map(axes[0, 3], img, case["std"], "MC std\n", mask=mask, cmap="magma")
        for k in range(4):
            ax = axes[1, k]
            if k < min(n_mc, mc.shape[0]):
                show_map(ax, img, mc[k], f"MC pass {k + 1}\nρ = {fmt_number(rho[k], 2)}", mask=mask, normalize=True)
            else:
                ax.set_axis_off()
        _colorbar(sub, hs, None, "std (raw)", cax=grid[0, 4])
        _colorbar(sub, h, None, "maps (min-max)", cax=grid[1, 4])
    return fig


def plot_rho_groups(rho: Tensor, correct: Tensor, ax=None, *, title: str | None = None):
    """Violins of the repeatability of correct and misclassified images (NaN rho and empty groups left out)."""
    from uqxai_lib.viz.common import group_distributions

    rho = torch.as_tensor(rho, dtype=torch.float64)
    correct = torch.as_tensor(correct, dtype=torch.bool)
    ok = torch.isfinite(rho)
    groups = {name: rho[ok & sel] for name, sel in (("correct", correct), ("misclassified", ~correct))
              if bool((ok & sel).any())}
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.0, 2.6)) if ax is None else (ax.figure, ax)
    if not groups:
        ax.text(0.5, 0.5, "no defined ρ", ha="center", va="center", transform=ax.transAxes)
        return fig
    return group_distributions(groups, ax=ax, ylabel="repeatability ρ", title=title)


def plot_rho_vs_uncertainty(rho: Tensor, scores: Mapping[str, Tensor], correct: Tensor, *,
                            spearman: Mapping[str, float] | None = None):
    """Scatter of rho against each predictive-uncertainty score; ``spearman[name]`` (if given) in each title.

    The correlations are computed by the caller (:func:`uqxai_lib.studies.mri.uncertainty_table`).
    """
    import matplotlib.pyplot as plt

    correct = to_numpy(correct).astype(bool)
    r = to_numpy(rho)
    fig, axes = plt.subplots(1, len(scores), figsize=(COLUMN_IN, 2.6), squeeze=False, sharey=True)
    for ax, (name, s) in zip(axes[0], scores.items()):
        v = to_numpy(s)
        ok = np.isfinite(r) & np.isfinite(v)
        ax.scatter(v[ok & correct], r[ok & correct], s=8, alpha=0.5, label="correct", color="tab:blue")
        ax.scatter(v[ok & ~correct], r[ok & ~correct], s=18, alpha=0.9, label="misclassified",
                   color="tab:red", marker="x")
        ax.set_xlabel(name)
        if spearman is not None and name in spearman:
            ax.set_title(f"Spearman r = {spearman[name]:.2f}", fontsize=9)
    axes[0][0].set_ylabel("repeatability ρ")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_abstention(curves: Mapping[str, tuple[Tensor, Tensor]], ax=None, *, aurc: Mapping[str, float] | None = None):
    """Accuracy of the kept images against coverage, one line per abstention score."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.6, 3.4)) if ax is None else (ax.figure, ax)
    for name, (cov, acc) in curves.items():
        label = name if aurc is None else f"{name} (AURC {aurc[name]:.3f})"
        ax.plot(to_numpy(cov), to_numpy(acc), label=label, lw=1.4)
    ax.set_xlabel("coverage (share of images answered)")
    ax.set_ylabel("accuracy on answered images")
    ax.set_xlim(0, 1.0)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig


def plot_sweeps(p_table: Any, t_table: Any, settle: Any):
    """Three panels: gap and AUROC against dropout rate, against pass count, and settling."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(COLUMN_IN, 2.6))
    for ax, tab, xlabel in ((axes[0], p_table, "dropout rate p"), (axes[1], t_table, "passes T")):
        x = np.asarray(tab.index, dtype=float)
        ax.plot(x, tab["rho_correct"], "o-", label="mean ρ correct")
        ax.plot(x, tab["rho_mis"], "s-", label="mean ρ misclassified")
        ax.plot(x, tab["auroc"], "^--", label="AUROC")
        ax.set_xlabel(xlabel)
        ax.set_ylim(-0.05, 1.05)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    x = np.asarray(settle.index, dtype=float)
    axes[2].plot(x, settle.iloc[:, 0], "o-", label=settle.columns[0])
    axes[2].plot(x, settle.iloc[:, 1], "s-", label=settle.columns[1])
    axes[2].set_xlabel("passes T")
    for ax, ticks in ((axes[1], t_table.index), (axes[2], settle.index)):  # log scale, ticks at the grid
        ax.set_xscale("log")
        ax.set_xticks([float(t) for t in ticks], [str(t) for t in ticks])
        ax.minorticks_off()
    axes[2].legend(fontsize=7)
    axes[2].grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_mc_frame(items: Sequence[Mapping[str, Any]]):
    """One widget frame: a row per image with the MC mean map and the MC std map (own scale).

    Each item has ``image`` (gray [H, W]), ``mean`` and ``std`` maps, ``title`` and optionally
    ``mask`` (tumour outline).
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(items), 2, figsize=(5.0, 2.45 * len(items)), squeeze=False)
    for row, it in zip(axes, items):
        img = to_numpy(it["image"])
        h = show_map(row[0], img, it["mean"], "MC mean", mask=it.get("mask"), normalize=True)
        _colorbar(fig, h, row[0], "min-max")
        h = show_map(row[1], img, it["std"], "MC std", mask=it.get("mask"), cmap="magma")
        _colorbar(fig, h, row[1], "raw")
        row[0].text(0.0, 1.22, it["title"], transform=row[0].transAxes, fontsize=7.5, ha="left")
    fig.tight_layout()
    return fig


def mc_frames(frame_items: Sequence[Sequence[Sequence[Mapping[str, Any]]]], *, dpi: int = 72) -> list[list[bytes]]:
    """PNG frames of a (setting x pass count) widget: :func:`plot_mc_frame` of each frame's items.

    ``frame_items[i][j]`` as :func:`uqxai_lib.studies.mri.mc_frame_items` returns it.
    """
    from uqxai_lib.widgets import figure_to_png

    return [[figure_to_png(plot_mc_frame(items), dpi=dpi) for items in row] for row in frame_items]


def plot_training(history: Sequence[Mapping[str, float]], *, best_epoch: int | None = None,
                  confusion: Any = None, classes: Sequence[str] | None = None):
    """Training and validation loss and validation accuracy per epoch (the kept epoch dotted) and, with
    ``confusion`` (rows true, columns predicted) and ``classes``, the test confusion matrix beside them."""
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    n = 3 if confusion is not None else 2
    fig, axes = plt.subplots(1, n, figsize=(COLUMN_IN, 2.5), gridspec_kw={"width_ratios": [1, 1, 1.1][:n]})
    axes[0].plot(ep, [h["train_loss"] for h in history], "o-", ms=3, label="training")
    axes[0].plot(ep, [h["val_loss"] for h in history], "s-", ms=3, label="validation")
    axes[0].set_ylabel("loss (class-weighted)")
    axes[1].plot(ep, [h["val_accuracy"] for h in history], "^-", ms=3, color="tab:green")
    axes[1].set_ylabel("validation accuracy")
    axes[1].set_ylim(0, 1)
    for ax in axes[:2]:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if best_epoch is not None:
            ax.axvline(best_epoch, color="gray", ls=":", lw=1)
    axes[0].legend(fontsize=7)
    if confusion is not None:
        plot_confusion(confusion, classes or [str(i) for i in range(len(confusion))], ax=axes[2],
                       title="test set, dropout off")
    fig.tight_layout()
    return fig


def plot_sanity(images: Sequence[Any], maps: Sequence[Tensor], column_titles: Sequence[str], *,
                masks: Sequence[Any] | None = None, row_titles: Sequence[str] | None = None):
    """Cascading randomisation: one row per image; columns = the trained model's map, then each randomised
    model's map (``maps[k]`` is ``[B, h, w]`` for column ``k``); one colour bar for all panels."""
    import matplotlib.pyplot as plt

    nrow, ncol = len(images), len(maps)
    side = min(1.55, (COLUMN_IN - 0.5) / ncol)
    fig = plt.figure(figsize=(COLUMN_IN, (side + 0.35) * nrow + 0.1))
    grid = fig.add_gridspec(nrow, ncol + 1, width_ratios=[1] * ncol + [0.08], wspace=0.06, hspace=0.25)
    h = None
    for r in range(nrow):
        img = to_numpy(images[r])
        for c in range(ncol):
            ax = fig.add_subplot(grid[r, c])
            h = show_map(ax, img, maps[c][r], column_titles[c] if r == 0 else "",
                         mask=None if masks is None else masks[r], normalize=True)
            if c == 0 and row_titles is not None:
                ax.text(-0.08, 0.5, row_titles[r], transform=ax.transAxes, rotation=90, ha="right", va="center",
                        fontsize=7)
    if h is not None:
        _colorbar(fig, h, None, "map (min-max)", cax=fig.add_subplot(grid[:, ncol]))
    return fig


def plot_fidelity_vs_stability(mass: Tensor, rho: Tensor, correct: Tensor, ax=None, *, chance: float | None = None,
                               title: str | None = None):
    """Per image: fidelity (share of the map in the tumour) against stability (ρ), coloured correct / misclassified."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 3.3)) if ax is None else (ax.figure, ax)
    m, r, c = to_numpy(mass), to_numpy(rho), to_numpy(correct).astype(bool)
    ok = np.isfinite(m) & np.isfinite(r)
    ax.scatter(m[ok & c], r[ok & c], s=10, alpha=0.6, color="tab:blue", label="correct")
    ax.scatter(m[ok & ~c], r[ok & ~c], s=20, alpha=0.9, color="tab:red", marker="x", label="misclassified")
    if chance is not None:
        ax.axvline(chance, color="gray", ls=":", lw=1, label="chance (uniform map)")
    ax.set_xlabel("fidelity: share of map mass in the tumour")
    ax.set_ylabel("stability: repeatability ρ")
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig
