"""Tests of the synthetic brain-MRI generator (uqxai_lib.data.synthetic_mri)."""
import time

import pytest
import torch

from uqxai_lib.data import DataError, group_split
from uqxai_lib.data.synthetic_mri import (
    CLASSES,
    SARTAJ_CLASS_FRACTIONS,
    denormalize,
    make_synthetic_mri,
    normalize_gray,
)


@pytest.fixture(scope="module")
def data():
    return make_synthetic_mri(n_patients=400, size=48, seed=3)


def _centroids(mask):
    """Mask centre of mass in [-1, 1] image coordinates: (x, y) [N, 2]."""
    n, h, w = mask.shape
    lin = (torch.arange(h, dtype=torch.float32) + 0.5) / h * 2 - 1
    m = mask.float()
    area = m.sum((1, 2)).clamp_min(1)
    cx = (m * lin[None, None, :]).sum((1, 2)) / area
    cy = (m * lin[None, :, None]).sum((1, 2)) / area
    return torch.stack([cx, cy], 1)


def test_shapes_dtypes_and_classes(data):
    n = len(data)
    assert n == 400 and data.x.shape == (n, 3, 48, 48) and data.x.dtype == torch.float32
    assert data.y.dtype == torch.long and set(data.y.unique().tolist()) == {0, 1, 2, 3}
    assert data.mask.shape == (n, 48, 48) and data.mask.dtype == torch.bool
    assert data.group.shape == (n,) and data.classes == CLASSES
    assert CLASSES == ("glioma", "meningioma", "no_tumor", "pituitary")
    assert torch.isfinite(data.x).all()
    img = denormalize(data.x)
    assert img.min() >= 0 and img.max() <= 1
    # the three channels hold the same gray image, as in SARTAJ's JPEGs
    assert torch.allclose(normalize_gray(img), data.x, atol=1e-5)


def test_same_seed_same_data_other_seed_other_data():
    a = make_synthetic_mri(n_patients=12, size=32, seed=1)
    b = make_synthetic_mri(n_patients=12, size=32, seed=1)
    c = make_synthetic_mri(n_patients=12, size=32, seed=2)
    assert torch.equal(a.x, b.x) and torch.equal(a.mask, b.mask) and torch.equal(a.y, b.y)
    assert not torch.equal(a.x, c.x)


def test_chunk_size_does_not_change_the_images():
    a = make_synthetic_mri(n_patients=10, size=32, seed=4, chunk=3)
    b = make_synthetic_mri(n_patients=10, size=32, seed=4, chunk=64)
    # one generator stream, but chunking changes the order of draws only for per-chunk calls:
    # labels and patients are drawn before rendering and must agree
    assert torch.equal(a.y, b.y) and torch.equal(a.group, b.group)


def test_generation_leaves_global_rng_and_threads_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    threads = torch.get_num_threads()
    torch.manual_seed(0)
    make_synthetic_mri(n_patients=5, size=32, seed=9)
    assert torch.equal(torch.rand(3), expected)
    assert torch.get_num_threads() == threads


def test_class_counts_follow_the_requested_fractions(data):
    counts = torch.bincount(data.y, minlength=4).double()
    expected = torch.tensor(SARTAJ_CLASS_FRACTIONS, dtype=torch.float64) * 400
    assert (counts - expected).abs().max() <= 1.0
    d = make_synthetic_mri(n_patients=40, size=32, seed=0, class_fractions=(1, 1, 0, 2))
    assert torch.bincount(d.y, minlength=4).tolist() == [10, 10, 0, 20]


def test_mask_is_empty_exactly_for_no_tumor(data):
    area = data.mask.flatten(1).sum(1)
    assert (area[data.y == 2] == 0).all()
    assert (area[data.y != 2] > 0).float().mean() > 0.97  # a few tiny tumours may fall between pixels


def test_tumour_locations_follow_their_class(data):
    """Meningioma lies at the brain's edge, pituitary on the anterior midline, glioma inside."""
    big = make_synthetic_mri(n_patients=400, size=64, seed=5, ambiguity=0.0)
    c = _centroids(big.mask)
    r = c.norm(dim=1)
    gl, me, pi = (big.y == 0), (big.y == 1), (big.y == 3)
    assert r[me].median() > r[gl].median() + 0.1
    assert c[pi, 0].abs().median() < 0.06  # midline
    assert (c[pi, 1] < 0).float().mean() > 0.9  # anterior (up)
    area = big.mask.flatten(1).float().sum(1)
    assert area[pi].median() < area[gl].median()  # pituitary tumours are small


def _inside_and_ring(img, mask, width=3):
    """Mean intensity inside each mask and in a ring of ``width`` pixels around it."""
    grown = torch.nn.functional.max_pool2d(mask[:, None].float(), 2 * width + 1, 1, width)[:, 0] > 0
    ring = grown & ~mask
    inside = (img * mask).sum((1, 2)) / mask.sum((1, 2)).clamp_min(1)
    around = (img * ring).sum((1, 2)) / ring.sum((1, 2)).clamp_min(1)
    return inside, around


def test_tumours_stand_out_from_the_tissue_around_them():
    d = make_synthetic_mri(n_patients=80, size=64, seed=6, ambiguity=0.0)
    img = denormalize(d.x)
    inside, around = _inside_and_ring(img, d.mask)
    for k in (1, 3):  # meningioma and pituitary: bright, homogeneous masses
        sel = d.y == k
        assert (inside[sel] - around[sel]).median() > 0.05
    gl = d.y == 0  # glioma: enhancing rim, necrotic core, dark oedema around: differs either way
    assert (inside[gl] - around[gl]).abs().median() > 0.05


def test_ambiguity_knob_adds_faint_tumours():
    clear = make_synthetic_mri(n_patients=300, size=32, seed=7, ambiguity=0.0)
    hard = make_synthetic_mri(n_patients=300, size=32, seed=7, ambiguity=0.6)

    def contrast(d):
        img = denormalize(d.x)
        t = d.y != 2
        return torch.stack([img[i][d.mask[i]].mean() if d.mask[i].any() else torch.tensor(0.0)
                            for i in torch.nonzero(t).flatten()])

    assert contrast(hard).quantile(0.1) < contrast(clear).quantile(0.1)


def test_slices_of_one_patient_share_label_and_group_split_keeps_them_together():
    d = make_synthetic_mri(n_patients=30, slices_per_patient=(1, 3), size=32, seed=8)
    counts = torch.bincount(d.group)
    assert counts.max() > 1 and len(d) == int(counts.sum())
    for gid in d.group.unique():
        assert d.y[d.group == gid].unique().numel() == 1
    parts = group_split(d.group, [0.7, 0.3], seed=0)
    assert set(d.group[parts[0]].tolist()).isdisjoint(d.group[parts[1]].tolist())


def test_renders_hundreds_of_64px_slices_per_second():
    make_synthetic_mri(n_patients=16, size=64, seed=0)  # warm-up
    t = time.perf_counter()
    make_synthetic_mri(n_patients=600, size=64, seed=1)
    rate = 600 / (time.perf_counter() - t)
    assert rate > 100, f"{rate:.0f} slices/s"  # ~1000/s on an idle 2-core machine


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(n_patients=0), "n_patients"),
        (dict(size=8), "size"),
        (dict(ambiguity=1.5), "ambiguity"),
        (dict(class_fractions=(1, 1, 1)), "class_fractions"),
        (dict(class_fractions=(1, -1, 1, 1)), "class_fractions"),
        (dict(slices_per_patient=(3, 1)), "slices_per_patient"),
    ],
)
def test_bad_arguments_raise_a_clear_data_error(kwargs, words):
    with pytest.raises(DataError, match=words):
        make_synthetic_mri(**{"n_patients": 4, "size": 32, **kwargs})


def test_tumours_cover_a_visible_share_of_the_slice_and_pituitary_is_the_smallest():
    d = make_synthetic_mri(n_patients=200, size=32, seed=9, ambiguity=0.0)
    share = d.mask.flatten(1).float().mean(1)
    tumour = d.y != 2
    assert share[tumour].median() > 0.01  # >= ~10 pixels at 32 px: a quick CPU model can learn the classes
    assert share[d.y == 3].median() < share[d.y == 0].median()
    assert share[d.y == 3].median() < share[d.y == 1].median()


def test_attributes_replay_the_draws_of_the_data_set():
    from uqxai_lib.data.synthetic_mri import synthetic_mri_attributes

    kw = dict(n_patients=80, slices_per_patient=(1, 2), ambiguity=0.4, seed=5)
    d = make_synthetic_mri(size=32, **kw)
    a = synthetic_mri_attributes(**kw)
    assert torch.equal(a["y"], d.y) and torch.equal(a["group"], d.group)
    tumour = d.y != 2
    assert not bool(a["ambiguous"][~tumour].any()) and bool(a["ambiguous"][tumour].any())
    assert bool((a["contrast"][~tumour] == 0).all()) and bool((a["radius"][~tumour] == 0).all())
    assert bool((a["contrast"][a["faint"]] < 0.4).all()) and bool((a["contrast"][tumour & ~a["faint"]] > 0.7).all())
    # a larger tumour radius gives a larger mask (independent check against the rendered masks)
    area = d.mask.flatten(1).sum(1).double()
    from scipy.stats import spearmanr

    assert spearmanr(a["radius"][tumour].numpy(), area[tumour].numpy()).statistic > 0.5
    assert not bool(synthetic_mri_attributes(n_patients=30, ambiguity=0.0, seed=0)["ambiguous"].any())
