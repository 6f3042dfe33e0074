"""Fitting M-SDC parameters to I–V traces, against ngspice as the measurement (no mocks).

Each medium's "device under test" is its preset with every fitted parameter moved by 20–30 %; ngspice
drives it with the characterisation circuit and the fit starts from the unmodified preset, as a user
starts from the preset of the medium they bought.

The excitation is designed for identifiability (amplitudes from the *preset's* thresholds, which is
all an experimenter knows): sine sweeps at 1.2x, 1.6x and 2.2x the larger preset threshold at
f = 1/(3 tau_preset) — the lowest sits at the true thresholds (slow, partial switching: V_on/V_off
separately from tau), the highest saturates the rate at 1/tau (tau alone) — then one slow cycle at
f/10 that switches the device fully both ways (R_on and R_off each seen alone).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from circuitnn.circuits import characterize
from circuitnn.circuits.characterize import (
    CharacterizationCircuit,
    concatenate_waveforms,
    simulate_trace,
    sine_sweep,
)
from circuitnn.experiments.config import load_config
from circuitnn.devices import fit, msdc
from circuitnn.devices.fit import DEFAULT_FIT_FIELDS, TraceError, fit_msdc, load_trace_csv
from circuitnn.devices.base import preset as medium
from circuitnn.devices.media import MEDIA
from circuitnn.errors import ConfigError
from figure_checks import assert_legends_cover_no_data

# Device under test = preset x factor, every fitted field moved by 20-30 % (mixed directions).
PERTURBATIONS = {
    "W": {"r_on_ohm": 1.25, "r_off_ohm": 0.75, "v_on_V": 1.2, "v_off_V": 0.8, "tau_s": 1.3},
    "Cr": {"r_on_ohm": 0.8, "r_off_ohm": 1.3, "v_on_V": 0.75, "v_off_V": 1.25, "tau_s": 0.75},
    "C": {"r_on_ohm": 1.3, "r_off_ohm": 0.8, "v_on_V": 1.25, "v_off_V": 0.8, "tau_s": 1.2},
}
X0_TRUE = 0.3
TOLERANCE = 0.05          # the requirement, for every fitted parameter, with and without noise
CLEAN_TOLERANCE = 0.01    # measured ≤ 1.5e-4 from SPICE traces without noise
NOISE = 0.02              # gaussian, proportional to each sample's current, seeded


def device_under_test(name: str) -> msdc.MsdcParams:
    preset = medium(name)
    return preset.replace(**{k: getattr(preset, k) * f for k, f in PERTURBATIONS[name].items()},
                          provenance=f"test device: {name} preset x {PERTURBATIONS[name]}")


def excitation(preset: msdc.MsdcParams):
    v_threshold = max(preset.v_on_V, preset.v_off_V)
    frequency = 1.0 / (3.0 * preset.tau_s)
    sweeps = [sine_sweep(a * v_threshold, frequency, cycles=2, points_per_cycle=200)
              for a in (1.2, 1.6, 2.2)]
    full_switching = sine_sweep(1.6 * v_threshold, frequency / 10, cycles=2, points_per_cycle=200)
    return concatenate_waveforms(*sweeps, full_switching)


@pytest.fixture(scope="module")
def traces(engine):
    """name → (true params, IvTrace from ngspice): one transient per medium, shared by the tests."""
    out = {}
    for name in MEDIA:
        true = device_under_test(name)
        t, v = excitation(medium(name))
        out[name] = (true, simulate_trace(true, t, v, engine, x0=X0_TRUE))
    return out


def relative_errors(result, true) -> dict[str, float]:
    return {k: result.values[k] / getattr(true, k) - 1.0 for k in DEFAULT_FIT_FIELDS}


# ---- the fast integrator the optimiser uses ----------------------------------------------------
@pytest.mark.parametrize("points_per_cycle", [20, 200])
@pytest.mark.parametrize("name", list(MEDIA))
def test_fast_integrator_matches_simulate_waveform(name, points_per_cycle):
    # Closed form per segment: agrees with LSODA even when a segment is a sizeable part of tau.
    p = device_under_test(name)
    t, v = concatenate_waveforms(*[sine_sweep(a, 1 / (3 * p.tau_s), 2, points_per_cycle)
                                   for a in (0.7, 1.2)])
    x_ref, _, i_ref = msdc.simulate_waveform(p, X0_TRUE, t, v, rtol=1e-11, atol=1e-13)
    x, v_dev, i = fit.simulate_waveform_fast(p, X0_TRUE, t, v)
    assert np.max(np.abs(x - x_ref)) < 1e-6
    np.testing.assert_allclose(i, i_ref, rtol=1e-5, atol=1e-6 * np.max(np.abs(i_ref)))
    np.testing.assert_array_equal(v_dev, v)


@pytest.mark.parametrize("r_series_ohm", [1_000.0, 20_000.0])
def test_fast_integrator_with_series_resistance(r_series_ohm):
    p = device_under_test("Cr")
    t, v = excitation(medium("Cr"))
    x_ref, v_ref, i_ref = msdc.simulate_waveform(p, X0_TRUE, t, v, r_series_ohm, rtol=1e-11, atol=1e-13)
    x, v_dev, i = fit.simulate_waveform_fast(p, X0_TRUE, t, v, r_series_ohm)
    assert np.max(np.abs(x - x_ref)) < 5e-4
    assert np.max(np.abs(v_dev - v_ref)) < 5e-4
    assert np.max(np.abs(i - i_ref)) < 1e-3 * np.max(np.abs(i_ref))


def test_fast_integrator_survives_segments_far_longer_than_tau():
    # A step that relaxes by more than e^-500 must land on the equilibrium state, not on NaN.
    p = medium("C")
    t = np.array([0.0, 1e-9, 1.0, 1.0 + 1e-9, 2.0])
    v = np.array([0.0, 1.5, 1.5, -1.5, -1.5])
    x, _, _ = fit.simulate_waveform_fast(p, 0.5, t, v)
    assert np.all(np.isfinite(x))
    assert x[2] == pytest.approx(float(msdc.equilibrium_state(p, 1.5)), abs=1e-9)
    assert x[4] == pytest.approx(float(msdc.equilibrium_state(p, -1.5)), abs=1e-9)


# ---- the characterisation circuit in ngspice --------------------------------------------------
@pytest.mark.parametrize("name", list(MEDIA))
def test_spice_trace_agrees_with_numpy_model(traces, name):
    true, trace = traces[name]
    np.testing.assert_allclose(trace.v_device_V, excitation(medium(name))[1], atol=1e-9)
    x, _, i = fit.simulate_waveform_fast(true, X0_TRUE, trace.t_s, trace.v_device_V)
    assert trace.x[0] == pytest.approx(X0_TRUE, abs=1e-9)
    assert np.max(np.abs(trace.x - x)) < 1e-3
    assert np.max(np.abs(trace.i_device_A - i)) < 1e-3 * np.max(np.abs(i))
    # Sign: positive voltage drives positive current from p to n.
    assert np.all(trace.i_device_A[trace.v_device_V > 0.01] > 0)
    assert np.all(trace.i_device_A[trace.v_device_V < -0.01] < 0)
    # The excitation does what it was designed for: the state visits both ends of its range.
    assert trace.x.min() < 1e-3 and trace.x.max() > 0.99


def test_spice_trace_through_series_resistance(engine):
    p = device_under_test("Cr")
    t, v = excitation(medium("Cr"))
    trace = simulate_trace(p, t, v, engine, x0=X0_TRUE, r_series_ohm=1_000.0)
    # KCL: the source voltage is the device voltage plus the drop across the resistor.
    np.testing.assert_allclose(trace.v_device_V + 1_000.0 * trace.i_device_A, v, atol=1e-6)


# ---- fitting -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(MEDIA))
def test_fit_recovers_true_parameters(traces, name):
    true, trace = traces[name]
    preset = medium(name)
    # The start really is 20-30 % away from the truth.
    assert all(abs(getattr(preset, k) / getattr(true, k) - 1) > 0.15 for k in DEFAULT_FIT_FIELDS)
    result = fit_msdc(trace.t_s, trace.v_device_V, trace.i_device_A, preset, source=f"spice-{name}.csv")
    errors = relative_errors(result, true)
    assert max(abs(e) for e in errors.values()) < CLEAN_TOLERANCE, errors
    assert result.x0 == pytest.approx(X0_TRUE, abs=1e-3)
    assert result.relative_rms_error < 1e-3
    assert result.success
    assert result.params.medium == name
    assert "fitted" in result.params.provenance and f"spice-{name}.csv" in result.params.provenance
    assert f"{result.relative_rms_error:.3g}" in result.params.provenance
    assert set(result.values) == set(DEFAULT_FIT_FIELDS) | {"x0"}


@pytest.mark.parametrize("name", list(MEDIA))
def test_fit_recovers_true_parameters_with_two_percent_noise(traces, name):
    true, trace = traces[name]
    rng = np.random.default_rng(20240826)
    noisy = trace.i_device_A * (1.0 + NOISE * rng.standard_normal(trace.i_device_A.size))
    result = fit_msdc(trace.t_s, trace.v_device_V, noisy, medium(name))
    errors = relative_errors(result, true)
    assert max(abs(e) for e in errors.values()) < TOLERANCE, errors
    # The residual is the noise, and the reported uncertainty is of the size of the actual error.
    assert result.relative_rms_error == pytest.approx(NOISE, rel=0.2)
    for k, error in errors.items():
        standard_error = result.relative_standard_errors[k]
        assert 0.0 < standard_error < TOLERANCE
        assert abs(error) < 6 * standard_error + 1e-3, (k, error, standard_error)


def test_fit_through_series_resistance(engine):
    true = device_under_test("Cr")
    t, v = excitation(medium("Cr"))
    trace = simulate_trace(true, t, v, engine, x0=X0_TRUE, r_series_ohm=1_000.0)
    # What a bench records: the applied voltage and the current; the fit models the divider.
    result = fit_msdc(t, v, trace.i_device_A, medium("Cr"), r_series_ohm=1_000.0)
    errors = relative_errors(result, true)
    assert max(abs(e) for e in errors.values()) < CLEAN_TOLERANCE, errors
    assert "series 1000 ohm" in result.params.provenance


def test_fit_holds_a_given_initial_state(traces):
    _, trace = traces["W"]
    result = fit_msdc(trace.t_s, trace.v_device_V, trace.i_device_A, medium("W"), x0=X0_TRUE,
                      fit_fields=("r_on_ohm", "r_off_ohm"), loss="soft_l1", loss_scale=0.05)
    assert result.x0 == X0_TRUE and not result.x0_fitted and "x0" not in result.values
    # Only the resistances were free: the thresholds and tau stay at the preset's values.
    assert result.params.v_on_V == medium("W").v_on_V and result.params.tau_s == medium("W").tau_s
    assert set(result.values) == {"r_on_ohm", "r_off_ohm"}


@pytest.mark.parametrize("kwargs,path", [
    ({"fit_fields": ("r_on_ohm", "colour")}, "fit.fit_fields"),
    ({"x0": 1.5}, "fit.x0"),
    ({"weighting": "equal"}, "fit.weighting"),
    ({"bounds": {"tau_s": (0.0, 1e-3)}}, "fit.bounds.tau_s"),
    ({"bounds": {"phi": (0.1, 0.9)}}, "fit.bounds.phi"),
])
def test_fit_rejects_bad_options(kwargs, path):
    t = np.linspace(0, 1e-3, 20)
    v = np.sin(2 * np.pi * 1e3 * t)
    with pytest.raises(ConfigError, match=path.replace(".", r"\.")):
        fit_msdc(t, v, v / 1e4, medium("Cr"), **kwargs)


# ---- reading traces ---------------------------------------------------------------------------------
def _write(tmp_path, text: str):
    path = tmp_path / "trace.csv"
    path.write_text(text)
    return path


def _rows(n: int, start: int = 0) -> list[str]:
    return [f"{k * 1e-6:.3e},{0.1 * math.sin(k):.6f},{1e-5 * math.sin(k):.6e}"
            for k in range(start, start + n)]


@pytest.mark.parametrize("header", ["time_s,voltage_V,current_A", "Time,Voltage,Current", "t,V,I",
                                    "T, v , i"])
def test_load_trace_csv_accepts_aliases(tmp_path, header):
    path = _write(tmp_path, "# measured on the bench\n" + "\n".join([header, *_rows(12)]) + "\n")
    t, v, i = load_trace_csv(path)
    assert t.shape == v.shape == i.shape == (12,)
    assert t[1] == pytest.approx(1e-6) and i[3] == pytest.approx(1e-5 * math.sin(3), rel=1e-6)


def test_load_trace_csv_ignores_extra_columns_and_reorders(tmp_path):
    rows = [f"{k},{1e-5 * k:.6e},x,{k * 1e-6:.3e},{0.01 * k}" for k in range(15)]
    path = _write(tmp_path, "\n".join(["index,current_A,note,time_s,voltage_V", *rows]))
    t, v, i = load_trace_csv(path)
    assert t[2] == pytest.approx(2e-6) and v[2] == pytest.approx(0.02) and i[2] == pytest.approx(2e-5)


@pytest.mark.parametrize("text,match", [
    ("time_s,voltage_V\n" + "\n".join(f"{k},{k}" for k in range(12)),
     r"trace\.csv, row 1: no current_A column"),
    ("time_s,voltage_V,current_A\n" + "\n".join(_rows(5)) + "\n5e-6,0.1,abc\n" + "\n".join(_rows(6, 6)),
     r"trace\.csv, row 7, column current_A: 'abc' is not a number"),
    ("time_s,voltage_V,current_A\n" + "\n".join(_rows(5)) + "\n5e-6,nan,1e-6\n" + "\n".join(_rows(6, 6)),
     r"row 7, column voltage_V: 'nan' is not a finite number"),
    ("time_s,voltage_V,current_A\n" + "\n".join(_rows(5)) + "\n4e-6,0.1,1e-6\n" + "\n".join(_rows(6, 6)),
     r"row 7, column time_s: time 4e-6 is not greater than 4\.000e-06 \(row 6\)"),
    ("time_s,voltage_V,current_A\n" + "\n".join(_rows(5)) + "\n5e-6,0.1\n" + "\n".join(_rows(6, 6)),
     r"row 7, column current_A: missing value"),
    ("time_s,voltage_V,current_A\n" + "\n".join(_rows(9)),
     r"trace\.csv: 9 data rows; a fit needs at least 10"),
    ("t,time,v,i\n" + "\n".join(f"{k},{k},{k},{k}" for k in range(12)),
     r"columns \['t', 'time'\] all name time_s"),
    ("", r"trace\.csv: the file is empty"),
])
def test_load_trace_csv_errors_name_file_row_and_column(tmp_path, text, match):
    with pytest.raises(TraceError, match=match) as info:
        load_trace_csv(_write(tmp_path, text))
    assert isinstance(info.value, ValueError)


def test_load_trace_csv_missing_file(tmp_path):
    with pytest.raises(TraceError, match="nothing.csv: cannot read"):
        load_trace_csv(tmp_path / "nothing.csv")


# ---- the report -------------------------------------------------------------------------------------
def test_write_fit_report_round_trips_through_config(traces, tmp_path):
    true, trace = traces["C"]
    path = tmp_path / "measured.csv"
    np.savetxt(path, np.column_stack([trace.t_s, trace.v_device_V, trace.i_device_A]), delimiter=",",
               header="time_s,voltage_V,current_A", comments="", fmt="%.17g")
    result = fit_msdc(*load_trace_csv(path), medium("C"), source=str(path))
    written = fit.write_fit_report(result, tmp_path / "report")
    names = sorted(p.name for p in written)
    assert names == ["fit_c.csv", "fit_c.json", "fit_c.toml", "fit_c_iv.png"]
    assert all(p.stat().st_size > 0 for p in written)
    assert (tmp_path / "report" / "fit_c_iv.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((tmp_path / "report" / "fit_c.json").read_text())
    assert summary["values"]["tau_s"] == pytest.approx(true.tau_s, rel=CLEAN_TOLERANCE)
    assert str(path) in summary["provenance"]
    # The TOML is a config the rest of circuitnn takes: the device it builds is the fitted one.
    params = load_config(tmp_path / "report" / "fit_c.toml").device.params()
    for k in DEFAULT_FIT_FIELDS:
        assert getattr(params, k) == getattr(result.params, k)


def _visible_tick_labels(ax, renderer):
    low, high = sorted(ax.get_xlim())
    return [(label.get_text(), label.get_window_extent(renderer)) for tick, label in
            zip(ax.get_xticks(), ax.get_xticklabels()) if low <= tick <= high and label.get_text()]


def test_fit_figure_is_titled_legible_and_shows_the_measurement():
    # Shaped like `circuitnn fit` of a W trace: a ±1 V sine, wide enough in volts that default ticks crowd.
    true = medium("W")
    t, v = sine_sweep(1.0, 1 / (3 * true.tau_s), cycles=2, points_per_cycle=100)
    _, _, i = fit.simulate_waveform_fast(true, 0.2, t, v)
    result = fit_msdc(t, v, i, true, source="w_trace.csv")
    figure = fit._fit_figure(result)
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    loop, trace = figure.axes
    for ax in (loop, trace):
        title = ax.get_title()
        assert "current" in title and ("voltage" in title or "time" in title), title
        assert "r_on_ohm" not in title and ax.title.get_fontsize() >= 8
        labels = _visible_tick_labels(ax, renderer)
        assert len(labels) >= 3
        # Apart by at least half a character, so "-1.00-0.75" cannot read as one label.
        gap = 0.5 * renderer.points_to_pixels(ax.xaxis.get_ticklabels()[0].get_fontsize())
        for (text_a, box_a), (text_b, box_b) in zip(labels, labels[1:]):
            assert box_b.x0 - box_a.x1 >= gap, f"tick labels {text_a} and {text_b} touch"
        measured, fitted = (next(line for line in ax.lines if line.get_label() == name)
                            for name in ("measured", "fitted"))
        assert measured.get_zorder() > fitted.get_zorder()
    # The fitted values are shown, outside the panels' titles, in readable text.
    shown = [text for text in (figure._suptitle, *figure.texts, *loop.texts, *trace.texts) if text is not None]
    assert any("r_on_ohm" in text.get_text() for text in shown)
    assert all(text.get_fontsize() >= 8 for text in shown)
    legends = list(figure.legends) + [ax.get_legend() for ax in (loop, trace) if ax.get_legend() is not None]
    assert figure.legends or all(ax.get_legend() is not None for ax in (loop, trace))
    for legend in legends:
        assert {"measured", "fitted"} <= {text.get_text() for text in legend.get_texts()}
        assert all(text.get_fontsize() >= 8 for text in legend.get_texts())
    assert_legends_cover_no_data(figure)


# ---- waveforms and netlist ---------------------------------------------------------------------------
def test_sine_sweep_and_concatenation():
    t1, v1 = sine_sweep(1.0, 1e3, cycles=2, points_per_cycle=100)
    assert t1.size == 201 and t1[-1] == pytest.approx(2e-3) and v1[0] == v1[50] == v1[-1] == 0.0
    assert v1.max() == pytest.approx(1.0)
    t, v = concatenate_waveforms((t1, v1), sine_sweep(0.5, 2e3, cycles=1, points_per_cycle=50))
    assert t.size == 201 + 50 and t[-1] == pytest.approx(2.5e-3)
    assert np.all(np.diff(t) > 0) and v[201] == pytest.approx(0.5 * np.sin(2 * np.pi / 50))
    # A waveform that starts elsewhere keeps its first point; the jump takes one of its own steps.
    t2, v2 = concatenate_waveforms(([0.0, 1.0], [0.0, 0.2]), ([5.0, 5.5, 6.0], [0.3, 0.4, 0.5]))
    np.testing.assert_allclose(t2, [0.0, 1.0, 1.5, 2.0, 2.5])
    np.testing.assert_allclose(v2, [0.0, 0.2, 0.3, 0.4, 0.5])


@pytest.mark.parametrize("t,v,path", [
    ([0.0, 1e-6, 1e-6], [0.0, 0.1, 0.2], r"waveform\.t_s\[2\]"),
    ([0.0, 1e-6, 2e-6], [0.0, float("nan"), 0.2], r"waveform\.v_V\[1\]"),
    ([0.0, 1e-6, 2e-6], [0.0, 12.0, 0.2], r"waveform\.v_V\[1\]"),
    ([0.0, 1e-6], [0.0, 0.1, 0.2], r"waveform"),
])
def test_waveform_validation(t, v, path):
    with pytest.raises(ConfigError, match=path):
        CharacterizationCircuit(medium("Cr")).netlist(t, v)


def test_netlist_drives_device_with_the_waveform():
    t, v = sine_sweep(1.0, 1e3, cycles=1, points_per_cycle=8, start_s=5e-3)
    direct = CharacterizationCircuit(medium("W")).netlist(t, v, x0=0.25)
    assert "vsweep src 0 pwl(0 0 0.000125 0.707106781187" in direct
    assert "xdut src 0 msdc_w x0=0.25" in direct and "rseries" not in direct
    assert ".tran 0.000125 0.001 0 0.000125" in direct
    series = CharacterizationCircuit(medium("W"), r_series_ohm=1e3).netlist(t, v)
    assert "rseries src top 1000" in series and "xdut top 0 msdc_w" in series
    with pytest.raises(ConfigError, match="characterize.r_series_ohm"):
        CharacterizationCircuit(medium("W"), r_series_ohm=-1.0)
    assert characterize.SOURCE == "vsweep"
