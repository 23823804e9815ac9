"""Tests of the derm_vic study helpers and figures (uqxai_lib.viz.derm)."""
import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd
import pytest
import scipy.stats
import torch

from uqxai_lib.viz import derm as vd


def _maps_and_masks(seed=0, b=12, s=5):
    g = torch.Generator().manual_seed(seed)
    masks = torch.zeros(b, 32, 32, dtype=torch.bool)
    masks[:, 8:24, 10:26] = True
    maps = torch.rand(s, b, 8, 8, generator=g)
    maps[..., 2:6, 3:7] += 1.0  # roughly where the lesion is
    return maps, masks


def test_dice_and_iou_of_the_same_binary_maps_obey_identity_and_jensen_bound():
    maps, masks = _maps_and_masks()
    f = vd.fidelity_scores(maps[0], masks)
    assert torch.allclose(f["dice"], vd.dice_from_iou(f["iou"]), atol=1e-6)
    assert f["dice"].mean() <= vd.dice_upper_bound(f["iou"].mean()) + 1e-9
    # the poster's pair (mean IoU 0.385 with mean Dice 0.878) is impossible for the same binary maps
    assert vd.dice_upper_bound(0.385) < 0.878 and vd.dice_upper_bound(0.408) < 0.923


def test_fidelity_matches_a_float64_hand_computation():
    maps, masks = _maps_and_masks(1)
    f = vd.fidelity_scores(maps[0], masks, ("fraction_of_max", 0.5))
    up = torch.nn.functional.interpolate(maps[0][:, None].double(), size=(32, 32), mode="bilinear", align_corners=False)[:, 0]
    lo, hi = up.amin((1, 2), keepdim=True), up.amax((1, 2), keepdim=True)
    pred = ((up - lo) / (hi - lo)) >= 0.5
    inter = (pred & masks).sum((1, 2)).double()
    union = (pred | masks).sum((1, 2)).double()
    assert torch.allclose(f["iou"].double(), inter / union, atol=1e-6)


def test_vic_is_mean_and_variability_is_population_sd_of_normalised_maps():
    maps, _ = _maps_and_masks(2)
    vic, var = vd.vic_and_variability(maps)
    a = maps.double().numpy()
    lo = a.min(axis=(2, 3), keepdims=True)
    hi = a.max(axis=(2, 3), keepdims=True)
    n = (a - lo) / (hi - lo)
    np.testing.assert_allclose(vic.numpy(), n.mean(0), atol=1e-6)
    np.testing.assert_allclose(var.numpy(), n.std(0), atol=1e-6)
    with pytest.raises(ValueError, match=r"\[S, B, h, w\]"):
        vd.vic_and_variability(maps[0])


def test_per_model_fidelity_equals_a_loop_over_models():
    maps, masks = _maps_and_masks(3, s=7)
    pm = vd.per_model_fidelity(maps, masks, chunk=3)
    loop = torch.stack([vd.fidelity_scores(m, masks)["iou"].mean() for m in maps])
    assert torch.allclose(pm["iou"], loop, atol=1e-6)


def test_paired_wilcoxon_matches_scipy_and_handles_ties():
    g = np.random.default_rng(0)
    a, b = g.random(20), g.random(20)
    assert vd.paired_wilcoxon(a, b) == pytest.approx(scipy.stats.wilcoxon(a, b).pvalue)
    assert np.isnan(vd.paired_wilcoxon(a, a))
    with pytest.raises(ValueError, match="length"):
        vd.paired_wilcoxon(a, b[:5])


def test_fidelity_table_labels_the_posters_numbers_as_theirs():
    maps, masks = _maps_and_masks(4)
    t = vd.fidelity_table(vd.fidelity_scores(maps[0], masks), vd.fidelity_scores(maps[1], masks))
    assert list(t.index) == ["IoU", "Dice"]
    assert t.loc["IoU", "optimal (poster, theirs)"] == 0.385 and t.loc["Dice", "VIC (poster, theirs)"] == 0.923
    assert (t["n"] == 12).all()


def test_suggest_ratio_is_the_largest_ratio_with_median_within_tolerance():
    table = pd.DataFrame({"ratio": [0.1, 0.3, 0.5, 0.7], "rel_loss_median": [1.0, 1.04, 1.2, 1.01]})
    assert vd.suggest_ratio(table, 0.05) == 0.7
    assert vd.suggest_ratio(table.iloc[2:3], 0.05) is None


def test_figures_draw():
    import matplotlib.pyplot as plt

    maps, masks = _maps_and_masks(5, b=2)
    vic, var = vd.vic_and_variability(maps)
    x = torch.randn(2, 3, 32, 32)
    fig = vd.plot_vic_examples(x, masks, maps[0], var, vic, row_labels=["a", "b"])
    assert len(fig.axes) == 10
    fig2 = vd.vic_frame(x[0], vic[0], var[0], n_kept=5, n_candidates=10, ratio=0.6, epsilon=0.05)
    fig3 = vd.vic_frame(x[0], None, None, n_kept=0, n_candidates=10, ratio=0.9)
    table = pd.DataFrame({"ratio": [0.1, 0.5], "rel_loss_median": [1.0, 1.1], "rel_loss_q05": [1.0, 1.0],
                          "rel_loss_q25": [1.0, 1.05], "rel_loss_q75": [1.01, 1.2], "rel_loss_q95": [1.02, 1.3],
                          "n_kept": [10, 2], "n_candidates": [10, 10]})
    fig4 = vd.plot_sweep(table, epsilon=0.05, suggested=0.1)
    fig5 = vd.plot_relative_losses(torch.tensor([0.9, 1.0, 1.2]), epsilon=0.05, ratio=0.6)
    for f in (fig, fig2, fig3, fig4, fig5):
        plt.close(f)
