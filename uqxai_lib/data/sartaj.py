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
``val_size`` is relative by default (433 / 2,870 of ``Training``, which is exactly 433 images on
the full release), so a partial copy keeps the paper's proportions.

**A partial copy** (some classes, fewer images) is loaded with ``classes=[...]`` (notebook
parameter ``sartaj_classes``) and ``check_counts=False`` (``sartaj_check_counts``); the errors for
an incomplete copy name these options. Hidden files (``.DS_Store``, the macOS ``._*.jpg``
resource files) and files of other types (``Thumbs.db``, ``.txt``) are ignored; suffixes are
matched case-insensitively (``.JPG``).

SARTAJ has no patient identifiers, so ``group`` is the image index (each image its own group);
slices of one patient may sit in both training and test, as in every published use of the set.
No tumour masks exist (``mask`` is None).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from . import DataError, LabeledArrays, data_error
from .synthetic_mri import CLASSES, normalize_gray

__all__ = [
    "CLASSES",
    "FOLDERS",
    "SPLITS",
    "PAPER_SPLIT",
    "SOURCE",
    "VAL_SHARE",
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
#: Default validation share of ``Training``: the paper's 433 of 2,870 images.
VAL_SHARE = PAPER_SPLIT["val"] / (PAPER_SPLIT["train"] + PAPER_SPLIT["val"])
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


def _images_in(d: Path) -> list[Path]:
    """Image files of a folder, sorted; hidden files (``.DS_Store``, macOS ``._*``) and other types skipped."""
    return sorted(p for p in d.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in _SUFFIXES)


def _folders(classes: Sequence[str] | None) -> tuple[str, ...]:
    """Folders of the requested classes (names of :data:`CLASSES` or :data:`FOLDERS`), in archive order."""
    if classes is None:
        return FOLDERS
    names = [str(c).strip() for c in ([classes] if isinstance(classes, str) else classes)]
    pick = set()
    for c in names:
        if c in CLASSES:
            pick.add(FOLDERS[CLASSES.index(c)])
        elif c in FOLDERS:
            pick.add(c)
        else:
            raise DataError(f"unknown SARTAJ class {c!r} in classes; choose from {list(CLASSES)} "
                            f"(or the folder names {list(FOLDERS)})")
    if len(pick) < 2:
        raise DataError(f"classes={names} selects {len(pick)} class; a classifier needs at least two")
    return tuple(f for f in FOLDERS if f in pick)


def list_images(root: str | os.PathLike, classes: Sequence[str] | None = None) -> dict[str, list[tuple[Path, int]]]:
    """``{"Training": [(path, label), ...], "Testing": [...]}``, sorted by class then file name.

    ``classes`` restricts to some classes (labels then count 0.. in archive order). Raises
    :class:`DataError` naming every missing or empty class folder and the ``classes`` value that
    uses the folders present.
    """
    root = Path(root)
    folders = _folders(classes)
    out: dict[str, list[tuple[Path, int]]] = {}
    problems, usable = [], []
    for label, folder in enumerate(folders):
        ok = True
        for split in SPLITS:
            d = root / split / folder
            if not d.is_dir():
                problems.append(f"missing folder {split}/{folder}")
                ok = False
            elif not _images_in(d):
                problems.append(f"no images in {split}/{folder}")
                ok = False
        usable += [CLASSES[FOLDERS.index(folder)]] if ok else []
    for split in SPLITS:
        out[split] = [(p, label) for label, folder in enumerate(folders) if (root / split / folder).is_dir()
                      for p in _images_in(root / split / folder)]
    if problems:
        advice = [f"Get the archive from {SOURCE}."]
        if len(usable) >= 2:
            advice.append(f"To use only the classes present in both splits, pass classes={usable!r} "
                          "(notebook parameter sartaj_classes) and check_counts=False (sartaj_check_counts = False).")
        raise data_error(f"SARTAJ data under {str(root)!r} is incomplete", problems, advice)
    return out


def _square(im, size: int):
    """Pad a PIL image to a square (black, centred), then resize to ``size`` (bilinear)."""
    from PIL import Image

    w, h = im.size
    s = max(w, h)
    canvas = Image.new(im.mode, (s, s), 0)
    canvas.paste(im, ((s - w) // 2, (s - h) // 2))
    return canvas.resize((size, size), Image.BILINEAR)


def _read_gray(paths: Sequence[Path], size: int, root: Path | None) -> tuple[np.ndarray, list[str]]:
    """Gray [N, size, size] float32 in [0, 1] and the list of files that could not be read (with why)."""
    from PIL import Image, UnidentifiedImageError

    out = np.zeros((len(paths), size, size), dtype=np.float32)
    bad = []
    for i, p in enumerate(paths):
        try:
            with Image.open(p) as im:
                im.load()
                out[i] = np.asarray(_square(im.convert("L"), size), dtype=np.float32) / 255.0
        except (OSError, UnidentifiedImageError, ValueError) as err:
            shown = p.relative_to(root) if root is not None and p.is_relative_to(root) else p
            bad.append(f"{shown} ({type(err).__name__})")
    return out, bad


def _corrupt_error(bad: Sequence[str]) -> DataError:
    return data_error(f"{len(bad)} SARTAJ image(s) are missing or corrupt", bad, f"re-download them from {SOURCE}")


def read_images(paths: Sequence[Path], size: int, *, root: Path | None = None) -> Tensor:
    """Read image files as gray [N, size, size] float32 in [0, 1].

    Every unreadable file is collected; one :class:`DataError` names them all.
    """
    out, bad = _read_gray(paths, size, root)
    if bad:
        raise _corrupt_error(bad)
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
    val_size: int | float | None = VAL_SHARE,
    seed: int = 0,
    limit: int | None = None,
    check_counts: bool = True,
    classes: Sequence[str] | None = None,
    manifest: Mapping | None = None,
) -> dict[str, LabeledArrays]:
    """Load SARTAJ as ``{"train", "val", "test"}`` :class:`LabeledArrays` (the paper's split).

    Parameters
    ----------
    data_dir:
        The unzipped Kaggle archive (see the module docstring for the layout).
    size:
        Side of the square images (224 as in the paper).
    val_size:
        Validation images carved out of ``Training``, stratified by class: a float in (0, 1) is a
        share of ``Training`` (default 433 / 2,870, the paper's 433 images on the full release and
        the same proportion on a partial copy; ``None`` means the same), an int a number of images.
        Notebook parameter ``sartaj_val_size``.
    seed:
        Seed of the validation draw (and of the ``limit`` subsample).
    limit:
        If given, keep at most this many images per split (class-stratified, seeded) for quick runs.
    check_counts:
        Check the folder counts of ``data_manifests/sartaj.yaml`` first (the full release); turn off
        for a partial copy (notebook parameter ``sartaj_check_counts``).
    classes:
        Use only these classes (names of :data:`CLASSES` or the folder names); labels are then
        0.. in :data:`CLASSES` order and ``classes`` of the result lists them. Notebook parameter
        ``sartaj_classes``.
    manifest:
        A loaded manifest for the count check (default ``load_manifest("sartaj")``).

    Returns
    -------
    dict of LabeledArrays
        ``x`` float32 [N, 3, size, size], ``y`` int64 in class order, ``group`` = image index (no
        patient ids), ``mask`` None.
    """
    root = find_root(data_dir)
    folders = _folders(classes)
    names = tuple(CLASSES[FOLDERS.index(f)] for f in folders)
    if check_counts:
        from .manifest import load_manifest, verify_files

        m = dict(manifest) if manifest is not None else load_manifest("sartaj")
        m["globs"] = [g for g in m.get("globs", []) if g["pattern"].split("/")[1:2] == [] or
                      g["pattern"].split("/")[1] in folders]
        m["files"] = []
        verify_files(root, m, check_sha256=False, advice=[
            "A partial copy? Pass check_counts=False (notebook parameter sartaj_check_counts = False); "
            "for some classes only, also classes=[...] (sartaj_classes)."])
    files = list_images(root, classes)
    labels = {s: torch.tensor([lab for _, lab in files[s]], dtype=torch.long) for s in SPLITS}
    n_train = len(labels["Training"])
    val_size = VAL_SHARE if val_size is None else val_size
    if isinstance(val_size, float) and 0 < val_size < 1:
        n_val = int(round(val_size * n_train))
    elif isinstance(val_size, (int, np.integer)) and not isinstance(val_size, bool):
        n_val = int(val_size)
    else:
        raise DataError(f"val_size must be a share in (0, 1) or a number of images, got {val_size!r}")
    if not 0 < n_val < n_train:
        raise DataError(f"val_size={val_size!r} gives {n_val} validation images, but Training has {n_train}; "
                        f"pass a share instead, e.g. val_size={VAL_SHARE:.4f} (the paper's 433 of 2,870; "
                        "notebook parameter sartaj_val_size)")
    keep, val = stratified_holdout(labels["Training"], n_val, seed=seed)
    index = {"train": ("Training", keep), "val": ("Training", val),
             "test": ("Testing", torch.arange(len(labels["Testing"])))}
    offset = {"Training": 0, "Testing": n_train}  # group ids unique across the two folders
    chosen, bad = {}, []
    for name, (split, idx) in index.items():
        if limit is not None and len(idx) > limit:
            _, sub = stratified_holdout(labels[split][idx], limit, seed=seed + 1)
            idx = idx[sub]
        gray, b = _read_gray([files[split][i][0] for i in idx.tolist()], size, root)
        chosen[name] = (split, idx, gray)
        bad += b
    if bad:  # every corrupt file of every split, in one error
        raise _corrupt_error(bad)
    return {name: LabeledArrays(x=normalize_gray(torch.from_numpy(gray)), y=labels[split][idx].clone(), classes=names,
                                mask=None, group=idx + offset[split])
            for name, (split, idx, gray) in chosen.items()}
