"""Tests of the synthetic shapes generator (uqxai_lib.data.synthetic_shapes)."""
import math

import pytest
import torch

from uqxai_lib.data import DataError, LabeledArrays
from uqxai_lib.data.synthetic_shapes import SHAPES, make_synthetic_shapes, shape_mask


@pytest.fixture(scope="module")
def data():
    return make_synthetic_shapes(120, size=32, seed=3)


def _pixels(d: LabeledArrays):
    return (d.x * 0.25 + 0.5).clamp(0, 1)  # back to [0, 1] (fixed mean 0.5, SD 0.25)


def test_shapes_dtypes_and_classes(data):
    assert isinstance(data, LabeledArrays)
    assert data.x.shape == (120, 3, 32, 32) and data.x.dtype == torch.float32
    assert data.y.shape == (120,) and data.y.dtype == torch.long
    assert data.mask.shape == (120, 32, 32) and data.mask.dtype == torch.bool
    assert data.classes == SHAPES[:3] and data.group is None
    assert torch.isfinite(data.x).all()


def test_classes_are_balanced_and_shuffled(data):
    assert torch.bincount(data.y).tolist() == [40, 40, 40]
    assert not torch.equal(data.y, torch.arange(120) % 3)
    d = make_synthetic_shapes(10, size=16, classes=("plus", "disk"), seed=0)
    assert sorted(torch.bincount(d.y).tolist()) == [5, 5] and d.classes == ("plus", "disk")


def test_same_seed_same_data_other_seed_other_data():
    a = make_synthetic_shapes(12, size=24, seed=5)
    b = make_synthetic_shapes(12, size=24, seed=5)
    c = make_synthetic_shapes(12, size=24, seed=6)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y) and torch.equal(a.mask, b.mask)
    assert not torch.equal(a.x, c.x) and not torch.equal(a.mask, c.mask)


def test_generation_leaves_global_rng_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    make_synthetic_shapes(4, size=16, seed=1)
    assert torch.equal(torch.rand(3), expected)


def test_every_image_has_one_shape_of_plausible_area(data):
    area = data.mask.float().mean((1, 2))
    # circumradius 0.16-0.26 of the side: a triangle of the smallest size covers ~2.6 %, a disk of
    # the largest ~21 % of the image
    assert area.min() > 0.015 and area.max() < 0.25


def test_mask_covers_a_uniformly_coloured_shape(data):
    img = _pixels(data)
    noise_free = make_synthetic_shapes(120, size=32, seed=3, noise=0.0)
    assert torch.equal(noise_free.mask, data.mask)  # noise does not change the geometry
    clean = _pixels(noise_free)
    for i in range(len(data)):
        inside = clean[i][:, data.mask[i]]  # [3, pixels of the shape]
        assert inside.std(1).max() < 1e-6, "the shape is one flat colour"
    # with noise, pixels inside the mask scatter around that colour by about the noise SD
    resid = (img - clean)[:, :, data.mask[0]].std()
    assert 0.04 < resid < 0.1


def test_distractors_never_touch_the_shape():
    d = make_synthetic_shapes(60, size=32, n_distractors=6, noise=0.0, seed=2)
    bare = make_synthetic_shapes(60, size=32, n_distractors=0, noise=0.0, seed=2)
    assert torch.equal(d.mask, bare.mask) and torch.equal(d.y, bare.y)
    changed = (_pixels(d) - _pixels(bare)).abs().amax(1) > 1e-6  # where distractors were painted
    grown = torch.nn.functional.max_pool2d(d.mask[:, None].float(), 5, 1, 2)[:, 0] > 0
    assert changed.any() and not (changed & grown).any()


def test_mask_matches_the_shape_kind():
    d = make_synthetic_shapes(90, size=64, classes=("disk", "square", "triangle"), noise=0.0, n_distractors=0, seed=4)
    area = d.mask.float().sum((1, 2))
    # fill ratio against the bounding circle is a property of the kind: disk > square > triangle
    for c, (lo, hi) in enumerate([(0.8, 1.1), (0.52, 0.75), (0.3, 0.5)]):
        rows = d.mask[d.y == c]
        ys, xs = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
        for m in rows[:10]:
            cy, cx = ys[m].mean(), xs[m].mean()
            r = torch.sqrt((ys[m] - cy) ** 2 + (xs[m] - cx) ** 2).max() + 0.5
            ratio = m.sum() / (math.pi * r**2)
            assert lo < ratio < hi, (d.classes[c], float(ratio))
    assert area.min() > 0


def test_shape_mask_unit_shapes():
    u = torch.tensor([0.0, 0.95, 0.7, 0.0, 0.5])
    v = torch.tensor([0.0, 0.0, 0.7, 0.95, 0.5])
    assert shape_mask("disk", u, v).tolist() == [True, True, True, True, True]
    assert shape_mask("square", u, v).tolist() == [True, False, True, False, True]
    assert shape_mask("triangle", u, v).tolist() == [True, False, False, True, False]
    assert shape_mask("plus", u, v).tolist() == [True, True, False, True, False]
    with pytest.raises(DataError, match="unknown shape"):
        shape_mask("hexagon", u, v)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n=0), "n must be"),
        (dict(n=2.5), "n must be"),
        (dict(size=8), "size must be"),
        (dict(classes=("disk",)), "classes must be"),
        (dict(classes=("disk", "disk")), "classes must be"),
        (dict(classes=("disk", "hexagon")), "classes must be"),
        (dict(classes="disk"), "not the string"),
        (dict(n_distractors=-1), "n_distractors"),
        (dict(noise=-0.1), "noise"),
        (dict(noise=1.5), "noise"),
        (dict(scale=(0.3, 0.2)), "scale"),
        (dict(scale=(0.05, 0.2)), "scale"),
    ],
)
def test_bad_arguments_raise_data_error(kwargs, match):
    kw = dict(n=4, size=16, seed=0)
    kw.update(kwargs)
    n = kw.pop("n")
    with pytest.raises(DataError, match=match):
        make_synthetic_shapes(n, **kw)
