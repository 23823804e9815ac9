"""Primer chapter (``primer_gradcam``): localisation scores against known relevance masks, and figures.

A map ``[B, h, w]`` (layer resolution) is upsampled bilinearly to the image size and scored against
the ground-truth mask ``[B, H, W]`` of the class-defining shape:

* **mass in mask**: share of the map's mass inside the mask (chance = the mask's area share);
* **IoU / Dice** of the map binarised with one stated rule (:func:`uqxai_lib.metrics.binarize`).

Figures take ``ax=``/``axes=`` where sensible and return the figure.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from .. import metrics, saliency
from .common import _fig_ax, overlay_map_2d, to_numpy

__all__ = [
    "localisation_scores",
    "mask_at_resolution",
    "score_table",
    "threshold_sweep",
    "display_image",
    "plot_examples",
    "plot_weights",
    "threshold_frame",
]


def display_image(x: Tensor, mean: float = 0.5, sd: float = 0.25) -> np.ndarray:
    """Standardised ``[3, H, W]`` image -> ``[H, W, 3]`` NumPy array in [0, 1] for ``imshow``."""
    return np.clip(to_numpy(x * sd + mean).transpose(1, 2, 0), 0, 1)


def localisation_scores(maps: Tensor, mask: Tensor, rule: Any = "otsu") -> dict[str, Tensor]:
    """Per-image ``mass_in_mask``, ``iou`` and ``dice`` of maps ``[B, h, w]`` against masks ``[B, H, W]``.

    >>> m = torch.zeros(1, 2, 2); m[0, 0, 0] = 1.0
    >>> k = torch.zeros(1, 4, 4, dtype=torch.bool); k[0, :2, :2] = True
    >>> {n: round(float(v), 3) for n, v in localisation_scores(m, k).items()}  # (1 + .75)**2 / 2**2
    {'mass_in_mask': 0.766, 'iou': 1.0, 'dice': 1.0}
    """
    if mask.ndim != 3 or maps.ndim != 3 or len(maps) != len(mask):
        raise ValueError(f"need maps [B, h, w] and masks [B, H, W], got {tuple(maps.shape)} and {tuple(mask.shape)}")
    up = saliency.upsample(maps, tuple(mask.shape[-2:])).clamp(min=0)
    region = metrics.binarize(up, rule)
    mask = mask.to(up.device)
    return {
        "mass_in_mask": metrics.mass_in_mask(up, mask),
        "iou": metrics.iou(region, mask),
        "dice": metrics.dice(region, mask),
    }


def mask_at_resolution(mask: Tensor, size: Sequence[int]) -> Tensor:
    """Share of each layer cell covered by the mask: ``[B, H, W]`` bool -> ``[B, *size]`` float.

    Used as a map, it is the best a map at the layer's resolution can do (up to the upsampling):
    a reference for how much of the gap to a perfect score is due to resolution alone.

    >>> k = torch.zeros(1, 4, 4, dtype=torch.bool); k[0, :2, :3] = True
    >>> mask_at_resolution(k, (2, 2))
    tensor([[[1.0000, 0.5000],
             [0.0000, 0.0000]]])
    """
    return torch.nn.functional.adaptive_avg_pool2d(mask[:, None].float(), tuple(size))[:, 0]


def score_table(scores: Mapping[str, Mapping[str, Tensor]], *, chance: float | None = None, digits: int = 3):
    """DataFrame: one row per method, mean of each score (NaN maps skipped); optional chance row."""
    import pandas as pd

    rows = {name: {k: round(float(torch.nanmean(v.double())), digits) for k, v in s.items()}
            for name, s in scores.items()}
    if chance is not None:
        rows["uniform map (chance)"] = {"mass_in_mask": round(chance, digits)}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("map")


def threshold_sweep(maps: Tensor, mask: Tensor, thresholds: Sequence[float]) -> Tensor:
    """Mean IoU over images of maps binarised with ``("fraction_of_max", t)`` for each ``t``: ``[T]``."""
    out = [localisation_scores(maps, mask, ("fraction_of_max", float(t)))["iou"].mean() for t in thresholds]
    return torch.stack(out)


def plot_examples(images: Sequence[Tensor], masks: Sequence[Tensor], maps: Mapping[str, Tensor],
                  titles: Sequence[str] | None = None, size: float = 1.9):
    """Grid: one row per example; columns image, ground-truth mask, then each method's map overlaid."""
    import matplotlib.pyplot as plt

    n, names = len(images), list(maps)
    fig, axes = plt.subplots(n, 2 + len(names), figsize=(size * (2 + len(names)), size * n), squeeze=False)
    for i in range(n):
        img = display_image(images[i])
        axes[i, 0].imshow(img, interpolation="nearest")
        axes[i, 0].set_title(titles[i] if titles else "image", fontsize=8)
        axes[i, 1].imshow(to_numpy(masks[i]), cmap="gray", interpolation="nearest")
        axes[i, 1].set_title("ground truth", fontsize=8)
        for j, name in enumerate(names):
            overlay_map_2d(img, maps[name][i], ax=axes[i, 2 + j], title=name)
            axes[i, 2 + j].contour(to_numpy(masks[i]), levels=[0.5], colors="white", linewidths=0.8)
        for ax in axes[i]:
            ax.set_axis_off()
    fig.tight_layout()
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


def threshold_frame(images: Sequence[Tensor], masks: Sequence[Tensor], maps: Tensor, threshold: float,
                    mean_iou: float, *, name: str = "map", size: float = 1.9):
    """One widget frame: each example with its map binarised at ``threshold`` x max (red) and the
    ground-truth outline (white); the title gives the test-set mean IoU at this threshold."""
    import matplotlib.pyplot as plt

    n = len(images)
    fig, axes = plt.subplots(1, n, figsize=(size * n, size + 0.35), squeeze=False)
    region = metrics.binarize(saliency.upsample(maps, tuple(masks[0].shape[-2:])).clamp(min=0),
                              ("fraction_of_max", float(threshold)))
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
