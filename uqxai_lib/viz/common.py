"""Shared plotting primitives and the house style of all chapters (matplotlib, Agg-safe).

Every function takes ``ax=`` (draws into a new figure when ``None``) and returns the
:class:`matplotlib.figure.Figure` it drew into.  Inputs may be torch tensors or NumPy arrays;
maps are shown min-max normalised (a constant map shows as 0) unless ``normalize=False``.

House style (:func:`use_style`, applied when ``uqxai_lib.viz`` is imported):

* figures are drawn at 100 px per inch of *page* width and rendered at :data:`RENDER_DENSITY` ×
  that (200 dpi), so a figure of :data:`TEXT_WIDTH_IN` inches fills the book's text column
  sharply (:func:`column_figsize` sizes figures to it);
* magnitude maps use the perceptually uniform :data:`MAP_CMAP`, signed differences the
  diverging :data:`DIFF_CMAP` centred at zero; never ``jet``;
* every map drawn by these functions has a colour bar (one shared bar for a row of panels);
* opaque white figure backgrounds, so figures stay legible in the theme's dark mode.

Examples
--------
>>> import matplotlib
>>> matplotlib.use("Agg")
>>> import torch
>>> fig = overlay_map_2d(torch.rand(32, 32), torch.rand(4, 4))
>>> len(fig.axes)  # the panel and its colour bar
2
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "MAP_CMAP",
    "DIFF_CMAP",
    "TEXT_WIDTH_IN",
    "RENDER_DENSITY",
    "HOUSE_STYLE",
    "use_style",
    "column_figsize",
    "gallery",
    "to_numpy",
    "normalize01",
    "resize_map",
    "mid_slice",
    "overlay_map_2d",
    "overlay_map_1d",
    "show_map",
    "group_distributions",
    "show_maps_row",
    "trend",
    "split_table",
    "text_colour",
    "annotate_cells",
]


#: colour map of magnitude maps (saliency, spread): perceptually uniform, dark = low
MAP_CMAP = "magma"
#: colour map of signed differences (centre it at zero with ``vmin=-vmax``)
DIFF_CMAP = "RdBu_r"
#: width of the book's text column in figure inches (at 100 CSS px per inch)
TEXT_WIDTH_IN = 7.0
#: device pixels per CSS pixel of rendered figures (``figure.dpi`` 100 × this = PNG dpi)
RENDER_DENSITY = 2

#: matplotlib rcParams of the house style (see :func:`use_style`)
HOUSE_STYLE = {
    "figure.dpi": 100,  # page size: 100 CSS px per inch; the PNG itself is RENDER_DENSITY x denser
    "savefig.dpi": 100 * RENDER_DENSITY,
    "figure.figsize": (TEXT_WIDTH_IN * 0.7, TEXT_WIDTH_IN * 0.42),
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "savefig.transparent": False,
    "axes.facecolor": "white",
    "image.cmap": MAP_CMAP,
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "figure.titlesize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def use_style() -> None:
    """Apply :data:`HOUSE_STYLE`; inside IPython also render inline figures as high-density PNGs
    (``retina``: :data:`RENDER_DENSITY` × the page size, with the page size in the output's metadata).

    >>> import matplotlib
    >>> use_style(); matplotlib.rcParams["savefig.dpi"] == 200 and matplotlib.rcParams["image.cmap"]
    'magma'
    """
    import matplotlib

    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:  # pragma: no cover - IPython ships with the notebooks' dependencies
        shell = None
    in_kernel = shell is not None and getattr(shell, "kernel", None) is not None
    if in_kernel:
        # activate the inline backend first: its set-up would otherwise reset formats (and rc) later
        import matplotlib.pyplot  # noqa: F401
    matplotlib.rcParams.update(HOUSE_STYLE)
    if in_kernel:
        try:
            from matplotlib_inline.backend_inline import InlineBackend, set_matplotlib_formats

            InlineBackend.instance().figure_formats = {"retina"}
            set_matplotlib_formats("retina")
        except ImportError:  # pragma: no cover
            pass


def column_figsize(n_cols: int = 1, aspect: float = 1.0, *, width: float = TEXT_WIDTH_IN,
                   max_panel: float = 2.4, extra_height: float = 0.0) -> tuple[float, float]:
    """Figure size of a row of ``n_cols`` panels of height/width ``aspect`` that fits the column.

    Panels are at most ``max_panel`` inches wide; the figure never exceeds ``width``.

    >>> column_figsize(2), column_figsize(5, extra_height=0.3)
    ((4.8, 2.4), (7.0, 1.7))
    """
    if n_cols < 1:
        raise ValueError(f"column_figsize: n_cols must be at least 1, got {n_cols}")
    panel = min(max_panel, width / n_cols)
    return (round(panel * n_cols, 3), round(panel * aspect + extra_height, 3))


def to_numpy(x: Any) -> np.ndarray:
    """Detach a tensor (any device) or array-like to a float64 NumPy array."""
    try:
        import torch

        if isinstance(x, torch.Tensor):
            return x.detach().to("cpu", torch.float64).numpy()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return np.asarray(x, dtype=np.float64)


def normalize01(m: Any) -> np.ndarray:
    """Min-max scale to [0, 1]; a constant map becomes all zeros.

    >>> normalize01([1.0, 3.0, 2.0]).tolist()
    [0.0, 1.0, 0.5]
    >>> normalize01([2.0, 2.0]).tolist()
    [0.0, 0.0]
    """
    a = to_numpy(m)
    lo, hi = np.nanmin(a), np.nanmax(a)
    if not np.isfinite(hi - lo) or hi - lo <= 0:
        return np.zeros_like(a)
    return (a - lo) / (hi - lo)


def resize_map(m: Any, size: int | tuple[int, ...]) -> np.ndarray:
    """Linear (1-D) / bilinear (2-D) resize of a map to ``size`` (align_corners=False).

    >>> resize_map([0.0, 1.0], 4).shape
    (4,)
    """
    import torch
    import torch.nn.functional as F

    a = torch.as_tensor(to_numpy(m))
    size = (size,) if isinstance(size, int) else tuple(size)
    if a.ndim != len(size) or a.ndim not in (1, 2):
        raise ValueError(f"resize_map: map of shape {tuple(a.shape)} cannot be resized to {size}; "
                         "pass a 1-D map with an int size or a 2-D map with (H, W)")
    if tuple(a.shape) == size:
        return a.numpy()
    mode = "linear" if a.ndim == 1 else "bilinear"
    out = F.interpolate(a[None, None], size=size, mode=mode, align_corners=False)
    return out[0, 0].numpy()


def mid_slice(volume: Any, axis: int = 0, index: int | None = None) -> np.ndarray:
    """One 2-D slice of a 3-D volume (the middle one by default).

    >>> mid_slice(np.zeros((5, 3, 4))).shape
    (3, 4)
    """
    v = to_numpy(volume)
    if v.ndim != 3:
        raise ValueError(f"mid_slice expects a 3-D volume, got shape {v.shape}")
    i = v.shape[axis] // 2 if index is None else index
    return np.take(v, i, axis=axis)


def _fig_ax(ax, figsize=(3.2, 3.2)):
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
    else:
        fig = ax.figure
    return fig, ax


def _as_image(image: Any) -> np.ndarray:
    """[H,W], [H,W,C] or [C,H,W] (C in 1,3,4) → [H,W] or [H,W,C] in display range."""
    a = to_numpy(image)
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[-1] not in (1, 3, 4):
        a = np.moveaxis(a, 0, -1)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3):
        raise ValueError(f"image must be [H,W], [H,W,C] or [C,H,W]; got shape {a.shape}")
    if a.ndim == 3:
        # colour: bring into [0, 1] for imshow
        lo, hi = a.min(), a.max()
        if lo < 0 or hi > 1:
            a = normalize01(a)
    return a


def show_map(ax, image: Any, m: Any, title: str | None = None, *, size: tuple[int, int] | None = None,
             mask: Any = None, cmap: str = "viridis", alpha: float = 0.5, normalize: bool = False,
             vmin: float | None = None, vmax: float | None = None,
             gray_range: tuple[float, float] | None = (0.0, 1.0), interpolation: str | None = None,
             fontsize: float = 7.5):
    """Draw map ``m`` (any resolution, resized bilinearly to ``size``, default the image's ``[H, W]``)
    into ``ax``: over ``image`` with opacity ``alpha`` (a 2-D image in gray, ``gray_range`` its
    display range, ``None`` for automatic; ``[H, W, C]`` in colour as it is), or alone and opaque
    when ``image`` is ``None``. ``normalize`` min-max scales the map to [0, 1] (colour range 0-1);
    otherwise ``vmin`` / ``vmax`` set its colour range (``None``: the data's). ``mask``: an outline
    drawn in white. Returns the map's image handle (for a colour bar)."""
    img = None if image is None else np.asarray(image)
    hw = tuple(size) if size is not None else img.shape[:2]
    mm = resize_map(to_numpy(m), hw)
    if normalize:
        mm, vmin, vmax = normalize01(mm), 0, 1
    if img is not None:
        if img.ndim == 2:
            lo, hi = gray_range if gray_range is not None else (None, None)
            ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        else:
            ax.imshow(img, interpolation="nearest")
    h = ax.imshow(mm, cmap=cmap, alpha=alpha if img is not None else None, vmin=vmin, vmax=vmax,
                  interpolation=interpolation)
    if mask is not None and to_numpy(mask).any():
        ax.contour(to_numpy(mask).astype(float), levels=[0.5], colors="white", linewidths=0.8)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=fontsize)
    return h


def overlay_map_2d(image: Any, cam: Any, ax=None, alpha: float = 0.45, cmap: str = MAP_CMAP, *,
                   title: str | None = None, normalize: bool = True, colorbar: bool | None = None,
                   label: str | None = None, outline: Any = None):
    """Image in grey (or colour) with an explanation map blended on top.

    Parameters
    ----------
    image : [H, W], [H, W, C] or [C, H, W]
    cam : [h, w]
        Map at any resolution; resized bilinearly to the image.
    ax : matplotlib Axes, optional
    alpha : float
        Opacity of the map.
    cmap : str
        Colour map of the map.
    title : str, optional
    normalize : bool
        Min-max scale the map to [0, 1] before drawing (default).
    colorbar : bool, optional
        Add a colour bar for the map; default: yes when this call makes the figure (``ax=None``),
        no when it draws into a caller's panel (the caller adds one bar for its grid).
    label : str, optional
        Colour bar label (default "map (min–max scaled)" or "map").
    outline : [H, W] bool, optional
        A mask drawn as a white outline (e.g. the ground truth).
    """
    if colorbar is None:
        colorbar = ax is None
    fig, ax = _fig_ax(ax)
    img = _as_image(image)
    m = to_numpy(cam)
    if m.ndim != 2:
        raise ValueError(f"cam must be 2-D [h, w], got shape {m.shape}; pick one sample / slice first")
    im = show_map(ax, img, m, title, mask=outline, cmap=cmap, alpha=alpha, normalize=normalize, gray_range=None,
                  interpolation="bilinear", fontsize=9)
    if colorbar:
        _colorbar(fig, im, ax, label or ("map (min–max scaled)" if normalize else "map"))
    return fig


def _colorbar(fig, mappable, ax, label: str | None = None):
    """A slim colour bar beside ``ax`` (or a list of axes), opaque even under a transparent map."""
    from matplotlib.cm import ScalarMappable

    sm = ScalarMappable(norm=mappable.norm, cmap=mappable.get_cmap())  # alpha-free copy
    cb = fig.colorbar(sm, ax=ax, fraction=0.046, pad=0.04)
    if label:
        cb.set_label(label, fontsize=8)
    cb.ax.tick_params(labelsize=7)
    return cb


def text_colour(rgba: Any) -> str:
    """"black" or "white", whichever contrasts more with a cell of colour ``rgba`` (WCAG contrast
    ratio from the relative luminance), so an annotation stays legible on every cell of a heat map.

    >>> text_colour((0.05, 0.0, 0.1, 1.0)), text_colour((1.0, 1.0, 0.9, 1.0)), text_colour((0.5, 0.5, 0.5))
    ('white', 'black', 'black')
    """
    r, g, b = (float(c) for c in tuple(rgba)[:3])

    def lin(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    lum = 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)
    return "black" if (lum + 0.05) / 0.05 >= 1.05 / (lum + 0.05) else "white"


def annotate_cells(ax, image, texts: Sequence[Sequence[str]], *, fontsize: float = 7, **kwargs):
    """Write ``texts[i][j]`` on cell (i, j) of the heat map ``image`` (what ``ax.imshow`` returned),
    each in the colour that contrasts with its cell (:func:`text_colour`); masked / NaN cells get
    dark text on the axes' background. Returns the text artists.

    >>> import matplotlib; matplotlib.use("Agg"); import matplotlib.pyplot as plt
    >>> fig, ax = plt.subplots(); im = ax.imshow([[0.0, 1.0]], cmap="magma")
    >>> [t.get_color() for t in annotate_cells(ax, im, [["low", "high"]])]
    ['white', 'black']
    """
    data = np.ma.masked_invalid(np.ma.asarray(image.get_array(), dtype=float))
    out = []
    for i, row in enumerate(texts):
        for j, text in enumerate(row):
            masked = bool(np.ma.getmaskarray(data)[i, j])
            colour = "0.15" if masked else text_colour(image.cmap(image.norm(float(data[i, j]))))
            out.append(ax.text(j, i, text, ha="center", va="center", fontsize=fontsize, color=colour, **kwargs))
    return out


def overlay_map_1d(signal: Any, cam: Any, ax=None, fs: float | None = None, cmap: str = MAP_CMAP, *,
                   alpha: float = 0.5, title: str | None = None, normalize: bool = True,
                   ylabel: str = "amplitude", colorbar: bool = True):
    """A 1-D trace (e.g. an ECG beat) drawn over a colour band showing the map.

    Parameters
    ----------
    signal : [T] (or [1, T])
    cam : [t]
        Map at any temporal resolution; resized linearly to ``T``.
    fs : float, optional
        Sampling rate in Hz; the x axis is in seconds when given, else in samples.
    """
    fig, ax = _fig_ax(ax, figsize=(6.0, 2.2))
    s = to_numpy(signal).squeeze()
    m = to_numpy(cam).squeeze()
    if s.ndim != 1 or m.ndim != 1:
        raise ValueError(f"overlay_map_1d expects 1-D signal and map, got {s.shape} and {m.shape}")
    m = resize_map(m, s.shape[0])
    if normalize:
        m = normalize01(m)
    t = np.arange(s.shape[0]) / fs if fs else np.arange(s.shape[0])
    pad = 0.05 * (s.max() - s.min() or 1.0)
    lo, hi = s.min() - pad, s.max() + pad
    # sample i covers [t_i - dt/2, t_i + dt/2]
    dt = t[1] - t[0] if len(t) > 1 else 1.0
    im = ax.imshow(m[None, :], aspect="auto", cmap=cmap, alpha=alpha, vmin=0 if normalize else None,
                   vmax=1 if normalize else None, extent=(t[0] - dt / 2, t[-1] + dt / 2, lo, hi),
                   interpolation="nearest", origin="lower")
    if colorbar:
        _colorbar(fig, im, ax, "map (min–max scaled)" if normalize else "map")
    ax.plot(t, s, color="black", lw=1.0)
    ax.set_xlim(t[0] - dt / 2, t[-1] + dt / 2)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("time (s)" if fs else "sample")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def group_distributions(values: Any, groups: Any = None, labels: Mapping | Sequence | None = None,
                        ax=None, *, kind: str = "violin", ylabel: str | None = None,
                        title: str | None = None, points: bool = True, seed: int = 0):
    """Distributions of one score by group (violin or box plot with the points jittered on top).

    Parameters
    ----------
    values : [N] array, or mapping ``{label: values}`` (then ``groups`` must be None)
    groups : [N] group key of each value (bool, int or str)
    labels : mapping ``{group key: display name}`` (its order is the plot order) or a
        sequence of display names for the sorted unique keys; default ``str(key)``.
    kind : "violin" or "box"
    points : bool
        Overlay the individual values (deterministic jitter from ``seed``).
    """
    if kind not in ("violin", "box"):
        raise ValueError(f"kind must be 'violin' or 'box', got {kind!r}")
    if isinstance(values, Mapping):
        if groups is not None:
            raise ValueError("pass either a mapping {label: values} or values with groups, not both")
        names = [str(k) for k in values]
        data = [to_numpy(v).ravel() for v in values.values()]
    else:
        v = to_numpy(values).ravel()
        if groups is None:
            raise ValueError("groups is required when values is an array (or pass a mapping)")
        g = np.asarray(to_numpy(groups) if not isinstance(groups, (list, tuple)) else groups).ravel()
        if g.shape[0] != v.shape[0]:
            raise ValueError(f"values has {v.shape[0]} entries but groups has {g.shape[0]}")
        if isinstance(labels, Mapping):
            keys = list(labels)
            names = [str(labels[k]) for k in keys]
        else:
            keys = sorted(set(g.tolist()))
            names = [str(k) for k in keys] if labels is None else [str(x) for x in labels]
            if len(names) != len(keys):
                raise ValueError(f"{len(names)} labels given for {len(keys)} groups {keys}")
        data = [v[g == k] for k in keys]
    empty = [n for n, d in zip(names, data) if d.size == 0]
    if empty:
        raise ValueError(f"no values for group(s) {empty}")
    fig, ax = _fig_ax(ax, figsize=(1.4 + 1.2 * len(data), 3.0))
    pos = np.arange(1, len(data) + 1)
    if kind == "violin":
        ok = [d for d in data if d.size > 1 and np.ptp(d) > 0]
        if len(ok) == len(data):
            ax.violinplot(data, positions=pos, showmedians=True, widths=0.7)
        else:  # violins need spread; fall back to boxes for degenerate groups
            ax.boxplot(data, positions=pos, widths=0.5, showfliers=False)
    else:
        ax.boxplot(data, positions=pos, widths=0.5, showfliers=False)
    if points:
        rng = np.random.default_rng(seed)
        for p, d in zip(pos, data):
            ax.scatter(p + rng.uniform(-0.12, 0.12, d.size), d, s=6, color="black", alpha=0.5, lw=0)
    ax.set_xticks(pos)
    ax.set_xticklabels(names)
    if ylabel:
        ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def show_maps_row(images: Sequence, titles: Sequence[str] | None = None, *, maps: Sequence | None = None,
                  cmap: str = MAP_CMAP, alpha: float = 0.45, axes=None, size: float | None = None,
                  normalize: bool = True, colorbar: bool = True, suptitle: str | None = None,
                  label: str | None = None):
    """A row of 2-D panels: maps alone, or images with ``maps`` overlaid.

    Parameters
    ----------
    images : sequence of 2-D arrays (or [C,H,W] / [H,W,C] images when ``maps`` is given)
    titles : one title per panel
    maps : optional sequence of maps, one per image, overlaid with :func:`overlay_map_2d`;
        without it the ``images`` themselves are drawn with ``cmap``.
    axes : sequence of Axes to draw into (default: a new 1 x n figure)
    normalize : bool
        Min-max scale each map for display; ``False`` keeps raw values (shared colour range).
    colorbar : bool
        One colour bar for the whole row (all panels share one scale); default yes.
    size : float, optional
        Panel size in inches; default: the row fits the text column (:func:`column_figsize`).
    """
    import matplotlib.pyplot as plt

    images = list(images)
    n = len(images)
    if n == 0:
        raise ValueError("show_maps_row needs at least one image")
    if titles is not None and len(titles) != n:
        raise ValueError(f"{len(titles)} titles for {n} images")
    if maps is not None and len(maps) != n:
        raise ValueError(f"{len(maps)} maps for {n} images")
    if axes is None:
        figsize = column_figsize(n) if size is None else (size * n, size)
        fig, axes = plt.subplots(1, n, figsize=figsize, squeeze=False)
        axes = axes[0]
    else:
        axes = list(np.ravel(axes))
        if len(axes) < n:
            raise ValueError(f"{len(axes)} axes for {n} images")
        fig = axes[0].figure
    vmin = vmax = None
    if not normalize:
        arrs = [to_numpy(m) for m in (images if maps is None else maps)]
        vmin, vmax = min(a.min() for a in arrs), max(a.max() for a in arrs)
    last = None
    for i, ax in enumerate(axes[:n]):
        title = titles[i] if titles is not None else None
        if maps is not None:
            overlay_map_2d(images[i], maps[i], ax=ax, alpha=alpha, cmap=cmap, title=title,
                           normalize=normalize, colorbar=False)
            last = ax.get_images()[-1]
            if not normalize:
                last.set_clim(vmin, vmax)
            continue
        a = to_numpy(images[i]).squeeze()
        if a.ndim != 2:
            raise ValueError(f"panel {i} must be 2-D, got shape {a.shape}; pick a slice (mid_slice)")
        if normalize:
            a = normalize01(a)
        im = ax.imshow(a, cmap=cmap, vmin=0 if normalize else vmin, vmax=1 if normalize else vmax,
                       interpolation="nearest")
        ax.set_axis_off()
        if title:
            ax.set_title(title, fontsize=9)
        last = im
    if colorbar and last is not None:
        _colorbar(fig, last, list(axes[:n]), label or ("min–max scaled" if normalize else None))
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return fig


def trend(x: Any, y: Any, yerr: Any = None, ax=None, *, label: str | None = None,
          xlabel: str | None = None, ylabel: str | None = None, title: str | None = None,
          logx: bool = False, marker: str = "o", reference: float | None = None,
          reference_label: str | None = None):
    """A score against a parameter (e.g. SUE vs SNR), with an optional ±``yerr`` band.

    ``reference`` (e.g. 0 for a difference, or chance) is drawn as a dashed line and always lies
    inside the y-range, so small wiggles are not mistaken for large swings.
    """
    fig, ax = _fig_ax(ax, figsize=(4.0, 2.8))
    xs, ys = to_numpy(x).ravel(), to_numpy(y).ravel()
    if xs.shape != ys.shape:
        raise ValueError(f"x has {xs.size} points but y has {ys.size}")
    (line,) = ax.plot(xs, ys, marker=marker, ms=4, label=label)
    if yerr is not None:
        e = to_numpy(yerr).ravel()
        if e.shape != ys.shape:
            raise ValueError(f"yerr has {e.size} points but y has {ys.size}")
        ax.fill_between(xs, ys - e, ys + e, color=line.get_color(), alpha=0.2, lw=0)
    if reference is not None:
        ax.axhline(reference, color="0.4", lw=0.8, ls="--", label=reference_label)
        lo, hi = ax.get_ylim()
        ax.set_ylim(min(lo, reference), max(hi, reference))
    if logx:
        ax.set_xscale("log")
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=9)
    if label or reference_label:
        ax.legend(fontsize=8, frameon=False)
    return fig


def split_table(parts: Mapping[str, Any], *, items: str = "images", groups: str = "lesions",
                positive: str = "malignant %", percent: bool = True, digits: int = 1):
    """Items, groups and positive-class share of each part of a split (a DataFrame indexed by part).

    ``parts`` maps a part name to a ``LabeledArrays`` (``y`` and optional ``group``; without groups
    every item is its own group). The column names are the chapter's words (ECG: windows, subjects,
    CAD share; dermoscopy: images, lesions, malignant %).

    >>> import torch
    >>> from uqxai_lib.data import LabeledArrays
    >>> d = LabeledArrays(torch.zeros(4, 3, 2, 2), torch.tensor([0, 1, 1, 0]), ("benign", "malignant"),
    ...                   group=torch.tensor([0, 0, 1, 2]))
    >>> split_table({"all": d}).loc["all"].tolist()
    [4.0, 3.0, 50.0]
    """
    import pandas as pd
    import torch

    rows = {}
    for name, s in parts.items():
        y = torch.as_tensor(s.y)
        n_groups = int(torch.as_tensor(s.group).unique().numel()) if s.group is not None else len(y)
        share = float(y.float().mean()) * (100 if percent else 1) if len(y) else float("nan")
        rows[name] = {items: len(y), groups: n_groups, positive: round(share, digits)}
    return pd.DataFrame.from_dict(rows, orient="index").astype({items: int, groups: int})


def gallery(images: Sequence, maps: Sequence | None = None, *, masks: Sequence | None = None,
            titles: Sequence[str] | None = None, wrong: Sequence[bool] | None = None, n_cols: int = 4,
            cmap: str = MAP_CMAP, alpha: float = 0.45, normalize: bool = True,
            label: str | None = None, suptitle: str | None = None):
    """A grid of test items — images with their maps and mask outlines — for looking at single cases.

    Pick the items with :func:`uqxai_lib.utils`-style seeded indices (e.g. a random draw that
    includes errors); this function only draws.  ``wrong[i]`` marks misclassified items with a red
    title.  All maps share one colour scale and one colour bar.

    Parameters
    ----------
    images : n images ([H, W], [C, H, W] or [H, W, C])
    maps : n maps at any resolution (optional; without them only images and outlines are drawn)
    masks : n [H, W] masks drawn as white outlines (optional)
    titles : n titles (e.g. "true → predicted")
    """
    import matplotlib.pyplot as plt

    images = list(images)
    n = len(images)
    if n == 0:
        raise ValueError("gallery needs at least one image")
    for name, seq in (("maps", maps), ("masks", masks), ("titles", titles), ("wrong", wrong)):
        if seq is not None and len(seq) != n:
            raise ValueError(f"gallery: {len(seq)} {name} for {n} images")
    cols = max(1, min(n_cols, n))
    rows = -(-n // cols)
    w, h = column_figsize(cols, extra_height=0.25)
    fig, axes = plt.subplots(rows, cols, figsize=(w, h * rows), squeeze=False)
    vmin = vmax = None
    if maps is not None and not normalize:
        arrs = [to_numpy(m) for m in maps]
        vmin, vmax = min(a.min() for a in arrs), max(a.max() for a in arrs)
    last = None
    for i, ax in enumerate(axes.ravel()):
        if i >= n:
            ax.set_axis_off()
            continue
        title = titles[i] if titles is not None else None
        if maps is not None:
            overlay_map_2d(images[i], maps[i], ax=ax, alpha=alpha, cmap=cmap, normalize=normalize,
                           colorbar=False, outline=None if masks is None else masks[i])
            last = ax.get_images()[-1]
            if vmin is not None:
                last.set_clim(vmin, vmax)
        else:
            img = _as_image(images[i])
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None, interpolation="nearest")
            if masks is not None:
                ax.contour(to_numpy(masks[i]), levels=[0.5], colors="white", linewidths=0.8)
            ax.set_axis_off()
        if title:
            bad = wrong is not None and bool(wrong[i])
            ax.set_title(title, fontsize=8, color="#cf222e" if bad else "black",
                         fontweight="bold" if bad else "normal")
    if last is not None:
        _colorbar(fig, last, list(axes.ravel()), label or ("map (min–max scaled)" if normalize else "map"))
    if suptitle:
        fig.suptitle(suptitle)
    return fig
