"""The device-model contract, as one test suite every model passes on both chip backends.

Use: subclass ``DeviceContract`` in a test module and give it a ``model`` fixture (and, for a model
without a preset file, ``programming``). ``test_device_contract.py`` runs it over every registered
model; a new model file in ``circuitnn/devices/`` is picked up there by being registered.

What it holds every model to:
* the NumPy physics: conductance and state are inverse and monotone, pulses keep the state in its
  bounds, SET raises and RESET lowers it, monotonically in width and amplitude, and a pulse's
  energies equal ∫V·I along an independent reference integration (``base.simulate_waveform``);
* the SPICE form renders through ``circuits/netlist.py`` and ``.op`` reads back stored states;
* SPICE and NumPy agree: the same pulse trains on ``SpiceChip`` and ``SurrogateChip`` end in the
  same states with the same energies, and verify reads and inference give the same currents;
* the preset's claims: retention over its stated time at 0 V (on both chips), and reads at the
  model's largest safe read voltage leave the state alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from circuitnn.chip.spice_chip import SpiceChip
from circuitnn.chip.surrogate_chip import SurrogateChip
from circuitnn.circuits.crossbar import Crossbar
from circuitnn.circuits.default import default_spec
from circuitnn.circuits.netlist import Netlist, subcircuit_lines
from circuitnn.circuits.program import ProgrammingCircuit, ProgrammingPath, PulseSpec
from circuitnn.devices.base import DeviceModel, integrate_waveform

PATH = ProgrammingPath()


@dataclass(frozen=True)
class Programming:
    """How the model's preset programs a device: SET and RESET pulses, and its read voltage."""

    set_amplitude_V: float
    reset_amplitude_V: float
    width_s: float
    reset_width_s: float
    edge_s: float
    v_read_V: float


def preset_programming(model: DeviceModel) -> Programming:
    from circuitnn.experiments.config import load_config

    config = load_config(medium_name=model.medium)
    t = config.tuning
    return Programming(t.set_amplitude_V, t.reset_amplitude_V, t.pulse_width_s,
                       t.reset_pulse_width_s or t.pulse_width_s, t.edge_s, config.circuit.v_read_V)


def _chip(backend: str, model: DeviceModel, states, v_read_V: float):
    crossbar = Crossbar(default_spec(model, v_read_V=v_read_V))
    if backend == "spice":
        return SpiceChip(crossbar, states, PATH, seed=3)
    return SurrogateChip(crossbar, states, PATH, seed=3)


class DeviceContract:
    """Every test takes the ``model`` fixture; chip tests also ``backend`` (both chips)."""

    @pytest.fixture
    def programming(self, model) -> Programming:
        return preset_programming(model)

    @pytest.fixture(params=["spice", "surrogate"])
    def backend(self, request) -> str:
        return request.param

    # -- NumPy physics --------------------------------------------------------------------------------
    def test_conductance_and_state_are_inverse_and_monotone(self, model):
        low, high = model.state_bounds
        x = np.linspace(low, high, 41)
        g = model.conductance_S(x)
        assert model.g_low_S < model.g_high_S
        assert g[0] == pytest.approx(model.g_low_S, rel=1e-12, abs=1e-18)
        assert g[-1] == pytest.approx(model.g_high_S, rel=1e-12)
        assert np.all(np.diff(g) > 0)
        np.testing.assert_allclose(model.state_from_conductance(g), x, atol=1e-12)
        # A per-device window moves both ends.
        np.testing.assert_allclose(model.conductance_S(np.array([low, high]), 2 * model.g_low_S, 2 * model.g_high_S),
                                   [2 * model.g_low_S, 2 * model.g_high_S], rtol=1e-12, atol=1e-18)
        # The device is linear at fixed state (what the surrogate's array solve needs) when it says so.
        if model.linear_at_fixed_state:
            for state in (low, 0.5 * (low + high), high):
                np.testing.assert_allclose(model.current_A(state, np.array([-0.3, 0.1, 0.2])),
                                           np.array([-0.3, 0.1, 0.2]) * model.conductance_S(state), rtol=1e-12)

    def test_pulses_keep_the_state_in_bounds(self, model, programming):
        low, high = model.state_bounds
        x0 = np.array([low, high, 0.5 * (low + high)])
        for amplitude in (programming.set_amplitude_V, programming.reset_amplitude_V,
                          3 * programming.set_amplitude_V, 3 * programming.reset_amplitude_V):
            for width in (programming.width_s, 100 * programming.width_s):
                response = model.pulse_response(x0, amplitude, width, programming.edge_s, PATH.r_series_ohm)
                assert np.all((response.x_after >= low) & (response.x_after <= high))
                assert np.all(response.energy_device_J >= 0)
                assert np.all(response.energy_source_J >= response.energy_device_J)

    def test_set_raises_reset_lowers_monotone_in_width_and_amplitude(self, model, programming):
        middle = 0.5 * sum(model.state_bounds)
        widths = programming.width_s * np.array([0.25, 0.5, 1.0, 2.0, 4.0])
        for amplitude, sign, width in ((programming.set_amplitude_V, 1, programming.width_s),
                                       (programming.reset_amplitude_V, -1, programming.reset_width_s)):
            moved = model.pulse_response(np.full(5, middle), amplitude, width * widths / programming.width_s,
                                         programming.edge_s, PATH.r_series_ohm).x_after
            assert np.all(sign * (moved - middle) > 0), "a SET pulse must raise, a RESET pulse lower the state"
            assert np.all(sign * np.diff(moved) >= -1e-9), "longer pulses move the state at least as far"
            # Near the preset's amplitude (a PCM SET pulse far above it melts the cell instead).
            scales = np.array([0.9, 1.0, 1.05, 1.1])
            stronger = model.pulse_response(np.full(4, middle), amplitude * scales, width, programming.edge_s,
                                            PATH.r_series_ohm).x_after
            assert np.all(sign * np.diff(stronger) >= -1e-9), "stronger pulses move the state at least as far"

    def test_pulse_energy_is_the_integral_of_v_times_i(self, model, programming):
        for amplitude, width in ((programming.set_amplitude_V, programming.width_s),
                                 (programming.reset_amplitude_V, programming.reset_width_s)):
            pulse = PulseSpec(amplitude, width, programming.edge_s)
            corners = np.array([0.0, *pulse.breakpoints_s(), pulse.duration_s])
            for x0 in (0.2, 0.7):
                response = model.pulse_response(x0, amplitude, width, pulse.edge_s, PATH.r_series_ohm)
                x, e_device, e_source = integrate_waveform(model, x0, corners, pulse.source_voltage_V(corners),
                                                          PATH.r_series_ohm)
                assert float(response.x_after) == pytest.approx(x, abs=1e-4)
                assert float(response.energy_device_J) == pytest.approx(e_device, rel=1e-3)
                assert float(response.energy_source_J) == pytest.approx(e_source, rel=1e-3)

    def test_retention_as_the_preset_claims(self, model):
        claim = model.retention
        low, high = model.state_bounds
        x0 = np.array([low, 0.25 * (3 * low + high), 0.5 * (low + high), high])
        change = np.abs(model.state_after_constant_voltage(x0, 0.0, claim.duration_s) - x0)
        if claim.volatile:
            assert change.max() >= claim.max_state_change
        else:
            assert change.max() <= claim.max_state_change

    def test_reads_at_the_safe_voltage_leave_the_state_alone(self, model):
        v = model.max_read_voltage_V()
        assert v > 0
        low, high = model.state_bounds
        x0 = np.linspace(low, high, 11)
        # A 1 ms read moves the state by < 1e-3, or by no more than twice as much as resting moves a
        # device at its most volatile (a volatile model).
        rested = np.max(np.abs(model.state_after_constant_voltage(x0, 0.0, 1e-3) - x0))
        for polarity in (1, -1):
            read = model.state_after_constant_voltage(x0, polarity * v, 1e-3)
            assert np.max(np.abs(read - x0)) <= max(1e-3, 2.02 * rested)

    # -- the SPICE form ----------------------------------------------------------------------------------
    def test_subcircuit_renders_and_names_its_inputs(self, model):
        sub = model.spice_subcircuit()
        lines = subcircuit_lines(sub)
        assert lines[-1] == f".ends {sub.name}"
        assert not any(line.lstrip().startswith(".") and not line.startswith((".subckt", ".ends")) for line in lines)
        net = Netlist("contract")
        net.device("xdut", ["a", "0"], model, model.instance_values(0.5))
        assert net.lines[0].startswith(f"xdut a 0 {sub.name} {sub.state_parameter}=0.5")

    def test_op_reads_back_the_stored_state(self, model, programming, engine):
        crossbar = Crossbar(default_spec(model, v_read_V=programming.v_read_V))
        low, high = model.state_bounds
        states = np.random.default_rng(1).uniform(low, high, crossbar.n_devices)
        engine.load(crossbar.spec.name, crossbar.netlist(states, np.ones(crossbar.n_inputs)))
        result = engine.run("op", [site.state_node for site in crossbar.sites], step="contract: op read-back")
        np.testing.assert_allclose([result.vectors[site.state_node][0] for site in crossbar.sites], states, atol=1e-9)
        circuit = ProgrammingCircuit(model, PATH, name="contract_program", v_read_V=programming.v_read_V)
        engine.load(circuit.name, circuit.netlist(0.3, PulseSpec(programming.set_amplitude_V, programming.width_s,
                                                                 programming.edge_s)))
        for x in (low, 0.37, high):
            result = engine.run("op", ("top", "bot", circuit.state_node),
                                alters={**circuit.state_alters(x), **circuit.read_alters()})
            assert result.vectors[circuit.state_node][0] == pytest.approx(x, abs=1e-9)
            g = float(circuit.measured_conductance_S(result.vectors)[0])
            assert g == pytest.approx(float(model.conductance_S(x)), rel=1e-6, abs=1e-15)

    def test_an_operating_point_does_not_depend_on_the_runs_before_it(self, model, programming, engine):
        """What lets the engine solve a repeated test image once: the array's operating point is
        the same, bit for bit, whatever was solved before it (ngspice starts every ``op`` afresh)."""
        crossbar = Crossbar(default_spec(model, v_read_V=programming.v_read_V))
        low, high = model.state_bounds
        rng = np.random.default_rng(6)
        states = rng.uniform(low, high, crossbar.n_devices)
        inputs = rng.integers(0, 2, (12, crossbar.n_inputs)).astype(float)
        inputs[[4, 7, 11]] = inputs[0]
        inputs[9] = inputs[8]
        names = crossbar.neuron_nodes() + [f"{crossbar.input_source(0)}#branch"]
        engine.load(crossbar.spec.name, crossbar.netlist(states, np.zeros(crossbar.n_inputs)))
        forward = [[r.vectors[n][0] for n in names]
                   for r in engine.run_many("op", names, crossbar.input_alter_sets(inputs))]
        backward = [[r.vectors[n][0] for n in names]
                    for r in engine.run_many("op", names, crossbar.input_alter_sets(inputs[::-1]))]
        np.testing.assert_array_equal(np.array(forward), np.array(backward)[::-1])
        for k in (4, 7, 11):
            np.testing.assert_array_equal(forward[k], forward[0])
        table, solve_s = engine.run_table(names, crossbar.input_alter_sets(inputs))
        np.testing.assert_array_equal(table, np.array(forward))
        assert np.count_nonzero(solve_s) == 12 - 3   # rows 4 and 7 reuse row 0, row 9 row 8; the last is solved

    # -- SPICE and NumPy agree, on both chips -----------------------------------------------------------
    def test_spice_and_numpy_agree_on_pulse_trains_reads_and_inference(self, model, programming):
        low, high = model.state_bounds
        states = np.random.default_rng(2).uniform(low, high, 30)
        chips = [_chip(backend, model, states, programming.v_read_V) for backend in ("spice", "surrogate")]
        try:
            set_pulse = PulseSpec(programming.set_amplitude_V, programming.width_s, programming.edge_s)
            reset_pulse = PulseSpec(programming.reset_amplitude_V, programming.reset_width_s, programming.edge_s)
            train = [set_pulse] * 8 + [reset_pulse] * 8
            results = [[chip.pulse_device(3, pulse) for pulse in train] for chip in chips]
            spice, surrogate = (np.array([e.x_after for e in r]) for r in results)
            assert np.max(np.abs(spice - surrogate)) <= 0.01
            for a, b in zip(*results):
                assert a.energy_device_J == pytest.approx(b.energy_device_J, rel=0.02)
                assert a.energy_total_J == pytest.approx(b.energy_total_J, rel=0.02)
            # Same states on both (what SPICE reached): verify reads and the array's currents agree.
            reached = chips[0].states
            for chip in chips:
                chip.load_states(reached)
            reads = [[chip.read_device(i) for i in (0, 3, 29)] for chip in chips]
            for a, b in zip(*reads):
                assert a.current_A == pytest.approx(b.current_A, rel=1e-6)
                assert a.conductance_S == pytest.approx(b.conductance_S, rel=1e-6)
            inputs = np.random.default_rng(4).integers(0, 2, (6, 9)).astype(float)
            currents = [np.concatenate(chip.infer(inputs, read_noise=False).column_currents_A, axis=1) for chip in chips]
            # Relative 1e-6, or ngspice's own current tolerance (abstol 1e-12 A) for tiny reads.
            scale = np.max(np.abs(currents[0]))
            assert np.max(np.abs(currents[0] - currents[1])) <= max(1e-6 * scale, 1e-11)
            assert chips[0].clock_s == pytest.approx(chips[1].clock_s, rel=1e-12)
        finally:
            for chip in chips:
                chip.close()

    def test_chip_retention_as_the_preset_claims(self, model, programming, backend):
        claim = model.retention
        low, high = model.state_bounds
        states = np.linspace(low, high, 30)
        with _chip(backend, model, states, programming.v_read_V) as chip:
            picked = [0, 15, 29]
            after = np.array([chip.rest_device(i, claim.duration_s) for i in picked])
        change = np.abs(after - states[picked])
        expected = np.abs(model.state_after_constant_voltage(states[picked], 0.0, claim.duration_s) - states[picked])
        np.testing.assert_allclose(change, expected, atol=2e-3)
        if claim.volatile:
            assert change.max() >= claim.max_state_change
        else:
            assert change.max() <= claim.max_state_change

    def test_snapshot_restores_the_chip_exactly(self, model, programming, backend):
        low, high = model.state_bounds
        states = np.random.default_rng(5).uniform(low, high, 30)
        set_pulse = PulseSpec(programming.set_amplitude_V, programming.width_s, programming.edge_s)
        with _chip(backend, model, states, programming.v_read_V) as chip:
            chip.pulse_device(1, set_pulse)
            saved = chip.snapshot()
            first = [chip.read_device(2).conductance_S, chip.pulse_device(2, set_pulse).x_after,
                     chip.infer(np.ones((2, 9))).outputs.tolist(), chip.clock_s]
            chip.restore(saved)
            again = [chip.read_device(2).conductance_S, chip.pulse_device(2, set_pulse).x_after,
                     chip.infer(np.ones((2, 9))).outputs.tolist(), chip.clock_s]
        assert first == again
