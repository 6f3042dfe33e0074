"""The trainer protocol and perturb-and-measure learning (DGC), on both chips.

What is asserted: trainers are found by name and dispatched without knowing which; a trainer
defined here runs through the same experiment code; DGC's measured gradient is the chip's own
finite difference (trims program nothing); its designed pulses make the steps they are designed
for on every model; DGC learns the task from as-found states; SPICE and the surrogate learn the same
way; an interrupted DGC run resumes to exactly the uninterrupted result; per-neuron mismatch is the
same circuit in ngspice and in NumPy, and ex-situ mapping never sees it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pytest

from circuitnn.chip.spice_chip import SpiceChip
from circuitnn.chip.surrogate_chip import SurrogateChip
from circuitnn.circuits.crossbar import Crossbar
from circuitnn.cli import main
from circuitnn.data.patterns import make_dataset
from circuitnn.devices.base import presets
from circuitnn.errors import ConfigError
from circuitnn.experiments import onchip, reproduction
from circuitnn.experiments.config import load_config
from circuitnn.store import RunStore
from circuitnn.training import trainer as trainer_module
from circuitnn.training.dgc import cost, step_pulse
from circuitnn.training.mapping import binary_inputs
from circuitnn.training.trainer import Trainer, TrainingOutcome, register, trainers
from figure_checks import assert_legends_cover_no_data, assert_no_marker_hidden
from stop_after import interrupted_after


def dgc_config(medium: str = "Cr", seed: int = 0, variants=(), mismatch=None, **settings):
    config = load_config(medium_name=medium, trainer_kind="dgc")
    circuit = config.circuit
    if mismatch:
        circuit = dataclasses.replace(circuit, mismatch=dataclasses.replace(circuit.mismatch, **mismatch))
    return dataclasses.replace(config, seed=seed, circuit=circuit,
                               onchip=dataclasses.replace(config.onchip, n_test_per_class=40),
                               trainer=dataclasses.replace(config.trainer, settings=settings,
                                                           variants=tuple(variants)))


def surrogate(config):
    crossbar = Crossbar(config.crossbar_spec())
    states = onchip.initial_states(config, crossbar.n_devices)
    return crossbar, SurrogateChip(crossbar, states, config.programming, config.timing, seed=config.seed)


# -- the protocol ----------------------------------------------------------------------------------

def test_trainers_are_found_by_name_and_bad_choices_name_their_path(tmp_path):
    assert list(trainers())[:1] == ["write-verify"] and "dgc" in trainers()
    with pytest.raises(ConfigError, match=r"trainer\.kind"):
        load_config(medium_name="Cr", trainer_kind="backprop-by-magic")
    bad = tmp_path / "bad.toml"
    bad.write_text('[trainer]\nkind = "dgc"\n[trainer.settings]\nperturbation = 0.9\n')
    with pytest.raises(ConfigError, match=r"trainer\.settings\.perturbation"):
        load_config(bad)
    bad.write_text('[trainer.settings]\nsteps = 3\n')   # write-verify has no settings of its own
    with pytest.raises(ConfigError, match=r"trainer\.settings\.steps.*set trainer\.kind"):
        load_config(bad)
    bad.write_text('[trainer]\nkind = "dgc"\nvariants = ["dgc", "reset"]\n')
    with pytest.raises(ConfigError, match=r"trainer\.variants\[1\]"):
        load_config(bad)
    assert main(["train", "--medium", "Cr", "--trainer", "nope", "--store", str(tmp_path / "s")]) == 2


@dataclass(frozen=True)
class _HalfwaySettings:
    fraction: float = 0.5


class _Halfway(Trainer):
    """A trainer written here: move every device halfway to its target state in one pulse train."""

    name = "test-halfway"
    settings_type = _HalfwaySettings
    variants = ("once",)

    def train(self, chip, task, variant, resume, checkpoint):
        device = chip.crossbar.spec.device
        targets = device.state_from_conductance(task.targets_S)
        start = chip.states
        chip.load_states(start + self.settings.fraction * (targets - start))
        return TrainingOutcome(summary={"moved": float(np.abs(targets - start).sum() * self.settings.fraction)})


def test_a_trainer_defined_elsewhere_runs_through_the_same_experiment(tmp_path):
    register(_Halfway)
    try:
        config = dataclasses.replace(load_config(medium_name="Cr", trainer_kind="test-halfway"),
                                     onchip=dataclasses.replace(load_config().onchip, n_test_per_class=10,
                                                                conductance_errors=(0.0,), error_draws=1))
        assert reproduction.plan([config], "Cr") == ["Cr-once", "Cr-errors"]   # no heat-map: not ex-situ
        run = reproduction.run_reproduction(RunStore(tmp_path), [config], "train", progress=False,
                                            backend="surrogate")
        summary = run.read_json("parts/Cr-once/summary.json")
        assert summary["trainer"] == "test-halfway" and summary["moved"] > 0
        final = run.read_csv("parts/Cr-once/devices.csv")["final_state"]
        initial = run.read_csv("parts/Cr-once/devices.csv")["initial_state"]
        assert not np.allclose(final, initial)
    finally:
        trainer_module._REGISTRY.pop("test-halfway", None)


# -- DGC ----------------------------------------------------------------------------------------------

def test_a_trim_changes_only_what_inference_reads_and_its_gradient_is_the_chips_own():
    config = dgc_config("PCM")
    crossbar, chip = surrogate(config)
    X, y = make_dataset(8, 0.1, np.random.default_rng(0))
    before = chip.snapshot()
    delta = 0.03
    trimmed = []
    for k in (0, 7, 29):
        offset = np.zeros(crossbar.n_devices)
        offset[k] = delta
        chip.trim(offset, time_s=1e-5)
        trimmed.append(cost(chip.infer(X, read_noise=False).outputs, y))
        chip.trim(None)
    after = chip.snapshot()
    # Nothing was programmed: states, drift clocks and the values drawn at programming are unchanged.
    for key in ("states", "programmed_at_s", *[k for k in before.arrays if k.startswith("memory.")]):
        assert np.array_equal(before.arrays[key], after.arrays[key]), key
    # Setting the gates is charged (time, no pulse); clearing them without a time is free.
    assert chip.ledger.totals(("perturb",))["operations"] == 3 and chip.ledger.totals(("perturb",))["pulses"] == 0
    assert all(np.isfinite(trimmed)) and len(set(trimmed)) == 3
    # The same change made by writing the states (and its drift clock reset) reads the same array:
    # compare at the time-zero read of a freshly loaded chip on both sides.
    for k in (0, 7, 29):
        fresh = SurrogateChip(crossbar, chip.states, config.programming, config.timing, seed=1)
        offset = np.zeros(crossbar.n_devices)
        offset[k] = delta
        fresh.trim(offset)
        via_trim = cost(fresh.infer(X, read_noise=False).outputs, y)
        fresh.trim(None)
        fresh.load_states(np.clip(chip.states + offset, 0, 1))
        via_load = cost(fresh.infer(X, read_noise=False).outputs, y)
        assert via_trim == pytest.approx(via_load, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("medium", sorted(presets()))
def test_designed_step_pulses_make_their_step_at_mid_window(medium):
    config = load_config(medium_name=medium)
    device, t = config.device.params(), config.tuning
    for amplitude in (t.set_amplitude_V, t.reset_amplitude_V):
        for step in (0.01, 0.05):
            pulse, made = step_pulse(device, config.programming.r_series_ohm, amplitude, step, t.edge_s)
            x = float(device.pulse_response(0.5, pulse.amplitude_V, pulse.width_s, pulse.edge_s,
                                            config.programming.r_series_ohm).x_after)
            assert made == pytest.approx(step, abs=2e-3), (amplitude, step)
            assert abs(x - 0.5) == pytest.approx(made, rel=1e-9)
            # a pulse of the RESET kind lowers the state, of the SET kind raises it
            assert np.sign(x - 0.5) == (1 if amplitude == t.set_amplitude_V else -1)


def test_dgc_learns_the_task_from_as_found_states_on_the_surrogate():
    config = dgc_config("Cr", steps=20, eval_every=10)
    crossbar, chip = surrogate(config)
    task = onchip.make_task(config, crossbar)
    with chip:
        start = onchip.chip_accuracy(chip, task.X_test, task.y_test)[0]
        result = onchip.train_with(config, chip, task, config.make_trainer(), "dgc", check_retention=False)
    history = result.outcome.tables["history"]
    assert start < 0.6 and result.chip_accuracy >= 0.95 and result.all_inputs_accuracy >= 0.95
    assert history["batch_cost"][-1] < 0.6 * history["batch_cost"][0]
    # Sequential central differences: two measurements per device per step, nothing else charged.
    assert result.summary()["evaluations"] == 20 * 2 * crossbar.n_devices
    assert result.ledger.totals(("inference",))["operations"] >= 20 * 2 * crossbar.n_devices
    assert result.ledger.totals(("perturb",))["pulses"] == 20 * 3 * crossbar.n_devices


def test_dgc_in_spice_follows_the_surrogate():
    """Two learning steps in ngspice and on the surrogate from the same chip: the same costs and
    the same pulse decisions, to the agreement of their pulse physics."""
    config = dgc_config("Cr", steps=2, eval_every=1, batch_size=8)
    crossbar = Crossbar(config.crossbar_spec())
    task = onchip.make_task(config, crossbar)
    states = onchip.initial_states(config, crossbar.n_devices)
    histories = {}
    for name, make in (("spice", SpiceChip), ("surrogate", SurrogateChip)):
        with make(crossbar, states, config.programming, config.timing, seed=0) as chip:
            outcome = config.make_trainer().train(chip, task.chip_task(), "dgc", None, lambda state: None)
            histories[name] = (outcome.tables["history"], chip.states)
    (spice, x_spice), (numpy_, x_numpy) = histories["spice"], histories["surrogate"]
    assert np.allclose(spice["batch_cost"], numpy_["batch_cost"], atol=5e-3)
    assert abs(spice["pulses"][-1] - numpy_["pulses"][-1]) <= 4
    assert np.max(np.abs(x_spice - x_numpy)) < 0.02


class _SingleOperationsChip(SpiceChip):
    """A SpiceChip that runs operation sequences through its single operations, one round trip each."""

    def run_sequence(self, operations):
        return self.run_sequence_op_by_op(operations)


@pytest.mark.parametrize("settings", [dict(steps=1), dict(steps=2, estimator="spsa", difference="one-sided"),
                                      dict(steps=1, realisation="trim")])
def test_dgc_steps_as_operation_sequences_equal_single_operations(settings):
    """A DGC step's perturbations and measurements go to ngspice as operation sequences: the same
    histories, states and ledger, entry for entry, as one round trip per pulse and inference."""
    config = dgc_config("Cr", eval_every=1, batch_size=8, **settings)
    crossbar = Crossbar(config.crossbar_spec())
    task = onchip.make_task(config, crossbar)
    states = onchip.initial_states(config, crossbar.n_devices)
    runs = []
    for make in (SpiceChip, _SingleOperationsChip):
        with make(crossbar, states, config.programming, config.timing, seed=0) as chip:
            outcome = config.make_trainer().train(chip, task.chip_task(), "dgc", None, lambda state: None)
            runs.append((outcome.tables["history"], chip.states, chip.ledger.entries, chip.clock_s))
    (history, x, entries, clock), (history_1, x_1, entries_1, clock_1) = runs
    assert {k: list(v) for k, v in history.items()} == {k: list(v) for k, v in history_1.items()}
    assert np.array_equal(x, x_1) and entries == entries_1 and clock == clock_1
    assert {e.phase for e in entries} == {"perturb", "program", "inference"}


def test_an_interrupted_dgc_run_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    config = dataclasses.replace(
        dgc_config("PCM", steps=6, eval_every=2, variants=("finetune",)),
        onchip=dataclasses.replace(load_config().onchip, n_test_per_class=10, conductance_errors=(0.0,),
                                   error_draws=1))
    store = RunStore(tmp_path)
    whole = reproduction.run_reproduction(store, [config], "train", progress=False, backend="surrogate")
    # 30 devices of write-verify, then two learning checkpoints.
    with interrupted_after(33, monkeypatch), pytest.raises(KeyboardInterrupt):
        reproduction.run_reproduction(store, [config], "train", progress=False, backend="surrogate")
    stopped = next(info for info in store.list() if info.status == "interrupted")
    resumed = reproduction.run_reproduction(store, [config], "train", resume=stopped.id, progress=False)
    for rel in ("parts/PCM-finetune/history.csv", "parts/PCM-finetune/devices.csv",
                "parts/PCM-finetune/ledger.npz", "parts/PCM-finetune/summary.json"):
        assert (resumed.path / rel).read_bytes() == (whole.path / rel).read_bytes(), rel


# -- neuron-circuit mismatch -----------------------------------------------------------------------

MISMATCH = {"feedback_sigma": 0.05, "offset_sigma_V": 0.003, "gain_sigma": 0.05, "threshold_sigma_V": 0.03,
            "reference_sigma": 0.02}


def test_mismatched_neurons_are_the_same_circuit_in_ngspice_and_numpy():
    config = dgc_config("Cr", mismatch=MISMATCH)
    crossbar = Crossbar(config.crossbar_spec())
    assert crossbar.spec.has_mismatch and not crossbar.spec.nominal().has_mismatch
    states = np.random.default_rng(3).uniform(0, 1, crossbar.n_devices)
    inputs = binary_inputs(9)[::9]
    with SpiceChip(crossbar, states, config.programming, config.timing) as spice, \
            SurrogateChip(crossbar, states, config.programming, config.timing) as numpy_:
        a, b = spice.infer(inputs), numpy_.infer(inputs)
        nominal = SurrogateChip(Crossbar(crossbar.spec.nominal()), states, config.programming, config.timing)
        clean = nominal.infer(inputs)
    assert np.max(np.abs(a.outputs - b.outputs)) < 1e-9 and np.max(np.abs(a.hidden[0] - b.hidden[0])) < 1e-9
    assert np.max(np.abs(b.outputs - clean.outputs)) > 1e-2   # the mismatch does change the outputs
    # Another chip (instance) of the same config draws other neurons.
    other = dataclasses.replace(config, circuit=dataclasses.replace(
        config.circuit, mismatch=dataclasses.replace(config.circuit.mismatch, instance=1)))
    assert other.crossbar_spec().layers[0].mismatch != crossbar.spec.layers[0].mismatch


def test_ex_situ_targets_ignore_the_chips_mismatch():
    plain, mismatched = dgc_config("Cr"), dgc_config("Cr", mismatch=MISMATCH)
    targets = [onchip.make_task(c, Crossbar(c.crossbar_spec())).targets_S for c in (plain, mismatched)]
    assert np.array_equal(targets[0], targets[1])


def test_mismatch_study_cli_writes_a_report(tmp_path):
    config = tmp_path / "small.toml"
    config.write_text('preset = "Cr"\n[trainer.settings]\nsteps = 4\neval_every = 2\n'
                      '[onchip]\nn_test_per_class = 10\n')
    store = tmp_path / "runs"
    assert main(["mismatch", "--config", str(config), "--levels", "0,2", "--chips", "2", "--store", str(store),
                 "--quiet"]) == 0
    run_dir = next(path for path in store.iterdir() if path.is_dir())  # beside it: the index
    report = (run_dir / "report.md").read_text()
    assert "write-verify + DGC fine-tuning" in report and (run_dir / "figures" / "mismatch_accuracy.png").exists()
    rows = (run_dir / "tables" / "accuracy.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 3
    assert main(["mismatch", "--levels", "0,50", "--store", str(store)]) == 2


@pytest.mark.parametrize("high", [2.0, 10.0])
def test_mismatch_figure_shows_every_series_and_its_legend_covers_no_data(high):
    # Shaped like a two-chip study: DGC from as-found states scatters widely (its error bar at level 0
    # spans 40-100 %), write-verify and fine-tuning agree at 100 % on the clean chips; the levels'
    # spacing varies (--levels 0,2 or 0,10).
    from circuitnn.reports.mismatch_report import _figure

    values = {(0.0, "write-verify"): (1.0, 0.0, 1.0, 0.0), (0.0, "dgc"): (0.73, 0.33, 0.75, 0.35),
              (0.0, "finetune"): (1.0, 0.0, 1.0, 0.0), (high, "write-verify"): (0.65, 0.15, 0.925, 0.11),
              (high, "dgc"): (0.61, 0.16, 0.75, 0.35), (high, "finetune"): (0.73, 0.055, 1.0, 0.0)}
    table = [{"level": level, "method": method, "all_inputs_accuracy_mean": a, "all_inputs_accuracy_std": sa,
              "test_accuracy_mean": t, "test_accuracy_std": st}
             for (level, method), (a, sa, t, st) in values.items()]
    figure = _figure(table)
    for ax in figure.axes:
        assert_no_marker_hidden(ax)
    assert_legends_cover_no_data(figure)


@pytest.mark.parametrize("medium", sorted(presets()))
@pytest.mark.parametrize("realisation", ["pulse", "trim"])
def test_dgc_runs_on_every_device_model(medium, realisation):
    """Two learning steps per preset: the designed pulses are valid PulseSpecs for the model, every
    measurement and pulse is charged, and the states stay in bounds."""
    config = dgc_config(medium, steps=2, eval_every=2, realisation=realisation, difference="one-sided")
    crossbar, chip = surrogate(config)
    task = onchip.make_task(config, crossbar)
    with chip:
        outcome = config.make_trainer().train(chip, task.chip_task(), "dgc", None, lambda state: None)
        low, high = crossbar.spec.device.state_bounds
        assert np.all((chip.states >= low) & (chip.states <= high))
        perturb = chip.ledger.totals(("perturb",))
    n = crossbar.n_devices
    assert outcome.tables["history"]["evaluations"][-1] == 2 * (n + 1)   # one-sided: C0 and one per device
    assert perturb["pulses"] == (2 * 2 * n if realisation == "pulse" else 0)
    assert perturb["operations"] == 2 * 2 * n
