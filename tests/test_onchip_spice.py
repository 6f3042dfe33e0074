"""On-chip training with SPICE in the loop: write-verify tuning and the acceptance criteria."""

import numpy as np
import pytest

from circuitnn.chip.spice_chip import SpiceChip
from circuitnn.circuits.crossbar import Crossbar
from circuitnn.experiments.config import load_config
from circuitnn.devices import msdc
from circuitnn.devices.media import MEDIA
from circuitnn.errors import ConfigError
from circuitnn.experiments import onchip
from circuitnn.training.tuning import TuningConfig, program_to_target


def _chip(config, states=None):
    crossbar = Crossbar(config.crossbar_spec())
    states = onchip.initial_states(config, crossbar.n_devices) if states is None else states
    return SpiceChip(crossbar, states, config.programming, config.timing)


@pytest.fixture(scope="module")
def results():
    """Every medium, with and without the initial reset, on the presets' fixed seeds."""
    out = {}
    for name in MEDIA:
        config = load_config(None, name)
        with _chip(config) as chip:
            task = onchip.make_task(config, chip.crossbar)
            for reset in (True, False):
                chip.load_states(onchip.initial_states(config, chip.crossbar.n_devices))
                chip.ledger.clear()
                out[name, reset] = onchip.train_on_chip(config, chip, task, reset).summary()
    return out


@pytest.mark.parametrize("name", list(MEDIA))
def test_spice_in_the_loop_training_reaches_90_percent(results, name):
    for reset in (True, False):
        assert results[name, reset]["chip_accuracy"] >= 0.90


@pytest.mark.parametrize("name", list(MEDIA))
def test_skipping_the_reset_saves_pulses_time_and_energy(results, name):
    with_reset, without = results[name, True], results[name, False]
    assert without["pulses"] < with_reset["pulses"]
    assert without["training_time_s"] < with_reset["training_time_s"]
    assert without["training_energy_total_J"] < with_reset["training_energy_total_J"]
    assert without["training_energy_device_J"] < with_reset["training_energy_device_J"]


def test_analog_media_reach_every_target_and_cr_trains_fastest(results):
    for name in ("W", "Cr"):
        assert results[name, False]["converged_devices"] == 30
        assert results[name, False]["max_relative_conductance_error"] <= 0.05
    fastest = min(MEDIA, key=lambda m: results[m, False]["training_time_s"])
    assert fastest == "Cr"  # the paper's finding, from our designed parameter sets


def test_retention_over_the_training_time(results):
    for summary in results.values():
        assert summary["retention_max_state_drift"] < 1e-3
        assert summary["retention_accuracy_after_rest"] == pytest.approx(summary["chip_accuracy"], abs=0.01)


def test_verify_read_measures_the_device_conductance():
    config = load_config(None, "W")
    with _chip(config, np.linspace(0.05, 0.95, 30)) as chip:
        for index in (0, 13, 29):
            read = chip.read_device(index)
            assert read.conductance_S == pytest.approx(chip.conductances_S()[index], rel=1e-6)
            assert read.energy_total_J > read.energy_device_J > 0
        assert chip.ledger.totals(("read",))["operations"] == 3


def test_one_device_reaches_its_target_within_tolerance():
    config = load_config(None, "Cr")
    device = config.device.params()
    target = float(msdc.conductance_S(device, 0.62))
    with _chip(config, np.full(30, 0.1)) as chip:
        result = program_to_target(chip, 4, target, config.tuning)
        assert result.converged and abs(result.relative_error) <= config.tuning.tolerance
        assert result.set_pulses > 0
        # Only the selected device changed.
        assert np.all(np.delete(chip.states, 4) == 0.1)
        # Energy and time in the ledger come from every pulse and read of that device.
        totals = chip.ledger.totals(device=4)
        assert totals["pulses"] == result.pulses
        assert totals["time_s"] >= result.pulses * (config.tuning.pulse_width_s + config.timing.controller_overhead_s)


def test_chip_inference_matches_the_software_network_with_programmed_weights():
    from circuitnn.training import mapping
    from circuitnn.training.software import forward

    config = load_config(None, "Cr")
    crossbar = Crossbar(config.crossbar_spec())
    task = onchip.make_task(config, crossbar)
    states = msdc.state_from_conductance(crossbar.spec.device, task.targets_S)
    with _chip(config, states) as chip:
        outputs = chip.infer(task.X_test[:20]).outputs[:, 0]
    software = forward(mapping.states_to_weights(states, crossbar), task.X_test[:20])[-1][:, 0]
    # The circuit adds line, driver and sense resistance and a finite-gain op-amp: a few mV.
    assert np.max(np.abs(outputs - software)) < 0.03
    assert np.array_equal(outputs > 0.5, software > 0.5)


@pytest.mark.parametrize("field,value", [("tolerance", 0.0), ("pulse_width_s", -1e-6), ("reset_amplitude_V", 0.0),
                                         ("min_pulse_width_s", 1.0), ("max_pulses", -3)])
def test_impossible_pulse_settings_name_the_field(field, value):
    with pytest.raises(ConfigError, match=f"tuning.{field}"):
        TuningConfig(**{field: value})


def test_target_outside_the_device_window_is_refused():
    from circuitnn.training import mapping

    config = load_config(None, "W")
    crossbar = Crossbar(config.crossbar_spec())
    weights = [np.zeros((9, 3)), np.zeros((3, 1))]
    weights[0][2, 1] = 50.0
    with pytest.raises(ConfigError, match=r"weights\[0\]\[2, 1\]"):
        mapping.weights_to_conductances(weights, crossbar)


def test_inference_in_the_chips_solve_order_equals_each_sample_solved_alone():
    # The chip solves a batch in an order that changes few inputs between operating points; every
    # row must be what that sample gives alone (bit for bit), energy included.
    config = load_config(None, "Cr")
    crossbar = Crossbar(config.crossbar_spec())
    X = np.random.default_rng(5).integers(0, 2, (12, crossbar.n_inputs)).astype(float)
    X[7] = X[2]
    with _chip(config) as chip:
        together = chip.infer(X, read_noise=False)
    alone = []
    for row in X:
        with _chip(config) as chip:
            alone.append(chip.infer(row[None, :], read_noise=False))
    np.testing.assert_array_equal(together.outputs, np.concatenate([a.outputs for a in alone]))
    for layer in range(len(together.hidden)):
        np.testing.assert_array_equal(together.hidden[layer], np.concatenate([a.hidden[layer] for a in alone]))
    assert together.energy_total_J == pytest.approx(sum(a.energy_total_J for a in alone), rel=1e-12)
    for layer in range(len(together.column_currents_A)):
        np.testing.assert_array_equal(together.column_currents_A[layer],
                                      np.concatenate([a.column_currents_A[layer] for a in alone]))


def test_a_bad_input_is_named_by_its_row_in_the_callers_inputs():
    config = load_config(None, "Cr")
    X = np.random.default_rng(6).integers(0, 2, (300, 9)).astype(float)
    X[270, 3] = 1.5   # in the second batch sent to the worker, and after the chip's reordering
    with _chip(config) as chip, pytest.raises(ConfigError, match=r"inputs\[270, 3\] = 1.5"):
        chip.infer(X)


def test_a_failed_inference_names_its_samples_counted_from_one(monkeypatch):
    from circuitnn.errors import SimulationError

    config = load_config(None, "Cr")
    X = np.zeros((300, 9))
    with _chip(config) as chip:
        chip.infer(X[:1])   # loads the array circuit
        real = Crossbar.input_alter_changes

        def one_bad(crossbar, inputs):
            sets = real(crossbar, inputs)
            if len(sets) < 256:   # the second batch: samples 257-300
                sets[14] = {**sets[14], "vnosuchsource": "dc=1"}
            return sets

        monkeypatch.setattr(Crossbar, "input_alter_changes", one_bad)
        with pytest.raises(SimulationError, match=r"inference of samples 257-300 of 300.*run 15 of 44"):
            chip.infer(X)
