"""Tests of the primer chapter helpers (uqxai_lib.viz.primer)."""
import matplotlib

matplotlib.use("Agg")
import pytest
import torch

from uqxai_lib import metrics, saliency
from uqxai_lib.viz import primer as vp


def _case():
    g = torch.Generator().manual_seed(0)
    maps = torch.rand(5, 4, 4, generator=g)
    mask = torch.zeros(5, 16, 16, dtype=torch.bool)
    mask[:, 2:9, 3:10] = True
    return maps, mask


def test_localisation_scores_equal_the_metrics_on_upsampled_maps():
    maps, mask = _case()
    s = vp.localisation_scores(maps, mask, ("quantile", 0.8))
    up = saliency.upsample(maps, (16, 16))
    assert torch.allclose(s["mass_in_mask"], metrics.mass_in_mask(up, mask))
    region = metrics.binarize(up, ("quantile", 0.8))
    assert torch.allclose(s["iou"], metrics.iou(region, mask))
    assert torch.allclose(s["dice"], metrics.dice(region, mask))


def test_mask_at_resolution_scores_better_than_a_uniform_map():
    _, mask = _case()
    ref = vp.mask_at_resolution(mask, (4, 4))
    assert ref.shape == (5, 4, 4) and float(ref.max()) == 1.0
    s = vp.localisation_scores(ref, mask)
    assert (s["mass_in_mask"] > mask.float().mean()).all() and (s["iou"] > 0.5).all()


def test_score_table_means_and_chance_row():
    maps, mask = _case()
    s = vp.localisation_scores(maps, mask)
    t = vp.score_table({"a": s}, chance=0.25, digits=4)
    assert list(t.index) == ["a", "uniform map (chance)"]
    assert t.loc["a", "iou"] == pytest.approx(float(s["iou"].mean()), abs=1e-4)
    assert t.loc["uniform map (chance)", "mass_in_mask"] == 0.25


def test_threshold_sweep_matches_fraction_of_max_rule():
    maps, mask = _case()
    out = vp.threshold_sweep(maps, mask, [0.3, 0.7])
    expected = vp.localisation_scores(maps, mask, ("fraction_of_max", 0.7))["iou"].mean()
    assert out.shape == (2,) and torch.isclose(out[1], expected)


def test_shape_errors_are_clear():
    maps, mask = _case()
    with pytest.raises(ValueError, match=r"maps \[B, h, w\]"):
        vp.localisation_scores(maps[0], mask)


def test_figures_are_returned():
    maps, mask = _case()
    x = torch.randn(5, 3, 16, 16)
    fig = vp.plot_examples(x[:2], mask[:2], {"m": maps[:2]}, titles=["a", "b"])
    assert len(fig.axes) == 6
    fig = vp.plot_weights({"a": torch.randn(8), "b": torch.rand(8)})
    assert len(fig.axes) == 1
    fig = vp.threshold_frame(x[:3], mask[:3], maps[:3], 0.5, 0.42, name="m")
    assert "0.420" in fig._suptitle.get_text()
    assert vp.display_image(x[0]).shape == (16, 16, 3)
