"""Precomputed-frame widgets that work in Jupyter *and* in the static HTML book.

A slider picks one of a few images that were rendered ahead of time.  The link between
slider and image lives in the browser (``ipywidgets.jslink`` from the slider's ``index`` to
``Stack.selected_index``), so the widget keeps working in the rendered book where no kernel
runs.  ``interact()``-style callbacks would be blank there; do not use them as the only view.

Frames are matplotlib figures (rendered to PNG and closed), PIL images or PNG bytes.  Every
frame ends up base64-encoded in the page, so keep them small: a few dozen frames at the default
``dpi`` stay within a few MB.  A :class:`UserWarning` is emitted above :data:`SIZE_WARNING_BYTES`.

Steadiness: every frame of one widget is padded (white, centred) to the largest frame's size
(:func:`pad_frames`), so moving a slider never changes the widget's height and the page does not
jump.  A frame may be a text (e.g. ``"no model kept"``): it becomes a blank frame of that size
with the text in the middle.  ``start=`` opens the widget at one of its values (e.g. the chapter's
number of passes T); :func:`fitted_limits` gives one colour scale fitted to the data the frames show.

Readability: a frame is shown at :data:`FRAME_DENSITY` device pixels per CSS pixel (at most the
column's width), so a figure drawn at the house style's page size (100 CSS px per inch,
``viz.common.TEXT_WIDTH_IN`` wide for a full column) keeps its text size and is sharp.  Frames of
one widget should share one colour scale fitted to what they show: pass ``vmin``/``vmax`` from
:func:`fitted_limits` (or :func:`shared_limits`) to every frame's ``imshow``.

Examples
--------
>>> import matplotlib
>>> matplotlib.use("Agg")
>>> import matplotlib.pyplot as plt
>>> figs = []
>>> for k in range(3):
...     fig, ax = plt.subplots(figsize=(2, 2))
...     _ = ax.plot([0, 1], [0, k])
...     figs.append(fig)
>>> w = frame_slider(figs, [0.1, 0.2, 0.3], description="p")
>>> slider, stack = w.children
>>> slider.index, stack.selected_index, len(stack.children)
(0, 0, 3)
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from typing import Any

import ipywidgets as W

__all__ = ["figure_to_png", "to_png", "png_size", "png_dpi", "shared_limits", "fitted_limits", "pad_frames",
           "message_frame", "frame_slider", "frame_grid",
           "SIZE_WARNING_BYTES", "FRAME_DPI", "FRAME_DENSITY", "MIN_FRAME_DPI"]

#: total PNG bytes in one widget above which a warning suggests a lower dpi / fewer frames
SIZE_WARNING_BYTES = 4_000_000
#: PNG resolution of matplotlib frames (1.5 × the house style's 100 CSS px per inch)
FRAME_DPI = 150
#: device pixels per CSS pixel a frame is shown at
FRAME_DENSITY = FRAME_DPI / 100
#: the lowest resolution :func:`figure_to_png` renders at (a lower ``dpi`` argument is raised to it)
MIN_FRAME_DPI = FRAME_DPI
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def figure_to_png(fig: Any, dpi: int = FRAME_DPI, *, close: bool = True) -> bytes:
    """Render a matplotlib figure to PNG bytes (and close it so it is not shown twice).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    dpi : int
        Resolution (default :data:`FRAME_DPI`); values below :data:`MIN_FRAME_DPI` are raised to it
        (house style: every frame is sharp at 1.5 device px per CSS px; its page size does not
        depend on the dpi, see :func:`frame_slider`).
    close : bool
        Close the figure afterwards (default) so notebooks do not display it a second time.

    Returns
    -------
    bytes
        PNG file content.
    """
    from matplotlib.figure import Figure

    if not isinstance(fig, Figure):
        raise TypeError(f"figure_to_png expects a matplotlib Figure, got {type(fig).__name__}")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=max(float(dpi), MIN_FRAME_DPI), bbox_inches="tight")
    if close:
        import matplotlib.pyplot as plt

        plt.close(fig)
    return buf.getvalue()


def to_png(frame: Any, dpi: int = FRAME_DPI) -> bytes:
    """Convert one frame (matplotlib Figure, PIL Image or PNG bytes) to PNG bytes."""
    if isinstance(frame, (bytes, bytearray, memoryview)):
        data = bytes(frame)
        if not data.startswith(_PNG_MAGIC):
            raise ValueError(
                "frame bytes are not a PNG file; pass PNG bytes, a PIL Image or a matplotlib Figure"
            )
        return data
    try:
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        Figure = ()  # type: ignore[assignment]
    if isinstance(frame, Figure):
        return figure_to_png(frame, dpi=dpi)
    try:
        from PIL import Image as PILImage
    except ImportError:  # pragma: no cover - pillow is a dependency
        PILImage = None  # type: ignore[assignment]
    if PILImage is not None and isinstance(frame, PILImage.Image):
        buf = io.BytesIO()
        frame.save(buf, format="PNG", optimize=True)
        return buf.getvalue()
    raise TypeError(
        f"unsupported frame type {type(frame).__name__}; "
        "pass a matplotlib Figure, a PIL Image or PNG bytes"
    )


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) in pixels from a PNG header.

    >>> from PIL import Image
    >>> png_size(to_png(Image.new("RGB", (200, 100))))
    (200, 100)
    """
    png = bytes(png)
    if not png.startswith(_PNG_MAGIC) or len(png) < 24:
        raise ValueError("not a PNG file")
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def png_dpi(png: bytes, default: float = FRAME_DPI) -> float:
    """Resolution stored in a PNG's ``pHYs`` chunk (matplotlib writes it), else ``default``.

    >>> import matplotlib; matplotlib.use("Agg"); import matplotlib.pyplot as plt
    >>> round(png_dpi(figure_to_png(plt.figure(figsize=(1, 1)), dpi=200)))
    200
    """
    import struct

    png = bytes(png)
    i = png.find(b"pHYs", 8, 4096)
    if i < 0 or len(png) < i + 13:
        return float(default)
    x, _, unit = struct.unpack(">IIB", png[i + 4:i + 13])
    return x * 0.0254 if unit == 1 and x > 0 else float(default)


def shared_limits(arrays: Sequence[Any]) -> tuple[float, float]:
    """(vmin, vmax) over all finite values of ``arrays``: one colour scale for every frame.

    >>> shared_limits([[0.0, 2.0], [float("nan"), 5.0]])
    (0.0, 5.0)
    """
    import numpy as np

    vals = [np.asarray(a, dtype=float).ravel() for a in arrays]
    vals = np.concatenate(vals) if vals else np.zeros(0)
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        return (0.0, 1.0)
    lo, hi = float(vals.min()), float(vals.max())
    return (lo, hi if hi > lo else lo + 1.0)


def fitted_limits(arrays: Sequence[Any], *, from_zero: bool = False, symmetric: bool = False,
                  quantile: float = 1.0) -> tuple[float, float]:
    """(vmin, vmax) of one colour scale fitted to the data a widget shows (all its frames).

    ``from_zero``: the scale starts at 0 (a spread, an SD: 0 means "no spread"), up to the data's
    top; ``symmetric``: ``(-m, m)`` with ``m`` the largest magnitude (signed differences, centred at
    white in a diverging map); ``quantile`` < 1 takes the top (and bottom) at that quantile of the
    finite values, so one outlier does not leave every other pixel dark.  A scale of zero width
    becomes one unit wide above its value; no finite value gives (0, 1).

    >>> fitted_limits([[0.01, 0.08], [0.02, 0.05]], from_zero=True)
    (0.0, 0.08)
    >>> fitted_limits([[-0.2, 0.1]], symmetric=True)
    (-0.2, 0.2)
    >>> lo, hi = fitted_limits([list(range(100)) + [10_000]], quantile=0.99, from_zero=True); lo, round(hi)
    (0.0, 99)
    """
    import numpy as np

    if not 0.5 < quantile <= 1.0:
        raise ValueError(f"quantile must be in (0.5, 1], got {quantile}")
    vals = [np.asarray(a, dtype=float).ravel() for a in arrays]
    vals = np.concatenate(vals) if vals else np.zeros(0)
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        return (0.0, 1.0)
    lo = float(np.quantile(vals, 1.0 - quantile)) if quantile < 1 else float(vals.min())
    hi = float(np.quantile(vals, quantile)) if quantile < 1 else float(vals.max())
    if symmetric:
        m = max(abs(lo), abs(hi))
        return (-m, m) if m > 0 else (-1.0, 1.0)
    if from_zero:
        lo = min(0.0, lo)
    return (lo, hi if hi > lo else lo + 1.0)


def message_frame(text: str, size: tuple[int, int] = (600, 300), dpi: float = FRAME_DPI) -> bytes:
    """A white PNG of ``size`` pixels with ``text`` in the middle (e.g. "no model kept" for a
    slider position that has nothing to show), stored at ``dpi`` so it shows at the page size of
    the frames beside it.

    >>> png_size(message_frame("no model kept", (320, 200)))
    (320, 200)
    """
    from matplotlib.figure import Figure

    w, h = int(size[0]), int(size[1])
    fig = Figure(figsize=(w / dpi, h / dpi), dpi=dpi, facecolor="white")
    fig.text(0.5, 0.5, str(text), ha="center", va="center", fontsize=11, color="0.25")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    png = buf.getvalue()
    return png if png_size(png) == (w, h) else _resize_png(png, (w, h), dpi)


def _resize_png(png: bytes, size: tuple[int, int], dpi: float) -> bytes:
    from PIL import Image as PILImage

    im = PILImage.open(io.BytesIO(png)).convert("RGB").resize(size, PILImage.LANCZOS)
    out = io.BytesIO()
    im.save(out, format="PNG", dpi=(dpi, dpi), optimize=True)
    return out.getvalue()


def pad_frames(pngs: Sequence[bytes]) -> list[bytes]:
    """Every frame at one size: each PNG padded with white (centred) to the largest width and height
    of ``pngs`` at their highest resolution (a frame at a lower dpi is resampled first, so all
    keep their page size).  Frames that already share one size come back unchanged.

    >>> from PIL import Image
    >>> a, b = to_png(Image.new("RGB", (40, 20))), to_png(Image.new("RGB", (30, 50)))
    >>> [png_size(p) for p in pad_frames([a, b])]
    [(40, 50), (40, 50)]
    """
    from PIL import Image as PILImage

    pngs = [bytes(p) for p in pngs]
    if not pngs:
        return []
    dpis = [png_dpi(p) for p in pngs]
    if len({png_size(p) for p in pngs}) == 1 and len({round(d, 1) for d in dpis}) == 1:
        return pngs
    dpi = max(dpis)
    ims = []
    for p, d in zip(pngs, dpis):
        im = PILImage.open(io.BytesIO(p))
        im = im.convert("RGBA") if im.mode in ("RGBA", "LA", "P") else im.convert("RGB")
        if abs(d - dpi) > 0.5:
            im = im.resize((round(im.width * dpi / d), round(im.height * dpi / d)), PILImage.LANCZOS)
        ims.append(im)
    w, h = max(im.width for im in ims), max(im.height for im in ims)
    out = []
    for im in ims:
        canvas = PILImage.new("RGB", (w, h), "white")
        pos = ((w - im.width) // 2, (h - im.height) // 2)
        canvas.paste(im, pos, im if im.mode == "RGBA" else None)
        buf = io.BytesIO()
        canvas.save(buf, format="PNG", dpi=(dpi, dpi), optimize=True)
        out.append(buf.getvalue())
    return out


def _frames_to_pngs(frames: Sequence, dpi: int) -> list[bytes]:
    """PNG bytes of every frame, texts as message frames, all padded to one size."""
    pngs = [None if isinstance(f, str) else to_png(f, dpi) for f in frames]
    real = [p for p in pngs if p is not None]
    if real:
        size = (max(png_size(p)[0] for p in real), max(png_size(p)[1] for p in real))
        res = max(png_dpi(p) for p in real)
    else:
        size, res = (int(6 * FRAME_DPI), int(3 * FRAME_DPI)), FRAME_DPI
    pngs = [message_frame(f, size, res) if p is None else p for f, p in zip(frames, pngs)]
    return pad_frames(pngs)


def _start_index(values: list, start: Any, name: str) -> int:
    if start is None:
        return 0
    for i, v in enumerate(values):
        if v == start or _fmt(v) == _fmt(start):
            return i
    raise ValueError(f"start {start!r} is not one of the {name} {values}; pass one of them "
                     "(the position the widget opens at)")


def _image(png: bytes) -> W.Image:
    # page size 100 CSS px per inch of figure (as the house style's figures): a frame rendered at
    # FRAME_DPI shows at FRAME_DENSITY device px per CSS px; a lower-dpi frame keeps its size (text
    # stays readable) but is less sharp
    w, _ = png_size(png)
    width = f"{int(w * 100 // png_dpi(png))}px"  # rounded down
    return W.Image(value=png, format="png", layout=W.Layout(width=width, max_width="100%", height="auto"))


def _labels(values: Sequence) -> list[str]:
    labels = [_fmt(v) for v in values]
    if len(set(labels)) != len(labels):
        raise ValueError(f"slider values must have distinct labels, got {labels}")
    return labels


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _slider(labels: list[str], description: str, start: int = 0) -> W.SelectionSlider:
    # options as (label, index): the browser-side model syncs ``index``, which we jslink.
    return W.SelectionSlider(
        options=[(lab, i) for i, lab in enumerate(labels)],
        value=start,
        description=str(description),
        continuous_update=True,
        readout=True,
        style={"description_width": "initial"},
        layout=W.Layout(width="min(100%, 640px)"),
    )


def _check_size(pngs: list[bytes], what: str) -> None:
    total = sum(len(p) for p in pngs)
    if total > SIZE_WARNING_BYTES:
        warnings.warn(
            f"{what}: {len(pngs)} frames take {total / 1e6:.1f} MB embedded in the page; "
            "use a lower dpi, smaller figures or fewer frames",
            UserWarning,
            stacklevel=3,
        )


def _check_values(values: Sequence, n: int, name: str) -> None:
    if len(values) == 0:
        raise ValueError(f"{name} is empty; pass at least one value")
    if len(values) != n:
        raise ValueError(f"{name} has {len(values)} entries but there are {n} frames along that axis")


def frame_slider(frames: Sequence, values: Sequence, *, description: str, dpi: int = FRAME_DPI,
                 start: Any = None) -> W.VBox:
    """One slider that flips through precomputed frames; works without a kernel.

    Parameters
    ----------
    frames : sequence of matplotlib Figure, PIL Image, PNG bytes or str
        ``frames[i]`` is shown when the slider is at ``values[i]``.  Figures are closed; a text
        becomes a message frame (:func:`message_frame`); all are padded to one size.
    values : sequence
        Slider positions (shown as the slider's readout); labels must be distinct.
    description : str
        Slider label, e.g. ``"dropout p"``.
    dpi : int
        Resolution used for matplotlib figures.
    start : one of ``values``, optional
        The position the widget opens at (default the first).

    Returns
    -------
    ipywidgets.VBox
        ``children == (slider, stack)``; the slider's ``index`` is linked client-side to
        ``stack.selected_index``.
    """
    frames = list(frames)
    values = list(values)
    if not frames:
        raise ValueError("frame_slider needs at least one frame")
    _check_values(values, len(frames), "values")
    labels = _labels(values)
    i0 = _start_index(values, start, "values")
    pngs = _frames_to_pngs(frames, dpi)
    _check_size(pngs, "frame_slider")
    slider = _slider(labels, description, i0)
    stack = W.Stack([_image(p) for p in pngs], selected_index=i0)
    W.jslink((slider, "index"), (stack, "selected_index"))
    return W.VBox([slider, stack])


def frame_grid(
    frames: Sequence[Sequence],
    values_a: Sequence,
    values_b: Sequence,
    *,
    descriptions: tuple[str, str] = ("a", "b"),
    dpi: int = FRAME_DPI,
    start: tuple[Any, Any] | None = None,
) -> W.VBox:
    """Two sliders over a grid of precomputed frames; works without a kernel.

    Parameters
    ----------
    frames : sequence of sequences
        ``frames[i][j]`` is shown for ``values_a[i]`` and ``values_b[j]``.
    values_a, values_b : sequence
        Positions of the first and second slider.
    descriptions : (str, str)
        Labels of the two sliders.
    dpi : int
        Resolution used for matplotlib figures.
    start : (value_a, value_b), optional
        The position the widget opens at (default the first of each), e.g. ``(0.5, T)`` so an MC
        dropout widget opens at the chapter's number of passes.

    Frames may be texts (message frames); every frame of the grid is padded to one size.

    Returns
    -------
    ipywidgets.VBox
        ``children == (slider_a, slider_b, outer)`` where ``outer`` is a Stack of inner
        Stacks: ``slider_a.index`` → ``outer.selected_index`` and ``slider_b.index`` →
        every ``inner.selected_index``, all linked client-side.
    """
    rows = [list(r) for r in frames]
    if not rows:
        raise ValueError("frame_grid needs at least one row of frames")
    if len(descriptions) != 2:
        raise ValueError(f"descriptions must be two labels, got {descriptions!r}")
    values_a, values_b = list(values_a), list(values_b)
    _check_values(values_a, len(rows), "values_a")
    for i, r in enumerate(rows):
        if len(r) != len(values_b):
            raise ValueError(
                f"frames[{i}] has {len(r)} frames but values_b has {len(values_b)}; "
                "frames must be a full len(values_a) x len(values_b) grid"
            )
    _check_values(values_b, len(rows[0]), "values_b")
    if start is not None and len(start) != 2:
        raise ValueError(f"start must be a pair (value_a, value_b), got {start!r}")
    ia = _start_index(values_a, None if start is None else start[0], "values_a")
    ib = _start_index(values_b, None if start is None else start[1], "values_b")
    labels_a, labels_b = _labels(values_a), _labels(values_b)
    flat = _frames_to_pngs([f for r in rows for f in r], dpi)
    nb = len(values_b)
    pngs = [flat[i * nb:(i + 1) * nb] for i in range(len(rows))]
    _check_size(flat, "frame_grid")
    slider_a = _slider(labels_a, descriptions[0], ia)
    slider_b = _slider(labels_b, descriptions[1], ib)
    inners = [W.Stack([_image(p) for p in r], selected_index=ib) for r in pngs]
    outer = W.Stack(inners, selected_index=ia)
    W.jslink((slider_a, "index"), (outer, "selected_index"))
    for inner in inners:
        W.jslink((slider_b, "index"), (inner, "selected_index"))
    return W.VBox([slider_a, slider_b, outer])
