"""Tests of the derm_vic figures (uqxai_lib.viz.derm): they draw what uqxai_lib.studies.derm computes."""
import matplotlib

matplotlib.use("Agg")
import pandas as pd
import pytest
import torch

from _support import derm_maps_and_masks as _maps_and_masks

from uqxai_lib.studies import derm as sd
from uqxai_lib.viz import derm as vd


def test_figures_draw():
    import matplotlib.pyplot as plt

    maps, masks = _maps_and_masks(5, b=2)
    vic, var = sd.vic_and_variability(maps)
    x = torch.randn(2, 3, 32, 32)
    fig = vd.plot_vic_examples(x, masks, maps[0], var, vic, row_labels=["a", "b"])
    assert len(fig.axes) == 12  # 10 panels + 2 colour bars
    fig2 = vd.vic_frame(x[0], vic[0], var[0], n_kept=5, n_candidates=10, ratio=0.6, epsilon=0.05)
    fig3 = vd.vic_frame(x[0], None, None, n_kept=0, n_candidates=10, ratio=0.9)
    table = pd.DataFrame({"ratio": [0.1, 0.5], "rel_loss_median": [1.0, 1.1], "rel_loss_q05": [1.0, 1.0],
                          "rel_loss_q25": [1.0, 1.05], "rel_loss_q75": [1.01, 1.2], "rel_loss_q95": [1.02, 1.3],
                          "n_kept": [10, 2], "n_candidates": [10, 10]})
    fig4 = vd.plot_sweep(table, epsilon=0.05, suggested=0.1)
    fig5 = vd.plot_relative_losses(torch.tensor([0.9, 1.0, 1.2]), epsilon=0.05, ratio=0.6)
    for f in (fig, fig2, fig3, fig4, fig5):
        plt.close(f)


def test_plot_samples_shows_images_above_masks_and_needs_masks():
    import matplotlib.pyplot as plt

    from uqxai_lib.data import LabeledArrays

    g = torch.Generator().manual_seed(0)
    d = LabeledArrays(torch.randn(6, 3, 16, 16, generator=g), torch.tensor([0, 1, 0, 1, 0, 1]), ("benign", "malignant"),
                      mask=torch.zeros(6, 16, 16, dtype=torch.bool))
    fig = vd.plot_samples(d, per_class=2)
    assert len(fig.axes) == 8
    plt.close(fig)
    with pytest.raises(ValueError, match="mask"):
        vd.plot_samples(LabeledArrays(d.x, d.y, d.classes))


def test_vic_frames_give_a_full_grid_of_png_frames():
    import matplotlib.pyplot as plt

    from uqxai_lib import widgets

    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, 32, 32, generator=g)
    v, s = torch.rand(8, 8, generator=g), torch.rand(8, 8, generator=g)
    grid = [[(v, s, 3, 10), (None, None, 0, 10)], [(v, s, 10, 10), (v, s, 1, 10)]]
    n_open = len(plt.get_fignums())
    frames = vd.vic_frames(grid, x, [0.25, 0.75], [0.0, 10.0])
    assert len(frames) == 2 and all(len(row) == 2 for row in frames)
    assert all(f.startswith(b"\x89PNG") for row in frames for f in row)
    assert len(plt.get_fignums()) == n_open  # figures are closed
    w = widgets.frame_grid(frames, [0.25, 0.75], [0.0, 10.0], descriptions=("prune ratio", "epsilon"))
    assert len(w.children) == 3
    with pytest.raises(ValueError, match="grid must be"):
        vd.vic_frames(grid, x, [0.5], [0.05])
    with pytest.raises(ValueError, match="one image"):
        vd.vic_frames(grid, torch.cat([x, x]), [0.25, 0.75], [0.0, 10.0])


def test_variant_fidelity_and_sanity_figures_draw_with_colour_bars():
    import matplotlib.pyplot as plt

    row = {"site": "pre_bn", "ratio": "random", "target": "own", "aggregation": "normalised", "filter": "loss",
           "n_kept": 5, "n_candidates": 10, "iou_optimal": 0.5, "iou_vic": 0.52, "delta_iou": 0.02,
           "delta_iou_ci95": [0.01, 0.03], "verdict": "higher", "dice_optimal": 0.6, "dice_vic": 0.62,
           "spearman_vic_optimal_median": 0.9}
    fig = vd.plot_variants([row, {**row, "ratio": 0.4, "delta_iou": -0.01, "delta_iou_ci95": [-0.02, 0.0],
                                  "verdict": "no detectable difference"}], poster_delta=0.023)
    assert len(fig.axes[0].get_yticklabels()) == 2
    t = vd.variants_table([row])
    assert t.loc[0, "kept"] == "5/10" and "+0.0200" in t.loc[0, "ΔIoU [95% CI]"]
    curves = {f"{n}_{o}": torch.linspace(1, 0, 9) for n in ("deletion", "insertion") for o in ("map", "random")}
    aucs = {"deletion_auc": 0.5, "deletion_auc_random": 0.5, "insertion_auc": 0.5, "insertion_auc_random": 0.5}
    fig2 = vd.plot_deletion_insertion(curves, aucs, fill="blur")
    x = torch.randn(2, 3, 32, 32)
    rows = [{"randomised_from": "classifier", "spearman_to_trained": 0.3}, {"randomised_from": "f.12", "spearman_to_trained": 0.1}]
    fig3 = vd.plot_sanity(x, torch.rand(2, 8, 8), torch.rand(2, 2, 8, 8), rows)
    assert len(fig3.axes) == 2 * 4 + 1  # the last axes is the colour bar
    fig4 = vd.plot_fidelity_vs_stability(torch.rand(10), torch.rand(10, 4, 4), torch.arange(10) % 3 > 0, chance=0.3,
                                         spearman=-0.2, ci95=[-0.5, 0.1])
    maps, masks = _maps_and_masks(5, b=2)
    vic, var = sd.vic_and_variability(maps)
    fig5 = vd.plot_vic_examples(x, masks, maps[0], var, vic)
    assert len(fig5.axes) == 10 + 2  # two colour bars
    for f in (fig, fig2, fig3, fig4, fig5):
        plt.close(f)
