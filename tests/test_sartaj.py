"""Tests of the SARTAJ loader (uqxai_lib.data.sartaj) on a fabricated folder tree of tiny JPEGs."""
import numpy as np
import pytest
import torch
from PIL import Image

from uqxai_lib.data import DataError
from uqxai_lib.data.manifest import load_manifest
from uqxai_lib.data.sartaj import (
    CLASSES,
    FOLDERS,
    PAPER_SPLIT,
    load_sartaj,
    stratified_holdout,
)
from uqxai_lib.data.synthetic_mri import denormalize

COUNTS = {"Training": (6, 5, 4, 5), "Testing": (2, 3, 2, 1)}


def _write_tree(root, counts=COUNTS, nested=False):
    """Tiny JPEGs with mixed sizes and modes; intensity encodes (class, index) for checks."""
    base = root / "archive" if nested else root
    rng = np.random.default_rng(0)
    for split, per_class in counts.items():
        for label, (folder, n) in enumerate(zip(FOLDERS, per_class)):
            d = base / split / folder
            d.mkdir(parents=True)
            for i in range(n):
                h, w = (20, 30) if i % 2 else (24, 24)
                value = 40 * label + 20
                arr = np.full((h, w), value, np.uint8) + rng.integers(0, 3, (h, w), dtype=np.uint8)
                im = Image.fromarray(arr, "L")
                if i % 3 == 0:
                    im = im.convert("RGB")
                im.save(d / f"{folder[:2]}_{i:03d}.jpg", quality=95)
    return base


def test_loads_paper_style_split_with_mixed_sizes_and_modes(tmp_path):
    _write_tree(tmp_path)
    d = load_sartaj(tmp_path, size=16, val_size=4, seed=0, check_counts=False)
    assert set(d) == {"train", "val", "test"}
    assert len(d["train"]) + len(d["val"]) == sum(COUNTS["Training"]) and len(d["val"]) == 4
    assert len(d["test"]) == sum(COUNTS["Testing"])  # the Testing folder is the test set
    for part in d.values():
        assert part.x.shape[1:] == (3, 16, 16) and part.x.dtype == torch.float32
        assert part.classes == CLASSES and part.mask is None
        assert torch.isfinite(part.x).all()
    assert torch.bincount(d["test"].y, minlength=4).tolist() == list(COUNTS["Testing"])
    # no image in two parts; groups unique across folders
    groups = torch.cat([p.group for p in d.values()])
    assert len(groups.unique()) == len(groups)


def test_gray_value_survives_padding_resizing_and_channel_copy(tmp_path):
    _write_tree(tmp_path)
    d = load_sartaj(tmp_path, size=16, val_size=4, seed=0, check_counts=False)["test"]
    gray = denormalize(d.x)
    centre = gray[:, 6:10, 6:10].mean((1, 2)) * 255
    expected = 40 * d.y.float() + 21  # value + mean noise
    assert torch.allclose(centre, expected, atol=4)
    assert torch.allclose(d.x[:, 0] * 0.229 + 0.485, d.x[:, 1] * 0.224 + 0.456, atol=1e-5)


def test_archive_folder_one_level_down_is_found(tmp_path):
    _write_tree(tmp_path, nested=True)
    d = load_sartaj(tmp_path, size=8, val_size=2, check_counts=False)
    assert len(d["test"]) == sum(COUNTS["Testing"])


def test_same_seed_same_validation_images(tmp_path):
    _write_tree(tmp_path)
    a = load_sartaj(tmp_path, size=8, val_size=5, seed=3, check_counts=False)
    b = load_sartaj(tmp_path, size=8, val_size=5, seed=3, check_counts=False)
    assert torch.equal(a["val"].group, b["val"].group) and torch.equal(a["val"].x, b["val"].x)


def test_stratified_holdout_reproduces_the_paper_counts():
    y = torch.tensor([0] * 826 + [1] * 822 + [2] * 395 + [3] * 827)  # SARTAJ Training folder
    keep, val = stratified_holdout(y, PAPER_SPLIT["val"], seed=0)
    assert len(keep) == PAPER_SPLIT["train"] and len(val) == PAPER_SPLIT["val"]
    assert set(keep.tolist()).isdisjoint(val.tolist())
    share = torch.bincount(y[val]).double() / len(val)
    assert torch.allclose(share, torch.bincount(y).double() / len(y), atol=0.01)
    assert not torch.equal(val, stratified_holdout(y, 433, seed=1)[1])


def test_manifest_counts_add_up_to_the_paper_split():
    m = load_manifest("sartaj")
    counts = {g["pattern"].split("/")[0]: 0 for g in m["globs"]}
    for g in m["globs"]:
        counts[g["pattern"].split("/")[0]] += g["min_count"]
    assert counts == {"Training": PAPER_SPLIT["train"] + PAPER_SPLIT["val"], "Testing": PAPER_SPLIT["test"]}
    assert m["license"] and "kaggle" in m["source"]


def test_tiny_copy_fails_the_manifest_count_check_by_name(tmp_path):
    _write_tree(tmp_path)
    with pytest.raises(DataError, match=r"Training/glioma_tumor/\*\.jpg"):
        load_sartaj(tmp_path, size=8)


def test_missing_folder_is_named(tmp_path):
    _write_tree(tmp_path)
    for f in (tmp_path / "Testing" / "no_tumor").iterdir():
        f.unlink()
    (tmp_path / "Testing" / "no_tumor").rmdir()
    with pytest.raises(DataError, match="missing folder Testing/no_tumor"):
        load_sartaj(tmp_path, size=8, check_counts=False)


def test_missing_data_dir_and_wrong_layout_raise(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_sartaj(tmp_path / "nope", size=8)
    (tmp_path / "Training").mkdir()
    with pytest.raises(DataError, match="no SARTAJ layout"):
        load_sartaj(tmp_path, size=8)


def test_every_corrupt_file_is_named(tmp_path):
    _write_tree(tmp_path)
    bad = [tmp_path / "Testing" / "pituitary_tumor" / "pi_000.jpg", tmp_path / "Testing" / "glioma_tumor" / "gl_001.jpg"]
    for b in bad:
        b.write_bytes(b"not a jpeg")
    with pytest.raises(DataError) as err:
        load_sartaj(tmp_path, size=8, val_size=4, check_counts=False)
    msg = str(err.value)
    assert "pi_000.jpg" in msg and "gl_001.jpg" in msg and "2 SARTAJ image(s)" in msg


def test_limit_keeps_a_stratified_subsample(tmp_path):
    _write_tree(tmp_path)
    d = load_sartaj(tmp_path, size=8, val_size=4, limit=8, check_counts=False)
    assert len(d["train"]) == 8 and len(d["test"]) == 8 and len(d["val"]) == 4
    assert d["train"].y.unique().numel() == 4
