"""On-chip training of the 9-3-1 network with SPICE in the loop (Eslami et al. 2024, §4 of the notes).

Software training → target conductances (the task) → a trainer of ``circuitnn/training/`` on the
chip (write-verify of each of the 30 devices, or perturb-and-measure learning, ...) → inference of
the noisy test set and of every binary input through the full array → accuracy, pulse counts,
energy and time from the simulation. Plus the sweeps: the conductance-error sweep, the
training-noise × test-noise heat-map, and a retention check.

Everything here computes; storing is in ``experiments/reproduction.py``.
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
from ..training.trainer import ChipTask, Trainer, TrainerState, TrainingOutcome, all_inputs_accuracy, last_programmed
from ..training.tuning import tune_all
from ..training.write_verify import TuningProgress, WriteVerify

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
    """The trained software network, its device targets, a training set and the test set of one
    configuration."""

    network: TrainedNetwork
    targets_S: np.ndarray       # (n_devices,) device conductance targets
    X_test: np.ndarray          # (n, 9) noisy test images
    y_test: np.ndarray          # (n,)
    software_accuracy: float
    X_train: np.ndarray | None = None   # noisy training images for in-situ trainers
    y_train: np.ndarray | None = None

    def chip_task(self) -> ChipTask:
        return ChipTask(tuple(self.network.weights), self.targets_S, self.X_train, self.y_train,
                        self.X_test, self.y_test)


def make_task(config: Config, crossbar: Crossbar, training_noise: float | None = None) -> Task:
    """Train the software network (seeded) and map it to device targets."""
    settings = config.software_training()
    if training_noise is not None:
        settings = dataclasses.replace(settings, training_noise=training_noise)
    network = train_default(settings)
    # Mapped through the nominal circuit: a controller programming ex-situ targets cannot know its
    # chip's drawn neuron mismatch.
    nominal = Crossbar(crossbar.spec.nominal()) if crossbar.spec.has_mismatch else crossbar
    if config.onchip.mapping == "circuit":
        targets = mapping.circuit_conductances(network.weights, nominal, config.onchip.target_margin)
    else:
        targets = mapping.weights_to_conductances(network.weights, nominal, config.onchip.target_margin)
    rng = np.random.default_rng([config.seed, 1])
    X, y = make_dataset(config.onchip.n_test_per_class, config.onchip.test_noise, rng)
    X_train, y_train = make_dataset(settings.n_train_per_class, config.onchip.test_noise,
                                    np.random.default_rng([config.seed, 6]))
    return Task(network, targets, X, y, accuracy(network.weights, X, y), X_train, y_train)


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
    trainer: str
    variant: str
    software_accuracy: float
    programmed_software_accuracy: float  # the software network with the weights the trained circuit computes
    chip_accuracy: float                 # inference of the noisy test set through the array
    all_inputs_accuracy: float           # over every binary input with a nearest prototype
    targets_S: np.ndarray
    initial_states: np.ndarray
    final_states: np.ndarray
    final_S: np.ndarray
    outcome: TrainingOutcome
    training_totals: dict                # the ledger's totals when training ended
    ledger: Ledger
    chip_outputs: np.ndarray
    completed_at_s: np.ndarray           # training time of each device's last programming
    retention: dict = field(default_factory=dict)
    # What the chip computes over every binary input against the software network: at the mapped
    # targets ("mapping") and at the trained states ("tuned"); see mapping.fidelity.
    fidelity: dict = field(default_factory=dict)

    def summary(self) -> dict:
        totals = self.training_totals
        reads = self.ledger.totals(("read",))
        return {
            "medium": self.medium, "trainer": self.trainer, "variant": self.variant,
            "initial_reset": self.variant == "reset",
            "software_accuracy": self.software_accuracy,
            "programmed_software_accuracy": self.programmed_software_accuracy,
            "chip_accuracy": self.chip_accuracy,
            "all_inputs_accuracy": self.all_inputs_accuracy,
            "training_time_s": totals["time_s"],
            "training_energy_device_J": totals["energy_device_J"],
            "training_energy_total_J": totals["energy_total_J"],
            "pulses": totals["pulses"],
            "reads": reads["operations"],
            **self.outcome.summary,
            "inference_energy_J": self.ledger.totals(("inference",))["energy_total_J"],
            **{f"retention_{k}": v for k, v in self.retention.items() if np.isscalar(v)},
            **{f"fidelity_{stage}_{k}": v for stage, values in self.fidelity.items() for k, v in values.items()},
        }


def train_with(config: Config, chip: Chip, task: Task, trainer_: Trainer, variant: str,
               resume: TrainerState | None = None,
               checkpoint: Callable[[TrainerState], None] | None = None,
               check_retention: bool = True) -> OnChipResult:
    """Train ``chip`` with ``trainer_`` (variant ``variant``), then measure it: the noisy test set
    and every binary input through the array, what it computes against the software network, and
    (``check_retention``) each device resting from its last programming to the end of training.

    ``resume`` (from a checkpoint) continues a trainer; the chip must then be restored to the
    snapshot taken with it, so the run continues exactly as if never interrupted.
    """
    initial = np.asarray(resume.arrays["initial_states"]) if resume is not None and "initial_states" in resume.arrays \
        else chip.states
    fidelity = {"mapping": measure_fidelity(chip, task.network.weights, target_states(chip, task.targets_S))}
    outcome = trainer_.train(chip, task.chip_task(), variant, resume, checkpoint or (lambda state: None))
    totals = chip.ledger.totals()
    final_states = chip.states
    fidelity["tuned"] = measure_fidelity(chip, task.network.weights, final_states)
    programmed = mapping.circuit_weights(chip.conductances_S(), chip.crossbar)
    accuracy_chip, outputs = chip_accuracy(chip, task.X_test, task.y_test)
    times = outcome.programmed_at_s
    at_completion = outcome.programmed_S
    if times is None:
        times = trainer_last_programmed(chip, totals["time_s"])
    result = OnChipResult(
        medium=chip.crossbar.spec.device.medium, trainer=trainer_.name, variant=variant,
        software_accuracy=task.software_accuracy,
        programmed_software_accuracy=accuracy(programmed, task.X_test, task.y_test),
        chip_accuracy=accuracy_chip, all_inputs_accuracy=all_inputs_accuracy(chip),
        targets_S=task.targets_S, initial_states=initial,
        final_states=final_states, final_S=chip.conductances_S(), outcome=outcome, training_totals=totals,
        ledger=chip.ledger, chip_outputs=outputs, completed_at_s=times, fidelity=fidelity)
    if check_retention:
        result.retention = retention_check(chip, task, times, totals["time_s"], at_completion)
    return result


def trainer_last_programmed(chip: Chip, total_time_s: float) -> np.ndarray:
    """When each device was last pulsed (never: the end of training, so it does not rest)."""
    at, _ = last_programmed(chip)
    return np.where(np.isfinite(at), at, total_time_s)


def train_on_chip(config: Config, chip: Chip, task: Task, initial_reset: bool,
                  progress: TuningProgress | None = None,
                  on_device: Callable[[TuningProgress], None] | None = None,
                  check_retention: bool = True) -> OnChipResult:
    """Write-verify (``train_with`` and the write-verify trainer), with or without the initial
    reset; ``progress``/``on_device`` checkpoint it per device."""
    wv = WriteVerify(WriteVerify.settings_type(), config.tuning, config.seed)

    def checkpoint(state: TrainerState) -> None:
        if on_device is not None:
            on_device(TuningProgress.from_state(state.state, state.arrays["initial_states"]))

    resume = progress.as_trainer_state() if progress is not None else None
    return train_with(config, chip, task, wv, "reset" if initial_reset else "noreset", resume, checkpoint,
                      check_retention)


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
        if wait > 1e-9:  # shorter rests (float residue of summed times) change nothing
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


def heatmap_tasks(config: Config) -> list[Task]:
    """The noise heat-map's tasks: a network trained (and mapped) per training-noise level."""
    crossbar = Crossbar(config.crossbar_spec())
    return [make_task(config, crossbar, training_noise=float(level)) for level in config.onchip.noise_levels]


def noise_heatmap(config: Config, make_chip: Callable[[], Chip],
                  progress: Callable | None = None, tasks: list[Task] | None = None) -> dict[str, np.ndarray]:
    """Accuracy through the array for each (training noise, test noise): a network is trained per
    training-noise level, tuned on a chip (no initial reset), and tested at every test-noise level.
    ``tasks``: ``heatmap_tasks(config)`` when computed elsewhere (see ``experiments/background.py``)."""
    levels = np.array(config.onchip.noise_levels, dtype=float)
    grid = np.zeros((len(levels), len(levels)))
    software = np.zeros_like(grid)
    rng_tests = [np.random.default_rng([config.seed, 4, j]) for j in range(len(levels))]
    tests = [make_dataset(config.onchip.n_test_per_class, level, rng) for level, rng in zip(levels, rng_tests)]
    for i, train_noise in enumerate(levels):
        with make_chip() as chip:
            task = tasks[i] if tasks is not None else make_task(config, chip.crossbar,
                                                                training_noise=float(train_noise))
            tune_all(chip, task.targets_S, dataclasses.replace(config.tuning, initial_reset=False))
            for j, (X, y) in enumerate(tests):
                grid[i, j] = chip_accuracy(chip, X, y)[0]
                software[i, j] = accuracy(task.network.weights, X, y)
                if progress:
                    progress()
    return {"training_noise": levels, "test_noise": levels, "chip_accuracy": grid, "software_accuracy": software}
