"""Tests for uqxai_lib.viz.common: shapes, resizing, Agg rendering, clear errors."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from uqxai_lib.viz import common  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _render(fig):
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())


def test_normalize01_matches_min_max_and_zeroes_constant_maps():
    a = torch.tensor([[2.0, 4.0], [6.0, 10.0]])
    np.testing.assert_allclose(common.normalize01(a), (a.numpy() - 2) / 8)
    assert not common.normalize01(torch.full((3, 3), 5.0)).any()


def test_resize_map_matches_torch_interpolate():
    g = torch.Generator().manual_seed(0)
    m = torch.rand(4, 5, generator=g, dtype=torch.float64)
    ref = F.interpolate(m[None, None], size=(16, 20), mode="bilinear", align_corners=False)[0, 0]
    np.testing.assert_allclose(common.resize_map(m, (16, 20)), ref.numpy())
    s = torch.rand(7, generator=g, dtype=torch.float64)
    ref1 = F.interpolate(s[None, None], size=30, mode="linear", align_corners=False)[0, 0]
    np.testing.assert_allclose(common.resize_map(s, 30), ref1.numpy())
    with pytest.raises(ValueError, match="cannot be resized"):
        common.resize_map(m, 10)


def test_overlay_map_2d_upsamples_the_map_to_the_image_and_draws_into_given_ax():
    fig, axes = plt.subplots(1, 2)
    image = torch.rand(3, 24, 32)  # channels first
    out = common.overlay_map_2d(image, torch.rand(3, 4), ax=axes[1], title="cam")
    assert out is fig
    imgs = axes[1].get_images()
    assert len(imgs) == 2
    assert imgs[0].get_array().shape == (24, 32, 3)
    assert imgs[1].get_array().shape == (24, 32)
    assert 0.0 <= imgs[1].get_array().min() and imgs[1].get_array().max() <= 1.0
    assert axes[1].get_title() == "cam"
    _render(fig)


def test_show_map_draws_the_resized_map_over_the_image_or_alone_and_returns_its_handle():
    g = torch.Generator().manual_seed(0)
    img = torch.rand(16, 12, generator=g).numpy()
    m = torch.rand(4, 3, generator=g) * 5
    mask = np.zeros((16, 12), bool)
    mask[4:9, 3:8] = True
    fig, axes = plt.subplots(1, 3)
    h = common.show_map(axes[0], img, m, "t", mask=mask, normalize=True)
    want = F.interpolate(m.double()[None, None], size=(16, 12), mode="bilinear", align_corners=False)[0, 0].numpy()
    np.testing.assert_allclose(h.get_array(), (want - want.min()) / (want.max() - want.min()), atol=1e-12)
    assert h.get_clim() == (0, 1) and h.get_alpha() == 0.5 and len(axes[0].images) == 2
    assert axes[0].images[0].get_clim() == (0.0, 1.0) and axes[0].get_title() == "t" and axes[0].collections  # outline
    h2 = common.show_map(axes[1], None, m, size=(8, 6), cmap="magma", vmin=0, vmax=7.0)
    assert h2.get_array().shape == (8, 6) and h2.get_clim() == (0, 7.0) and h2.get_alpha() is None
    assert len(axes[1].images) == 1 and not axes[1].get_title()
    rgb = np.random.default_rng(0).random((16, 12, 3))
    h3 = common.show_map(axes[2], rgb, m)
    np.testing.assert_allclose(h3.get_array(), want, atol=1e-12)  # raw values, colour range from the data
    assert h3.get_clim() == pytest.approx((want.min(), want.max()))
    _render(fig)


def test_overlay_map_2d_rejects_batched_maps():
    with pytest.raises(ValueError, match="pick one sample"):
        common.overlay_map_2d(torch.rand(8, 8), torch.rand(2, 4, 4))


def test_overlay_map_1d_band_spans_the_trace_in_seconds():
    sig = torch.sin(torch.linspace(0, 6.28, 250))
    fig = common.overlay_map_1d(sig, torch.rand(16), fs=250.0)
    ax = fig.axes[0]
    (band,) = ax.get_images()
    assert band.get_array().shape == (1, 250)
    assert ax.get_xlabel() == "time (s)"
    assert ax.lines[0].get_xdata()[-1] == pytest.approx(249 / 250)
    _render(fig)


def test_group_distributions_by_keys_and_by_mapping():
    g = torch.Generator().manual_seed(1)
    v = torch.rand(40, generator=g)
    groups = torch.arange(40) % 2 == 0
    fig = common.group_distributions(v, groups, {True: "AF", False: "normal"}, ylabel="SUE")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["AF", "normal"]
    # jittered points: one scatter per group with the group's values
    offsets = [c.get_offsets()[:, 1] for c in ax.collections if c.get_offsets().shape[0] == 20]
    np.testing.assert_allclose(sorted(offsets[0]), sorted(v[groups].numpy()), rtol=1e-6)
    fig2 = common.group_distributions({"a": [1.0, 2.0, 3.0], "b": [2.0, 2.0]}, kind="box")
    assert [t.get_text() for t in fig2.axes[0].get_xticklabels()] == ["a", "b"]
    _render(fig)


def test_group_distributions_bad_input():
    with pytest.raises(ValueError, match="has 3 entries but groups has 2"):
        common.group_distributions([1, 2, 3], [0, 1])
    with pytest.raises(ValueError, match="no values for group"):
        common.group_distributions([1.0, 2.0], [0, 0], {0: "a", 1: "b"})
    with pytest.raises(ValueError, match="kind must be"):
        common.group_distributions([1.0], [0], kind="bar")


def _panels(fig):
    return [a for a in fig.axes if a.get_label() != "<colorbar>"]


def _colorbars(fig):
    return [a for a in fig.axes if a.get_label() == "<colorbar>"]


def test_show_maps_row_maps_alone_and_as_overlays_with_one_shared_colour_bar():
    maps = [torch.rand(6, 6) for _ in range(3)]
    fig = common.show_maps_row(maps, ["mean", "std", "ref"])
    assert len(_panels(fig)) == 3 and len(_colorbars(fig)) == 1
    assert [a.get_title() for a in _panels(fig)] == ["mean", "std", "ref"]
    imgs = [torch.rand(12, 12) for _ in range(2)]
    fig2 = common.show_maps_row(imgs, maps=maps[:2], suptitle="overlay")
    assert all(len(a.get_images()) == 2 for a in _panels(fig2)) and len(_colorbars(fig2)) == 1
    assert all(a.get_images()[1].get_cmap().name == common.MAP_CMAP for a in _panels(fig2))
    assert len(_colorbars(common.show_maps_row(maps, colorbar=False))) == 0
    with pytest.raises(ValueError, match="2 titles for 3 images"):
        common.show_maps_row(maps, ["a", "b"])


def test_show_maps_row_raw_scale_shares_the_colour_range():
    maps = [torch.zeros(4, 4), torch.full((4, 4), 3.0)]
    fig = common.show_maps_row(maps, normalize=False)
    assert {a.get_images()[0].get_clim() for a in _panels(fig)} == {(0.0, 3.0)}
    # overlays on a raw scale share it too
    fig = common.show_maps_row([torch.rand(8, 8)] * 2, maps=maps, normalize=False)
    assert {a.get_images()[1].get_clim() for a in _panels(fig)} == {(0.0, 3.0)}


def test_house_style_is_applied_by_use_style_and_never_uses_jet():
    import inspect

    import matplotlib

    from uqxai_lib.viz import primer, use_style

    use_style()  # what every chapter's setup cell calls (importing uqxai_lib.viz changes nothing)

    assert matplotlib.rcParams["savefig.dpi"] >= 150 * 1.0
    assert matplotlib.rcParams["figure.dpi"] * common.RENDER_DENSITY >= 150
    assert matplotlib.rcParams["image.cmap"] == common.MAP_CMAP
    assert matplotlib.colors.to_rgba(matplotlib.rcParams["figure.facecolor"])[3] == 1.0  # opaque
    for mod in (common, primer):
        assert '"jet"' not in inspect.getsource(mod)
    # the colour maps are perceptually uniform / diverging ones matplotlib ships
    assert common.MAP_CMAP in ("viridis", "magma", "inferno", "plasma", "cividis")
    cm = matplotlib.colormaps[common.DIFF_CMAP]
    assert np.allclose(cm(0.5)[:3], cm(0.5)[:3]) and cm(0.0)[2] > cm(0.0)[0]  # blue low, red high


def test_every_map_drawn_by_the_common_functions_has_a_colour_bar():
    fig = common.overlay_map_2d(torch.rand(16, 16), torch.rand(4, 4))
    assert len(_colorbars(fig)) == 1
    fig = common.overlay_map_1d(torch.randn(100), torch.rand(10), fs=100.0)
    assert len(_colorbars(fig)) == 1 and fig.axes[0].get_xlabel() == "time (s)"
    fig, axes = plt.subplots(1, 2)
    common.overlay_map_2d(torch.rand(16, 16), torch.rand(4, 4), ax=axes[0])
    assert len(_colorbars(fig)) == 0  # inside a caller's grid: the caller adds one bar


def test_column_figsize_fits_the_text_column():
    for n in range(1, 12):
        w, h = common.column_figsize(n)
        assert w <= common.TEXT_WIDTH_IN + 1e-9 and h > 0
    with pytest.raises(ValueError, match="n_cols"):
        common.column_figsize(0)


def test_gallery_draws_every_item_with_outlines_and_marks_errors():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(7, 3, 16, 16, generator=g)
    maps = torch.rand(7, 4, 4, generator=g)
    masks = torch.zeros(7, 16, 16, dtype=torch.bool)
    masks[:, 4:10, 4:10] = True
    wrong = [False, True, False, False, True, False, False]
    fig = common.gallery(images, maps, masks=masks, titles=[f"item {i}" for i in range(7)], wrong=wrong, n_cols=4)
    panels = _panels(fig)
    assert len(panels) == 8 and len(_colorbars(fig)) == 1
    drawn = [a for a in panels if a.get_images()]
    assert len(drawn) == 7
    assert all(a.collections for a in drawn)  # the mask outline (a contour) is on every item
    reds = [a.get_title() for a in drawn if matplotlib.colors.to_hex(a.title.get_color()) == "#cf222e"]
    assert reds == ["item 1", "item 4"]
    assert fig.get_size_inches()[0] <= common.TEXT_WIDTH_IN + 1e-9
    with pytest.raises(ValueError, match="3 masks for 7 images"):
        common.gallery(images, maps, masks=masks[:3])


def test_trend_keeps_the_reference_inside_the_y_range():
    fig = common.trend([1, 2, 3], [0.71, 0.72, 0.715], reference=0.0, reference_label="zero")
    lo, hi = fig.axes[0].get_ylim()
    assert lo <= 0.0 <= hi


def test_mid_slice_and_trend():
    vol = torch.arange(5 * 3 * 4, dtype=torch.float64).reshape(5, 3, 4)
    np.testing.assert_array_equal(common.mid_slice(vol), vol[2].numpy())
    np.testing.assert_array_equal(common.mid_slice(vol, axis=2, index=1), vol[:, :, 1].numpy())
    fig = common.trend([1, 2, 3], [0.5, 0.6, 0.7], yerr=[0.1, 0.1, 0.1], label="SUE", xlabel="SNR")
    assert fig.axes[0].get_xlabel() == "SNR"
    with pytest.raises(ValueError, match="x has 2 points but y has 3"):
        common.trend([1, 2], [1, 2, 3])


def test_house_style_gives_high_density_inline_figures_in_a_kernel(monkeypatch):
    """In a Jupyter kernel (as papermill runs the chapters) a figure is displayed at 2 device px per
    CSS px, even when the style is applied before pyplot is imported (the inline backend's set-up comes later)."""
    import base64
    import io
    import os
    from pathlib import Path

    import nbformat
    from nbclient import NotebookClient
    from PIL import Image

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "from uqxai_lib.viz import use_style\nuse_style()\nimport matplotlib.pyplot as plt\n"
        "from IPython.display import display\n"
        "fig, ax = plt.subplots(figsize=(3, 2)); ax.plot([0, 1]); ax.set_xlabel('x'); display(fig)")]
    root = str(Path(__file__).resolve().parents[1])
    monkeypatch.setenv("PYTHONPATH", root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    NotebookClient(nb, kernel_name="python3", timeout=300).execute()
    out = [o for o in nb.cells[0].outputs if "image/png" in o.get("data", {})][0]
    css_w = out["metadata"]["image/png"]["width"]
    natural_w = Image.open(io.BytesIO(base64.b64decode(out["data"]["image/png"]))).size[0]
    assert natural_w / css_w >= 1.9
    assert 250 <= css_w <= 320  # 3 inches at 100 CSS px per inch (tight bounding box)


def _contrast(fg, bg) -> float:
    """WCAG 2 contrast ratio of two sRGB colours (the standard's formula, written out in NumPy)."""
    def lum(c):
        c = np.asarray(c, dtype=float)[:3]
        c = np.where(c <= 0.03928, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
        return float(c @ [0.2126, 0.7152, 0.0722])

    hi, lo = sorted([lum(fg), lum(bg)], reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_cell_annotations_take_the_more_contrasting_colour_on_every_cell():
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm, to_rgb

    from uqxai_lib.viz import common

    grid = np.linspace(0.2, 0.85, 16).reshape(2, 8)
    grid[1, 7] = np.nan
    fig, ax = plt.subplots()
    im = ax.imshow(np.ma.masked_invalid(grid), cmap="PuOr", norm=TwoSlopeNorm(0.5, 0.2, 0.8))
    texts = common.annotate_cells(ax, im, [[f"{v:.2f}" for v in row] for row in grid])
    assert len(texts) == 16
    for t, v in zip(texts[:-1], grid.ravel()[:-1]):
        cell = im.cmap(im.norm(v))
        other = "black" if t.get_color() == "white" else "white"
        assert _contrast(to_rgb(t.get_color()), cell) >= _contrast(to_rgb(other), cell), (v, t.get_color())
        assert _contrast(to_rgb(t.get_color()), cell) >= 4.5  # WCAG AA for text on these cells
    assert texts[-1].get_color() == "0.15"  # a masked cell sits on the white axes
    plt.close(fig)
