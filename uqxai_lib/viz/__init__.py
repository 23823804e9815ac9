"""Plotting for the book: ``viz.common`` holds shared primitives; each chapter may add its
own module (``viz.ecg``, ``viz.mri``, ``viz.derm``).  Functions take ``ax=`` and return the figure.

Importing the package changes no global matplotlib state: a chapter applies the house style
(:func:`viz.common.use_style`: high-density figures sized to the text column, perceptually uniform
colour maps, opaque backgrounds) by calling ``viz.use_style()`` in its setup cell."""

from .common import (  # noqa: F401
    DIFF_CMAP,
    MAP_CMAP,
    column_figsize,
    gallery,
    group_distributions,
    mid_slice,
    normalize01,
    overlay_map_1d,
    overlay_map_2d,
    resize_map,
    show_maps_row,
    to_numpy,
    trend,
    use_style,
)

