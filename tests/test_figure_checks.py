"""The figure checks catch what they claim to (each case drawn so that it must fail)."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from figure_checks import assert_bars_visible, assert_legends_cover_no_data, assert_no_marker_hidden  # noqa: E402


def _legend_over_the_middle(draw):
    figure, ax = plt.subplots(figsize=(4, 3))
    draw(ax)
    ax.set(xlim=(0, 10), ylim=(0, 10))
    ax.legend(loc="center")
    return figure


@pytest.mark.parametrize("draw", [
    lambda ax: ax.scatter([5], [5], label="scatter"),
    lambda ax: ax.plot([0, 10], [5, 5], label="a line through the middle, no vertex there"),
    lambda ax: ax.axhline(5, label="reference line"),
    lambda ax: ax.errorbar([5], [5], yerr=[1], label="error bar"),
    lambda ax: ax.bar([5], [6], label="bar"),
    lambda ax: ax.fill_between([0, 10], [4, 4], [6, 6], label="band"),
], ids=["scatter", "line", "axhline", "errorbar", "bar", "band"])
def test_a_legend_over_data_is_caught(draw):
    figure = _legend_over_the_middle(draw)
    with pytest.raises(AssertionError, match="covers data"):
        assert_legends_cover_no_data(figure)
    plt.close(figure)


def test_a_legend_beside_the_data_passes_and_a_missing_one_does_not():
    figure, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1], [0, 1], "o-", label="data")
    figure.legend(loc="lower center")
    figure.tight_layout(rect=(0, 0.15, 1, 1))
    assert_legends_cover_no_data(figure)
    figure.legends.clear()
    with pytest.raises(AssertionError, match="no legend"):
        assert_legends_cover_no_data(figure)
    plt.close(figure)


def test_hidden_markers_and_missing_series_are_caught():
    figure, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1], [1, 1], "o", label="a")
    with pytest.raises(AssertionError, match="series with markers"):
        assert_no_marker_hidden(ax)
    ax.scatter([1], [1], label="b")   # exactly on a's second marker
    with pytest.raises(AssertionError, match="hides"):
        assert_no_marker_hidden(ax)
    plt.close(figure)


def test_a_sliver_of_a_bar_on_a_log_scale_is_caught():
    figure, ax = plt.subplots(figsize=(4, 3))
    ax.bar([0, 1], [1e-7, 1.05e-7])
    ax.set_yscale("log")
    ax.set_ylim(1e-7, 1e-1)
    with pytest.raises(AssertionError, match="shows"):
        assert_bars_visible(ax)
    ax.set_ylim(1e-8, 1e-6)
    assert_bars_visible(ax)
    plt.close(figure)
