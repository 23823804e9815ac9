r"""Metrics on stacks of saliency maps and on predictions: pure, batched torch functions.

Modelled on the torchmetrics functional API: every function takes tensors and returns tensors (or a
small record of Python numbers for the table builders), never touches global state, and is
doctested. Floating inputs keep their dtype (float32 in -> float32 out, float64 -> float64);
bool / integer inputs give float32. Internally, ranks and sums are accumulated in float64 where the
device supports it, then cast back.

Shape conventions
-----------------
* A *map* is a tensor ``[..., *spatial]``. Functions that reduce over the spatial dimensions take a
  keyword ``ndim_spatial`` (the number of **trailing** dimensions that are spatial, as in
  :func:`uqxai_lib.saliency.normalize`). Its default is stated per function: ``ndim - 1`` for a batch
  ``[B, *spatial]`` and ``ndim - 2`` for a stack ``[S, B, *spatial]``; a 1-D input is one map.
* A *stack* is ``[S, B, *spatial]``: ``S`` explanations (MC passes, test-time draws, pruned models)
  of each of ``B`` inputs.
* Binary regions are bool tensors of the same shapes.

Salient region
--------------
Where a rule picks "the most salient region" of a map :math:`M` it is (see :func:`binarize`)

.. math:: R_q(M) = \{\, i : M_i \ge Q_q(M) \ \text{and}\ M_i > 0 \,\}

with :math:`Q_q` the ``q``-quantile of the map's values (linear interpolation, ``numpy.quantile``'s
default); ties at the quantile are included, zeros (post-ReLU "no evidence") never are.
"""
from __future__ import annotations

from .maps import (
    binarize,
    dice,
    empty_regions,
    iou,
    mass_in_mask,
    otsu_threshold,
    pointing_game,
    quantile_threshold,
    rankdata,
    repeatability,
    spearman,
    sue,
)
from .predictions import (
    GroupComparison,
    aurc,
    auroc,
    classification_summary,
    compare_groups,
    entropy,
    mutual_information,
    predictive_entropy,
    rank_average,
    risk_coverage,
)

__all__ = [
    "GroupComparison",
    "aurc",
    "auroc",
    "binarize",
    "classification_summary",
    "compare_groups",
    "dice",
    "entropy",
    "iou",
    "mass_in_mask",
    "mutual_information",
    "otsu_threshold",
    "pointing_game",
    "predictive_entropy",
    "quantile_threshold",
    "rank_average",
    "rankdata",
    "repeatability",
    "risk_coverage",
    "spearman",
    "sue",
    "empty_regions",
]
