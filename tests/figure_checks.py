"""Checks for the figures the reports draw: every series visible, no legend over the data.

Everything is measured in display space after drawing, so scales (log or linear), axis limits and
the legend's final place are those of the saved PNG.
"""

from __future__ import annotations

import numpy as np
from matplotlib.collections import LineCollection, PathCollection, PolyCollection
from matplotlib.container import ErrorbarContainer
from matplotlib.patches import Rectangle
from matplotlib.transforms import Bbox

# Points checked along each drawn line segment, so a legend across a line's middle is found too.
SAMPLES_PER_SEGMENT = 20


def _drawn(figure):
    figure.canvas.draw()
    return figure.canvas.get_renderer()


def _along(points: np.ndarray) -> np.ndarray:
    """``points`` (display space) and SAMPLES_PER_SEGMENT points on each segment between them."""
    points = points[np.isfinite(points).all(axis=1)]
    if len(points) < 2:
        return points
    t = np.linspace(0.0, 1.0, SAMPLES_PER_SEGMENT)[:, None, None]
    return (points[:-1] + t * (points[1:] - points[:-1])).reshape(-1, 2)


def _boxes(points: np.ndarray, half: float) -> list[Bbox]:
    return [Bbox.from_extents(x - half, y - half, x + half, y + half) for x, y in points]


def _data_boxes(ax, renderer) -> list[Bbox]:
    """Display-space boxes of what ``ax`` draws: bars, markers, lines (reference lines included, in
    whatever coordinates they are given), error bars, scatter points and filled areas."""
    px = renderer.points_to_pixels(1.0)
    boxes = [bar.get_window_extent(renderer) for bar in ax.patches if isinstance(bar, Rectangle)]
    for line in ax.lines:
        if not line.get_visible():
            continue
        # The line's own transform: axhline/axvline mix data and axes coordinates.
        xy = line.get_transform().transform(np.column_stack(line.get_data()).astype(float))
        marker = line.get_marker() not in (None, "", "None", " ")
        boxes += _boxes(xy[np.isfinite(xy).all(axis=1)], (line.get_markersize() if marker else 0) * px / 2 + 1)
        if line.get_linestyle() not in ("None", "", " "):
            boxes += _boxes(_along(xy), line.get_linewidth() * px / 2 + 1)
    for collection in ax.collections:
        if not collection.get_visible():
            continue
        if isinstance(collection, LineCollection):   # hlines, vlines, error bars
            transform = collection.get_transform()
            for segment in collection.get_segments():
                boxes += _boxes(_along(transform.transform(np.asarray(segment, float))), 1.5)
        elif isinstance(collection, PathCollection):  # scatter
            offsets = collection.get_offset_transform().transform(np.asarray(collection.get_offsets(), float))
            sizes = collection.get_sizes()
            half = (np.sqrt(sizes.max()) if len(sizes) else 6.0) * px / 2
            boxes += _boxes(offsets[np.isfinite(offsets).all(axis=1)], half)
        elif isinstance(collection, PolyCollection):  # fill_between, bands
            boxes.append(collection.get_window_extent(renderer))
    return boxes


def assert_legends_cover_no_data(figure, require: bool = True) -> None:
    """No legend (of an axes or of the figure) lies on a bar, a marker, any point of a drawn line or
    reference line, an error bar, a scatter point or a filled area. ``require``: the figure has at
    least one legend (so the check cannot pass for want of one)."""
    renderer = _drawn(figure)
    legends = [(ax, ax.get_legend()) for ax in figure.axes if ax.get_legend() is not None]
    legends += [(None, legend) for legend in figure.legends]
    assert legends or not require, "the figure has no legend"
    for ax, legend in legends:
        box = legend.get_window_extent(renderer)
        for target in ([ax] if ax is not None else figure.axes):
            for data in _data_boxes(target, renderer):
                if target.bbox.overlaps(data) or target.bbox.contains(*data.p0):
                    assert not box.overlaps(data), \
                        f"the legend of {target.get_title()!r} covers data at {np.round(data.extents)}"


def assert_bars_visible(ax, min_fraction: float = 0.03) -> None:
    """Every bar of ``ax`` shows at least ``min_fraction`` of the axes' height inside the axes (a bar
    from 0 on a log scale shows from the axis' bottom)."""
    frame = ax.get_window_extent(_drawn(ax.figure))
    bars = [bar for bar in ax.patches if isinstance(bar, Rectangle)]
    assert bars, f"{ax.get_title()!r} has no bars"
    for bar in bars:
        y0, y1 = sorted((bar.get_y(), bar.get_y() + bar.get_height()))
        with np.errstate(divide="ignore"):
            low, high = (ax.transData.transform([[bar.get_x(), y]])[0, 1] if y > 0 or ax.get_yscale() != "log"
                         else -np.inf for y in (y0, y1))
        shown = min(high, frame.y1) - max(low, frame.y0)
        assert shown >= min_fraction * frame.height, \
            f"a bar of {ax.get_title()!r} ({y1:g}) shows {shown:.1f} px of {frame.height:.0f}"


def _marker_series(ax, px: float) -> list[tuple[str, np.ndarray, float]]:
    """(label, display positions, marker size px) of every series drawn with markers: lines with
    markers, error bars (their data line; the caps belong to the same series) and scatters."""
    lines = {id(c.lines[0]): (c.lines[0], c.get_label()) for c in ax.containers if isinstance(c, ErrorbarContainer)}
    in_containers = {id(part) for c in ax.containers if isinstance(c, ErrorbarContainer)
                     for part in (c.lines[0], *c.lines[1])}
    lines.update({id(line): (line, line.get_label()) for line in ax.lines if id(line) not in in_containers})
    series = []
    for line, label in lines.values():
        if line is not None and line.get_visible() and line.get_marker() not in (None, "", "None", " "):
            xy = line.get_transform().transform(np.column_stack(line.get_data()).astype(float))
            series.append((label, xy[np.isfinite(xy).all(axis=1)], line.get_markersize() * px))
    for collection in ax.collections:
        if isinstance(collection, PathCollection) and collection.get_visible():
            xy = collection.get_offset_transform().transform(np.asarray(collection.get_offsets(), float))
            sizes = collection.get_sizes()
            series.append((collection.get_label(), xy[np.isfinite(xy).all(axis=1)],
                           (np.sqrt(sizes.min()) if len(sizes) else 6.0) * px))
    return series


def assert_no_marker_hidden(ax, min_series: int = 2) -> None:
    """No marker of one series is centred within half a marker of another series' marker (display
    space), so equal values must be drawn side by side. ``ax`` has at least ``min_series`` series
    with markers (so the check cannot pass for want of them)."""
    series = _marker_series(ax, _drawn(ax.figure).points_to_pixels(1.0))
    assert len(series) >= min_series, f"{ax.get_title()!r}: {len(series)} series with markers"
    for i, (name_a, a, size_a) in enumerate(series):
        for name_b, b, size_b in series[i + 1:]:
            if len(a) and len(b):
                distance = np.min(np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2))
                assert distance >= 0.5 * min(size_a, size_b), \
                    f"{ax.get_title()!r}: a marker of {name_b!r} hides one of {name_a!r} ({distance:.1f} px apart)"
