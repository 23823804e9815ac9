"""Tests of the synthetic brain-volume generator (uqxai_lib.data.synthetic_volume)."""
import pytest
import torch

from uqxai_lib.data import DataError
from uqxai_lib.data.synthetic_mri import SARTAJ_CLASS_FRACTIONS
from uqxai_lib.data.synthetic_volume import (
    CLASSES,
    MEAN,
    STD,
    denormalize,
    make_synthetic_volume,
)

GLIOMA, MENINGIOMA, NO_TUMOR, PITUITARY = range(4)


@pytest.fixture(scope="module")
def data():
    return make_synthetic_volume(n_patients=60, size=24, seed=3, with_brain=True)


def _centroid(mask):
    """Centre of mass of each mask in [-1, 1] volume coordinates: (x, y, z) [N, 3]."""
    n, d, h, w = mask.shape
    lin = (torch.arange(d, dtype=torch.float32) + 0.5) / d * 2 - 1
    m = mask.float()
    area = m.sum((1, 2, 3)).clamp_min(1)
    z = (m * lin[None, :, None, None]).sum((1, 2, 3)) / area
    y = (m * lin[None, None, :, None]).sum((1, 2, 3)) / area
    x = (m * lin[None, None, None, :]).sum((1, 2, 3)) / area
    return torch.stack([x, y, z], 1)


def test_shapes_dtypes_and_classes(data):
    d, brain = data
    assert d.x.shape == (60, 1, 24, 24, 24) and d.x.dtype == torch.float32 and torch.isfinite(d.x).all()
    assert d.mask.shape == (60, 24, 24, 24) and d.mask.dtype == torch.bool and brain.shape == d.mask.shape
    assert d.classes == CLASSES == ("glioma", "meningioma", "no_tumor", "pituitary")
    assert torch.equal(d.group, torch.arange(60))
    v = denormalize(d.x)
    assert v.min() >= 0 and v.max() <= 1
    torch.testing.assert_close((v - MEAN) / STD, d.x[:, 0], atol=1e-5, rtol=0)


def test_class_counts_follow_the_requested_fractions(data):
    d, _ = data
    counts = torch.bincount(d.y, minlength=4).double()
    assert (counts - torch.tensor(SARTAJ_CLASS_FRACTIONS, dtype=torch.float64) * 60).abs().max() < 1
    even = make_synthetic_volume(n_patients=8, size=12, class_fractions=(1, 1, 1, 1), seed=0)
    assert torch.bincount(even.y).tolist() == [2, 2, 2, 2]


def test_determinism_by_seed_and_the_global_rng_is_untouched():
    state = torch.get_rng_state()
    a = make_synthetic_volume(n_patients=6, size=16, seed=1)
    assert torch.equal(torch.get_rng_state(), state)
    b = make_synthetic_volume(n_patients=6, size=16, seed=1, chunk=4)
    c = make_synthetic_volume(n_patients=6, size=16, seed=2)
    assert torch.equal(a.y, b.y) and torch.equal(a.x, make_synthetic_volume(n_patients=6, size=16, seed=1).x)
    assert torch.equal(a.mask, make_synthetic_volume(n_patients=6, size=16, seed=1).mask)
    assert not torch.equal(a.x, c.x)


def test_no_tumour_mask_exactly_for_the_no_tumour_class(data):
    d, _ = data
    has = d.mask.flatten(1).any(1)
    assert torch.equal(has, d.y != NO_TUMOR)


def test_tumour_lies_inside_the_brain_or_under_the_bone(data):
    d, brain = data
    intra = (d.y == GLIOMA) | (d.y == PITUITARY)
    assert not (d.mask[intra] & ~brain[intra]).any()  # intra-axial: every tumour voxel in the brain
    men = d.y == MENINGIOMA
    outside = (d.mask[men] & ~brain[men]).flatten(1).sum(1)
    assert (outside > 0).float().mean() > 0.5  # extra-axial: most meningiomas reach past the brain surface
    assert (d.mask[men] & brain[men]).flatten(1).any(1).all()  # ... and indent it


def test_tumour_location_and_size_follow_their_class(data):
    d, brain = data
    c = _centroid(d.mask)
    centre = _centroid(brain)
    r = (c - centre).norm(dim=1)
    pit, gl, men = d.y == PITUITARY, d.y == GLIOMA, d.y == MENINGIOMA
    assert (c[pit, 0] - centre[pit, 0]).abs().max() < 0.12  # pituitary: on the midline
    assert (c[pit, 1] < centre[pit, 1]).all() and (c[pit, 2] < centre[pit, 2]).all()  # anterior and inferior
    assert (c[gl, 0] - centre[gl, 0]).abs().min() > 0.05  # glioma: inside one hemisphere
    assert r[men].median() > r[gl].median()  # meningioma: at the surface, glioma deeper
    size = d.mask.flatten(1).sum(1).float()
    assert size[pit].median() < size[men].median() and size[pit].median() < size[gl].median()


def test_tumours_are_brighter_than_the_rest_of_the_brain_and_distractors_are_not_tumour(data):
    d, brain = data
    v = denormalize(d.x)
    for i in torch.nonzero(d.y != NO_TUMOR).flatten().tolist():
        if d.y[i] == GLIOMA:
            continue  # heterogeneous with a dark core
        assert v[i][d.mask[i]].mean() > v[i][brain[i] & ~d.mask[i]].mean()
    healthy = torch.nonzero(d.y == NO_TUMOR).flatten()
    # bright spots exist in healthy brains: the brightest brain voxels are far above the median tissue
    for i in healthy.tolist():
        inside = v[i][brain[i]]
        assert inside.max() > inside.median() + 0.2


@pytest.mark.parametrize("kwargs, words", [({"n_patients": 0}, "n_patients"), ({"size": 8}, "size"),
                                           ({"ambiguity": 2.0}, "ambiguity"),
                                           ({"class_fractions": (1, 1)}, "class_fractions")])
def test_bad_arguments_raise_a_clear_data_error(kwargs, words):
    with pytest.raises(DataError, match=words):
        make_synthetic_volume(**{"n_patients": 4, **kwargs})
