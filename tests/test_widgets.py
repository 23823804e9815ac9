"""Tests for uqxai_lib.widgets: precomputed frames, client-side links, clear errors."""

import io

import ipywidgets as W
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from ipywidgets.widgets import widget as widget_module  # noqa: E402
from ipywidgets.widgets.widget_link import Link  # noqa: E402
from ipywidgets.embed import embed_data  # noqa: E402
from PIL import Image  # noqa: E402

from uqxai_lib import widgets  # noqa: E402


def _pil(i, size=8):
    return Image.new("RGB", (size, size), (40 * i % 256, 10, 200))


def _links_from(source):
    """Every jslink whose source is (source, 'index')."""
    return [
        w
        for w in list(widget_module._instances.values())
        if isinstance(w, Link) and w.source[0] is source and w.source[1] == "index"
    ]


def test_figure_to_png_returns_png_and_closes_the_figure():
    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1], [1, 0])
    num = fig.number
    png = widgets.figure_to_png(fig, dpi=50)
    assert png.startswith(b"\x89PNG")
    assert not plt.fignum_exists(num)
    # a low dpi is raised to the house minimum: a 1-inch figure is ~MIN_FRAME_DPI px (tight bbox)
    assert widgets.MIN_FRAME_DPI * 0.5 <= Image.open(io.BytesIO(png)).size[0] <= widgets.MIN_FRAME_DPI * 1.3
    assert round(widgets.png_dpi(png)) == widgets.MIN_FRAME_DPI


def test_to_png_accepts_pil_and_png_bytes_and_rejects_other_things():
    png = widgets.to_png(_pil(1))
    assert png.startswith(b"\x89PNG")
    assert widgets.to_png(png) == png
    with pytest.raises(ValueError, match="not a PNG"):
        widgets.to_png(b"GIF89a....")
    with pytest.raises(TypeError, match="matplotlib Figure, a PIL Image or PNG bytes"):
        widgets.to_png([1, 2, 3])


def test_frame_slider_links_slider_index_to_stack_client_side():
    w = widgets.frame_slider([_pil(i) for i in range(4)], [0.1, 0.2, 0.3, 0.4], description="p")
    slider, stack = w.children
    assert isinstance(slider, W.SelectionSlider)
    assert isinstance(stack, W.Stack)
    assert slider.description == "p"
    assert list(slider.options) == [("0.1", 0), ("0.2", 1), ("0.3", 2), ("0.4", 3)]
    assert stack.selected_index == 0
    assert all(isinstance(c, W.Image) for c in stack.children)
    # the frames are the given images, in order
    assert [c.value for c in stack.children] == [widgets.to_png(_pil(i)) for i in range(4)]
    (link,) = _links_from(slider)
    assert link.target == (stack, "selected_index")


def test_frame_slider_renders_matplotlib_figures_and_closes_them():
    figs = []
    for k in range(2):
        fig, ax = plt.subplots(figsize=(1.5, 1.5))
        ax.plot([0, 1], [0, k])
        figs.append(fig)
    nums = [f.number for f in figs]
    w = widgets.frame_slider(figs, ["a", "b"], description="which")
    images = w.children[1].children
    assert images[0].value != images[1].value
    assert all(bytes(img.value).startswith(b"\x89PNG") for img in images)
    assert not any(plt.fignum_exists(n) for n in nums)


def test_frame_grid_nests_stacks_and_links_both_sliders():
    frames = [[_pil(3 * i + j) for j in range(3)] for i in range(2)]
    w = widgets.frame_grid(frames, [1, 2], ["x", "y", "z"], descriptions=("rate", "passes"))
    slider_a, slider_b, outer = w.children
    assert (slider_a.description, slider_b.description) == ("rate", "passes")
    assert len(outer.children) == 2 and all(len(inner.children) == 3 for inner in outer.children)
    assert outer.children[1].children[2].value == widgets.to_png(frames[1][2])
    (la,) = _links_from(slider_a)
    assert la.target == (outer, "selected_index")
    targets = {id(link.target[0]) for link in _links_from(slider_b)}
    assert targets == {id(inner) for inner in outer.children}


def test_embedded_state_contains_links_and_images():
    w = widgets.frame_slider([_pil(i) for i in range(2)], [1, 2], description="n")
    link = _links_from(w.children[0])[0]
    state = embed_data(views=[w, link])["manager_state"]["state"]
    names = {s["model_name"] for s in state.values()}
    assert {"LinkModel", "StackModel", "ImageModel", "SelectionSliderModel"} <= names


@pytest.mark.parametrize(
    "frames, values, match",
    [
        ([], [], "at least one frame"),
        ([b"\x89PNG\r\n\x1a\n"], [1, 2], "has 2 entries but there are 1 frames"),
        ([b"\x89PNG\r\n\x1a\n"] * 2, [1.0, 1.0], "distinct labels"),
    ],
)
def test_frame_slider_bad_input_says_what_is_wrong(frames, values, match):
    with pytest.raises(ValueError, match=match):
        widgets.frame_slider(frames, values, description="x")


def test_frame_grid_rejects_ragged_grid():
    png = widgets.to_png(_pil(0))
    with pytest.raises(ValueError, match="full len"):
        widgets.frame_grid([[png, png], [png]], [1, 2], [1, 2])


def test_large_frames_warn_about_page_size(monkeypatch):
    monkeypatch.setattr(widgets, "SIZE_WARNING_BYTES", 10)
    with pytest.warns(UserWarning, match="embedded in the page"):
        widgets.frame_slider([_pil(0)], [0], description="x")


def test_frames_are_high_density_and_as_wide_as_the_column_at_most():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.0, 2.0))
    ax.plot([0, 1], [0, 1])
    w = widgets.frame_slider([fig, widgets.figure_to_png(plt.figure(figsize=(7.0, 2.0)))], [1, 2], description="x")
    img = w.children[1].children[0]
    natural, _ = widgets.png_size(img.value)
    css = float(img.layout.width.removesuffix("px"))
    assert natural / css >= 1.5  # device px per CSS px
    assert img.layout.max_width == "100%"
    assert 550 <= css <= 750  # a 7-inch figure (trimmed to its content) fills most of the ~700 px column


def test_png_size_and_shared_limits():
    import numpy as np
    import pytest

    png = widgets.to_png(Image.new("RGB", (150, 100)))
    assert widgets.png_size(png) == Image.open(io.BytesIO(png)).size == (150, 100)
    with pytest.raises(ValueError, match="not a PNG"):
        widgets.png_size(b"nope")
    assert widgets.shared_limits([np.array([1.0, 2.0]), np.array([[-1.0, np.inf]])]) == (-1.0, 2.0)
    assert widgets.shared_limits([np.zeros(3)]) == (0.0, 1.0)


def test_low_dpi_frames_keep_their_page_size():
    import matplotlib.pyplot as plt

    def png_at(dpi):  # a PNG rendered elsewhere at this dpi (figure_to_png would raise a low one)
        buf = io.BytesIO()
        plt.figure(figsize=(6.0, 2.0)).savefig(buf, format="png", dpi=dpi)
        return buf.getvalue()

    pngs = [png_at(d) for d in (72, 150)]
    w72, w150 = (widgets.frame_slider([p], [0], description="x").children[1].children[0] for p in pngs)
    css72, css150 = (float(w.layout.width.removesuffix("px")) for w in (w72, w150))
    assert abs(css72 - css150) <= 2  # same size on the page, whatever the dpi
    assert widgets.png_size(pngs[1])[0] / css150 >= 1.5
