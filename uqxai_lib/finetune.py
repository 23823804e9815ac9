r"""A Rashomon set whose members differ: models fine-tuned from one trained model.

A channel-masked set (:func:`uqxai_lib.samplers.rashomon`) explores a tiny neighbourhood of one
network: masking channels after the explained layer changes each map only by dropping some of
the optimal model's channel terms, so the consensus of their maps is almost the optimal map by
construction. Here each candidate is a *copy of the optimal model trained further* for a few
epochs with its own seed, i.e. its own mini-batch order, augmentation draws and dropout masks
(:func:`uqxai_lib.train.fit`, its loop and its checkpoint cache). Every weight can move, so the
members' maps differ wherever the data leave the solution under-determined.

The keep rule is the one of :func:`uqxai_lib.samplers.rashomon`, on the same held-out data:

.. math:: \mathcal{R}_\varepsilon = \{m : L_m / L^\ast \le 1 + \varepsilon\},

with :math:`L_m` the (class-weighted) mean cross-entropy of member :math:`m` on the held-out set
and :math:`L^\ast` the same loss of the starting (optimal) model; one-sided, so members that beat
the optimum on held-out data are kept.

>>> from uqxai_lib.data import LabeledArrays
>>> g = torch.Generator().manual_seed(0)
>>> x = torch.randn(32, 2, generator=g); y = (x[:, 0] > 0).long()
>>> data = LabeledArrays(x, y, classes=("neg", "pos"))
>>> _ = torch.manual_seed(0); base = torch.nn.Linear(2, 2).eval()
>>> fset = finetuned_set(base, data, data, k=3, epochs=1, epsilon=10.0, seed=0, lr=0.05,
...                      batch_size=8, progress=False)
>>> len(fset.models), fset.kept.tolist(), fset.relative_loss.dtype
(3, [True, True, True], torch.float64)
"""
from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping
from typing import Callable, NamedTuple, Sequence

import torch
from torch import Tensor, nn

from uqxai_lib import samplers, train
from uqxai_lib.data import LabeledArrays
from uqxai_lib.samplers import SampleStack

__all__ = ["FinetunedSet", "finetuned_set", "loss_filter", "held_out_losses", "member_seeds", "finetuned",
           "state_fingerprint"]


class FinetunedSet(NamedTuple):
    r"""``k`` models fine-tuned from one model and their held-out losses.

    Attributes
    ----------
    models : list of nn.Module
        every candidate (kept or not), in eval mode, in the order of ``seeds``.
    losses : float64 ``[k]``
        mean (class-weighted) cross-entropy of each candidate on the held-out set.
    base_loss : float
        the same loss of the starting model :math:`L^\ast`.
    kept : bool ``[k]``
        :math:`L_m / L^\ast \le 1 + \varepsilon` (one-sided, as :func:`uqxai_lib.samplers.rashomon`).
    epsilon : float
        the tolerance that built ``kept``.
    seeds : list of int
        each candidate's training seed (batch order, augmentation, dropout).
    """

    models: list
    losses: Tensor
    base_loss: float
    kept: Tensor
    epsilon: float
    seeds: list

    @property
    def relative_loss(self) -> Tensor:
        """``losses / base_loss`` (float64 ``[k]``); kept models have ``relative_loss <= 1 + epsilon``."""
        return self.losses.double() / float(self.base_loss)

    @property
    def kept_models(self) -> list:
        """The kept candidates, in order."""
        return [m for m, keep in zip(self.models, self.kept.tolist()) if keep]


def state_fingerprint(model: nn.Module) -> str:
    """A short SHA-256 of a model's state dict (names, shapes, dtypes and values), for cache keys:
    two fine-tunings share a cache entry only when they start from the same weights."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()[:16]


def member_seeds(seed: int, k: int) -> list[int]:
    """The training seeds of the ``k`` members of a set with seed ``seed``: ``1000 * seed + 1 ... + k``
    (distinct for every member; a set with ``k`` members is a prefix of one with more)."""
    if not (isinstance(k, int) and k >= 1):
        raise ValueError(f"k must be an integer >= 1 (the number of fine-tuned candidates), got {k!r}")
    return [1000 * int(seed) + i + 1 for i in range(k)]


@torch.no_grad()
def held_out_losses(models: Sequence[nn.Module], data: LabeledArrays, *, class_weight: Tensor | None = None,
                    batch_size: int = 256, device: torch.device | str | None = None) -> Tensor:
    """Class-weighted mean cross-entropy of each model on ``data`` (float64 ``[len(models)]``):
    :math:`\\sum_i w_{y_i} \\ell_i / \\sum_i w_{y_i}` as ``F.cross_entropy(weight=...)``, each
    model in the modes the caller left it (use ``eval()``) — the loss of
    :func:`uqxai_lib.train.evaluate_loss`."""
    out = []
    for m in models:
        dev = torch.device(device) if device is not None else next(m.parameters()).device
        loss, _ = train.evaluate_loss(m, data, class_weight, batch_size=batch_size, device=dev)
        out.append(loss)
    return torch.tensor(out, dtype=torch.float64)


def loss_filter(models: Sequence[nn.Module], reference: nn.Module, val_set: LabeledArrays, *, epsilon: float,
                class_weight: Tensor | None = None, seeds: Sequence[int] | None = None, batch_size: int = 256,
                device: torch.device | str | None = None) -> FinetunedSet:
    r"""The (1 + epsilon) held-out loss filter of any list of models against a ``reference`` model
    (the optimal one): :math:`L_m / L^\ast \le 1 + \varepsilon` with :func:`held_out_losses` on
    ``val_set`` (one-sided, as :func:`uqxai_lib.samplers.rashomon`). Used by :func:`finetuned_set`
    and for any other candidate models (e.g. independently trained ones). All models in eval mode."""
    if not epsilon >= 0:
        raise ValueError(f"epsilon must be >= 0 (keep L_m <= (1 + epsilon) L*), got {epsilon!r}")
    if len(val_set) == 0:
        raise ValueError("val_set is empty: the (1 + epsilon) filter needs held-out data")
    base = float(held_out_losses([reference], val_set, class_weight=class_weight, batch_size=batch_size,
                                 device=device)[0])
    losses = held_out_losses(models, val_set, class_weight=class_weight, batch_size=batch_size, device=device)
    kept = (losses / base) <= 1.0 + float(epsilon)
    return FinetunedSet(list(models), losses, base, kept, float(epsilon), list(seeds or []))


def finetuned_set(
    model: nn.Module,
    train_set: LabeledArrays,
    val_set: LabeledArrays,
    *,
    k: int,
    epochs: int,
    epsilon: float,
    seed: int,
    cache_config: Mapping | None = None,
    lr: float = 1e-3,
    batch_size: int = 32,
    weight_decay: float = 0.0,
    class_weight: str | None = "balanced",
    augment: Callable[[Tensor, torch.Generator], Tensor] | None = None,
    device: torch.device | str | None = None,
    name: str = "finetuned",
    progress: bool = True,
) -> FinetunedSet:
    r"""Fine-tune ``k`` copies of ``model`` and keep those within ``(1 + epsilon)`` of its held-out loss.

    Candidate ``i`` is a deep copy of ``model`` trained for ``epochs`` epochs on ``train_set`` by
    :func:`uqxai_lib.train.fit` (Adam at ``lr``, ``class_weight``, ``augment``) with seed
    ``member_seeds(seed, k)[i]``, without early stopping (its last epoch is kept, so the
    held-out set is used only by the filter), with BatchNorm's running statistics frozen
    (``freeze_batchnorm``): re-estimated from one epoch of training batches in train mode (dropout
    on), they alone moved the held-out loss of the smoke MRI and ECG models by up to 40 % at a
    millionth of their learning rate, so candidates left the set for a reason that is not a
    different solution. ``model`` itself is not changed. The held-out loss
    (:func:`held_out_losses`) uses the class weights of ``train_set`` (as the training loss does);
    kept: ``L_m / L* <= 1 + epsilon`` (:func:`loss_filter`).

    With ``cache_config`` every candidate is cached by :func:`uqxai_lib.train.fit` under
    ``models/<name>``, keyed also by the starting weights (:func:`state_fingerprint`) and the
    candidate's seed, so a rerun loads instead of training.

    Raises ``ValueError`` for ``k < 1``, ``epochs < 1``, ``epsilon < 0``, an empty ``val_set`` or a
    ``model`` with a module in training mode, before any training.
    """
    seeds = member_seeds(seed, k)
    if any(m.training for m in model.modules()):
        raise ValueError("model must be in eval mode (call model.eval()): its held-out loss L* is the filter's "
                         "reference, and finetuned_set does not switch modes behind the caller's back")
    if not (isinstance(epochs, int) and epochs >= 1):
        raise ValueError(f"epochs must be an integer >= 1 (fine-tuning epochs per candidate), got {epochs!r}")
    if not epsilon >= 0:
        raise ValueError(f"epsilon must be >= 0 (keep L_m <= (1 + epsilon) L*), got {epsilon!r}")
    if len(val_set) == 0:
        raise ValueError("val_set is empty: the (1 + epsilon) filter needs held-out data")
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    parent = state_fingerprint(model)
    weight = train.class_weights(train_set.y, len(train_set.classes), class_weight)
    members = []
    for s in seeds:
        cand = copy.deepcopy(model)
        cfg = None if cache_config is None else {**dict(cache_config), "finetune_parent": parent,
                                                 "finetune_seed": int(s)}
        fit = train.fit(cand, train_set, None, epochs=epochs, batch_size=batch_size, lr=lr,
                        weight_decay=weight_decay, class_weight=class_weight, patience=None, seed=int(s),
                        device=dev, cache_config=cfg, name=name, augment=augment, progress=progress,
                        freeze_batchnorm=True)
        members.append(fit.model.eval())
    return loss_filter(members, model, val_set, epsilon=epsilon, class_weight=weight, seeds=seeds,
                       batch_size=batch_size, device=dev)


def finetuned(fset: FinetunedSet, x: Tensor, layer: str, *, target: Tensor,
              method: str = "grad_cam_pp", include: str = "kept") -> SampleStack:
    """The sampler: maps of the fine-tuned members on ``x`` as a :class:`uqxai_lib.samplers.SampleStack`.

    ``maps [S, B, *spatial]`` (S = kept members, or all with ``include="all"``) by
    :func:`uqxai_lib.samplers.ensemble` at ``layer`` (a name resolved in each member) for the fixed
    ``target`` classes (e.g. the optimal model's predictions), ``probs [S, B, C]`` each member's
    softmax. Raises ``ValueError`` when no member is included (an empty set has no maps).
    """
    if include not in ("kept", "all"):
        raise ValueError(f"include must be 'kept' or 'all', got {include!r}")
    models = fset.kept_models if include == "kept" else list(fset.models)
    if not models:
        raise ValueError(f"no fine-tuned model is within 1 + epsilon = {1 + fset.epsilon:g} of the optimum's "
                         "held-out loss; raise epsilon, lower the fine-tuning lr or use fewer epochs")
    return samplers.ensemble(models, x, layer, method=method, target=torch.as_tensor(target, device=x.device).long())
