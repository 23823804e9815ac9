"""HAM10000 dermoscopy images with lesion masks (real data for the ``derm_vic`` chapter).

Expected layout under the data root (the Harvard Dataverse release, DOI 10.7910/DVN/DBW86T,
plus the lesion segmentations of Tschandl et al.; see ``data_manifests/ham10000.yaml``)::

    <root>/HAM10000_metadata                      (CSV; ``.csv`` / ``.tab`` suffix accepted)
    <root>/HAM10000_images_part_1/ISIC_0024306.jpg ...
    <root>/HAM10000_images_part_2/ISIC_0029306.jpg ...
    <root>/HAM10000_segmentations_lesion_tschandl/ISIC_0024306_segmentation.png ...

``<root>`` may also be a folder that contains a ``HAM10000/`` folder with that layout.
The metadata columns are ``lesion_id, image_id, dx, dx_type, age, sex, localization``; the label is
*malignant* for ``dx`` in {mel, bcc, akiec} (19.5 % of the images) and benign otherwise. Several
images show the same lesion, so splits must be grouped by ``lesion_id`` (``group`` holds its code).

Images (600 x 450) are centre-cropped to a square and resized; masks the same way (nearest).
Nothing is downloaded: missing or unreadable files raise :class:`~uqxai_lib.data.DataError`
naming them.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from . import DataError, LabeledArrays
from .synthetic_derm import normalize_rgb

__all__ = [
    "CLASSES",
    "MALIGNANT_DX",
    "DX_CODES",
    "IMAGE_DIRS",
    "MASK_DIR",
    "METADATA_NAMES",
    "find_root",
    "read_metadata",
    "image_path",
    "mask_path",
    "load_ham10000",
]

CLASSES = ("benign", "malignant")
MALIGNANT_DX = ("mel", "bcc", "akiec")
DX_CODES = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
IMAGE_DIRS = ("HAM10000_images_part_1", "HAM10000_images_part_2")
MASK_DIR = "HAM10000_segmentations_lesion_tschandl"
METADATA_NAMES = ("HAM10000_metadata", "HAM10000_metadata.csv", "HAM10000_metadata.tab")
COLUMNS = ("lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization")
SOURCE = "https://doi.org/10.7910/DVN/DBW86T (CC BY-NC 4.0)"


def find_root(data_dir: str | os.PathLike) -> Path:
    """Return the folder holding the HAM10000 metadata: ``data_dir`` itself or ``data_dir/HAM10000``."""
    base = Path(data_dir)
    for cand in (base, base / "HAM10000"):
        if any((cand / n).is_file() for n in METADATA_NAMES):
            return cand
    raise DataError(
        f"no HAM10000 metadata file ({' or '.join(METADATA_NAMES)}) in {base} or {base / 'HAM10000'}; "
        f"download the release from {SOURCE} and unpack it there, or run without data_dir to use "
        "the synthetic dermoscopy set"
    )


def read_metadata(root: str | os.PathLike):
    """Read the metadata table (pandas DataFrame) and check its columns and values."""
    import pandas as pd

    root = find_root(root)
    path = next(root / n for n in METADATA_NAMES if (root / n).is_file())
    try:
        df = pd.read_csv(path, sep=None, engine="python", dtype={"lesion_id": str, "image_id": str})
    except Exception as exc:  # pandas raises several types for unreadable files
        raise DataError(f"cannot read HAM10000 metadata {path}: {exc}; re-download it from {SOURCE}") from exc
    df.columns = [str(c).strip().strip('"') for c in df.columns]
    missing = [c for c in COLUMNS[:3] if c not in df.columns]
    if missing:
        raise DataError(
            f"HAM10000 metadata {path} lacks column(s) {missing}; expected {list(COLUMNS)}"
        )
    df = df.dropna(subset=["lesion_id", "image_id", "dx"])
    bad = sorted(set(df["dx"]) - set(DX_CODES))
    if bad:
        raise DataError(f"HAM10000 metadata {path} has unknown dx value(s) {bad}; expected {list(DX_CODES)}")
    if df["image_id"].duplicated().any():
        dup = df.loc[df["image_id"].duplicated(), "image_id"].tolist()[:5]
        raise DataError(f"HAM10000 metadata {path} lists image(s) {dup} twice")
    return df.reset_index(drop=True)


def image_path(root: Path, image_id: str) -> Path | None:
    """Path of ``<image_id>.jpg`` in either image folder, or None."""
    for d in IMAGE_DIRS:
        p = root / d / f"{image_id}.jpg"
        if p.is_file():
            return p
    return None


def mask_path(root: Path, image_id: str) -> Path:
    return root / MASK_DIR / f"{image_id}_segmentation.png"


def _square(img, size: int, resample):
    w, h = img.size
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    return img.crop((left, top, left + s, top + s)).resize((size, size), resample)


def _read_image(path: Path, size: int) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            arr = np.asarray(_square(im.convert("RGB"), size, Image.BILINEAR), dtype=np.uint8)
    except Exception as exc:
        raise DataError(f"corrupt or unreadable image {path}: {exc}; re-download it from {SOURCE}") from exc
    return arr


def _read_mask(path: Path, size: int) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            arr = np.asarray(_square(im.convert("L"), size, Image.NEAREST)) > 127
    except Exception as exc:
        raise DataError(f"corrupt or unreadable mask {path}: {exc}; re-download the segmentations") from exc
    return arr


def _select(df, limit: int | None, seed: int):
    """Keep whole lesions (a seeded random subset) until about ``limit`` images are kept."""
    if limit is None or limit >= len(df):
        return df
    lesions = df["lesion_id"].drop_duplicates().to_numpy()
    rng = np.random.default_rng(seed)
    rng.shuffle(lesions)
    sizes = df.groupby("lesion_id").size()
    keep, n = [], 0
    for les in lesions:
        if n >= limit:
            break
        keep.append(les)
        n += int(sizes[les])
    return df[df["lesion_id"].isin(set(keep))].reset_index(drop=True)


def _format_missing(kind: str, paths: Sequence[Path], root: Path) -> str:
    shown = ", ".join(str(p.relative_to(root)) if p.is_relative_to(root) else str(p) for p in paths[:10])
    more = f" and {len(paths) - 10} more" if len(paths) > 10 else ""
    return f"{len(paths)} {kind} missing: {shown}{more}"


def load_ham10000(
    data_dir: str | os.PathLike,
    *,
    size: int = 224,
    limit: int | None = None,
    seed: int = 0,
    masks: bool = True,
) -> LabeledArrays:
    """Load HAM10000 as :class:`LabeledArrays`.

    Parameters
    ----------
    data_dir:
        The HAM10000 folder (or a folder containing ``HAM10000/``).
    size:
        Side of the square images after centre crop and resize.
    limit:
        Load only about this many images, choosing whole lesions at random with ``seed``
        (for CPU runs); None loads all 10,015.
    masks:
        Load the lesion masks (required for the fidelity study).

    Returns
    -------
    LabeledArrays
        ``x`` float32 [N, 3, size, size] normalised like the synthetic set; ``y`` 1 = malignant
        (mel, bcc, akiec); ``mask`` bool [N, size, size] or None; ``group`` lesion code
        (``lesion_id`` in sorted order); ``classes = ("benign", "malignant")``.

    Raises
    ------
    DataError
        Missing metadata, images or masks (all of them named), unreadable files, bad columns.
    """
    root = find_root(data_dir)
    df = _select(read_metadata(root), limit, seed)
    imgs = [image_path(root, i) for i in df["image_id"]]
    missing = [root / IMAGE_DIRS[0] / f"{i}.jpg" for i, p in zip(df["image_id"], imgs) if p is None]
    problems = []
    if missing:
        problems.append(_format_missing(f"image(s) (looked in {' and '.join(IMAGE_DIRS)})", missing, root))
    mpaths = [mask_path(root, i) for i in df["image_id"]] if masks else []
    mmissing = [p for p in mpaths if not p.is_file()]
    if mmissing:
        problems.append(_format_missing(f"mask(s) in {MASK_DIR}", mmissing, root))
    if problems:
        raise DataError(
            "HAM10000 under " + str(root) + " is incomplete: " + "; ".join(problems)
            + f". Get the files from {SOURCE} (and the lesion segmentations), or pass limit= / masks=False."
        )
    x = np.stack([_read_image(p, size) for p in imgs])  # [N, H, W, 3] uint8
    xt = normalize_rgb(torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255.0)
    mk = torch.from_numpy(np.stack([_read_mask(p, size) for p in mpaths])) if masks else None
    y = torch.tensor(df["dx"].isin(MALIGNANT_DX).to_numpy(), dtype=torch.long)
    codes = {les: k for k, les in enumerate(sorted(df["lesion_id"].unique()))}
    group = torch.tensor([codes[les] for les in df["lesion_id"]], dtype=torch.long)
    return LabeledArrays(x=xt, y=y, classes=CLASSES, mask=mk, group=group)
