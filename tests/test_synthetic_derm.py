"""Tests of the synthetic dermoscopy generator (uqxai_lib.data.synthetic_derm)."""

import pytest
import torch

from uqxai_lib.data import DataError, group_split
from uqxai_lib.data.synthetic_derm import (
    CLASSES,
    add_ink_marks,
    denormalize,
    make_synthetic_derm,
)


@pytest.fixture(scope="module")
def data():
    return make_synthetic_derm(n_lesions=400, size=48, seed=3)


def test_shapes_dtypes_and_classes(data):
    n = len(data)
    assert data.x.shape == (n, 3, 48, 48) and data.x.dtype == torch.float32
    assert data.y.dtype == torch.long and set(data.y.unique().tolist()) == {0, 1}
    assert data.mask.shape == (n, 48, 48) and data.mask.dtype == torch.bool
    assert data.group.shape == (n,) and data.classes == CLASSES == ("benign", "malignant")
    assert torch.isfinite(data.x).all()
    img = denormalize(data.x)
    assert img.min() >= 0 and img.max() <= 1


def test_same_seed_same_data_other_seed_other_data():
    a = make_synthetic_derm(n_lesions=20, size=32, seed=1)
    b = make_synthetic_derm(n_lesions=20, size=32, seed=1)
    c = make_synthetic_derm(n_lesions=20, size=32, seed=2)
    assert torch.equal(a.x, b.x) and torch.equal(a.mask, b.mask) and torch.equal(a.y, b.y)
    assert not torch.equal(a.x[: len(c)], c.x[: len(a)])


def test_generation_leaves_global_rng_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    make_synthetic_derm(n_lesions=5, size=32, seed=9)
    assert torch.equal(torch.rand(3), expected)


def test_malignant_share_close_to_ham10000(data):
    share = data.y.float().mean().item()
    assert 0.15 < share < 0.25  # HAM10000: 19.5 % of images are mel / bcc / akiec


def test_lesion_groups_share_label_and_have_several_photos(data):
    for gid in data.group.unique()[:50]:
        rows = data.group == gid
        assert data.y[rows].unique().numel() == 1
    counts = torch.bincount(data.group)
    assert counts.max() > 1 and counts.min() >= 1
    parts = group_split(data.group, [0.7, 0.3], seed=0)
    assert set(data.group[parts[0]].tolist()).isdisjoint(data.group[parts[1]].tolist())


def test_photos_of_one_lesion_are_similar_but_not_identical():
    d = make_synthetic_derm(n_lesions=30, images_per_lesion=2, size=48, seed=4)
    same = (d.mask[0::2].float().mean((1, 2)) - d.mask[1::2].float().mean((1, 2))).abs()
    other = (d.mask[0::2].float().mean((1, 2)) - d.mask[1::2].float().mean((1, 2)).roll(1)).abs()
    assert same.mean() < other.mean()  # lesion area is a lesion property
    assert not torch.equal(d.x[0], d.x[1])


def test_mask_covers_the_dark_lesion(data):
    img = denormalize(data.x).mean(1)  # brightness
    inside = (img * data.mask).sum((1, 2)) / data.mask.sum((1, 2))
    outside = (img * ~data.mask).sum((1, 2)) / (~data.mask).sum((1, 2))
    assert (inside < outside).float().mean() > 0.95
    area = data.mask.float().mean((1, 2))
    assert area.min() > 0.02 and area.max() < 0.8


def test_malignant_lesions_are_more_irregular_and_colourful(data):
    img = denormalize(data.x)
    m = data.mask[:, None].float()
    n_in = m.sum((2, 3)).clamp_min(1)
    mean = (img * m).sum((2, 3)) / n_in
    colour_sd = (((img - mean[..., None, None]) ** 2 * m).sum((2, 3)) / n_in).sqrt().mean(1)
    # border irregularity: perimeter^2 / area (a disc is the minimum)
    mk = data.mask.float()
    perim = (mk[:, 1:, :] != mk[:, :-1, :]).sum((1, 2)) + (mk[:, :, 1:] != mk[:, :, :-1]).sum((1, 2))
    compact = perim.float() ** 2 / mk.sum((1, 2))
    mal, ben = data.y == 1, data.y == 0
    assert colour_sd[mal].mean() > colour_sd[ben].mean() * 1.2
    assert compact[mal].mean() > compact[ben].mean()


def test_classes_overlap_so_the_task_is_not_trivial(data):
    # a single hand-made ABCD-like score must not separate the classes perfectly
    img = denormalize(data.x)
    m = data.mask[:, None].float()
    n_in = m.sum((2, 3)).clamp_min(1)
    mean = (img * m).sum((2, 3)) / n_in
    score = (((img - mean[..., None, None]) ** 2 * m).sum((2, 3)) / n_in).sum(1)
    order = torch.argsort(score)
    ranks = torch.empty_like(order)
    ranks[order] = torch.arange(len(order))
    y = data.y
    n1, n0 = int(y.sum()), int((1 - y).sum())
    auc = (ranks[y == 1].float().sum() - n1 * (n1 - 1) / 2) / (n1 * n0)
    assert 0.7 < auc < 0.995


def test_ink_marks_follow_the_label_and_stay_off_the_lesion(data):
    marked = add_ink_marks(data, 1.0, seed=0)
    changed = (marked.x - data.x).abs().amax(1) > 0.5  # [N, H, W]
    has = changed.flatten(1).any(1)
    assert has[data.y == 1].float().mean() > 0.3
    assert not has[data.y == 0].any()  # strength 1: only malignant images are marked
    assert not (changed & data.mask).any()
    assert torch.equal(marked.y, data.y) and torch.equal(marked.mask, data.mask)
    none = add_ink_marks(data, 0.0, seed=0, rate=0.0)
    assert torch.allclose(none.x, data.x, atol=1e-5)


def test_spurious_parameter_default_off():
    a = make_synthetic_derm(n_lesions=30, size=32, seed=5)
    b = make_synthetic_derm(n_lesions=30, size=32, seed=5, spurious=0.0)
    assert torch.equal(a.x, b.x)
    c = make_synthetic_derm(n_lesions=30, size=32, seed=5, spurious=1.0)
    assert not torch.equal(a.x, c.x) and torch.equal(a.mask, c.mask)


@pytest.mark.parametrize(
    "kwargs",
    [dict(n_lesions=0), dict(size=8), dict(malignant_fraction=1.5), dict(spurious=2.0), dict(images_per_lesion=(3, 1))],
)
def test_bad_arguments_raise_data_error(kwargs):
    with pytest.raises(DataError):
        make_synthetic_derm(**{"n_lesions": 5, **kwargs})


def test_grouped_split_with_the_same_seed_spreads_malignant_lesions():
    # regression: the label permutation must not equal group_split's group permutation
    d = make_synthetic_derm(n_lesions=300, images_per_lesion=1, size=16, seed=0)
    shares = [d.y[p].float().mean().item() for p in group_split(d.group, [0.6, 0.2, 0.2], seed=0)]
    assert all(0.08 < s < 0.35 for s in shares), shares
