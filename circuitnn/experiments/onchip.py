"""On-chip training of the 9-3-1 network with SPICE in the loop (Eslami et al. 2024, §4 of the notes).

Software training → target conductances → write-verify tuning of each of the 30 devices through its
selection switch (with or without the initial reset pulse) → inference of the noisy test set through
the full array → accuracy, pulse counts, energy and time from the simulation. Plus the sweeps: the
conductance-error sweep, the training-noise × test-noise heat-map, and a retention check.

Everything here computes; storing is in ``experiments/stored.py``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..chip.ledger import Ledger
from ..chip.protocol import Chip
from ..circuits.crossbar import Crossbar
from .config import Config
from ..data.patterns import make_dataset
from ..training import mapping
from ..training.software import TrainedNetwork, accuracy, train_default
from ..training.tuning import DeviceTuning, tune_all

# The paper's published numbers (Eslami et al., arXiv 2408.14680, abstract): they stand beside ours
# in every report, labelled as the paper's.
PAPER = {
    "source": "Eslami et al. 2024, arXiv 2408.14680 (abstract)",
    "best_accuracy": 0.97,
    "cr_training_time_s": 2.4,
    "cr_training_energy_J": 18.9e-3,
    "tolerated_conductance_error": 0.10,
    "helpful_training_noise_below": 0.15,
}


@dataclass(frozen=True)
class Task:
    """The trained software network, its device targets and the test set of one configuration."""

    network: TrainedNetwork
    targets_S: np.ndarray       # (n_devices,) device conductance targets
    X_test: np.ndarray          # (n, 9) noisy test images
    y_test: np.ndarray          # (n,)
    software_accuracy: float


def make_task(config: Config, crossbar: Crossbar, training_noise: float | None = None) -> Task:
    """Train the software network (seeded) and map it to device targets."""
    settings = config.software_training()
    if training_noise is not None:
        settings = dataclasses.replace(settings, training_noise=training_noise)
    network = train_default(settings)
    if config.onchip.mapping == "circuit":
        targets = mapping.circuit_conductances(network.weights, crossbar, config.onchip.target_margin)
    else:
        targets = mapping.weights_to_conductances(network.weights, crossbar, config.onchip.target_margin)
    rng = np.random.default_rng([config.seed, 1])
    X, y = make_dataset(config.onchip.n_test_per_class, config.onchip.test_noise, rng)
    return Task(network, targets, X, y, accuracy(network.weights, X, y))


def initial_states(config: Config, n_devices: int) -> np.ndarray:
    """The devices' as-found states: seeded uniform in [low, high]."""
    o = config.onchip
    return np.random.default_rng([config.seed, 2]).uniform(o.initial_state_low, o.initial_state_high, n_devices)


def target_states(chip: Chip, targets_S) -> np.ndarray:
    """The states whose read conductances are the targets (in the device's state range)."""
    device = chip.crossbar.spec.device
    return np.clip(device.state_from_conductance(np.asarray(targets_S)), *device.state_bounds)


def measure_fidelity(chip: Chip, weights, states) -> dict:
    """What the chip computes at ``states`` against the software network, over every binary input
    (``mapping.fidelity``), read without read noise. The chip is left exactly as it was: its states,
    clock, ledger and noise streams are restored."""
    saved = chip.snapshot()
    try:
        chip.load_states(states)
        inputs = mapping.binary_inputs(chip.crossbar.n_inputs)
        result = chip.infer(inputs, read_noise=False)
        return mapping.fidelity(weights, [*result.hidden, result.outputs], inputs)
    finally:
        chip.restore(saved)


def chip_accuracy(chip: Chip, X, y) -> tuple[float, np.ndarray]:
    """Inference through the array: (accuracy, output activations (n,))."""
    outputs = chip.infer(X).outputs[:, 0]
    return float(np.mean((outputs > 0.5).astype(int) == y)), outputs


@dataclass
class OnChipResult:
    medium: str
    initial_reset: bool
    software_accuracy: float
    programmed_software_accuracy: float  # the software network with the weights the tuned circuit computes
    chip_accuracy: float                 # SPICE inference through the array
    targets_S: np.ndarray
    initial_states: np.ndarray
    final_states: np.ndarray
    final_S: np.ndarray
    tunings: list[DeviceTuning]
    ledger: Ledger
    chip_outputs: np.ndarray
    completed_at_s: np.ndarray           # training time at which each device was finished
    retention: dict = field(default_factory=dict)
    # What the chip computes over every binary input against the software network: at the mapped
    # targets ("mapping") and at the tuned states ("tuned"); see mapping.fidelity.
    fidelity: dict = field(default_factory=dict)

    def training_totals(self) -> dict[str, float]:
        """Time, energy and pulses of the whole tuning (reads, reset and program pulses)."""
        return self.ledger.totals(("read", "reset", "program"))

    def summary(self) -> dict:
        totals = self.training_totals()
        errors = np.array([t.relative_error for t in self.tunings])
        return {
            "medium": self.medium, "initial_reset": self.initial_reset,
            "software_accuracy": self.software_accuracy,
            "programmed_software_accuracy": self.programmed_software_accuracy,
            "chip_accuracy": self.chip_accuracy,
            "training_time_s": totals["time_s"],
            "training_energy_device_J": totals["energy_device_J"],
            "training_energy_total_J": totals["energy_total_J"],
            "pulses": totals["pulses"],
            "reads": self.ledger.totals(("read",))["operations"],
            "converged_devices": int(sum(t.converged for t in self.tunings)),
            "max_relative_conductance_error": float(np.max(np.abs(errors))),
            "inference_energy_J": self.ledger.totals(("inference",))["energy_total_J"],
            **{f"retention_{k}": v for k, v in self.retention.items() if np.isscalar(v)},
            **{f"fidelity_{stage}_{k}": v for stage, values in self.fidelity.items() for k, v in values.items()},
        }


@dataclass
class TuningProgress:
    """Where a tuning run stands: enough, with the chip's snapshot, to continue it exactly.

    ``initial_states`` are the as-found states; per tuned device its ``DeviceTuning``, the training
    time at which it was finished and its read conductance then (for retention and drift).
    """

    initial_states: np.ndarray
    tunings: dict[int, DeviceTuning] = field(default_factory=dict)
    completed_at_s: dict[int, float] = field(default_factory=dict)
    completed_S: dict[int, float] = field(default_factory=dict)

    def to_state(self) -> dict:
        """JSON-able (the arrays go separately: ``initial_states``)."""
        return {"tunings": [dataclasses.asdict(t) for t in self.tunings.values()],
                "completed_at_s": {str(k): v for k, v in self.completed_at_s.items()},
                "completed_S": {str(k): v for k, v in self.completed_S.items()}}

    @classmethod
    def from_state(cls, state: dict, initial_states) -> TuningProgress:
        return cls(np.asarray(initial_states, dtype=float),
                   {int(t["index"]): DeviceTuning(**t) for t in state["tunings"]},
                   {int(k): float(v) for k, v in state["completed_at_s"].items()},
                   {int(k): float(v) for k, v in state["completed_S"].items()})


def train_on_chip(config: Config, chip: Chip, task: Task, initial_reset: bool,
                  progress: TuningProgress | None = None,
                  on_device: Callable[[TuningProgress], None] | None = None,
                  check_retention: bool = True) -> OnChipResult:
    """Tune every device of ``chip`` to the task's targets, then run the test set through it.

    ``progress`` (from a checkpoint) holds the devices already tuned; the chip must then be restored
    to the snapshot taken with it, so the run continues exactly as if never interrupted.
    ``on_device(progress)`` is called after each device (checkpoints, progress bars).
    """
    progress = progress if progress is not None else TuningProgress(chip.states)
    fidelity = {"mapping": measure_fidelity(chip, task.network.weights, target_states(chip, task.targets_S))}
    tuning = dataclasses.replace(config.tuning, initial_reset=initial_reset)

    def record(result: DeviceTuning) -> None:
        progress.tunings[result.index] = result
        progress.completed_at_s[result.index] = chip.ledger.totals(("read", "reset", "program"))["time_s"]
        progress.completed_S[result.index] = float(chip.conductances_S()[result.index])
        if on_device is not None:
            on_device(progress)

    tunings = tune_all(chip, task.targets_S, tuning, done=dict(progress.tunings), on_device=record)
    final_states = chip.states
    fidelity["tuned"] = measure_fidelity(chip, task.network.weights, final_states)
    programmed = mapping.circuit_weights(chip.conductances_S(), chip.crossbar)
    accuracy_chip, outputs = chip_accuracy(chip, task.X_test, task.y_test)
    total_time = chip.ledger.totals(("read", "reset", "program"))["time_s"]
    times = np.array([progress.completed_at_s.get(i, 0.0) for i in range(len(tunings))])
    at_completion = np.array([progress.completed_S.get(i, np.nan) for i in range(len(tunings))])
    result = OnChipResult(
        medium=chip.crossbar.spec.device.medium, initial_reset=initial_reset,
        software_accuracy=task.software_accuracy,
        programmed_software_accuracy=accuracy(programmed, task.X_test, task.y_test),
        chip_accuracy=accuracy_chip, targets_S=task.targets_S, initial_states=progress.initial_states,
        final_states=final_states, final_S=chip.conductances_S(),
        tunings=tunings, ledger=chip.ledger, chip_outputs=outputs, completed_at_s=times, fidelity=fidelity)
    if check_retention:
        result.retention = retention_check(chip, task, times, total_time, at_completion)
    return result


def retention_check(chip: Chip, task: Task, completed_at_s: np.ndarray, total_time_s: float,
                    completed_S: np.ndarray | None = None) -> dict:
    """What a device's weight does between its tuning and the end of training.

    Each device rests unbiased from the moment it was tuned to the end of training: that rest is
    simulated (SPICE, or the surrogate's closed form) and the test set re-run. A model that ages
    (PCM) also drifts over that time: its read conductance at the end against the one right after
    it was tuned (``completed_S``) is the conductance drift. The chip is left exactly as it was.
    """
    saved = chip.snapshot()
    before = chip.states
    for index, finished in enumerate(completed_at_s):
        wait = max(total_time_s - float(finished), 0.0)
        if wait > 0:
            chip.rest_device(index, wait)
    after = chip.states
    at_end = chip.conductances_S()
    accuracy_after, _ = chip_accuracy(chip, task.X_test, task.y_test)
    chip.restore(saved)
    drift = after - before
    if completed_S is None:
        completed_S = np.full(len(drift), np.nan)
    conductance_drift = at_end / completed_S - 1.0
    known = np.isfinite(conductance_drift)
    worst = float(np.max(np.abs(conductance_drift[known]))) if known.any() else 0.0
    return {"max_state_drift": float(np.max(np.abs(drift))), "accuracy_after_rest": accuracy_after,
            "rest_time_s": float(total_time_s), "state_drift": drift,
            "max_conductance_drift": worst, "conductance_drift": conductance_drift}


def conductance_error_sweep(config: Config, chip: Chip, task: Task, programmed_states,
                            progress: Callable | None = None) -> dict[str, np.ndarray]:
    """Accuracy through the array when every programmed conductance is off by a relative error
    drawn from N(0, σ²) (clipped to the device window), for each σ in ``onchip.conductance_errors``."""
    device = chip.crossbar.spec.device
    g0 = device.conductance_S(np.asarray(programmed_states))
    rng = np.random.default_rng([config.seed, 3])
    sigmas = np.array(config.onchip.conductance_errors, dtype=float)
    draws = config.onchip.error_draws
    accuracies = np.zeros((len(sigmas), draws))
    for a, sigma in enumerate(sigmas):
        for d in range(draws if sigma > 0 else 1):
            g = np.clip(g0 * (1 + sigma * rng.standard_normal(g0.shape)), device.g_low_S, device.g_high_S)
            chip.load_states(np.clip(device.state_from_conductance(g), *device.state_bounds))
            accuracies[a, d] = chip_accuracy(chip, task.X_test, task.y_test)[0]
            if progress:
                progress()
        if sigma == 0:
            accuracies[a, :] = accuracies[a, 0]
    chip.load_states(programmed_states)
    return {"sigma": sigmas, "accuracy_mean": accuracies.mean(axis=1), "accuracy_std": accuracies.std(axis=1),
            "accuracy_draws": accuracies}


def noise_heatmap(config: Config, make_chip: Callable[[], Chip],
                  progress: Callable | None = None) -> dict[str, np.ndarray]:
    """Accuracy through the array for each (training noise, test noise): a network is trained per
    training-noise level, tuned on a chip (no initial reset), and tested at every test-noise level."""
    levels = np.array(config.onchip.noise_levels, dtype=float)
    grid = np.zeros((len(levels), len(levels)))
    software = np.zeros_like(grid)
    rng_tests = [np.random.default_rng([config.seed, 4, j]) for j in range(len(levels))]
    tests = [make_dataset(config.onchip.n_test_per_class, level, rng) for level, rng in zip(levels, rng_tests)]
    for i, train_noise in enumerate(levels):
        with make_chip() as chip:
            task = make_task(config, chip.crossbar, training_noise=float(train_noise))
            tune_all(chip, task.targets_S, dataclasses.replace(config.tuning, initial_reset=False))
            for j, (X, y) in enumerate(tests):
                grid[i, j] = chip_accuracy(chip, X, y)[0]
                software[i, j] = accuracy(task.network.weights, X, y)
                if progress:
                    progress()
    return {"training_noise": levels, "test_noise": levels, "chip_accuracy": grid, "software_accuracy": software}
