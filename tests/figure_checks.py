"""Checks for the figures the reports draw: every series visible, no legend over the data."""

from __future__ import annotations

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.container import ErrorbarContainer
from matplotlib.patches import Rectangle
from matplotlib.transforms import Bbox


def _data_boxes(ax, renderer) -> list[Bbox]:
    """Display-space boxes of what ``ax`` plots: bars, each marker or line vertex, line segments."""
    boxes = [bar.get_window_extent(renderer) for bar in ax.patches if isinstance(bar, Rectangle)]
    for line in ax.lines:
        if not line.get_visible():
            continue
        xy = ax.transData.transform(np.column_stack(line.get_data()).astype(float))
        half = max(line.get_markersize(), line.get_linewidth()) * renderer.points_to_pixels(1.0) / 2
        boxes += [Bbox.from_extents(x - half, y - half, x + half, y + half) for x, y in xy if np.isfinite([x, y]).all()]
    for collection in ax.collections:
        if isinstance(collection, LineCollection):   # hlines, vlines, error bars
            boxes += [Bbox(ax.transData.transform(np.asarray(s, float)[[0, -1]])) for s in collection.get_segments()
                      if len(s)]
    return boxes


def assert_legends_cover_no_data(figure) -> None:
    """No legend (of an axes or of the figure) lies on a bar, marker, line vertex or reference line."""
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    legends = [(ax, ax.get_legend()) for ax in figure.axes if ax.get_legend() is not None]
    legends += [(None, legend) for legend in figure.legends]
    for ax, legend in legends:
        box = legend.get_window_extent(renderer)
        for target in ([ax] if ax is not None else figure.axes):
            for data in _data_boxes(target, renderer):
                assert not box.overlaps(data), f"the legend of {target.get_title()!r} covers data at {data.extents}"


def assert_bars_visible(ax, min_fraction: float = 0.03) -> None:
    """Every bar of ``ax`` shows at least ``min_fraction`` of the axes' height inside the axes (a bar
    from 0 on a log scale shows from the axis' bottom)."""
    ax.figure.canvas.draw()
    frame = ax.get_window_extent(ax.figure.canvas.get_renderer())
    bars = [bar for bar in ax.patches if isinstance(bar, Rectangle)]
    assert bars
    for bar in bars:
        y0, y1 = sorted((bar.get_y(), bar.get_y() + bar.get_height()))
        with np.errstate(divide="ignore"):
            low, high = (ax.transData.transform([[bar.get_x(), y]])[0, 1] if y > 0 or ax.get_yscale() != "log"
                         else -np.inf for y in (y0, y1))
        shown = min(high, frame.y1) - max(low, frame.y0)
        assert shown >= min_fraction * frame.height, \
            f"a bar of {ax.get_title()!r} ({y1:g}) shows {shown:.1f} px of {frame.height:.0f}"


def assert_no_marker_hidden(ax) -> None:
    """No marker of one series sits on a marker of another (equal values must be dodged sideways or
    drawn distinguishably): centres at least half a marker apart, in display space."""
    ax.figure.canvas.draw()
    to_px = ax.figure.canvas.get_renderer().points_to_pixels(1.0)
    # An error bar's data line belongs to its container (its caps are markers too, of the same series).
    lines = {id(c.lines[0]): (c.lines[0], c.get_label()) for c in ax.containers if isinstance(c, ErrorbarContainer)}
    in_containers = {id(part) for c in ax.containers if isinstance(c, ErrorbarContainer)
                     for part in (c.lines[0], *c.lines[1])}
    lines.update({id(line): (line, line.get_label()) for line in ax.lines if id(line) not in in_containers})
    series = []
    for line, label in lines.values():
        if line is not None and line.get_visible() and line.get_marker() not in (None, "", "None", " "):
            xy = ax.transData.transform(np.column_stack(line.get_data()).astype(float))
            series.append((label, xy[np.isfinite(xy).all(axis=1)], line.get_markersize() * to_px))
    for i, (name_a, a, size_a) in enumerate(series):
        for name_b, b, size_b in series[i + 1:]:
            if len(a) and len(b):
                distance = np.min(np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2))
                assert distance >= 0.5 * min(size_a, size_b), \
                    f"{ax.get_title()!r}: a marker of {name_b!r} hides one of {name_a!r} ({distance:.1f} px apart)"
