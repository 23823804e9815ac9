"""The chapters' embedded data sets and trained models, for chapters that use all of them.

Each function rebuilds a chapter's synthetic data, split and model from that chapter's profile
parameters, exactly as the chapter notebook does, and trains it through :func:`uqxai_lib.train.fit`
with the same cache configuration, so the model the chapter trained is reused from the cache
(``fit.from_cache``) instead of trained again. ``member(seed)`` trains the same recipe with another
training seed on the same data and split: the members of a seed ensemble.

Only the embedded (synthetic) data are used here: the cross-study chapter compares the sources of
explanation uncertainty where ground truth is known.

:func:`volume` is the one modality without a chapter of its own: the 3-D brain phantom
(:mod:`uqxai_lib.data.synthetic_volume`) and the small 3-D CNN (:mod:`uqxai_lib.models.cnn3d`),
built from the ``volume`` parameters of the ``cross_study`` profile. Each :class:`Modality` records
its number of spatial dimensions (``spatial_dims``: 1 ECG, 2 images, 3 volumes).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple, Sequence

import torch
from torch import Tensor, nn

from .. import train
from ..data import LabeledArrays, group_split
from ..perturb import IMAGE_PERTURBATIONS, PERTURBATIONS, make_image_perturbation, make_perturbation

__all__ = ["Modality", "derm", "ecg", "members", "mri", "subsample", "volume", "volume_perturbation"]


class Modality(NamedTuple):
    """One modality's data, trained model and the settings its explanations use."""

    name: str
    train: LabeledArrays
    val: LabeledArrays
    test: LabeledArrays
    model: nn.Module
    layer: str
    method: str                      # "grad_cam" or "grad_cam_pp", the chapter's method
    head: nn.Linear | None           # the linear head after global average pooling of `layer`, if any
    perturbations: dict              # name -> perturb(x, generator), the modality's test-time kinds
    member: Callable[[int], nn.Module]  # seed -> model trained with that seed (cached)
    groups: Tensor | None            # test items' subject / patient / lesion ids
    from_cache: bool
    spatial_dims: int = 2            # 1: ECG windows, 2: images, 3: volumes


def subsample(data: LabeledArrays, n: int) -> LabeledArrays:
    """An evenly spaced subset of at most ``n`` items (keeps the class mix of a sorted set)."""
    if len(data) <= n:
        return data
    return data.subset(torch.linspace(0, len(data) - 1, int(n)).round().long())


def _fit(build: Callable[[int], nn.Module], seed: int, fit_kw: Mapping[str, Any], cache_config: Mapping,
         chapter_seed: int) -> train.TrainResult:
    model = build(seed)
    cfg = dict(cache_config)
    if seed != chapter_seed:  # the chapter's own model keeps the chapter's cache key
        cfg = {**cfg, "member_seed": seed}
    return train.fit(model, **{**fit_kw, "seed": seed}, cache_config=cfg)


def ecg(params: Mapping[str, Any], device: torch.device, *, seed: int, snr_db: float = 10.0,
        progress: bool = False) -> Modality:
    """The ``ecg_sue`` chapter's synthetic windows and CNN-BiLSTM (its profile ``params``)."""
    from ..data.synthetic_ecg import make_synthetic_ecg, stratified_group_split
    from ..models.cnn_bilstm import CNNBiLSTM

    p = params
    data = make_synthetic_ecg(p["n_subjects"], p["windows_per_subject"], cad_fraction=p["cad_fraction"],
                              mild_fraction=p["mild_fraction"], seed=seed)
    data_config = dict(source="synthetic", n_subjects=p["n_subjects"], windows_per_subject=p["windows_per_subject"],
                       cad_fraction=p["cad_fraction"], mild_fraction=p["mild_fraction"], seed=seed)
    tr, va, te = stratified_group_split(data.group, data.y, [0.6, 0.2, 0.2], seed=seed)
    train_set, val_set, test_set = data.subset(tr), data.subset(va), data.subset(te)
    test_set = subsample(test_set, p["max_test"])

    def build(s: int) -> nn.Module:
        torch.manual_seed(s)
        return CNNBiLSTM(channels=p["channels"], hidden=p["hidden"])

    probe = CNNBiLSTM(channels=p["channels"], hidden=p["hidden"])
    fit_kw = dict(train=train_set, val=val_set, epochs=p["epochs"], batch_size=p["batch_size"], lr=p["lr"],
                  patience=p["patience"], device=device, name="ecg_cnn_bilstm", progress=progress)
    cache_config = dict(data=data_config, model=probe.config, epochs=p["epochs"], batch_size=p["batch_size"],
                        lr=p["lr"], patience=p["patience"], seed=seed)

    def member(s: int) -> nn.Module:
        return _fit(build, s, fit_kw, cache_config, seed).model.eval()

    # the chapter builds its model right after seed_everything(seed), without a manual_seed of its own
    torch.manual_seed(seed)
    fit = train.fit(CNNBiLSTM(channels=p["channels"], hidden=p["hidden"]), **fit_kw, seed=seed,
                    cache_config=cache_config)
    kinds = {k: make_perturbation(k, snr_db, 250.0) for k in PERTURBATIONS}
    return Modality("ECG", train_set, val_set, test_set, fit.model.eval(), fit.model.cam_layer_name, "grad_cam",
                    None, kinds, member, test_set.group, fit.from_cache, 1)


def mri(params: Mapping[str, Any], device: torch.device, *, seed: int, strength: float = 0.3,
        progress: bool = False) -> Modality:
    """The ``mri_mc_dropout`` chapter's synthetic phantom and ResNet-MC (its profile ``params``)."""
    from ..data.sartaj import stratified_holdout
    from ..data.synthetic_mri import make_synthetic_mri
    from ..models.resnet_mc import GRADCAM_LAYER, build_resnet_mc, explained_layer

    p = params
    data = make_synthetic_mri(p["n_patients"], size=p["image_size"], ambiguity=p["ambiguity"], seed=seed)
    data_config = dict(source="synthetic", n_patients=p["n_patients"], size=p["image_size"], ambiguity=p["ambiguity"],
                       split=list(p["split"]), seed=seed)
    split = p["split"]
    rest, test_idx = stratified_holdout(data.y, int(round(split[2] * len(data))), seed=seed)
    tr, va = stratified_holdout(data.y[rest], int(round(split[1] * len(data))), seed=seed + 1)
    train_set, val_set, test_set = data.subset(rest[tr]), data.subset(rest[va]), data.subset(test_idx)
    test_set = subsample(test_set, p["max_test"])
    classes = list(train_set.classes)
    weights = p.get("weights")
    model_config = dict(arch=p["arch"], width=p["width"], small_input=p["small_input"], num_classes=len(classes),
                        train_dropout=p["train_dropout"], weights=None if weights is None else str(weights))

    def build(s: int) -> nn.Module:
        return build_resnet_mc(p["arch"], num_classes=len(classes), p=p["train_dropout"], width=p["width"],
                               small_input=p["small_input"], weights=weights, seed=s)

    fit_kw = dict(train=train_set, val=val_set, epochs=p["epochs"], batch_size=p["batch_size"], lr=p["lr"],
                  patience=p["patience"], device=device, name="mri_resnet_mc", progress=progress)
    cache_config = dict(data=data_config, model=model_config)

    def member(s: int) -> nn.Module:
        return _fit(build, s, fit_kw, cache_config, seed).model.eval()

    fit = _fit(build, seed, fit_kw, cache_config, seed)
    model = fit.model.eval()
    kinds = {k: make_image_perturbation(k, strength) for k in IMAGE_PERTURBATIONS}
    # the chapter's default hook point: the last block's output before its dropout (fair design)
    layer = explained_layer(model, GRADCAM_LAYER, p.get("explain_point", "pre_dropout"))
    return Modality("MRI", train_set, val_set, test_set, model, layer, "grad_cam", model.fc, kinds,
                    member, None, fit.from_cache, 2)


def derm(params: Mapping[str, Any], device: torch.device, *, seed: int, strength: float = 0.3,
         progress: bool = False) -> Modality:
    """The ``derm_vic`` chapter's synthetic dermoscopy and classifier (its profile ``params``)."""
    from ..data.synthetic_derm import make_synthetic_derm
    from ..models.derm_classifier import FEATURE_LAYER, build_derm_classifier, derm_augment

    p = params
    arch, small_width = p["arch"], p["small_width"]
    data = make_synthetic_derm(n_lesions=p["n_lesions"], size=p["image_size"], separation=p["separation"], seed=seed)
    parts = group_split(data.group, [0.6, 0.2, 0.2], seed=seed)
    train_set, val_set, test_set = (data.subset(q) for q in parts)
    cache_config = {
        "chapter": "derm_vic", "source": "synthetic dermoscopy", "arch": arch, "small_width": small_width,
        "image_size": p["image_size"], "n_lesions": p["n_lesions"], "separation": p["separation"],
        "ham_limit": p.get("ham_limit"), "seed": seed, "epochs": p["epochs"], "lr": p["lr"],
        "weight_decay": p["weight_decay"], "batch_size": p["batch_size"], "patience": p["patience"],
        "weights_path": p.get("weights_path"),
    }

    def build(s: int) -> nn.Module:
        torch.manual_seed(s)
        return build_derm_classifier(arch, weights_path=p.get("weights_path"), small_width=small_width)

    fit_kw = dict(train=train_set, val=val_set, epochs=p["epochs"], batch_size=p["batch_size"], lr=p["lr"],
                  weight_decay=p["weight_decay"], class_weight="balanced", patience=p["patience"], device=device,
                  name=f"derm_vic_{arch}", augment=derm_augment, progress=progress)

    def member(s: int) -> nn.Module:
        return _fit(build, s, fit_kw, cache_config, seed).model.eval()

    fit = _fit(build, seed, fit_kw, cache_config, seed)
    model = fit.model.eval()
    kinds = {k: make_image_perturbation(k, strength) for k in IMAGE_PERTURBATIONS}
    return Modality("dermoscopy", train_set, val_set, test_set, model, FEATURE_LAYER, "grad_cam_pp",
                    model.classifier, kinds, member, test_set.group, fit.from_cache, 2)


def volume_perturbation(kind: str, strength: float) -> Callable[[Tensor, torch.Generator], Tensor]:
    """The image perturbation ``kind`` of :mod:`uqxai_lib.perturb` applied to volumes ``[B, C, D, H, W]``:
    depth is folded into channels, so Gaussian noise is per voxel, brightness / contrast per volume,
    and the affine kind is one in-plane (H, W) rotation and shift of the whole volume."""
    inner = make_image_perturbation(kind, strength)

    def perturb(x: Tensor, generator: torch.Generator) -> Tensor:
        if x.ndim != 5:
            raise ValueError(f"volume perturbations take x shaped [B, C, D, H, W], got {tuple(x.shape)}")
        b, c, d, h, w = x.shape
        return inner(x.reshape(b, c * d, h, w), generator).reshape(b, c, d, h, w)

    return perturb


def volume(params: Mapping[str, Any], device: torch.device, *, seed: int, strength: float = 0.3,
           progress: bool = False) -> Modality:
    """The 3-D brain phantom and the 3-D CNN (``params``: the ``volume`` entry of the cross_study profile:
    ``n_patients, size, ambiguity, channels, dropout, epochs, batch_size, lr, patience, max_test``)."""
    from ..data.sartaj import stratified_holdout
    from ..data.synthetic_volume import make_synthetic_volume
    from ..models.cnn3d import CNN3D

    p = params
    data = make_synthetic_volume(p["n_patients"], size=p["size"], ambiguity=p["ambiguity"], seed=seed)
    rest, test_idx = stratified_holdout(data.y, int(round(0.2 * len(data))), seed=seed)
    tr, va = stratified_holdout(data.y[rest], int(round(0.2 * len(data))), seed=seed + 1)
    train_set, val_set, test_set = data.subset(rest[tr]), data.subset(rest[va]), data.subset(test_idx)
    test_set = subsample(test_set, p["max_test"])
    data_config = dict(source="synthetic_volume", n_patients=p["n_patients"], size=p["size"],
                       ambiguity=p["ambiguity"], seed=seed)

    def build(s: int) -> nn.Module:
        torch.manual_seed(s)
        return CNN3D(channels=p["channels"], p=p["dropout"])

    fit_kw = dict(train=train_set, val=val_set, epochs=p["epochs"], batch_size=p["batch_size"], lr=p["lr"],
                  patience=p["patience"], device=device, name="volume_cnn3d", progress=progress)
    cache_config = dict(data=data_config, model=build(seed).config, epochs=p["epochs"], batch_size=p["batch_size"],
                        lr=p["lr"], patience=p["patience"], seed=seed)

    def member(s: int) -> nn.Module:
        return _fit(build, s, fit_kw, cache_config, seed).model.eval()

    fit = _fit(build, seed, fit_kw, cache_config, seed)
    model = fit.model.eval()
    kinds = {k: volume_perturbation(k, strength) for k in IMAGE_PERTURBATIONS}
    return Modality("volume", train_set, val_set, test_set, model, model.cam_layer_name, "grad_cam", model.fc, kinds,
                    member, None, fit.from_cache, 3)


def members(modality: Modality, seeds: Sequence[int]) -> list[nn.Module]:
    """The ensemble members of ``seeds`` (each trained once, then cached)."""
    return [modality.member(int(s)) for s in seeds]
