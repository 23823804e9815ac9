r"""Uncertainty samplers: stacks of explanations ``[S, B, *spatial]`` of the same inputs.

Three sources of variation, one return type (:class:`SampleStack`):

:func:`mc_dropout`
    ``S`` stochastic forward passes with only the dropout modules switched on (Monte Carlo
    dropout); several passes share one forward by repeating the input along the batch.
:func:`test_time`
    ``S`` perturbed copies of the input (test-time augmentation / noise), e.g. the ECG noise
    models of :mod:`uqxai_lib.perturb`.
:func:`ensemble`
    the same inputs explained by each model of a list (an ensemble of independently trained
    models), for the class the first (reference) model predicts.
:func:`rashomon` / :func:`rashomon_maps`
    a Rashomon set of channel-pruned copies of one trained model: random channel masks on the
    explained layer, kept when their held-out loss is within :math:`(1+\varepsilon)` of the
    unpruned model's; closed forms when the layer is followed by global average pooling and one
    ``nn.Linear`` (``head``).

Every map is computed by :mod:`uqxai_lib.saliency` (ReLU-ed, raw scale, at the layer's
resolution, float32, on ``x``'s device) for a target class that is fixed once per input — it is
never re-chosen per pass, draw or model. Metrics (:mod:`uqxai_lib.metrics`,
:mod:`uqxai_lib.aggregate`) consume the stacks.

No sampler leaves a hook behind or changes a module's mode after it returns; :func:`mc_dropout`
switches *only* dropout modules to training mode during the call and restores them (also when
the call raises).
"""
from __future__ import annotations

from .base import (
    CPU_MAX_INPUT_ELEMENTS,
    MAX_INPUT_ELEMENTS,
    MAX_ROWS,
    SampleStack,
    default_chunk,
    dropout_enabled,
    dropout_modules,
)
from .dropout import mc_dropout
from .members import ensemble
from .perturbation import test_time
from .pruning import RashomonSet, rashomon, rashomon_logits, rashomon_maps

__all__ = [
    "SampleStack",
    "RashomonSet",
    "mc_dropout",
    "test_time",
    "rashomon",
    "rashomon_maps",
    "rashomon_logits",
    "ensemble",
    "dropout_modules",
    "dropout_enabled",
    "default_chunk",
    "MAX_ROWS",
    "MAX_INPUT_ELEMENTS",
    "CPU_MAX_INPUT_ELEMENTS",
]
