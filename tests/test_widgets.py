"""Tests for uqxai_lib.widgets: precomputed frames, client-side links, clear errors."""

import io

import ipywidgets as W
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from ipywidgets.embed import embed_data  # noqa: E402
from ipywidgets.widgets import widget as widget_module  # noqa: E402
from ipywidgets.widgets.widget_link import Link  # noqa: E402
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


def test_frames_of_different_sizes_are_padded_to_one_size_without_changing_their_pixels():
    import numpy as np

    small, tall = Image.new("RGB", (40, 20), (200, 0, 0)), Image.new("RGB", (30, 50), (0, 0, 200))
    w = widgets.frame_slider([small, tall], [1, 2], description="x")
    imgs = w.children[1].children
    sizes = {widgets.png_size(i.value) for i in imgs}
    assert sizes == {(40, 50)}
    assert len({i.layout.width for i in imgs}) == 1  # one page size: the page does not jump
    # the padded frame holds the original pixels, centred, and white around them (independent check)
    a = np.asarray(Image.open(io.BytesIO(imgs[0].value)).convert("RGB"))
    assert (a[15:35, :, :] == (200, 0, 0)).all() and (a[:15] == 255).all() and (a[35:] == 255).all()
    grid = widgets.frame_grid([[small, tall], [tall, small]], [1, 2], ["a", "b"])
    assert {widgets.png_size(i.value) for inner in grid.children[2].children for i in inner.children} == {(40, 50)}


def test_a_text_frame_is_a_message_of_the_same_size():
    import numpy as np

    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1], [0, 1])
    w = widgets.frame_slider([fig, "no model kept"], [0.2, 0.9], description="prune ratio")
    first, msg = (i.value for i in w.children[1].children)
    assert widgets.png_size(first) == widgets.png_size(msg)
    a = np.asarray(Image.open(io.BytesIO(msg)).convert("L"))
    assert (a < 128).any() and (a[0] == 255).all()  # dark text in the middle of a white frame


def test_widgets_open_at_the_start_value():
    w = widgets.frame_slider([_pil(i) for i in range(3)], [1, 5, 20], description="T", start=20)
    assert w.children[0].index == 2 and w.children[1].selected_index == 2
    g = widgets.frame_grid([[_pil(i), _pil(i + 1)] for i in range(3)], [0.1, 0.3, 0.5], [1, 20],
                           descriptions=("p", "T"), start=(0.5, 20))
    sa, sb, outer = g.children
    assert (sa.index, sb.index, outer.selected_index) == (2, 1, 2)
    assert {inner.selected_index for inner in outer.children} == {1}
    with pytest.raises(ValueError, match="start 7 is not one of the values"):
        widgets.frame_slider([_pil(0)], [1], description="T", start=7)


def test_fitted_limits_follow_the_data_not_a_fixed_range():
    import numpy as np

    rng = np.random.default_rng(0)
    sd = [rng.uniform(0, 0.08, (8, 8)) for _ in range(4)]
    lo, hi = widgets.fitted_limits(sd, from_zero=True)
    assert lo == 0.0 and hi == pytest.approx(max(float(a.max()) for a in sd))
    diff = [rng.normal(0, 1, (8, 8))]
    lo, hi = widgets.fitted_limits(diff, symmetric=True)
    assert lo == -hi == pytest.approx(-float(np.abs(diff[0]).max()))
    x = np.concatenate([rng.uniform(0, 1, 999), [1000.0]])
    assert widgets.fitted_limits([x], quantile=0.99)[1] == pytest.approx(np.quantile(x, 0.99))
    with pytest.raises(ValueError, match="quantile"):
        widgets.fitted_limits([x], quantile=0.2)
