"""Primer chapter (``primer_gradcam``): localisation scores of class-activation maps against known
relevance masks.

A map ``[B, h, w]`` (layer resolution) is upsampled bilinearly to the image size and scored against
the ground-truth mask ``[B, H, W]`` of the class-defining shape:

* **mass in mask**: share of the map's mass inside the mask (chance = the mask's area share);
* **IoU / Dice** of the map binarised with one stated rule (:func:`uqxai_lib.metrics.binarize`).

The figures of the chapter are in :mod:`uqxai_lib.viz.primer`; they draw what these functions return.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import Tensor

from .. import metrics, saliency

__all__ = [
    "localisation_scores",
    "mask_at_resolution",
    "threshold_regions",
    "threshold_sweep",
    "score_table",
    "mean_scores",
    "mass_by_correctness",
]


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


def threshold_regions(maps: Tensor, size: Sequence[int], threshold: float) -> Tensor:
    """Maps ``[B, h, w]`` upsampled to ``size`` and binarised at ``threshold`` × their maximum: bool ``[B, *size]``.

    >>> threshold_regions(torch.tensor([[[0.0, 1.0], [0.2, 0.6]]]), (2, 2), 0.5).tolist()
    [[[False, True], [False, True]]]
    """
    return metrics.binarize(saliency.upsample(maps, tuple(size)).clamp(min=0), ("fraction_of_max", float(threshold)))


def threshold_sweep(maps: Tensor, mask: Tensor, thresholds: Sequence[float]) -> Tensor:
    """Mean IoU over images of maps binarised with ``("fraction_of_max", t)`` for each ``t``: ``[T]``."""
    out = [localisation_scores(maps, mask, ("fraction_of_max", float(t)))["iou"].mean() for t in thresholds]
    return torch.stack(out)


def score_table(scores: Mapping[str, Mapping[str, Tensor]], *, chance: float | None = None, digits: int = 3):
    """DataFrame: one row per method, mean of each score (NaN maps skipped); optional chance row."""
    import pandas as pd

    rows = {name: {k: round(float(torch.nanmean(v.double())), digits) for k, v in s.items()}
            for name, s in scores.items()}
    if chance is not None:
        rows["uniform map (chance)"] = {"mass_in_mask": round(chance, digits)}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("map")


def mean_scores(scores: Mapping[str, Tensor]) -> dict[str, float]:
    """Mean of each per-image score, NaN maps skipped (the results-JSON form).

    >>> mean_scores({"iou": torch.tensor([0.5, float("nan"), 1.0])})
    {'iou': 0.75}
    """
    return {k: float(v.nanmean()) for k, v in scores.items()}


def mass_by_correctness(scores: Mapping[str, Mapping[str, Tensor]], correct: Tensor) -> tuple[dict, dict]:
    """Mean mass in mask of each method on the correctly and on the wrongly classified images
    (NaN when a group is empty).

    >>> s = {"m": {"mass_in_mask": torch.tensor([0.2, 0.4, 0.9])}}
    >>> ok, wrong = mass_by_correctness(s, torch.tensor([True, True, False]))
    >>> round(ok["m"], 3), round(wrong["m"], 3)
    (0.3, 0.9)
    """
    ok = {name: float(s["mass_in_mask"][correct].nanmean()) for name, s in scores.items()}
    wrong = {name: float(s["mass_in_mask"][~correct].nanmean()) if (~correct).any() else float("nan")
             for name, s in scores.items()}
    return ok, wrong
