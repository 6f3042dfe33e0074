"""The PCM cell in ngspice against its NumPy twin: drift read, SET/RESET pulse trains, stored-state
``.op``, and parameter checks. Real ngspice through SpiceEngine; nothing is mocked."""

from __future__ import annotations

import math

import numpy as np
import pytest

from circuitnn.circuits.program import SOURCE, ProgrammingCircuit, PulseSpec
from circuitnn.devices import pcm
from circuitnn.circuits.library import library_texts
from circuitnn.errors import ConfigError, NetlistError

P = pcm.PcmParams()
PP = pcm.PcmPulseParams()
MODEL = pcm.PcmModel()


def PcmProgrammingCircuit(model=MODEL):  # noqa: N802 - reads like the circuit it builds
    return ProgrammingCircuit(model, v_read_V=PP.v_read_V, name="pcm_program")


STATE_NODE = PcmProgrammingCircuit().state_node
READ_VECTORS = ("top", "bot", STATE_NODE)
DAY_S = 86400.0
# Partial pulses, so a train of ten walks through the window instead of jumping to its end.
SET = PulseSpec(amplitude_V=1.2, width_s=30e-9, edge_s=5e-9)     # ~14 % of the way up per pulse
RESET = PulseSpec(amplitude_V=1.75, width_s=5e-9, edge_s=2e-9)   # ~40 % of the way down per pulse


def _read(engine, circuit, g, nu=0.0, t_s=0.0, k_read=1.0):
    alters = {**circuit.state_alters(g), **circuit.input_alters({"nu": nu, "t_prog": t_s, "k_read": k_read}),
              **circuit.read_alters()}
    result = engine.run(circuit.read_analysis, READ_VECTORS, alters=alters, step="read")
    return float(result.vectors[STATE_NODE][0]), float(circuit.measured_conductance_S(result.vectors)[0])


def _pulse(engine, circuit, g, pulse):
    alters = {**circuit.state_alters(g), **circuit.pulse_alters(pulse)}
    result = engine.run(circuit.analysis(pulse), circuit.vectors, alters=alters, step="pulse")
    assert result.vectors["pg"][0] == 0.0  # the read voltage (generator DC value) never leaks into .tran
    return float(result.vectors[STATE_NODE][-1])


# ---- (a) drift read ---------------------------------------------------------------------------------
@pytest.mark.parametrize("model", [MODEL, MODEL.replace(g_min_S=0.5e-6, g_max_S=40e-6)],
                         ids=["default", "finite_reset_window"])
def test_op_read_follows_the_drift_law(engine, model):
    device = model.pulse_params
    circuit = PcmProgrammingCircuit(model)
    engine.load(circuit.name, circuit.netlist(0.0, SET))
    for g in (0.0, 0.05, 0.4, 1.0):
        g_prog = float(pcm.conductance_S(device, g))
        for nu in (0.0, 0.049, 0.1):
            for t_s in (0.0, 1.0, 3600.0, DAY_S, 365 * DAY_S):
                state, g_read = _read(engine, circuit, g, nu, t_s)
                expected = float(pcm.drift(P, g_prog, nu, t_s))
                assert state == pytest.approx(g, abs=1e-12)
                assert g_read == pytest.approx(expected, rel=1e-6, abs=1e-15)
                assert expected == pytest.approx(g_prog * float(pcm.drift_factor(P, nu, t_s)), rel=1e-12)
    # The read-noise factor (sampled in NumPy) multiplies the drifted conductance.
    _, g_read = _read(engine, circuit, 0.4, 0.06, 3600.0, k_read=0.93)
    assert g_read == pytest.approx(0.93 * float(pcm.drift(P, pcm.conductance_S(device, 0.4), 0.06, 3600.0)),
                                   rel=1e-6)


# ---- (b) SET and RESET pulse trains -------------------------------------------------------------------
@pytest.mark.parametrize("g0", [0.0, 0.3, 0.7, 1.0])
def test_set_then_reset_trains_agree_with_numpy(engine, g0):
    circuit = PcmProgrammingCircuit()
    engine.load(circuit.name, circuit.netlist(0.0, SET))
    r_series = circuit.path.r_series_ohm
    g_spice = g_numpy = g0
    history = []
    for pulse in [SET] * 10 + [RESET] * 10:
        g_spice = _pulse(engine, circuit, g_spice, pulse)
        g_numpy = float(pcm.state_after_pulse(PP, g_numpy, pulse.amplitude_V, pulse.width_s,
                                              pulse.edge_s, r_series))
        assert abs(g_spice - g_numpy) <= 0.01
        history.append(g_spice)
    set_part, reset_part = np.array([g0] + history[:10]), np.array(history[9:])
    # SET crystallises (at g = 1 it may sink to its equilibrium 1 − O(1e-6): the RESET tail),
    # RESET amorphises, down near the RESET end.
    assert np.all(np.diff(set_part) >= -1e-5)
    assert np.all(np.diff(reset_part) < 0)
    assert history[9] > max(g0, 0.75) - 1e-5 and history[-1] < 0.03


def test_slow_falling_edge_recrystallises_in_spice_and_numpy(engine):
    # Our model's melt-quench picture: a RESET that falls slowly spends time in the SET window.
    circuit = PcmProgrammingCircuit()
    engine.load(circuit.name, circuit.netlist(0.0, RESET))
    fast, slow = PulseSpec(2.0, 50e-9, 2e-9), PulseSpec(2.0, 50e-9, 50e-9)
    results = {}
    for label, pulse in (("fast", fast), ("slow", slow)):
        g_spice = _pulse(engine, circuit, 0.8, pulse)
        g_numpy = float(pcm.state_after_pulse(PP, 0.8, 2.0, pulse.width_s, pulse.edge_s,
                                              circuit.path.r_series_ohm))
        assert abs(g_spice - g_numpy) <= 0.01
        results[label] = g_spice
    assert results["fast"] < 0.01 < 0.03 < results["slow"]


def test_trajectory_inside_one_pulse_matches_lsoda(engine):
    circuit = PcmProgrammingCircuit()
    engine.load(circuit.name, circuit.netlist(0.0, SET))
    pulse = PulseSpec(1.1, 100e-9, 10e-9)
    result = engine.run(circuit.analysis(pulse), circuit.vectors,
                        alters={**circuit.state_alters(0.2), **circuit.pulse_alters(pulse)})
    corners = np.array((0.0,) + pulse.breakpoints_s() + (pulse.duration_s,))
    grid = np.union1d(corners, np.linspace(0.0, pulse.duration_s, 41))
    g, v_device, current = pcm.simulate_waveform(PP, 0.2, grid, pulse.source_voltage_V(grid),
                                                 circuit.path.r_series_ohm)
    t = result.vectors["time"]
    np.testing.assert_allclose(np.interp(grid, t, result.vectors[STATE_NODE]), g, atol=2e-3)
    np.testing.assert_allclose(np.interp(grid, t, result.vectors["top"] - result.vectors["bot"]),
                               v_device, atol=2e-3)


# ---- (c) the operating point reads the stored state ------------------------------------------------------
def test_op_returns_the_stored_state_not_an_equilibrium(engine):
    circuit = PcmProgrammingCircuit()
    engine.load(circuit.name, circuit.netlist(0.5, SET))
    for v_read, alters in ((PP.v_read_V, circuit.read_alters()), (1.5, {SOURCE: "dc=1.5"})):
        # 1.5 V sits inside the SET window: an ungated model's .op would land on this equilibrium.
        equilibrium = float(pcm.equilibrium_state(PP, v_read))
        for g in (0.0, 0.25, 0.6, 0.9):
            assert abs(equilibrium - g) > 0.05
            alters_g = {**circuit.state_alters(g), **circuit.input_alters({"nu": 0.0, "t_prog": 0.0}), **alters}
            result = engine.run("op", READ_VECTORS, alters=alters_g)
            assert float(result.vectors[STATE_NODE][0]) == pytest.approx(g, abs=1e-12)
            measured = float(circuit.measured_conductance_S(result.vectors)[0])
            assert measured == pytest.approx(float(pcm.conductance_S(PP, g)), rel=1e-6, abs=1e-15)


# ---- (d) invalid parameters --------------------------------------------------------------------------
@pytest.mark.parametrize("field,value", [
    ("g_max_S", -1e-6), ("g_min_S", 30e-6), ("v_set_V", 0.0), ("v_reset_V", 0.9),
    ("v_width_V", 0.0), ("v_width_V", float("nan")), ("tau_set_s", 0.0), ("tau_reset_s", -1e-9),
    ("tau_reset_s", float("inf")), ("v_read_V", 1.2), ("v_set_V", True),
])
def test_invalid_pulse_parameters_name_the_field(field, value):
    with pytest.raises(ConfigError, match=rf"pcm\.{field}"):
        PP.replace(**{field: value})


@pytest.mark.parametrize("call", [
    lambda c: c.state_alters(float("nan")), lambda c: c.state_alters(-0.1),
    lambda c: c.input_alters({"nu": float("nan")}), lambda c: c.input_alters({"t_prog": float("inf")}),
    lambda c: c.input_alters({"drift": 1.0}), lambda c: c.read_alters(11.0),
    lambda c: c.netlist(0.2, SET, inputs={"nu": float("inf")}),
])
def test_invalid_circuit_values_are_rejected(call):
    with pytest.raises((ConfigError, NetlistError)):
        call(PcmProgrammingCircuit())


# ---- NumPy physics and the library -----------------------------------------------------------------------
def test_numpy_pulse_physics():
    # Rectangular pulse with no series resistance: the integrator is the closed form.
    exact = float(pcm.state_after_constant_voltage(PP, 0.3, 1.2, 100e-9))
    assert float(pcm.state_after_pulse(PP, 0.3, 1.2, 100e-9, 0.0)) == pytest.approx(exact, abs=1e-12)
    # Well above V_set (and below V_reset) SET saturates: g = 1 − (1 − g0) e^(−t/τ_set).
    assert exact == pytest.approx(1 - 0.7 * math.exp(-100e-9 / PP.tau_set_s), abs=1e-3)
    # A fine explicit Euler agrees with the closed form (dg/dt is the same equation).
    g, dt = 0.3, 100e-9 / 20_000
    for _ in range(20_000):
        g += dt * float(pcm.state_rate_per_s(PP, g, 1.2))
    assert g == pytest.approx(exact, abs=1e-5)
    # Unipolar: polarity does not matter; vectorised over states.
    states = np.array([0.0, 0.4, 1.0])
    np.testing.assert_allclose(pcm.state_after_pulse(PP, states, -1.2, 30e-9, 5e-9, 250.0),
                               pcm.state_after_pulse(PP, states, 1.2, 30e-9, 5e-9, 250.0), atol=1e-15)
    # A read held for 1 ms does not disturb; ten years unbiased moves g by < 1 %.
    assert float(pcm.state_after_constant_voltage(PP, 0.0, PP.v_read_V, 1e-3)) < 1e-9
    assert float(pcm.state_after_constant_voltage(PP, 0.0, 0.0, 10 * 365 * DAY_S)) < 0.01
    # Series divider: V_device = V_source/(1 + R_s G).
    assert float(pcm.device_voltage_V(PP, 1.0, 1.0, 4e4)) == pytest.approx(0.5)


def test_library_text_is_the_subcircuit():
    text = library_texts()["pcm.lib"]
    assert ".subckt pcm p n params: g0=0 nu=0 t_prog=0 k_read=1" in text
    assert text.rstrip().endswith(".ends pcm")
