"""The chapters' embedded data sets and trained models, for chapters that use all of them.

Each function calls that chapter's own setup (``studies.<chapter>.setup``, the one function the
notebook and the robustness chapter call too) with the chapter's profile parameters, so the data,
split, model and cache key are the chapter's and the model it trained is reused from the cache
(``from_cache``). ``member(seed)`` is the chapter's setup with ``member_seed``: the same data and
split, another training seed (the members of a seed ensemble).

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
from ..data import LabeledArrays
from ..perturb import IMAGE_PERTURBATIONS, PERTURBATIONS, make_image_perturbation, make_perturbation

__all__ = ["Modality", "derm", "ecg", "finetuned", "members", "mri", "subsample", "volume", "volume_perturbation"]


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
    recipe: Mapping[str, Any] | None = None  # how the model was trained: lr, batch_size, weight_decay,
    #                                          augment, cache_config, name (for fine-tuned Rashomon sets)


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


def _members(seed: int, model: nn.Module, build: Callable[[int], nn.Module]) -> Callable[[int], nn.Module]:
    """``member(s)``: the model of training seed ``s`` -- ``model`` for the chapter's own ``seed``, else
    ``build(s)`` once (later calls return the same model, so a chapter's setup is not rerun per use)."""
    made = {int(seed): model}

    def member(s: int) -> nn.Module:
        s = int(s)
        if s not in made:
            made[s] = build(s)
        return made[s]

    return member


def ecg(params: Mapping[str, Any], device: torch.device, *, seed: int, snr_db: float = 10.0,
        progress: bool = False) -> Modality:
    """The ``ecg_sue`` chapter's setup (:func:`uqxai_lib.studies.ecg.setup`, its profile ``params``):
    its windows, split and CNN-BiLSTM under the chapter's cache key; members through its ``member_seed``."""
    from . import ecg as chapter

    st = chapter.setup(params, seed=seed, device=device, progress=progress)

    member = _members(seed, st.model, lambda s: chapter.setup(params, seed=seed, device=device, member_seed=s).model)

    kinds = {k: make_perturbation(k, snr_db, chapter.FS) for k in PERTURBATIONS}
    recipe = dict(lr=params["lr"], batch_size=params["batch_size"], weight_decay=0.0, augment=None,
                  cache_config=st.train_config, name="ecg_cnn_bilstm_finetuned")
    return Modality("ECG", st.train, st.val, st.test, st.model, st.layer, "grad_cam", None, kinds, member,
                    st.test.group, st.from_cache, 1, recipe)


def mri(params: Mapping[str, Any], device: torch.device, *, seed: int, strength: float = 0.3,
        progress: bool = False) -> Modality:
    """The ``mri_mc_dropout`` chapter's setup (:func:`uqxai_lib.studies.mri.setup`, its profile
    ``params``): its phantom, split and ResNet-MC explained at the chapter's hook point."""
    from . import mri as chapter

    st = chapter.setup(params, seed=seed, device=device)

    member = _members(seed, st.model, lambda s: chapter.setup(params, seed=seed, device=device, member_seed=s).model)

    kinds = {k: make_image_perturbation(k, strength) for k in IMAGE_PERTURBATIONS}
    recipe = dict(lr=params["lr"], batch_size=params["batch_size"], weight_decay=0.0, augment=None,
                  cache_config=st.config, name="mri_resnet_mc_finetuned")
    return Modality("MRI", st.train, st.val, st.test, st.model, st.layer, "grad_cam", st.model.fc, kinds,
                    member, None, st.fit.from_cache, 2, recipe)


def derm(params: Mapping[str, Any], device: torch.device, *, seed: int, strength: float = 0.3,
         progress: bool = False) -> Modality:
    """The ``derm_vic`` chapter's setup (:func:`uqxai_lib.studies.derm.setup`, its profile ``params``):
    its lesions, lesion-grouped split and classifier, explained with Grad-CAM++."""
    from ..models.derm_classifier import FEATURE_LAYER, derm_augment
    from . import derm as chapter

    st = chapter.setup(params, seed=seed, device=device, progress=progress)

    member = _members(seed, st.model, lambda s: chapter.setup(params, seed=seed, device=device, member_seed=s).model)

    kinds = {k: make_image_perturbation(k, strength) for k in IMAGE_PERTURBATIONS}
    recipe = dict(lr=params["lr"], batch_size=params["batch_size"], weight_decay=params["weight_decay"],
                  augment=derm_augment, cache_config=st.cache_config, name=f"derm_vic_{params['arch']}_finetuned")
    return Modality("dermoscopy", st.train_set, st.val_set, st.test_set, st.model, FEATURE_LAYER, "grad_cam_pp",
                    st.model.classifier, kinds, member, st.test_set.group, st.from_cache, 2, recipe)


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

    fit = _fit(build, seed, fit_kw, cache_config, seed)
    model = fit.model.eval()
    member = _members(seed, model, lambda s: _fit(build, s, fit_kw, cache_config, seed).model.eval())
    kinds = {k: volume_perturbation(k, strength) for k in IMAGE_PERTURBATIONS}
    recipe = dict(lr=p["lr"], batch_size=p["batch_size"], weight_decay=0.0, augment=None, cache_config=cache_config,
                  name="volume_cnn3d_finetuned")
    return Modality("volume", train_set, val_set, test_set, model, model.cam_layer_name, "grad_cam", model.fc, kinds,
                    member, None, fit.from_cache, 3, recipe)


def members(modality: Modality, seeds: Sequence[int]) -> list[nn.Module]:
    """The ensemble members of ``seeds`` (each trained once, then cached)."""
    return [modality.member(int(s)) for s in seeds]


def finetuned(modality: Modality, *, k: int, epochs: int, epsilon: float, seed: int, lr_factor: float = 0.1,
              device: torch.device | str | None = None, progress: bool = False):
    """The modality's fine-tuned Rashomon set (:func:`uqxai_lib.finetune.finetuned_set`): ``k``
    copies of its model trained ``epochs`` more epochs on its training data with the chapter's recipe
    at ``lr_factor`` times its learning rate, each with its own seed, kept within ``1 + epsilon`` of
    the model's validation loss. Cached under the chapter's training key (plus the parent weights
    and each candidate's seed)."""
    from .. import finetune

    r = modality.recipe
    if r is None:
        raise ValueError(f"modality {modality.name!r} carries no training recipe; build it with studies.modalities")
    return finetune.finetuned_set(modality.model, modality.train, modality.val, k=int(k), epochs=int(epochs),
                                  epsilon=float(epsilon), seed=int(seed), cache_config=r["cache_config"],
                                  lr=float(r["lr"]) * float(lr_factor), batch_size=int(r["batch_size"]),
                                  weight_decay=float(r["weight_decay"]), augment=r["augment"], device=device,
                                  name=r["name"], progress=progress)
