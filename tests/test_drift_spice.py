"""Drift on the 9-3-1 PCM circuit, in real ngspice: output variance over drift draws against the
analytic variance, four-device cells written by the chip and read in SPICE against the surrogate,
and the chip-in-the-loop drift-regularized trainer."""

from __future__ import annotations

import numpy as np
import pytest

from circuitnn.chip.protocol import ChipSnapshot
from circuitnn.chip.spice_chip import SpiceChip
from circuitnn.chip.surrogate_chip import SurrogateChip
from circuitnn.circuits.crossbar import Crossbar, CrossbarSpec, LayerSpec
from circuitnn.data.patterns import make_dataset
from circuitnn.experiments.config import load_config
from circuitnn.networks import programming as wp
from circuitnn.training import drift_regularized as chip_drift
from circuitnn.training import mapping
from circuitnn.training.software import train_default
from circuitnn.training.tuning import tune_all

DAY_S = 86400.0


@pytest.fixture(scope="module")
def pcm_circuit():
    config = load_config(medium_name="PCM")
    crossbar = Crossbar(config.crossbar_spec())
    trained = train_default(config.software_training())
    states = mapping.target_states(trained.weights, crossbar)
    X, y = make_dataset(1, 0.0, np.random.default_rng(0))
    return config, crossbar, trained, states, X[:2], y[:2]


def test_spice_output_variance_over_drift_draws_matches_the_analytic_variance(pcm_circuit):
    """120 ν draws on 3 SpiceChips (seeds 0-2), read 1 day after programming, read noise off. The
    analytic first-order variance agrees within 15 % plus 2 Monte-Carlo standard errors (fixed seeds)."""
    config, crossbar, _, states, X, _ = pcm_circuit
    samples = []
    for seed in range(3):
        with SpiceChip(crossbar, states, config.programming, config.timing, seed=seed) as chip:
            samples.append(chip_drift.chip_output_draws(chip, states, X, (DAY_S,), 40))
            assert chip.states == pytest.approx(states)   # loading programs, it does not move the states
    samples = np.concatenate(samples)[:, 0]
    variance, error = chip_drift.variance_with_error(samples)
    analytic = chip_drift.analytic_output_variance(crossbar, crossbar.spec.device.conductance_S(states), X, DAY_S)
    ratio, ratio_error = variance / analytic["first_order"], error / analytic["first_order"]
    assert np.all(np.abs(ratio - 1.0) <= 0.15 + 2 * ratio_error), (ratio, ratio_error)
    # the drift moves the mean output as the software model at the median drifted conductances says
    assert samples.mean(axis=0) == pytest.approx(analytic["median_output"], abs=0.03)
    # and without drift exponents there is nothing to spread: a chip read right after programming
    with SpiceChip(crossbar, states, config.programming, config.timing, seed=9) as chip:
        at_zero = chip_drift.chip_output_draws(chip, states, X, (0.0,), 3)
    assert np.ptp(at_zero, axis=0).max() < 1e-9


def test_four_device_cells_written_by_the_chip_read_the_same_in_spice_and_on_the_surrogate():
    config = load_config(medium_name="PCM")
    base = config.crossbar_spec()
    device = base.device
    spec = CrossbarSpec(name="cells", device=device, layers=(LayerSpec(8, 1, base.layers[0].neuron),),
                        v_read_V=base.v_read_V, r_driver_ohm=base.r_driver_ohm, r_line_ohm=base.r_line_ohm,
                        r_sense_ohm=base.r_sense_ohm, r_switch_on_ohm=base.r_switch_on_ohm)
    crossbar = Crossbar(spec)
    strategy = wp.dual_pair()
    weights = np.array([-0.3, 0.8])
    g = strategy.conductances(weights).T.reshape(-1)
    targets = np.maximum(g * (device.g_max_S - device.g_min_S), 2 * config.tuning.tolerance_floor_S)
    start = np.full(crossbar.n_devices, 0.5)
    with SpiceChip(crossbar, start, config.programming, config.timing, seed=1) as chip:
        tunings = tune_all(chip, targets, config.tuning)
        assert all(t.converged for t in tunings)
        snapshot = chip.snapshot()
        surrogate = SurrogateChip(crossbar, start, config.programming, config.timing, seed=1)
        state = {**snapshot.state, "rngs": {**surrogate.snapshot().state["rngs"], **snapshot.state["rngs"]}}
        surrogate.restore(ChipSnapshot(snapshot.arrays, state))
        programmed_at = chip.clock_s
        for t in (1.0, DAY_S, 365 * DAY_S):
            chip.clock_s = surrogate.clock_s = programmed_at + t
            spice = np.array([chip.read_device(i).conductance_S for i in range(8)])
            numpy = np.array([surrogate.read_device(i).conductance_S for i in range(8)])
            np.testing.assert_allclose(numpy, spice, rtol=1e-6)
        # right after writing, the cells hold the weights within the verify tolerance (relative to full scale)
        chip.clock_s = programmed_at + 1.0
        read = np.array([chip.read_device(i).conductance_S for i in range(8)])
        cells = read.reshape(2, 4).T / (device.g_max_S - device.g_min_S)
        assert strategy.weights(cells) == pytest.approx(weights, abs=0.1)


def test_chip_in_the_loop_trainer_lowers_the_drift_penalty(pcm_circuit):
    """Eight SPSA steps on the surrogate chip (the same Chip-protocol code SPICE runs): the output
    variance one day after programming falls, measured on fresh draws."""
    config, crossbar, trained, states, X, _ = pcm_circuit
    X_train, y_train = make_dataset(10, 0.0, np.random.default_rng(1))
    settings = chip_drift.ChipDriftTrainingConfig(steps=8, draws=4)
    with SurrogateChip(crossbar, states, config.programming, config.timing, seed=3) as chip:
        result = chip_drift.train_with_chip_drift_penalty(chip, trained.weights, X_train, y_train, settings, X)
    with SurrogateChip(crossbar, states, config.programming, config.timing, seed=11) as chip:
        before = chip_drift.chip_drift_penalty(chip, trained.weights, X, DAY_S, 200)
        after = chip_drift.chip_drift_penalty(chip, result.weights, X, DAY_S, 200)
    assert after < 0.6 * before
    assert result.loss.shape == (8,) and result.loss.max() < 0.05   # the task is still solved
    assert np.all(np.isfinite(result.penalty))


def test_drift_regularized_trainer_behind_the_trainer_protocol(pcm_circuit):
    """Selected by name, fine-tunes on the chip, then write-verifies: the chip's ledger holds the
    write-verify only (the in-loop evaluations are put back), every device within tolerance."""
    from circuitnn.training.trainer import ChipTask, trainer

    config, crossbar, trained, states, X, y = pcm_circuit
    X_train, y_train = make_dataset(10, 0.0, np.random.default_rng(1))
    cls = trainer("drift-regularized")
    settings = chip_drift.ChipDriftTrainingConfig(steps=3, draws=2)
    task = ChipTask(trained.weights, mapping.weights_to_conductances(trained.weights, crossbar), X_train, y_train,
                    X_train, y_train)
    checkpoints = []
    start = np.full(crossbar.n_devices, 0.5)
    with SurrogateChip(crossbar, start, config.programming, config.timing, seed=2) as chip:
        outcome = cls(settings, config.tuning, 0).train(chip, task, "noreset", None, checkpoints.append)
        assert chip.ledger.totals()["pulses"] == sum(outcome.tables["devices"]["set_pulses"]) + sum(
            outcome.tables["devices"]["reset_pulses"])
    assert outcome.summary["converged_devices"] == crossbar.n_devices
    assert len(outcome.tables["drift_fine_tuning"]["penalty"]) == 3
    assert checkpoints and "w0" in checkpoints[-1].arrays
