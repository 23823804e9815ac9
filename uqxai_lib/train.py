"""One small, deterministic training loop with class weighting, early stopping and a checkpoint cache.

:func:`fit` trains with Adam and (class-weighted) cross-entropy, evaluates the validation loss after
every epoch, stops after ``patience`` epochs without improvement and restores the weights of the best
epoch. Mini-batches come from :func:`torch.randperm` with a generator seeded from ``seed`` (no
``DataLoader``, the data are in-memory tensors), and the global RNGs are re-seeded at the start, so
on CPU two calls with the same seed, model initialisation and data give bit-identical weights.

With ``cache_config`` the trained state dict is stored through :func:`uqxai_lib.cache.cached` under
``models/<name>``; the key combines ``cache_config``, ``name``, the training hyper-parameters, the
model's class and parameter shapes and a fingerprint of the data, so nothing stale is ever reused.

>>> from uqxai_lib.data import LabeledArrays
>>> g = torch.Generator().manual_seed(0)
>>> x = torch.randn(40, 2, generator=g); y = (x[:, 0] > 0).long()
>>> data = LabeledArrays(x, y, classes=("neg", "pos"))
>>> torch.manual_seed(0); model = torch.nn.Linear(2, 2)  # doctest: +ELLIPSIS
<torch._C.Generator object at ...>
>>> res = fit(model, data, data, epochs=30, batch_size=8, lr=0.05, seed=0,
...           device=torch.device("cpu"), progress=False)
>>> res.model.training, res.from_cache, len(res.history) >= res.best_epoch
(False, False, True)
>>> p = predict_proba(res.model, x)
>>> p.shape, bool(torch.allclose(p.sum(1), torch.ones(40)))
(torch.Size([40, 2]), True)
>>> float((p.argmax(1) == y).float().mean()) > 0.9
True
"""
from __future__ import annotations

import hashlib
import math
import sys
import warnings
from collections.abc import Mapping
from typing import Callable, Literal, NamedTuple

import torch
from torch import Tensor, nn
from tqdm import tqdm

from uqxai_lib import cache
from uqxai_lib.data import DataError, LabeledArrays
from uqxai_lib.utils import seed_everything

__all__ = ["TrainResult", "class_weights", "fit", "predict_proba", "evaluate_loss"]


class TrainResult(NamedTuple):
    """Result of :func:`fit`.

    model : the trained model, on ``device``, in eval mode, holding the best-validation-loss weights.
    history : one dict per epoch run: ``epoch`` (1-based), ``train_loss``, ``val_loss``, ``val_accuracy``.
    best_epoch : 1-based epoch whose weights were kept.
    from_cache : True when the weights were loaded from the cache instead of trained.
    """

    model: nn.Module
    history: list[dict]
    best_epoch: int
    from_cache: bool


def class_weights(y: Tensor, num_classes: int, mode: Literal["balanced"] | None = "balanced") -> Tensor | None:
    """Per-class loss weights; ``"balanced"`` gives ``n / (C * count_c)`` (scikit-learn's rule).

    A class absent from ``y`` gets the weight it would have with one example (with a warning).

    >>> class_weights(torch.tensor([0, 0, 0, 1]), 2)
    tensor([0.6667, 2.0000])
    >>> class_weights(torch.tensor([0, 1]), 2, None) is None
    True
    """
    if mode is None:
        return None
    if mode != "balanced":
        raise ValueError(f"class_weight must be 'balanced' or None, got {mode!r}")
    y = torch.as_tensor(y).long().cpu()
    if y.numel() and (y.min() < 0 or y.max() >= num_classes):
        raise DataError(f"labels must be in [0, {num_classes}), got range [{int(y.min())}, {int(y.max())}]")
    counts = torch.bincount(y, minlength=num_classes).double()
    if (counts == 0).any():
        missing = torch.nonzero(counts == 0).flatten().tolist()
        warnings.warn(f"classes {missing} have no training examples; their weight assumes one example", stacklevel=3)
    w = len(y) / (num_classes * counts.clamp(min=1))
    return w.float()


def _batches(n: int, batch_size: int, generator: torch.Generator | None) -> list[Tensor]:
    """Index batches of a (shuffled when ``generator`` is given) permutation; a trailing batch of one
    example is merged into the previous one (BatchNorm cannot train on a single example)."""
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    parts = list(order.split(batch_size))
    if len(parts) > 1 and len(parts[-1]) == 1:
        parts[-2] = torch.cat([parts[-2], parts.pop()])
    return parts


@torch.no_grad()
def evaluate_loss(model: nn.Module, data: LabeledArrays, weight: Tensor | None, *, batch_size: int,
                  device: torch.device) -> tuple[float, float]:
    """(class-weighted mean cross-entropy, accuracy) of ``model`` on ``data`` in the model's current modes."""
    total, wsum, correct = 0.0, 0.0, 0
    w = weight.to(device) if weight is not None else None
    for idx in _batches(len(data), batch_size, None):
        xb, yb = data.x[idx].to(device), data.y[idx].to(device)
        logits = model(xb)
        losses = nn.functional.cross_entropy(logits, yb, reduction="none")
        wb = w[yb] if w is not None else torch.ones_like(losses)
        total += float((losses * wb).double().sum())
        wsum += float(wb.double().sum())
        correct += int((logits.argmax(1) == yb).sum())
    return total / wsum, correct / len(data)


def _fingerprint(t: Tensor) -> str:
    t = t.detach().cpu().contiguous()
    h = hashlib.sha256(str((tuple(t.shape), str(t.dtype))).encode())
    h.update(t.view(torch.uint8).numpy().tobytes() if t.dtype != torch.bool else t.numpy().tobytes())
    return h.hexdigest()[:16]


def _callable_name(f: Callable | None) -> str | None:
    if f is None:
        return None
    inner = getattr(f, "func", f)  # functools.partial
    return f"{getattr(inner, '__module__', '?')}.{getattr(inner, '__qualname__', type(inner).__name__)}"


def _check_args(model, train, val, epochs, batch_size, lr, weight_decay, patience) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    for label, d in (("train", train), ("val", val)):
        if d is not None and not isinstance(d, LabeledArrays):
            raise TypeError(f"{label} must be a LabeledArrays, got {type(d).__name__}")
    if len(train) == 0:
        raise DataError("the training set is empty; check the split fractions / data directory")
    if val is not None and len(val) == 0:
        raise DataError("the validation set is empty; check the split fractions or pass val=None")
    if not (isinstance(epochs, int) and epochs >= 1):
        raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}")
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
    if patience is not None and not (isinstance(patience, int) and patience >= 1):
        raise ValueError(f"patience must be an integer >= 1 (or None to never stop early), got {patience!r}")


def fit(
    model: nn.Module,
    train: LabeledArrays,
    val: LabeledArrays | None,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float = 0.0,
    class_weight: Literal["balanced"] | None = "balanced",
    patience: int | None = 5,
    seed: int,
    device: torch.device,
    cache_config: Mapping | None = None,
    name: str = "model",
    augment: Callable[[Tensor, torch.Generator], Tensor] | None = None,
    progress: bool = True,
    freeze_batchnorm: bool = False,
) -> TrainResult:
    """Train ``model`` in place and return it with the best-validation-loss weights.

    Parameters
    ----------
    model : nn.Module
        Initialised model (seed before building it); moved to ``device``.
    train, val : LabeledArrays
        In-memory data (any device; batches are moved to ``device``). ``val=None`` disables early
        stopping and keeps the last epoch.
    epochs, batch_size, lr, weight_decay
        Adam settings; at most ``epochs`` epochs.
    class_weight : "balanced" or None
        Cross-entropy class weights ``n / (C * count_c)`` computed on ``train`` (also used for the
        validation loss), or unweighted.
    patience : int or None
        Stop after this many epochs without a lower validation loss; None never stops early.
    seed : int
        Seeds the batch order, the augmentation generator and the global RNGs (dropout).
    device : torch.device
    cache_config : Mapping, optional
        Describes the data and model (e.g. the notebook's parameters). When given, the trained state
        dict is cached under ``models/<name>`` and later calls load it instead of training.
    name : str
        Cache sub-directory and progress-bar label.
    augment : callable(x_batch, generator) -> x_batch, optional
        Applied to each training batch (on ``device``) with a dedicated CPU generator.
    progress : bool
        Show a tqdm progress bar over epochs (stderr).
    freeze_batchnorm : bool
        Keep every BatchNorm module in eval mode while training: its running statistics stay as
        they are (its affine weights still train). For fine-tuning a trained model, whose running
        statistics would otherwise be re-estimated from a few training batches.

    Returns
    -------
    TrainResult
        ``(model, history, best_epoch, from_cache)``; the model is in eval mode on ``device``.
    """
    _check_args(model, train, val, epochs, batch_size, lr, weight_decay, patience)
    device = torch.device(device)
    num_classes = len(train.classes)
    weight = class_weights(train.y, num_classes, class_weight)
    hyper = dict(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                 class_weight=class_weight, patience=patience, seed=seed, augment=_callable_name(augment))
    if freeze_batchnorm:  # only then in the cache key, so that earlier keys stay valid
        hyper["freeze_batchnorm"] = True

    def run() -> dict:
        return _train(model, train, val, weight, device=device, name=name, augment=augment, progress=progress,
                      freeze_batchnorm=freeze_batchnorm,
                      **{k: v for k, v in hyper.items() if k not in ("class_weight", "augment", "freeze_batchnorm")})

    if cache_config is None:
        out = run()
        return TrainResult(model.eval(), out["history"], out["best_epoch"], False)

    key = {
        "cache_config": dict(cache_config),
        "name": name,
        "fit": hyper,
        "model": {"class": f"{type(model).__module__}.{type(model).__qualname__}",
                  "shapes": {k: list(v.shape) for k, v in model.state_dict().items()}},
        "data": {"train": [_fingerprint(train.x), _fingerprint(train.y)],
                 "val": None if val is None else [_fingerprint(val.x), _fingerprint(val.y)]},
    }
    computed: list[bool] = []

    def compute() -> dict:
        computed.append(True)
        out = run()
        out["state_dict"] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        return out

    entry = cache.cached(f"models/{name}", key, compute, device=device)
    if not computed:
        model.load_state_dict(entry["state_dict"])
    model.to(device).eval()
    return TrainResult(model, entry["history"], entry["best_epoch"], not computed)


def _train(model, train, val, weight, *, epochs, batch_size, lr, weight_decay, patience, seed,
           device, name, augment, progress, freeze_batchnorm=False) -> dict:
    seed_everything(seed)
    order_gen = torch.Generator().manual_seed(seed)
    aug_gen = torch.Generator().manual_seed(seed + 1)
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    w = weight.to(device) if weight is not None else None
    history: list[dict] = []
    best_loss, best_epoch, best_state, stale = math.inf, 0, None, 0
    bar = tqdm(range(1, epochs + 1), desc=f"train {name}", disable=not progress, file=sys.stderr,
               leave=True, dynamic_ncols=False, ncols=100)
    for epoch in bar:
        model.train()
        if freeze_batchnorm:
            for mod in model.modules():
                if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                    mod.eval()
        loss_sum, n_seen = 0.0, 0
        for idx in _batches(len(train), batch_size, order_gen):
            xb, yb = train.x[idx].to(device), train.y[idx].to(device)
            if augment is not None:
                xb = augment(xb, aug_gen)
            loss = nn.functional.cross_entropy(model(xb), yb, weight=w)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"training loss of {name!r} became {loss.item()} in epoch {epoch}; lower lr (now {lr})"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += float(loss.detach()) * len(idx)
            n_seen += len(idx)
        rec = {"epoch": epoch, "train_loss": loss_sum / n_seen}
        if val is not None:
            model.eval()
            rec["val_loss"], rec["val_accuracy"] = evaluate_loss(model, val, weight, batch_size=batch_size,
                                                                 device=device)
            improved = rec["val_loss"] < best_loss
        else:
            improved = True
        history.append(rec)
        bar.set_postfix({k: f"{v:.4f}" for k, v in rec.items() if k != "epoch"})
        if improved:
            best_loss, best_epoch, stale = rec.get("val_loss", rec["train_loss"]), epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
            if patience is not None and stale >= patience:
                break
    bar.close()
    if best_state is None:
        raise FloatingPointError(f"validation loss of {name!r} was never finite; check the data and lower lr")
    model.load_state_dict(best_state)
    model.eval()
    return {"history": history, "best_epoch": best_epoch}


@torch.no_grad()
def predict_proba(
    model: nn.Module,
    x: Tensor | LabeledArrays,
    *,
    batch_size: int = 64,
    device: torch.device | str | None = None,
    eval_mode: bool = True,
) -> Tensor:
    """Softmax class probabilities ``[N, C]`` without gradients, on ``x``'s device.

    The model runs in eval mode by default (``eval_mode=False`` keeps the caller's modes, e.g. dropout
    switched on for MC sampling); every module's ``training`` flag is restored afterwards.
    ``device`` defaults to the device of the model's parameters.
    """
    if isinstance(x, LabeledArrays):
        x = x.x
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if device is None:
        p = next(iter(model.parameters()), None)
        device = p.device if p is not None else torch.device("cpu")
    device = torch.device(device)
    modes = [(m, m.training) for m in model.modules()]
    try:
        if eval_mode:
            model.eval()
        out = [torch.softmax(model(x[i:i + batch_size].to(device)).float(), dim=1).to(x.device)
               for i in range(0, len(x), batch_size)]
    finally:
        for m, was_training in modes:
            m.training = was_training
    if not out:
        raise ValueError("x is empty; pass at least one example")
    return torch.cat(out)
