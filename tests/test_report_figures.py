"""The report figures drawn from small synthetic inputs shaped like the stored ones, with the hard
cases (series with equal values, values spanning decades): every series visible, no legend over the
data, readable labels and units."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402

from figure_checks import assert_legends_cover_no_data, assert_no_marker_hidden  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _labelled(figure) -> None:
    for ax in figure.axes:
        if ax.get_label() == "<colorbar>":
            continue
        assert ax.get_xlabel().strip() and ax.get_ylabel().strip(), f"{ax.get_title()!r} lacks an axis label"


# -- drift report ----------------------------------------------------------------------------------

def test_drift_accuracy_figure_shows_both_trainings_where_they_agree():
    # Shaped like a drift run: (GDC off/on, draws, times); plain and regularized agree at t = 0 and
    # 1 s (the same draws), the plain network then loses points, its draws spreading from 30 % to
    # 55 % after ten years; the times span ten decades.
    from circuitnn.networks.drift import EVALUATION_TIMES_S
    from circuitnn.reports.drift_report import accuracy_figure

    n = len(EVALUATION_TIMES_S)
    same = np.array([[0.97, 0.95, 0.96]]).T * np.ones(n)
    plain = same * np.r_[1.0, 1.0, np.linspace(0.95, 0.8, n - 3), 1.0]
    plain[:, -1] = [0.55, 0.3, 0.45]
    regularized = same * np.r_[1.0, 1.0, np.full(n - 2, 0.97)]
    parts = {(kind, training): np.stack([curve, curve])
             for kind in ("cnn", "mlp") for training, curve in (("plain", plain), ("regularized", regularized))}
    figure = accuracy_figure(parts, EVALUATION_TIMES_S)
    for ax in figure.axes:
        assert_no_marker_hidden(ax)
    assert_legends_cover_no_data(figure)
    _labelled(figure)


def test_drift_programming_figure_shows_every_strategy_where_they_agree():
    # Shaped like parts/programming/errors.json: strategy → (repeats, times); the optimized strategy
    # can land on the dual pair's error.
    from circuitnn.networks.programming import OBJECTIVE_TIMES_S
    from circuitnn.reports.drift_report import programming_figure

    times = (0.0, *OBJECTIVE_TIMES_S)
    growth = np.linspace(1.0, 3.0, len(times))
    errors = {"single pair": [0.12 * growth] * 3, "dual pair": [0.05 * growth] * 3,
              "optimized": [0.05 * growth, 0.05 * growth, 0.05 * growth]}
    figure = programming_figure(errors, times)
    assert_no_marker_hidden(figure.axes[0], min_series=3)
    assert_legends_cover_no_data(figure)
    _labelled(figure)


# -- on-chip learning curves -----------------------------------------------------------------------

class _Histories:
    """What ``learning_report._curves`` reads of a run: each part's history.csv."""

    def __init__(self, histories: dict[str, dict]):
        self.histories = histories

    def read_csv(self, rel: str, numeric=()):
        return {k: np.asarray(v, float) for k, v in self.histories[rel.split("/")[1]].items()}


def test_learning_curves_show_every_part_where_media_learn_alike():
    # Shaped like a compare-media --trainer dgc run (80 steps, a check every 10): the three media
    # reach the same accuracies step for step, and every finetune part stays at 100 %.
    from circuitnn.reports.learning_report import _curves

    steps = np.arange(0, 81, 10)
    histories, summaries = {}, {}
    for medium, wv_pulses in (("W", 777), ("Cr", 228), ("C", 2125)):
        for variant in ("dgc", "finetune"):
            part = f"{medium}-{variant}"
            learning = np.minimum(0.2 + 0.1 * steps / 10, 0.9) if variant == "dgc" else np.ones(len(steps))
            histories[part] = {"step": steps, "test_accuracy": learning,
                               "pulses": (wv_pulses if variant == "finetune" else 0) + 150 * steps / 10}
            summaries[part] = {"medium": medium, "variant": variant}
    figure = _curves(_Histories(histories), list(histories), summaries)
    for ax in figure.axes:
        assert_no_marker_hidden(ax, min_series=6)
    assert_legends_cover_no_data(figure)
    _labelled(figure)


# -- calibration parity ----------------------------------------------------------------------------

def test_parity_figure_spreads_values_spanning_decades():
    # Shaped like experiments.npz of a Cr calibration: currents from 0.04 µA to 93 µA, pulse energies
    # from 17 pJ to 6.5 nJ (decades: on a linear axis the small ones are one blot at 0), states 0.1-0.9.
    from circuitnn.reports.calibration_report import parity_figure

    rng = np.random.default_rng(0)
    spice = {"currents_A": 10 ** rng.uniform(-7.4, -4.03, 300), "states": rng.uniform(0.09, 0.88, 80),
             "energy_source_J": 10 ** rng.uniform(-10.8, -8.2, 80)}
    surrogate = {k: v * (1 + 1e-3 * rng.standard_normal(len(v))) for k, v in spice.items()}
    figure = parity_figure(spice, surrogate, "Cr")
    currents, states, energy = figure.axes
    for ax in (currents, energy):
        assert ax.get_xscale() == ax.get_yscale() == "log", ax.get_xlabel()
    assert states.get_xscale() == "linear"
    assert "µA" in currents.get_xlabel()
    assert_legends_cover_no_data(figure, require=False)
    _labelled(figure)


def test_parity_figure_names_the_current_unit_of_the_data():
    from circuitnn.reports.calibration_report import parity_figure

    spice = {"currents_A": np.linspace(1e-9, 4e-7, 50), "states": np.linspace(0.1, 0.9, 50),
             "energy_source_J": np.linspace(1e-10, 5e-10, 50)}
    figure = parity_figure(spice, spice, "PCM")
    assert "nA" in figure.axes[0].get_xlabel() and "nA" in figure.axes[0].get_ylabel()


# -- device curves ---------------------------------------------------------------------------------

def _c_curves():
    """The C medium's curves: a loop peaking at 0.04 mA, states saturated so SPICE and NumPy agree."""
    from circuitnn.experiments.device_curves import DeviceCurves

    t = np.linspace(0.0, 0.01, 400)
    v = np.sin(2 * np.pi * 100 * t)
    i = 4e-5 * v * np.where(v > 0, 1.0, 0.45)
    pulse = np.arange(1, 41)
    state = np.where(pulse <= 20, 1.0, 0.0)
    return DeviceCurves("C", {"time_s": t, "voltage_V": v, "current_A": i, "state": 0 * t,
                              "current_numpy_A": i, "state_numpy": 0 * t},
                        {"pulse": pulse, "amplitude_V": np.where(pulse <= 20, 1.0, -1.0), "state_spice": state,
                         "state_numpy": state.copy()})


def test_device_curves_figure_shows_both_models_and_states_the_current_in_microamperes():
    from circuitnn.experiments.config import load_config
    from circuitnn.reports.artifacts import device_curves_figure

    figure = device_curves_figure(_c_curves(), load_config(medium_name="C"))
    loop, pulses = figure.axes
    assert "µA" in loop.get_ylabel()
    assert np.isclose(max(np.max(np.abs(line.get_ydata())) for line in loop.lines), 40.0)
    assert_no_marker_hidden(pulses)
    assert_legends_cover_no_data(figure)
    _labelled(figure)


# -- learn-networks evaluations --------------------------------------------------------------------

def test_evaluations_figure_shows_every_method_where_they_agree():
    # Shaped like a learn-networks run's clean parts: accuracy after each epoch against the cumulative
    # chip evaluations (BP hundreds, DGC hundreds of thousands: decades apart). A hybrid dominated by
    # DGC's evaluations lies on DGC's points; BP and parallel reach the same accuracies.
    from circuitnn.reports.network_learning_report import evaluations_figure

    def part(network, method, per_epoch, accuracy, backward=0):
        epochs = np.arange(1, len(accuracy) + 1)
        return ((network, method, "conductance", 0.0),
                {"history": {"forward_evaluations": list(per_epoch * epochs), "test_accuracy": accuracy,
                             "backward_evaluations": list(backward * epochs)}})

    same = [0.6, 0.85, 0.9]
    clean = [part("mlp", "bp", 300, same, backward=300), part("mlp", "dgc", 2e5, [0.5, 0.8, 0.9]),
             part("mlp", "hybrid-bp-dgc", 2e5, [0.5, 0.8, 0.9]), part("mlp", "parallel", 3000, same),
             part("mlp", "spsa", 1e4, [0.125, 0.2, 0.3]),
             part("cnn", "bp", 300, [0.1, 0.1, 0.1], backward=300), part("cnn", "hybrid-conv-bp", 1e5, [0.1, 0.1, 0.1])]
    figure = evaluations_figure(clean, "digits-8x8")
    for ax in figure.axes:
        assert_no_marker_hidden(ax)
    assert_legends_cover_no_data(figure)
    _labelled(figure)


# -- on-chip noise heat-map ------------------------------------------------------------------------

def _luminance(colour) -> float:
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in to_rgb(colour)]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _contrast(a, b) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.parametrize("size", [7, 9])
def test_heatmap_text_is_readable_on_every_cell(size):
    # Shaped like parts/heatmap/grid.npz: accuracies from 86 % to 100 %, so the colour scale runs
    # from 80 %; values near 90 % sit in the middle of viridis, where white text is faint.
    from circuitnn.reports.onchip_report import _heatmap_figure

    noise = np.linspace(0.0, 0.3, size)
    accuracy = np.clip(1.0 - 0.5 * noise[None, :] ** 2 * np.linspace(4, 6, size)[:, None], 0.86, 1.0)
    accuracy[0, -3:] = [0.895, 0.9, 0.905]
    figure = _heatmap_figure({"training_noise": noise, "test_noise": noise, "chip_accuracy": accuracy})
    ax = figure.axes[0]
    image = ax.images[0]
    renderer = figure.canvas.get_renderer()
    figure.canvas.draw()
    assert len(ax.texts) == size * size
    for text in ax.texts:
        j, i = (int(round(c)) for c in text.get_position())
        cell = image.cmap(image.norm(100 * accuracy[i, j]))
        assert _contrast(text.get_color(), cell) >= 4.5, f"{text.get_text()} on {cell}: {text.get_color()}"
        assert text.get_fontsize() >= 7
        box = text.get_window_extent(renderer)
        (x0, y0), (x1, y1) = ax.transData.transform([[j - 0.5, i - 0.5], [j + 0.5, i + 0.5]])
        assert x0 <= box.x0 and box.x1 <= x1 and y0 <= box.y0 and box.y1 <= y1, f"{text.get_text()} overflows"
    assert_legends_cover_no_data(figure, require=False)
    _labelled(figure)
