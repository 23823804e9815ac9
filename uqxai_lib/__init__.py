"""uqxai_lib: uncertainty of explanations in medical deep learning.

The public face is one instrument and the pieces it is made of::

    from uqxai_lib import assess
    rec = assess(model, x, y, layer="layer4", source="mc_dropout", n=20)   # any torch classifier
    rec.to_dict()                                                          # JSON-safe record

- :func:`assess` / :func:`evaluate` and the record :class:`Assessment` (:mod:`uqxai_lib.protocol`),
  under the rule book :mod:`uqxai_lib.rules`;
- the samplers :func:`mc_dropout`, :func:`test_time`, :func:`rashomon` / :func:`rashomon_maps`,
  :func:`ensemble` (stacks of explanations ``[S, B, *spatial]``);
- :func:`explain` (Grad-CAM / Grad-CAM++, N-D) and the metrics (:func:`spearman`,
  :func:`repeatability`, :func:`sue`, :func:`iou`, :func:`dice`, :func:`mass_in_mask`,
  :func:`pointing_game`, :func:`auroc`).

The house, top-down (each layer imports only from the layers below it, never upward):

- ``notebooks/*.py`` — the chapters: prose and short calls, no algorithms;
- ``studies`` — each chapter's analysis steps (``studies.primer``, ...), plain functions, no plotting;
- ``protocol`` — the instrument every chapter, the sweep and a user's own model run on;
- ``samplers``, ``perturb``, ``train``, ``models`` — explanation stacks (MC dropout, test-time
  perturbations, Rashomon sets, ensembles), noise models, the training loop, the networks;
- ``saliency``, ``metrics`` / ``stats`` / ``aggregate`` / ``rules``, ``data``, ``cache`` — N-D
  Grad-CAM / Grad-CAM++, scores, statistics and the rule book, data sets, caching.

Beside them: ``viz`` and ``widgets`` draw what they are given (no model, no statistic), ``report``
formats results records as book text, ``run`` / ``bench`` / ``sweep`` drive papermill, the
benchmarks and Dask (the ``[book]`` and ``[sweep]`` extras).
"""

__version__ = "0.1.0"

from . import rules
from .metrics import auroc, dice, iou, mass_in_mask, pointing_game, repeatability, spearman, sue
from .protocol import AssessError, Assessment, assess, evaluate
from .saliency import explain
from .samplers import ensemble, mc_dropout, rashomon, rashomon_maps, test_time

__all__ = [
    "Assessment",
    "AssessError",
    "assess",
    "auroc",
    "dice",
    "ensemble",
    "evaluate",
    "explain",
    "iou",
    "mass_in_mask",
    "mc_dropout",
    "pointing_game",
    "rashomon",
    "rashomon_maps",
    "repeatability",
    "rules",
    "spearman",
    "sue",
    "test_time",
]
