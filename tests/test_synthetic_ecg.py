"""Tests for the seeded synthetic ECG generator."""
import time

import pytest
import torch

from uqxai_lib.data import DataError, group_split
from uqxai_lib.data.synthetic_ecg import CLASSES, make_synthetic_ecg


@pytest.fixture(scope="module")
def data():
    return make_synthetic_ecg(n_subjects=60, windows_per_subject=8, seed=3, return_info=True)


def test_shapes_dtypes_and_classes(data):
    d, _ = data
    assert d.x.shape == (480, 1, 500) and d.x.dtype == torch.float32
    assert d.y.dtype == torch.int64 and set(d.y.tolist()) == {0, 1}
    assert d.mask.shape == (480, 500) and d.mask.dtype == torch.bool
    assert d.group.dtype == torch.int64 and d.classes == CLASSES == ("healthy", "CAD")


def test_windows_are_standardised_per_window(data):
    d, _ = data
    x = d.x[:, 0].double()
    assert torch.allclose(x.mean(1), torch.zeros(len(x), dtype=torch.float64), atol=1e-5)
    assert torch.allclose(x.std(1, unbiased=False), torch.ones(len(x), dtype=torch.float64), atol=1e-4)


def test_same_seed_same_data_other_seed_other_data():
    a = make_synthetic_ecg(n_subjects=10, windows_per_subject=2, seed=1)
    b = make_synthetic_ecg(n_subjects=10, windows_per_subject=2, seed=1)
    c = make_synthetic_ecg(n_subjects=10, windows_per_subject=2, seed=2)
    assert torch.equal(a.x, b.x) and torch.equal(a.mask, b.mask) and torch.equal(a.y, b.y)
    assert not torch.equal(a.x, c.x)


def test_class_ratio_follows_cad_fraction_and_labels_are_per_subject():
    d = make_synthetic_ecg(n_subjects=100, windows_per_subject=3, cad_fraction=0.16, seed=0)
    assert d.y.double().mean().item() == pytest.approx(0.16)
    for s in d.group.unique():
        assert d.y[d.group == s].unique().numel() == 1
    d = make_synthetic_ecg(n_subjects=100, windows_per_subject=3, cad_fraction=0.5, seed=0)
    assert d.y.float().mean().item() == pytest.approx(0.5)


def test_mask_covers_st_t_segments_after_each_r_peak(data):
    d, _ = data
    share = d.mask.float().mean().item()
    assert 0.2 < share < 0.6
    # the R peak (window maximum of a standardised upright-R trace) is outside the ST-T mask
    r = d.x[:, 0].argmax(1)
    assert d.mask[torch.arange(len(r)), r].float().mean() < 0.05
    # the sample 0.1 s after an R peak (ST segment) is inside it when the window is long enough
    ok = r + 25 < 500
    assert d.mask[torch.arange(len(r))[ok], (r + 25)[ok]].float().mean() > 0.95


def test_cad_shows_st_depression_and_lower_t_waves(data):
    d, info = data
    healthy, marked, mild = info["severity"] == 0, info["severity"] == 2, info["severity"] == 1
    assert info["st_dep"][marked].mean() > info["st_dep"][healthy].mean() + 0.05
    assert info["t_factor"][marked].mean() < info["t_factor"][healthy].mean() - 0.5
    # mild CAD overlaps the healthy range (physiological ambiguity, labels untouched)
    assert info["t_factor"][mild].max() > info["t_factor"][healthy].min()
    assert bool((d.y[mild | marked] == 1).all()) and bool((d.y[healthy] == 0).all())
    # visible in the signal: mean ST-T level relative to the window is lower for marked CAD
    level = (d.x[:, 0] * d.mask).sum(1) / d.mask.sum(1)
    assert level[marked].mean() < level[healthy].mean() - 0.2


def test_group_split_keeps_subjects_together(data):
    d, _ = data
    parts = group_split(d.group, [0.6, 0.2, 0.2], seed=0)
    sets = [set(d.group[p].tolist()) for p in parts]
    assert sets[0].isdisjoint(sets[1]) and sets[0].isdisjoint(sets[2]) and sets[1].isdisjoint(sets[2])


def test_fast_enough_for_thousands_of_windows():
    make_synthetic_ecg(n_subjects=4, windows_per_subject=2, seed=0)  # warm up
    t = time.perf_counter()
    make_synthetic_ecg(n_subjects=100, windows_per_subject=20, seed=0)
    assert time.perf_counter() - t < 5.0  # ~0.2 s on an idle laptop core; generous for busy CI


@pytest.mark.parametrize(
    "kw", [dict(n_subjects=1), dict(cad_fraction=0.0), dict(cad_fraction=1.2), dict(mild_fraction=-0.1), dict(fs=10)]
)
def test_bad_arguments_raise_data_error(kw):
    with pytest.raises(DataError):
        make_synthetic_ecg(**{"windows_per_subject": 2, **kw})
