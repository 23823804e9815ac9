"""Precomputed-frame widgets that work in Jupyter *and* in the static HTML book.

A slider picks one of a few images that were rendered ahead of time.  The link between
slider and image lives in the browser (``ipywidgets.jslink`` from the slider's ``index`` to
``Stack.selected_index``), so the widget keeps working in the rendered book where no kernel
runs.  ``interact()``-style callbacks would be blank there; do not use them as the only view.

Frames are matplotlib figures (rendered to PNG and closed), PIL images or PNG bytes.  Every
frame ends up base64-encoded in the page, so keep them small: a few dozen frames at the default
``dpi`` stay within a few MB.  A :class:`UserWarning` is emitted above :data:`SIZE_WARNING_BYTES`.

Readability: a frame is shown at :data:`FRAME_DENSITY` device pixels per CSS pixel (at most the
column's width), so a figure drawn at the house style's page size (100 CSS px per inch,
``viz.common.TEXT_WIDTH_IN`` wide for a full column) keeps its text size and is sharp.  Frames of
one widget should share one colour scale: pass ``vmin``/``vmax`` to every frame's ``imshow`` (see
:func:`shared_limits`).

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

__all__ = ["figure_to_png", "to_png", "png_size", "png_dpi", "shared_limits", "frame_slider", "frame_grid",
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


def _slider(labels: list[str], description: str) -> W.SelectionSlider:
    # options as (label, index): the browser-side model syncs ``index``, which we jslink.
    return W.SelectionSlider(
        options=[(lab, i) for i, lab in enumerate(labels)],
        value=0,
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


def frame_slider(frames: Sequence, values: Sequence, *, description: str, dpi: int = FRAME_DPI) -> W.VBox:
    """One slider that flips through precomputed frames; works without a kernel.

    Parameters
    ----------
    frames : sequence of matplotlib Figure, PIL Image or PNG bytes
        ``frames[i]`` is shown when the slider is at ``values[i]``.  Figures are closed.
    values : sequence
        Slider positions (shown as the slider's readout); labels must be distinct.
    description : str
        Slider label, e.g. ``"dropout p"``.
    dpi : int
        Resolution used for matplotlib figures.

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
    pngs = [to_png(f, dpi) for f in frames]
    _check_size(pngs, "frame_slider")
    slider = _slider(_labels(values), description)
    stack = W.Stack([_image(p) for p in pngs], selected_index=0)
    W.jslink((slider, "index"), (stack, "selected_index"))
    return W.VBox([slider, stack])


def frame_grid(
    frames: Sequence[Sequence],
    values_a: Sequence,
    values_b: Sequence,
    *,
    descriptions: tuple[str, str] = ("a", "b"),
    dpi: int = FRAME_DPI,
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
    pngs = [[to_png(f, dpi) for f in r] for r in rows]
    _check_size([p for r in pngs for p in r], "frame_grid")
    slider_a = _slider(_labels(values_a), descriptions[0])
    slider_b = _slider(_labels(values_b), descriptions[1])
    inners = [W.Stack([_image(p) for p in r], selected_index=0) for r in pngs]
    outer = W.Stack(inners, selected_index=0)
    W.jslink((slider_a, "index"), (outer, "selected_index"))
    for inner in inners:
        W.jslink((slider_b, "index"), (inner, "selected_index"))
    return W.VBox([slider_a, slider_b, outer])
