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

from . import DataError, LabeledArrays, data_error
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
        # utf-8-sig: a byte-order mark (as Excel writes it) must not become part of 'lesion_id'
        df = pd.read_csv(path, sep=None, engine="python", encoding="utf-8-sig",
                         dtype={"lesion_id": str, "image_id": str})
    except Exception as exc:  # pandas raises several types for unreadable files
        raise DataError(f"cannot read HAM10000 metadata {path}: {exc}; re-download it from {SOURCE}") from exc
    df.columns = [str(c).strip().strip('"').lstrip("\ufeff") for c in df.columns]
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


def _read_image(path: Path, size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """RGB uint8 [size, size, 3] (centre crop, bilinear) and the file's (width, height)."""
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        return np.asarray(_square(im.convert("RGB"), size, Image.BILINEAR), dtype=np.uint8), im.size


def _read_mask(path: Path, size: int, image_size: tuple[int, int]) -> tuple[np.ndarray | None, str | None]:
    """Bool mask [size, size] (centre crop, nearest, > 127), or None and why the mask is wrong.

    A mask must have its image's width and height (a rotated 450 x 600 or a 512 x 512 mask lands on
    the wrong pixels after the crop) and hold lesion pixels at 255: a mask whose largest value is
    below 128 (e.g. stored as 0/1) would load as empty.
    """
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        if im.size != image_size:
            return None, (f"is {im.size[0]} x {im.size[1]} (width x height) but its image is "
                          f"{image_size[0]} x {image_size[1]}; a mask must match its image")
        gray = im.convert("L")
        top = int(np.asarray(gray).max())
        if top == 0:
            return None, "is empty (every pixel 0); the lesion must be marked 255"
        if top < 128:
            return None, (f"has values 0..{top}, not 0/255 (lesion = 255); it would load as empty. "
                          f"Rescale it, e.g. with PIL: Image.eval(mask, lambda v: 255 * (v > 0))")
        return np.asarray(_square(gray, size, Image.NEAREST)) > 127, None


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


def _shown(p: Path, root: Path) -> str:
    return str(p.relative_to(root)) if p.is_relative_to(root) else str(p)


def load_ham10000(
    data_dir: str | os.PathLike,
    *,
    size: int = 224,
    limit: int | None = None,
    seed: int = 0,
    masks: bool = True,
    image_ids: Sequence[str] | None = None,
    skip_missing: bool = False,
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
    image_ids:
        Use only these images (``ISIC_...`` ids of the metadata), e.g. the part of the release you
        hold; notebook parameter ``ham_image_ids``.
    skip_missing:
        Drop the metadata rows whose image (or, with ``masks``, mask) file is absent instead of
        failing; how many were dropped is in the returned ``skipped`` attribute. Notebook parameter
        ``ham_skip_missing``. Corrupt or wrong files always fail.

    Returns
    -------
    LabeledArrays
        ``x`` float32 [N, 3, size, size] normalised like the synthetic set; ``y`` 1 = malignant
        (mel, bcc, akiec); ``mask`` bool [N, size, size] or None; ``group`` lesion code
        (``lesion_id`` in sorted order); ``classes = ("benign", "malignant")``.

    Raises
    ------
    DataError
        Missing metadata, images or masks, unreadable files, masks of the wrong size or values, bad
        columns: every failing file is named with the reason (the first 20 and a count in the
        message, all in ``.problems``), followed by what to do.
    """
    root = find_root(data_dir)
    df = read_metadata(root)
    if image_ids is not None:
        wanted = [str(i).strip() for i in image_ids]
        unknown = sorted(set(wanted) - set(df["image_id"]))
        if unknown:
            raise DataError(f"image_ids has {len(unknown)} id(s) not in the HAM10000 metadata "
                            f"(e.g. {unknown[:5]}); use the image_id column's ISIC_... names")
        df = df[df["image_id"].isin(set(wanted))].reset_index(drop=True)
    imgs = [image_path(root, i) for i in df["image_id"]]
    absent = [p is None or (masks and not mask_path(root, i).is_file()) for i, p in zip(df["image_id"], imgs)]
    skipped = 0
    if skip_missing and any(absent):
        keep = ~np.asarray(absent)
        skipped = int((~keep).sum())
        df = df[keep].reset_index(drop=True)
        imgs = [p for p, k in zip(imgs, keep) if k]
        if df.empty:
            raise DataError(f"no HAM10000 image{' with its mask' if masks else ''} under {root} is present; "
                            f"put the images in {' / '.join(IMAGE_DIRS)}" + (f" and the masks in {MASK_DIR}" if masks else ""))
    df = _select(df, limit, seed)
    imgs = [image_path(root, i) for i in df["image_id"]]
    problems, advice = [], []
    missing = [f"missing image {IMAGE_DIRS[0]}/{i}.jpg (looked in {' and '.join(IMAGE_DIRS)})"
               for i, p in zip(df["image_id"], imgs) if p is None]
    mpaths = [mask_path(root, i) for i in df["image_id"]] if masks else []
    mmissing = [f"missing mask {_shown(p, root)}" for p in mpaths if not p.is_file()]
    problems += missing + mmissing
    if missing or mmissing:
        advice.append(f"Get the files from {SOURCE}" + (" (the lesion masks: HAM10000_segmentations_lesion_tschandl.zip)"
                                                          if mmissing else "") + ".")
        advice.append("To use only the images present, pass skip_missing=True (notebook parameter "
                      "ham_skip_missing = True), or list them with image_ids=[...] (notebook parameter ham_image_ids).")
        if mmissing and not missing:
            advice.append("masks=False loads the images without masks (the chapter's fidelity study needs them).")
    x = np.zeros((len(df), size, size, 3), np.uint8)
    mk = np.zeros((len(df), size, size), bool) if masks else None
    for k, (image_id, p) in enumerate(zip(df["image_id"], imgs)):
        if p is None:
            continue
        try:
            x[k], shape = _read_image(p, size)
        except Exception as exc:  # noqa: BLE001 - PIL raises several types; name the file and the cause
            problems.append(f"corrupt or unreadable image {_shown(p, root)} ({type(exc).__name__}: {exc})")
            continue
        if masks and mpaths[k].is_file():
            try:
                m, why = _read_mask(mpaths[k], size, shape)
            except Exception as exc:  # noqa: BLE001
                m, why = None, f"is corrupt or unreadable ({type(exc).__name__}: {exc})"
            if why:
                problems.append(f"mask {_shown(mpaths[k], root)} {why}")
            else:
                mk[k] = m
    if problems and not advice:
        advice.append(f"Re-download the failing files from {SOURCE} (masks: HAM10000_segmentations_lesion_tschandl.zip).")
    if problems:
        raise data_error(f"HAM10000 under {root} has missing or unusable files", problems, advice)
    xt = normalize_rgb(torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255.0)
    y = torch.tensor(df["dx"].isin(MALIGNANT_DX).to_numpy(), dtype=torch.long)
    codes = {les: k for k, les in enumerate(sorted(df["lesion_id"].unique()))}
    group = torch.tensor([codes[les] for les in df["lesion_id"]], dtype=torch.long)
    out = LabeledArrays(x=xt, y=y, classes=CLASSES, mask=torch.from_numpy(mk) if masks else None, group=group)
    out.skipped = skipped  # type: ignore[attr-defined]  # rows dropped by skip_missing
    return out
