"""Figures of the primer chapter (``primer_gradcam``); the scores they show are computed in
:mod:`uqxai_lib.studies.primer`.

Figures take ``ax=``/``axes=`` where sensible and return the figure.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from torch import Tensor

from .common import _colorbar, _fig_ax, column_figsize, overlay_map_2d, to_numpy

__all__ = [
    "display_image",
    "plot_examples",
    "plot_weights",
    "threshold_frame",
]


def display_image(x: Tensor, mean: float = 0.5, sd: float = 0.25) -> np.ndarray:
    """Standardised ``[3, H, W]`` image -> ``[H, W, 3]`` NumPy array in [0, 1] for ``imshow``."""
    return np.clip(to_numpy(x * sd + mean).transpose(1, 2, 0), 0, 1)


def plot_examples(images: Sequence[Tensor], masks: Sequence[Tensor], maps: Mapping[str, Tensor],
                  titles: Sequence[str] | None = None, size: float | None = None):
    """Grid: one row per example; columns image, ground-truth mask, then each method's map overlaid
    (min–max scaled, one shared colour bar); the figure fits the text column."""
    import matplotlib.pyplot as plt

    n, names = len(images), list(maps)
    w, h = column_figsize(2 + len(names), max_panel=1.9) if size is None else (size * (2 + len(names)), size)
    fig, axes = plt.subplots(n, 2 + len(names), figsize=(w, h * n), squeeze=False)
    for i in range(n):
        img = display_image(images[i])
        axes[i, 0].imshow(img, interpolation="nearest")
        axes[i, 0].set_title(titles[i] if titles else "image", fontsize=8)
        axes[i, 1].imshow(to_numpy(masks[i]), cmap="gray", interpolation="nearest")
        axes[i, 1].set_title("ground truth", fontsize=8)
        for j, name in enumerate(names):
            overlay_map_2d(img, maps[name][i], ax=axes[i, 2 + j], title=name, outline=masks[i])
        for ax in axes[i]:
            ax.set_axis_off()
    fig.tight_layout()
    if names:
        _colorbar(fig, axes[0, 2].get_images()[-1], list(axes[:, 2:].ravel()), "map (min–max scaled)")
    return fig


def plot_weights(weights: Mapping[str, Tensor], ax=None, top: int | None = None):
    """Bar chart of channel weights ``{method: [K]}`` of one image (channels sorted by the first method)."""
    fig, ax = _fig_ax(ax, figsize=(6.0, 2.6))
    names = list(weights)
    first = to_numpy(weights[names[0]])
    order = np.argsort(-first)[: top or len(first)]
    width = 0.8 / len(names)
    for j, name in enumerate(names):
        w = to_numpy(weights[name])[order]
        w = w / (np.abs(w).max() or 1.0)
        ax.bar(np.arange(len(order)) + j * width, w, width=width, label=name)
    ax.axhline(0, color="black", lw=0.5)
    ax.set_xlabel(f"channel k (sorted by {names[0]} weight)")
    ax.set_ylabel("weight / max |weight|")
    ax.set_xticks([])
    ax.legend(fontsize=8, frameon=False)
    return fig


def threshold_frame(images: Sequence[Tensor], masks: Sequence[Tensor], region: Tensor, threshold: float,
                    mean_iou: float, *, name: str = "map", size: float | None = None):
    """One widget frame: each example with its map's region at ``threshold`` x max (``region``, bool
    ``[n, H, W]`` from :func:`uqxai_lib.studies.primer.threshold_regions`; red) and the ground-truth
    outline (white); the title gives the test-set mean IoU at this threshold."""
    import matplotlib.pyplot as plt

    n = len(images)
    w, h = column_figsize(n, max_panel=2.0, extra_height=0.35) if size is None else (size * n, size + 0.35)
    fig, axes = plt.subplots(1, n, figsize=(w, h), squeeze=False)
    for i, ax in enumerate(axes[0]):
        ax.imshow(display_image(images[i]), interpolation="nearest")
        shade = np.zeros(tuple(region.shape[-2:]) + (4,))
        shade[to_numpy(region[i]) > 0] = (1.0, 0.1, 0.1, 0.45)
        ax.imshow(shade, interpolation="nearest")
        ax.contour(to_numpy(masks[i]), levels=[0.5], colors="white", linewidths=0.8)
        ax.set_axis_off()
    fig.suptitle(f"{name} ≥ {threshold:g} × max: mean IoU on the test set {mean_iou:.3f}", fontsize=9)
    fig.tight_layout()
    return fig
