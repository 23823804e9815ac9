"""Tests of the HAM10000 loader (uqxai_lib.data.ham10000) on a fabricated tree with the real names."""
import numpy as np
import pytest
import torch
from PIL import Image

from uqxai_lib.data import DataError, group_split
from uqxai_lib.data.ham10000 import (
    IMAGE_DIRS,
    MASK_DIR,
    load_ham10000,
    read_metadata,
)
from uqxai_lib.data.synthetic_derm import denormalize

ROWS = [  # lesion_id, image_id, dx  (two images of HAM_0000118, like the real file)
    ("HAM_0000118", "ISIC_0027419", "bkl"),
    ("HAM_0000118", "ISIC_0025030", "bkl"),
    ("HAM_0002730", "ISIC_0026769", "mel"),
    ("HAM_0001466", "ISIC_0031633", "nv"),
    ("HAM_0002761", "ISIC_0029176", "bcc"),
    ("HAM_0005132", "ISIC_0025837", "akiec"),
    ("HAM_0001396", "ISIC_0025276", "df"),
    ("HAM_0004234", "ISIC_0029396", "vasc"),
]


def _write_tree(root, rows=ROWS):
    root.mkdir(parents=True, exist_ok=True)
    lines = ["lesion_id,image_id,dx,dx_type,age,sex,localization"]
    lines += [f"{a},{b},{c},histo,60.0,male,back" for a, b, c in rows]
    (root / "HAM10000_metadata").write_text("\n".join(lines) + "\n")
    for d in (*IMAGE_DIRS, MASK_DIR):
        (root / d).mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for k, (_, image_id, _) in enumerate(rows):
        h, w = 45, 60  # the real images are 600 x 450 (w x h); keep the aspect
        img = np.full((h, w, 3), (200, 150, 130), np.uint8)
        yy, xx = np.mgrid[:h, :w]
        lesion = (yy - h / 2) ** 2 + (xx - w / 2) ** 2 < (10 + k) ** 2
        img[lesion] = (90, 50, 30)
        img = np.clip(img + rng.integers(-5, 6, img.shape), 0, 255).astype(np.uint8)
        folder = IMAGE_DIRS[k % 2]
        Image.fromarray(img).save(root / folder / f"{image_id}.jpg", quality=95)
        Image.fromarray((lesion * 255).astype(np.uint8)).save(root / MASK_DIR / f"{image_id}_segmentation.png")
    return root


@pytest.fixture()
def tree(tmp_path):
    return _write_tree(tmp_path / "HAM10000")


def test_loads_images_labels_masks_and_groups(tree):
    d = load_ham10000(tree, size=32)
    assert d.x.shape == (8, 3, 32, 32) and d.x.dtype == torch.float32
    assert d.mask.shape == (8, 32, 32) and d.mask.dtype == torch.bool
    assert d.y.tolist() == [0, 0, 1, 0, 1, 1, 0, 0]  # mel, bcc, akiec are malignant
    assert d.classes == ("benign", "malignant")
    assert d.group[0] == d.group[1] and len(set(d.group.tolist())) == 7
    # the dark lesion is where the mask says
    bright = denormalize(d.x).mean(1)
    assert ((bright * d.mask).sum((1, 2)) / d.mask.sum((1, 2)) < (bright * ~d.mask).sum((1, 2)) / (~d.mask).sum((1, 2))).all()
    # centre crop keeps the centred disc in the centre
    assert d.mask[:, 16, 16].all() and not d.mask[:, 0, 0].any()


def test_parent_folder_and_csv_suffix_are_accepted(tree):
    (tree / "HAM10000_metadata").rename(tree / "HAM10000_metadata.csv")
    d = load_ham10000(tree.parent, size=16, masks=False)
    assert len(d) == 8 and d.mask is None


def test_grouped_split_keeps_lesions_together(tree):
    d = load_ham10000(tree, size=16)
    a, b = group_split(d.group, [0.5, 0.5], seed=0)
    assert set(d.group[a].tolist()).isdisjoint(d.group[b].tolist())


def test_limit_keeps_whole_lesions(tree):
    d = load_ham10000(tree, size=16, limit=2, seed=1)
    assert 2 <= len(d) <= 3
    full = read_metadata(tree)
    assert len(full) == 8


def test_missing_files_are_all_named(tree):
    (tree / IMAGE_DIRS[0] / "ISIC_0027419.jpg").unlink()
    (tree / MASK_DIR / "ISIC_0026769_segmentation.png").unlink()
    with pytest.raises(DataError) as err:
        load_ham10000(tree, size=16)
    msg = str(err.value)
    assert "ISIC_0027419.jpg" in msg and "ISIC_0026769_segmentation.png" in msg
    assert "10.7910/DVN/DBW86T" in msg


def test_corrupt_image_is_named(tree):
    (tree / IMAGE_DIRS[1] / "ISIC_0025030.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="ISIC_0025030.jpg"):
        load_ham10000(tree, size=16)


def test_missing_metadata_and_bad_columns_are_clear(tmp_path, tree):
    with pytest.raises(DataError, match="no HAM10000 metadata"):
        load_ham10000(tmp_path / "empty" if (tmp_path / "empty").mkdir() is None else None)
    (tree / "HAM10000_metadata").write_text("image,label\nISIC_1,mel\n")
    with pytest.raises(DataError, match="lacks column"):
        load_ham10000(tree)
    (tree / "HAM10000_metadata").write_text("lesion_id,image_id,dx\nHAM_1,ISIC_1,cancer\n")
    with pytest.raises(DataError, match="unknown dx"):
        load_ham10000(tree)


def test_manifest_names_source_licence_and_checks_the_tree(tree):
    from uqxai_lib.data.manifest import load_manifest, verify_files

    m = load_manifest("ham10000")
    assert m["doi"] == "10.7910/DVN/DBW86T" and m["license"] == "CC BY-NC 4.0"
    assert m["labels"]["malignant"] == ["mel", "bcc", "akiec"]
    verify_files(tree, m, only=["HAM10000_metadata"])  # present (sha256 not pinned)
    with pytest.raises(DataError, match="HAM10000_images_part_1"):
        verify_files(tree, m)  # the fabricated tree has 4 images, not 5000
    (tree / "HAM10000_metadata").unlink()
    with pytest.raises(DataError, match="missing HAM10000_metadata"):
        verify_files(tree, m, only=["HAM10000_metadata"])


# ------------------------------------------------------------------ issue 12: masks, BOM, advice, partial copies
def _mask(tree, image_id):
    return tree / MASK_DIR / f"{image_id}_segmentation.png"


def test_masks_of_wrong_size_or_values_are_all_named_with_the_reason(tree):
    lesion = np.asarray(Image.open(_mask(tree, "ISIC_0026769")))
    Image.fromarray(lesion.T.copy()).save(_mask(tree, "ISIC_0026769"))  # portrait: 45 x 60 for a 60 x 45 image
    Image.fromarray(np.full((51, 51), 255, np.uint8)).save(_mask(tree, "ISIC_0031633"))  # square, like 512 x 512
    m01 = (np.asarray(Image.open(_mask(tree, "ISIC_0029176"))) > 0).astype(np.uint8)  # stored as 0/1
    Image.fromarray(m01).save(_mask(tree, "ISIC_0029176"))
    Image.fromarray(np.zeros((45, 60), np.uint8)).save(_mask(tree, "ISIC_0025837"))  # empty
    with pytest.raises(DataError) as err:
        load_ham10000(tree, size=16)
    msg = str(err.value)
    assert "(4 problem(s))" in msg
    assert "ISIC_0026769_segmentation.png is 45 x 60 (width x height) but its image is 60 x 45" in msg
    assert "ISIC_0031633_segmentation.png is 51 x 51" in msg
    assert "ISIC_0029176_segmentation.png has values 0..1, not 0/255" in msg
    assert "ISIC_0025837_segmentation.png is empty" in msg
    assert load_ham10000(tree, size=16, masks=False).mask is None  # images alone still load


def test_metadata_with_a_byte_order_mark_is_read(tree):
    text = (tree / "HAM10000_metadata").read_text()
    (tree / "HAM10000_metadata").write_bytes(text.encode("utf-8-sig"))
    d = load_ham10000(tree, size=16)
    assert len(d) == 8 and d.group[0] == d.group[1]


def test_dataverse_tab_with_quotes_extra_column_crlf_and_cmyk_image(tree):
    rows = [f'"{a}"\t"{b}"\t"{c}"\t"histo"\t"60.0"\t"male"\t"back, upper"\t"x"' for a, b, c in ROWS]
    head = '"lesion_id"\t"image_id"\t"dx"\t"dx_type"\t"age"\t"sex"\t"localization"\t"dataset"'
    (tree / "HAM10000_metadata").unlink()
    (tree / "HAM10000_metadata.tab").write_bytes(("\r\n".join([head, *rows]) + "\r\n").encode())
    p = tree / IMAGE_DIRS[1] / "ISIC_0025030.jpg"
    Image.open(p).convert("CMYK").save(p, quality=95)
    d = load_ham10000(tree, size=16)
    assert len(d) == 8 and d.y.tolist() == [0, 0, 1, 0, 1, 1, 0, 0]
    assert read_metadata(tree)["localization"][0] == "back, upper"


def test_missing_image_advice_names_options_that_work(tree):
    (tree / IMAGE_DIRS[0] / "ISIC_0027419.jpg").unlink()
    (tree / MASK_DIR / "ISIC_0026769_segmentation.png").unlink()
    with pytest.raises(DataError) as err:
        load_ham10000(tree, size=16)
    msg = str(err.value)
    assert "skip_missing=True" in msg and "ham_skip_missing" in msg and "ham_image_ids" in msg
    assert "masks=False" not in msg  # it would not help: an image is missing
    d = load_ham10000(tree, size=16, skip_missing=True)
    assert len(d) == 6 and d.skipped == 2 and d.mask.shape == (6, 16, 16)
    with pytest.raises(DataError) as err:  # only a mask missing: masks=False is the right hint
        load_ham10000(tree, size=16, image_ids=["ISIC_0026769", "ISIC_0031633"])
    assert "masks=False" in str(err.value)
    assert len(load_ham10000(tree, size=16, image_ids=["ISIC_0026769", "ISIC_0031633"], masks=False)) == 2


def test_image_ids_select_a_subset_and_unknown_ids_are_named(tree):
    d = load_ham10000(tree, size=16, image_ids=["ISIC_0027419", "ISIC_0025030", "ISIC_0026769"])
    assert d.y.tolist() == [0, 0, 1] and d.group.tolist() == [0, 0, 1]
    with pytest.raises(DataError, match="ISIC_9999999"):
        load_ham10000(tree, size=16, image_ids=["ISIC_9999999"])


def test_many_missing_files_list_twenty_and_a_count(tmp_path):
    rows = [(f"HAM_{k:07d}", f"ISIC_{k:07d}", "nv") for k in range(30)]
    tree = _write_tree(tmp_path / "HAM10000", rows)
    for _, image_id, _ in rows[:25]:
        (tree / MASK_DIR / f"{image_id}_segmentation.png").unlink()
    with pytest.raises(DataError) as err:
        load_ham10000(tree, size=16)
    assert "(25 problem(s))" in str(err.value) and "... and 5 more" in str(err.value)
    assert len(err.value.problems) == 25
