"""Plotting for the book: ``viz.common`` holds shared primitives; each chapter may add its
own module (``viz.ecg``, ``viz.mri``, ``viz.derm``).  Functions take ``ax=`` and return the figure."""

from .common import (  # noqa: F401
    group_distributions,
    mid_slice,
    normalize01,
    overlay_map_1d,
    overlay_map_2d,
    resize_map,
    show_maps_row,
    to_numpy,
    trend,
)
