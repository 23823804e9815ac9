"""SARTAJ brain-tumour MRI set (Kaggle "Brain Tumor Classification (MRI)"): the real data of the
``mri_mc_dropout`` chapter.

Layout expected under ``data_dir`` (the unzipped Kaggle archive; one extra enclosing folder is fine)::

    Training/{glioma_tumor,meningioma_tumor,no_tumor,pituitary_tumor}/*.jpg   2,870 images
    Testing/{glioma_tumor,meningioma_tumor,no_tumor,pituitary_tumor}/*.jpg      394 images

The JPEGs have mixed sizes and colour modes (gray and RGB); every image is read as gray, padded to
a square with black, resized to ``size`` x ``size`` and copied to three channels, normalised like
the synthetic phantom (:func:`uqxai_lib.data.synthetic_mri.normalize_gray`).

**The paper's split.** Salvi et al. (2025, section 4.2) use 3,264 images: training 2,437
(74.7 %), validation 433 (13.3 %) and test 394 (12 %). The 394 test images are exactly the
``Testing`` folder and 2,437 + 433 = 2,870 is the ``Training`` folder, so :func:`load_sartaj`
keeps ``Testing`` as the test set and carves a class-stratified, seeded validation set of
``val_size = 433`` images out of ``Training`` (:func:`stratified_holdout`). The paper does not
say how its validation images were chosen; stratification and the seed are our choice.

SARTAJ has no patient identifiers, so ``group`` is the image index (each image its own group);
slices of one patient may sit in both training and test, as in every published use of the set.
No tumour masks exist (``mask`` is None).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from . import DataError, LabeledArrays
from .synthetic_mri import CLASSES, normalize_gray

__all__ = [
    "CLASSES",
    "FOLDERS",
    "SPLITS",
    "PAPER_SPLIT",
    "SOURCE",
    "find_root",
    "list_images",
    "load_sartaj",
    "read_images",
    "stratified_holdout",
]

#: Folder of each class in :data:`CLASSES` order.
FOLDERS = ("glioma_tumor", "meningioma_tumor", "no_tumor", "pituitary_tumor")
#: Top-level folders of the archive.
SPLITS = ("Training", "Testing")
#: Salvi et al. (2025): training / validation / test image counts.
PAPER_SPLIT = {"train": 2437, "val": 433, "test": 394}
SOURCE = "https://www.kaggle.com/datasets/sartajbhuvaji/brain-tumor-classification-mri"
_SUFFIXES = (".jpg", ".jpeg", ".png")


def find_root(data_dir: str | os.PathLike) -> Path:
    """The folder holding ``Training/`` and ``Testing/`` (``data_dir`` or one folder below it)."""
    d = Path(data_dir)
    if not d.is_dir():
        raise DataError(f"SARTAJ data directory {str(d)!r} does not exist; download the archive from {SOURCE}")
    candidates = [d] + sorted(p for p in d.iterdir() if p.is_dir())
    for c in candidates:
        if all((c / s).is_dir() for s in SPLITS):
            return c
    raise DataError(
        f"no SARTAJ layout under {str(d)!r}: expected folders {SPLITS[0]}/ and {SPLITS[1]}/ with "
        f"sub-folders {', '.join(FOLDERS)} (unzip the archive from {SOURCE} and pass its folder)"
    )


def list_images(root: str | os.PathLike) -> dict[str, list[tuple[Path, int]]]:
    """``{"Training": [(path, label), ...], "Testing": [...]}``, sorted by class then file name.

    Raises :class:`DataError` naming every missing or empty class folder.
    """
    root = Path(root)
    out: dict[str, list[tuple[Path, int]]] = {}
    problems = []
    for split in SPLITS:
        rows = []
        for label, folder in enumerate(FOLDERS):
            d = root / split / folder
            if not d.is_dir():
                problems.append(f"missing folder {split}/{folder}")
                continue
            files = sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in _SUFFIXES)
            if not files:
                problems.append(f"no images in {split}/{folder}")
            rows += [(p, label) for p in files]
        out[split] = rows
    if problems:
        raise DataError(
            f"SARTAJ data under {str(root)!r} is incomplete:\n  - " + "\n  - ".join(problems)
            + f"\nget the archive from {SOURCE}"
        )
    return out


def _square(im, size: int):
    """Pad a PIL image to a square (black, centred), then resize to ``size`` (bilinear)."""
    from PIL import Image

    w, h = im.size
    s = max(w, h)
    canvas = Image.new(im.mode, (s, s), 0)
    canvas.paste(im, ((s - w) // 2, (s - h) // 2))
    return canvas.resize((size, size), Image.BILINEAR)


def read_images(paths: Sequence[Path], size: int, *, root: Path | None = None) -> Tensor:
    """Read image files as gray [N, size, size] float32 in [0, 1].

    Every unreadable file is collected; one :class:`DataError` names them all.
    """
    from PIL import Image, UnidentifiedImageError

    out = np.empty((len(paths), size, size), dtype=np.float32)
    bad = []
    for i, p in enumerate(paths):
        try:
            with Image.open(p) as im:
                im.load()
                out[i] = np.asarray(_square(im.convert("L"), size), dtype=np.float32) / 255.0
        except (OSError, UnidentifiedImageError, ValueError) as err:
            shown = p.relative_to(root) if root is not None and p.is_relative_to(root) else p
            bad.append(f"{shown} ({type(err).__name__})")
    if bad:
        raise DataError(
            f"{len(bad)} SARTAJ image(s) are missing or corrupt:\n  - " + "\n  - ".join(bad)
            + f"\nre-download them from {SOURCE}"
        )
    return torch.from_numpy(out)


def stratified_holdout(y: Tensor, n_holdout: int, *, seed: int) -> tuple[Tensor, Tensor]:
    """Split indices into (kept, held out) with ``n_holdout`` held out, stratified by class.

    Each class gives ``n_holdout * n_c / n`` images, rounded by largest remainder so that the
    total is exact; images are drawn with a seeded generator. Returns sorted LongTensors.

    >>> y = torch.tensor([0] * 826 + [1] * 822 + [2] * 395 + [3] * 827)  # SARTAJ Training
    >>> keep, val = stratified_holdout(y, 433, seed=0)
    >>> len(keep), len(val), torch.bincount(y[val]).tolist()
    (2437, 433, [125, 124, 59, 125])
    """
    y = torch.as_tensor(y).long()
    n = len(y)
    if not 0 < n_holdout < n:
        raise DataError(f"n_holdout must be between 1 and {n - 1} for {n} images, got {n_holdout}")
    counts = torch.bincount(y).double()
    share = counts * n_holdout / n
    take = torch.floor(share).long()
    rest = n_holdout - int(take.sum())
    take[torch.argsort(share - take, descending=True, stable=True)[:rest]] += 1
    g = torch.Generator().manual_seed(int(seed))
    held = []
    for c in range(len(counts)):
        idx = torch.nonzero(y == c).flatten()
        held.append(idx[torch.randperm(len(idx), generator=g)[: int(take[c])]])
    held_t = torch.sort(torch.cat(held)).values
    keep = torch.ones(n, dtype=torch.bool)
    keep[held_t] = False
    return torch.nonzero(keep).flatten(), held_t


def load_sartaj(
    data_dir: str | os.PathLike,
    *,
    size: int = 224,
    val_size: int = PAPER_SPLIT["val"],
    seed: int = 0,
    limit: int | None = None,
    check_counts: bool = True,
) -> dict[str, LabeledArrays]:
    """Load SARTAJ as ``{"train", "val", "test"}`` :class:`LabeledArrays` (the paper's split).

    Parameters
    ----------
    data_dir:
        The unzipped Kaggle archive (see the module docstring for the layout).
    size:
        Side of the square images (224 as in the paper).
    val_size:
        Images carved out of ``Training`` for validation, stratified by class (433 in the paper;
        ``Training`` minus these gives its 2,437 training images). A float in (0, 1) is a share.
    seed:
        Seed of the validation draw (and of the ``limit`` subsample).
    limit:
        If given, keep at most this many images per split (class-stratified, seeded) for quick runs.
    check_counts:
        Check the folder counts of ``data_manifests/sartaj.yaml`` first (the full release); turn off
        for a partial copy.

    Returns
    -------
    dict of LabeledArrays
        ``x`` float32 [N, 3, size, size], ``y`` int64 in :data:`CLASSES` order, ``group`` = image
        index (no patient ids), ``mask`` None.
    """
    root = find_root(data_dir)
    if check_counts:
        from .manifest import load_manifest, verify_files

        verify_files(root, load_manifest("sartaj"), check_sha256=False)
    files = list_images(root)
    labels = {s: torch.tensor([lab for _, lab in files[s]], dtype=torch.long) for s in SPLITS}
    n_train = len(labels["Training"])
    n_val = int(round(val_size * n_train)) if isinstance(val_size, float) and val_size < 1 else int(val_size)
    keep, val = stratified_holdout(labels["Training"], n_val, seed=seed)
    index = {"train": ("Training", keep), "val": ("Training", val),
             "test": ("Testing", torch.arange(len(labels["Testing"])))}
    out = {}
    offset = {"Training": 0, "Testing": n_train}  # group ids unique across the two folders
    for name, (split, idx) in index.items():
        if limit is not None and len(idx) > limit:
            _, sub = stratified_holdout(labels[split][idx], limit, seed=seed + 1)
            idx = idx[sub]
        paths = [files[split][i][0] for i in idx.tolist()]
        gray = read_images(paths, size, root=root)
        out[name] = LabeledArrays(
            x=normalize_gray(gray), y=labels[split][idx].clone(), classes=CLASSES,
            mask=None, group=idx + offset[split],
        )
    return out
