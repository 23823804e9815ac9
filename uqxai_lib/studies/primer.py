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

from .. import cache, metrics, saliency, stats

__all__ = [
    "CLAIM",
    "primary_comparison",
    "metric_comparisons",
    "primer_verdict",
    "localisation_scores",
    "mask_at_resolution",
    "threshold_regions",
    "threshold_sweep",
    "score_table",
    "mean_scores",
    "mass_by_correctness",
    "sample_items",
]


#: The claim the primer checks, as the paper states it (its number is theirs, not ours).
CLAIM = {
    "text": "Grad-CAM++ localises the class evidence better than Grad-CAM.",
    "expected": "higher",
    "theirs": "better than Grad-CAM on PASCAL VOC 2012 boxes (their score, not transferable to shapes)",
    "source": "chattopadhay2018gradcampp",
}


def primary_comparison(scores: Mapping[str, Mapping[str, Tensor]], *, a: str = "Grad-CAM++", b: str = "Grad-CAM",
                       score: str = "mass_in_mask", n_boot: int = 2000, seed: int = 0) -> dict:
    """The primer's primary comparison: paired ``score`` of map ``a`` minus map ``b`` over the test
    images (:func:`uqxai_lib.stats.paired_difference`, images are independent draws), as the
    ``primary`` record of the results JSON (:func:`uqxai_lib.stats.primary`; the AUROC fields of a
    paired comparison are NaN, written as ``None`` so the record is valid JSON).

    >>> s = {"A": {"mass_in_mask": torch.tensor([0.5, 0.6, 0.7, 0.8])},
    ...      "B": {"mass_in_mask": torch.tensor([0.4, 0.5, 0.6, 0.7])}}
    >>> r = primary_comparison(s, a="A", b="B", n_boot=200)
    >>> round(r["effect"], 3), r["verdict"]
    (0.1, 'higher')
    """
    comp = stats.paired_difference(scores[a][score].double().numpy(), scores[b][score].double().numpy(),
                                   n_boot=n_boot, seed=seed)
    return cache.finite_or_none(stats.primary(f"{score.replace('_', ' ')}, {a} − {b} (paired over test images)", comp))


def metric_comparisons(scores: Mapping[str, Mapping[str, Tensor]], *, a: str = "Grad-CAM++", b: str = "Grad-CAM",
                       n_boot: int = 2000, seed: int = 0) -> dict[str, dict]:
    """The paired comparison of :func:`primary_comparison` for every score of the table
    (mass in mask, IoU, Dice): ``{score label: primary record}``."""
    labels = {"mass_in_mask": "mass in mask", "iou": "IoU", "dice": "Dice"}
    return {labels.get(k, k): primary_comparison(scores, a=a, b=b, score=k, n_boot=n_boot, seed=seed)
            for k in scores[a]}


def primer_verdict(scores: Mapping[str, Mapping[str, Tensor]], chance: float, *, a: str = "Grad-CAM++",
                   n_boot: int = 2000, seed: int = 0) -> dict:
    """The primer's verdict ladder: this run's primary (mass in mask), the same claim judged by every
    score of the table (the headline: one metric cannot stand for the table) and whether the maps
    lie above chance. Data: the embedded shapes phantom."""
    from uqxai_lib import verdicts

    comps = metric_comparisons(scores, a=a, n_boot=n_boot, seed=seed)
    mass = scores[a]["mass_in_mask"].double().numpy()
    m, ci = stats.mean_ci(mass, n_boot=n_boot, seed=seed)
    rungs = [verdicts.direction(comps["mass in mask"], CLAIM["expected"]),
             verdicts.across_metrics(comps, CLAIM["expected"]),
             verdicts.maps_right({"mass_in_mask": m, "mass_in_mask_ci95": ci, "chance": chance})]
    data = verdicts.data_line("synthetic shapes with ground-truth masks", "PASCAL VOC 2012 boxes")
    return verdicts.ladder(CLAIM, data, rungs, headline_rung="across_metrics")


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


def sample_items(correct: Tensor, n: int, *, seed: int = 0, min_wrong: int = 2) -> Tensor:
    """Indices of ``n`` random test items (seeded) that include up to ``min_wrong`` misclassified
    ones, in increasing order: a fair look at single cases, errors included, not only the extremes.

    >>> c = torch.tensor([True] * 18 + [False] * 2)
    >>> idx = sample_items(c, 6, seed=0)
    >>> len(idx), int((~c[idx]).sum()), bool((idx.diff() > 0).all())
    (6, 2, True)
    """
    correct = torch.as_tensor(correct, dtype=torch.bool)
    n = min(int(n), len(correct))
    g = torch.Generator().manual_seed(int(seed))
    wrong = torch.nonzero(~correct).flatten()
    k = min(int(min_wrong), len(wrong), n)
    picked = wrong[torch.randperm(len(wrong), generator=g)[:k]]
    rest = torch.nonzero(~torch.isin(torch.arange(len(correct)), picked)).flatten()
    picked = torch.cat([picked, rest[torch.randperm(len(rest), generator=g)[: n - k]]])
    return picked.sort().values
