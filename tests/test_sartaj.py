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
    bad = [tmp_path / "Testing" / "pituitary_tumor" / "pi_000.jpg",
           tmp_path / "Testing" / "glioma_tumor" / "gl_001.jpg"]
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


# ------------------------------------------------------------------ issue 12: complete reports, hidden files, partial
# copies
def _toy_manifest(tmp_path, counts=COUNTS):
    import yaml

    from uqxai_lib.data.manifest import load_manifest as lm

    d = tmp_path / "manifests"
    d.mkdir()
    globs = [{"pattern": f"{s}/{f}/*.jpg", "min_count": n} for s, per in counts.items() for f, n in zip(FOLDERS, per)]
    (d / "sartaj.yaml").write_text(yaml.safe_dump({"name": "sartaj", "source": "https://www.kaggle.com/x",
                                                   "globs": globs}))
    return lm("sartaj", directory=d)


def test_corrupt_files_of_every_split_are_named_in_one_error(tmp_path):
    _write_tree(tmp_path)
    bad = [tmp_path / "Training" / "meningioma_tumor" / "me_002.jpg", tmp_path / "Testing" / "no_tumor" / "no_001.jpg"]
    for b in bad:
        b.write_bytes(b"\xff\xd8\xff truncated")
    with pytest.raises(DataError) as err:
        load_sartaj(tmp_path, size=8, val_size=4, check_counts=False)
    msg = str(err.value)
    assert "2 SARTAJ image(s)" in msg and "me_002.jpg" in msg and "no_001.jpg" in msg
    assert len(err.value.problems) == 2


def test_macos_resource_files_and_other_files_are_skipped(tmp_path):
    _write_tree(tmp_path)
    d = tmp_path / "Training" / "glioma_tumor"
    (d / "._gl_000.jpg").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ")  # AppleDouble header
    (d / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (d / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (d / "readme.txt").write_text("images")
    parts = load_sartaj(tmp_path, size=8, val_size=4, check_counts=False)
    assert sum(len(p) for p in parts.values()) == sum(COUNTS["Training"]) + sum(COUNTS["Testing"])
    from uqxai_lib.data.manifest import count_matches

    assert count_matches(tmp_path, "Training/glioma_tumor/*.jpg") == COUNTS["Training"][0]


def test_count_check_accepts_upper_case_suffixes_and_cmyk_images(tmp_path):
    _write_tree(tmp_path)
    m = _toy_manifest(tmp_path)
    d = tmp_path / "Testing" / "meningioma_tumor"
    for p in sorted(d.iterdir())[:2]:
        p.rename(p.with_suffix(".JPG"))
    p = sorted(d.iterdir())[-1]
    Image.open(p).convert("CMYK").save(p, quality=95)
    parts = load_sartaj(tmp_path, size=8, val_size=4, manifest=m)  # check_counts=True
    assert len(parts["test"]) == sum(COUNTS["Testing"]) and torch.isfinite(parts["test"].x).all()
    (sorted(d.iterdir())[0]).unlink()  # now one short: the check names the folder and the way out
    with pytest.raises(DataError) as err:
        load_sartaj(tmp_path, size=8, val_size=4, manifest=m)
    msg = str(err.value)
    assert "only 2 files match Testing/meningioma_tumor/*.jpg (expected >= 3" in msg
    assert "check_counts=False" in msg and "sartaj_check_counts" in msg


def test_partial_copy_with_default_validation_share(tmp_path):
    """A partial copy with the defaults: the validation set is the paper's share, not 433 images."""
    _write_tree(tmp_path)
    parts = load_sartaj(tmp_path, size=8, check_counts=False)
    n_train = sum(COUNTS["Training"])
    assert len(parts["val"]) == round(n_train * 433 / 2870) == 3
    assert torch.equal(load_sartaj(tmp_path, size=8, check_counts=False, val_size=None)["val"].group,
                       parts["val"].group)
    with pytest.raises(DataError,
                       match=r"val_size=433 gives 433 validation images, but Training has 20.*sartaj_val_size"):
        load_sartaj(tmp_path, size=8, val_size=433, check_counts=False)
    from uqxai_lib.data.sartaj import VAL_SHARE

    assert round(VAL_SHARE * 2870) == PAPER_SPLIT["val"]


def test_class_subset_from_the_advice_of_the_error(tmp_path):
    import ast
    import re
    import shutil

    _write_tree(tmp_path)
    shutil.rmtree(tmp_path / "Testing" / "no_tumor")
    with pytest.raises(DataError) as err:
        load_sartaj(tmp_path, size=8, check_counts=False)
    msg = str(err.value)
    assert "missing folder Testing/no_tumor" in msg and "sartaj_classes" in msg
    classes = ast.literal_eval(re.search(r"classes=(\[[^\]]*\])", msg).group(1))
    assert classes == ["glioma", "meningioma", "pituitary"]
    parts = load_sartaj(tmp_path, size=8, check_counts=False, classes=classes)
    assert parts["test"].classes == ("glioma", "meningioma", "pituitary")
    assert torch.bincount(parts["test"].y).tolist() == [2, 3, 1]
    with pytest.raises(DataError, match="unknown SARTAJ class 'tumour'"):
        load_sartaj(tmp_path, size=8, check_counts=False, classes=["glioma", "tumour"])


def test_class_folder_with_only_hidden_or_other_files_is_empty(tmp_path):
    _write_tree(tmp_path)
    d = tmp_path / "Training" / "no_tumor"
    for f in d.iterdir():
        f.rename(d / f"._{f.name}")
    (d / "Thumbs.db").write_bytes(b"\xd0\xcf")
    with pytest.raises(DataError, match="no images in Training/no_tumor"):
        load_sartaj(tmp_path, size=8, check_counts=False)
