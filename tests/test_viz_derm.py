"""Tests of the derm_vic figures (uqxai_lib.viz.derm): they draw what uqxai_lib.studies.derm computes."""
import matplotlib

matplotlib.use("Agg")
import pandas as pd
import pytest
import torch
from support import derm_maps_and_masks as _maps_and_masks

from uqxai_lib.studies import derm as sd
from uqxai_lib.viz import derm as vd


def _bars(fig):
    """Colour-bar axes of a figure (their y axis is not shown, horizontal bars below the panels)."""
    return [a for a in fig.axes if a.get_label() == "<colorbar>"]


def test_vic_examples_have_square_panels_and_bars_below_their_columns_not_across_them():
    import matplotlib.pyplot as plt

    maps, masks = _maps_and_masks(5, b=2)
    vic, var = sd.vic_maps(maps)
    x = torch.randn(2, 3, 32, 32)
    fig = vd.plot_vic_examples(x, masks, maps[0], var, vic, row_labels=["a", "b"])
    assert len(fig.axes) == 12  # 10 panels + 2 colour bars
    fig.canvas.draw()
    w, h = fig.get_size_inches()
    panels, bars = fig.axes[:10], fig.axes[10:]
    for a in panels:  # drawn at the true (square) shape of the images
        p = a.get_position()
        assert p.width * w == pytest.approx(p.height * h, rel=0.02)
    lowest = min(a.get_position().y0 for a in panels)
    col = {j: panels[j].get_position() for j in range(5)}  # first row: one axes per column
    for bar, (first, last) in zip(bars, [(2, 3), (4, 4)]):
        bp = bar.get_position()
        assert bp.y1 < lowest  # below every panel, never across one
        assert bp.x0 >= col[first].x0 - 1e-6 and bp.x1 <= col[last].x1 + 1e-6
    titles = [a.get_title() for a in panels[:5]]
    assert titles == ["image", "lesion mask", "optimal model", "VIC (mean)", "SD across models"]
    plt.close(fig)


def test_sweep_figure_and_tables_are_formatted_without_index_numbers():
    import matplotlib.pyplot as plt

    table = pd.DataFrame({"ratio": [0.1, 0.5], "rel_loss_median": [1.0, 1.1], "rel_loss_q05": [1.0, 1.0],
                          "rel_loss_q25": [1.0, 1.05], "rel_loss_q75": [1.01, 1.2], "rel_loss_q95": [1.02, 1.3],
                          "n_kept": [10, 2], "n_candidates": [10, 10]})
    plt.close(vd.plot_sweep(table, epsilon=0.05, suggested=0.1))
    t = vd.sweep_table(table)
    assert list(t.index) == ["0.1", "0.5"] and t.loc["0.5", "models kept"] == "2 / 10"
    assert t.loc["0.5", "5–95 %"] == "1.000–1.300"
    fid = {"mass_in_mask": 0.4, "mass_in_mask_ci95": [0.35, 0.45], "chance": 0.15, "pointing_game": 0.9,
           "deletion_auc": 0.5, "deletion_auc_random": 0.6, "insertion_auc": 0.7, "insertion_auc_random": 0.6}
    san = {"steps": [{"randomised": "classifier", "median_rho": 0.91, "n_constant": 0, "n": 10}], "outcome": "failed",
           "threshold": 0.5}
    m = vd.maps_right_table(fid, san, {"spearman": -0.3, "ci95": [-0.5, -0.1], "n": 10})
    assert m.loc["mass in lesion mask (95 % interval)", "value"] == "0.4 (0.35 to 0.45)"
    assert m.loc["sanity outcome", "value"].startswith("failed")


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


def test_vic_frames_show_the_optimal_map_fit_the_sd_scale_and_say_when_no_cloud():
    import matplotlib.pyplot as plt

    from uqxai_lib import widgets

    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, 32, 32, generator=g)
    opt = torch.rand(1, 8, 8, generator=g)
    v, s = torch.rand(8, 8, generator=g), 0.07 * torch.rand(8, 8, generator=g)
    grid = [[(v, s, 3, 10), (None, None, 0, 10)], [(v, s * 0.5, 10, 10), (v, s, 1, 10)]]
    n_open = len(plt.get_fignums())
    frames = vd.vic_frames(grid, x, opt, [0.25, 0.75], [0.0, 10.0])
    assert len(frames) == 2 and all(len(row) == 2 for row in frames)
    assert all(f.startswith(b"\x89PNG") for row in frames for f in row)
    assert len(plt.get_fignums()) == n_open  # figures are closed
    sizes = {widgets.png_size(f) for row in frames for f in row}
    assert len(sizes) == 1  # every frame has the same size (no page jumps)
    w = widgets.frame_grid(frames, [0.25, 0.75], [0.0, 10.0], descriptions=("prune ratio", "epsilon"))
    assert len(w.children) == 3
    # one frame as a figure: optimal map, VIC, SD panels; the SD scale is the one given
    fig = vd.vic_frame(x[0], opt[0], v, s, n_kept=3, n_candidates=10, ratio=0.25, sd_max=float(s.max()))
    titles = [a.get_title() for a in fig.axes[:3]]
    assert titles == ["optimal model", "VIC", "SD across models"]
    assert fig.axes[2].images[-1].get_clim() == pytest.approx((0.0, float(s.max())))
    plt.close(fig)
    fig = vd.vic_frame(x[0], opt[0], v, s, n_kept=1, n_candidates=10, ratio=0.25)
    assert any("no cloud" in t.get_text() for a in fig.axes for t in a.texts)
    plt.close(fig)
    fig = vd.vic_frame(x[0], opt[0], None, None, n_kept=0, n_candidates=10, ratio=0.25)
    assert any("no model kept" in t.get_text() for a in fig.axes for t in a.texts)
    plt.close(fig)
    with pytest.raises(ValueError, match="grid must be"):
        vd.vic_frames(grid, x, opt, [0.5], [0.05])
    with pytest.raises(ValueError, match="one image"):
        vd.vic_frames(grid, torch.cat([x, x]), opt, [0.25, 0.75], [0.0, 10.0])


def test_variants_table_and_forest_plot_put_key_columns_first_and_show_undefined_rows():
    import matplotlib.pyplot as plt

    row = {"site": "pre_bn", "ratio": "random", "target": "own", "aggregation": "normalised", "filter": "temperature",
           "n_kept": 5, "n_candidates": 10, "iou_optimal": 0.5, "iou_vic": 0.52, "delta_iou": 0.02,
           "delta_iou_ci95": [0.01, 0.03], "verdict": "higher", "dice_optimal": 0.6, "dice_vic": 0.62,
           "spearman_vic_optimal_median": 0.9, "reason": None}
    und = {**row, "site": "post_activation", "ratio": 0.6, "target": "optimal", "filter": "loss", "n_kept": 1,
           "delta_iou": float("nan"), "delta_iou_ci95": [float("nan")] * 2, "verdict": "undefined",
           "reason": "1 model kept"}
    t = vd.variants_table([row, und], epsilon=0.05)
    assert list(t.columns) == ["models", "ρ (VIC, optimal)", "ΔIoU (95 % interval)", "verdict"]
    first = "before last BatchNorm, random ratio, own class, temperature filter"
    assert list(t.index) == [first, "after last ReLU, r = 0.6"]
    assert t.loc[first, "models"] == "5 / 10" and t.loc[first, "ΔIoU (95 % interval)"] == "+0.0200 (+0.0100 to +0.0300)"
    u = t.loc["after last ReLU, r = 0.6"]
    assert u["ΔIoU (95 % interval)"] == "–" and u["verdict"].startswith("undefined")
    assert "nan" not in t.to_string().lower()
    fig = vd.plot_variants([row, und], poster_delta=0.023)
    assert len(fig.axes[0].get_yticklabels()) == 2
    assert any(tx.get_text() == "undefined" for tx in fig.axes[0].texts)
    plt.close(fig)
