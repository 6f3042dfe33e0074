"""In-situ learning by perturb-and-measure: Direct Gradient Calculation (Kim et al. 2021).

The gradient of the cost with respect to each device is measured on the chip itself: change one
device's conductance a little, run a mini-batch through the array, read the change of the cost,
undo the change (docs/reference/dgc-drift-programming.md §1.3). Whatever the circuit does that the
software model does not know (neuron offsets and gain errors, wire and switch drops, device
nonlinearity, drift) is inside what is measured, so it is learned around.

Per step: a fresh mini-batch of noisy images (``batch_size``, pixel flips ``batch_noise``), its cost
C0 measured by inference, then per device (``estimator = "sequential"``) C(x + δ e_k) and, with
``difference = "central"``, C(x − δ e_k); or, with ``estimator = "spsa"``, every device at once
along a random ±1 direction Δ (two measurements per step whatever the number of devices; not in
the paper). The update Δx = −η ĝ is applied as programming pulses.

How a temporary change is made (``realisation``), both as hardware would:

* ``"pulse"``: a programming pulse of the perturbation's size and, after the measurement, the
  reverse pulse. The reversal does not restore exactly (a device's response depends on its state
  and differs between SET and RESET): that residue is part of the physics, and it lands in the
  weights. Every pulse is charged to the ledger as 'perturb'.
* ``"trim"``: no programming at all. The selection transistor's gate sets each cell's series
  resistance, so the array reads the device at a changed conductance and nothing is written
  (``Chip.trim``); modelled as the exact change, with ``trim_time_s`` per setting charged as
  'perturb'. The device, its drift clock and its state are untouched.

Units: the perturbation ``perturbation`` and the update step ``update_step`` are fractions of the
device's state range (= of its conductance window: every model's conductance is linear in its
state). Pulse widths for a given step are designed from the device model at mid-window through the
programming path, as a designer would from a datasheet; the chip then responds with its real,
state-dependent step. The number of update pulses per device is |Δx| / update_step, rounded
stochastically (seeded) so that updates smaller than one pulse still act on average, capped at
``max_update_pulses``.

Variants: ``dgc`` learns from the devices' as-found states; ``finetune`` first writes the ex-situ
targets by write-verify (``[tuning]``), then learns (with ``finetune_learning_rate`` and
``finetune_realisation``).

Measured on the surrogate (Cr, 5 as-found chips, 40 steps): with the pulse realisation every chip
reaches ≥ 98 % on the noisy test set; with exact (trim) changes 3 of 5 stall at the bias-free
network's σ(0) = 0.5 plateau, the local minimum software training escapes by restarts: the pulse
realisation's restore residue acts as exploration noise. Hence pulses for learning from scratch,
trims for fine-tuning.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from ..chip.protocol import Chip
from ..chip.sequence import Infer, Pulse, Trim
from ..circuits.program import PulseSpec
from ..data.patterns import make_dataset
from ..validation import check_choice, check_range
from .software import classes
from .trainer import ChipTask, Checkpoint, Trainer, TrainerState, TrainingOutcome, all_inputs_accuracy
from .write_verify import TuningProgress, tune_with_progress, tuning_tables

DIFFERENCES = ("central", "one-sided")
ESTIMATORS = ("sequential", "spsa")
REALISATIONS = ("pulse", "trim")
ROUNDINGS = ("stochastic", "nearest")
UPDATE_RULES = ("gradient", "normalized")


@dataclass(frozen=True)
class DgcSettings:
    """Perturb-and-measure learning; every field is checked as ``trainer.settings.<field>``."""

    steps: int = 80
    batch_size: int = 16
    batch_noise: float = 0.10          # pixel-flip probability of the training mini-batches
    difference: str = "central"
    estimator: str = "sequential"
    perturbation: float = 0.05         # δ, fraction of the state range
    realisation: str = "pulse"
    learning_rate: float = 0.2         # Δx = −learning_rate · dC/dx (state units)
    update_rule: str = "gradient"      # "normalized": Δx = −learning_rate · g / max|g|
    update_step: float = 0.01          # state change of one update pulse at mid-window
    max_update_pulses: int = 4         # per device per step
    rounding: str = "stochastic"
    trim_time_s: float = 10e-6         # setting the gates of one trim
    eval_every: int = 10               # steps between test-set checks (not charged) and checkpoints
    # Fine-tuning starts next to a good solution: smaller steps, and exact temporary changes (the
    # pulse realisation's restore residue pulls every device toward mid-window, a weight decay
    # that undoes the programmed targets faster than a fine-tuning gradient restores them).
    finetune_learning_rate: float = 0.05
    finetune_realisation: str = "trim"

    def __post_init__(self) -> None:
        p = "trainer.settings"
        check_range(f"{p}.steps", self.steps, 0, 1_000_000, True)
        check_range(f"{p}.batch_size", self.batch_size, 2, 4096, True)
        check_range(f"{p}.batch_noise", self.batch_noise, 0.0, 0.5, True)
        check_choice(f"{p}.difference", self.difference, DIFFERENCES)
        check_choice(f"{p}.estimator", self.estimator, ESTIMATORS)
        check_range(f"{p}.perturbation", self.perturbation, 1e-4, 0.25, True)
        check_choice(f"{p}.realisation", self.realisation, REALISATIONS)
        check_range(f"{p}.learning_rate", self.learning_rate, 0.0, 100.0, True)
        check_range(f"{p}.update_step", self.update_step, 1e-4, 0.25, True)
        check_range(f"{p}.max_update_pulses", self.max_update_pulses, 0, 1000, True)
        check_choice(f"{p}.rounding", self.rounding, ROUNDINGS)
        check_choice(f"{p}.update_rule", self.update_rule, UPDATE_RULES)
        check_range(f"{p}.trim_time_s", self.trim_time_s, 0.0, 1.0, True)
        check_range(f"{p}.eval_every", self.eval_every, 1, 1_000_000, True)
        check_range(f"{p}.finetune_learning_rate", self.finetune_learning_rate, 0.0, 100.0, True)
        check_choice(f"{p}.finetune_realisation", self.finetune_realisation, REALISATIONS)

    def for_variant(self, variant: str) -> DgcSettings:
        """The settings a variant learns with (``finetune``: its own rate and realisation)."""
        if variant != "finetune":
            return self
        return dataclasses.replace(self, learning_rate=self.finetune_learning_rate,
                                   realisation=self.finetune_realisation)



def cost(outputs: np.ndarray, labels: np.ndarray) -> float:
    """Binary cross-entropy of the output activations (n, n_out) in [0, 1], as software training
    uses (one-hot targets for several outputs)."""
    o = np.clip(outputs, 1e-6, 1 - 1e-6)
    if o.shape[1] == 1:
        t = labels[:, None].astype(float)
    else:
        t = np.eye(o.shape[1])[labels]
    return float(np.mean(-(t * np.log(o) + (1 - t) * np.log1p(-o))))


def step_pulse(device, r_series_ohm: float, amplitude_V: float, step: float,
               max_edge_s: float) -> tuple[PulseSpec, float]:
    """The pulse that moves a device at mid-window by ``step`` (a fraction of its state range) in
    the direction ``amplitude_V`` moves it, designed on the device model through the programming
    path's series resistance; and the step it makes there.

    First by width at ``amplitude_V`` (4 ns to 1 ms). When even the shortest pulse moves too far
    (a PCM RESET above melting amorphises within nanoseconds), by amplitude at the shortest width,
    between ``amplitude_V`` and 0 V: below threshold nothing moves, so there is a gentler pulse of
    the same kind (a partial RESET just above melting). Beyond 1 ms the step is what 1 ms gives."""
    low, high = device.state_bounds
    mid, span = 0.5 * (low + high), high - low
    shortest, longest = 4e-9, 1e-3

    def pulse(amplitude, width):
        return PulseSpec(float(amplitude), float(width), min(max_edge_s, width / 4))

    def signed(p: PulseSpec) -> float:
        return (float(device.pulse_response(mid, p.amplitude_V, p.width_s, p.edge_s, r_series_ohm).x_after) - mid) / span

    direction = np.sign(signed(pulse(amplitude_V, 1e-6))) or 1.0

    def moved_by_width(log_width):
        return direction * signed(pulse(amplitude_V, np.exp(log_width)))

    lo, hi = np.log(shortest), np.log(longest)
    if moved_by_width(hi) <= step:
        return pulse(amplitude_V, longest), moved_by_width(hi)
    if moved_by_width(lo) <= step:
        log_width = brentq(lambda w: moved_by_width(w) - step, lo, hi, xtol=1e-4)
        return pulse(amplitude_V, np.exp(log_width)), moved_by_width(log_width)

    def moved_by_amplitude(t):
        return direction * signed(pulse(t * amplitude_V, shortest))

    t = brentq(lambda t: moved_by_amplitude(t) - step, 0.0, 1.0, xtol=1e-6)
    return pulse(t * amplitude_V, shortest), moved_by_amplitude(t)


class Dgc(Trainer):
    name = "dgc"
    settings_type = DgcSettings
    variants = ("dgc", "finetune")
    summary_line = "in-situ: perturb-and-measure gradients on the chip, updates as pulses (Kim et al. 2021)"

    def checkpoints(self, variant: str, n_devices: int) -> int:
        s = self.settings
        learning = s.steps // s.eval_every + (s.steps % s.eval_every > 0)
        return learning + (n_devices + 1 if variant == "finetune" else 0)

    def train(self, chip: Chip, task: ChipTask, variant: str, resume: TrainerState | None,
              checkpoint: Checkpoint) -> TrainingOutcome:
        self.check_variant(variant)
        state = dict(resume.state) if resume is not None else {}
        arrays = dict(resume.arrays) if resume is not None else {"initial_states": chip.states}
        stage = state.get("stage", "write-verify" if variant == "finetune" else "learn")
        if stage == "write-verify":
            progress = TuningProgress.from_state(state["tuning"], arrays["initial_states"]) \
                if "tuning" in state else TuningProgress(np.asarray(arrays["initial_states"]))
            tune_with_progress(chip, task.targets_S, self.tuning, progress, on_device=lambda now: checkpoint(
                TrainerState({"stage": "write-verify", "tuning": now.to_state()}, arrays)))
            state = {"stage": "learn", "tuning": progress.to_state(),
                     "write_verify_totals": {**chip.ledger.totals(), **_accuracies(chip, task)}}
            checkpoint(TrainerState(state, arrays))
        tables, summary = {}, {}
        if "tuning" in state:  # the finetune variant's write-verify stage
            progress = TuningProgress.from_state(state["tuning"], arrays["initial_states"])
            tunings = [progress.tunings[i] for i in range(len(task.targets_S))]
            table, tuned, _, _ = tuning_tables(tunings, progress)
            tables["write_verify"] = table
            summary.update({f"write_verify_{k}": v for k, v in {**tuned, **state["write_verify_totals"]}.items()})
        history = self._learn(chip, task, self.settings.for_variant(variant), state.get("learn", {}),
                              lambda learn: checkpoint(TrainerState({**state, "learn": learn}, arrays)))
        tables["history"] = history
        summary.update({"steps": self.settings.steps, "evaluations": int(history["evaluations"][-1]),
                        "final_batch_cost": float(history["batch_cost"][-1]),
                        "final_monitor_accuracy": float(history["test_accuracy"][-1])})
        return TrainingOutcome(tables, summary)

    # -- the learning loop ------------------------------------------------------------------------
    def _learn(self, chip: Chip, task: ChipTask, s: DgcSettings, state: dict, save) -> dict:
        device = chip.crossbar.spec.device
        n = chip.crossbar.n_devices
        low, high = device.state_bounds
        span = high - low
        r_series = chip.path.r_series_ohm
        amplitude = {+1: self.tuning.set_amplitude_V, -1: self.tuning.reset_amplitude_V}
        # (sign, 1 | 2): a move of δ or 2δ; (sign, 0): one update pulse.
        steps = {1: s.perturbation, 2: 2 * s.perturbation, 0: s.update_step}
        pulses = {(sign, key): step_pulse(device, r_series, amplitude[sign], step, self.tuning.edge_s)[0]
                  for sign in (+1, -1) for key, step in steps.items()}
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 7]))
        history = {"step": [], "batch_cost": [], "test_accuracy": [], "evaluations": [], "pulses": [],
                   "training_time_s": [], "energy_total_J": []}
        start = 0
        if state:
            rng.bit_generator.state = state["rng"]
            history = {k: list(v) for k, v in state["history"].items()}
            start = int(state["step"])
        evaluations = int(history["evaluations"][-1]) if history["evaluations"] else 0
        trim = np.zeros(n)

        def moved_by(direction: np.ndarray, multiple: int) -> list:
            """The operations that move every device k with direction[k] = ±1 by multiple·direction[k]·δ:
            a gate trim of all devices, or a pulse each."""
            nonlocal trim
            if s.realisation == "trim":
                trim = trim + multiple * direction * s.perturbation * span
                return [Trim(trim if np.any(np.abs(trim) > 1e-12 * span) else None, s.trim_time_s)]
            return [Pulse.of(int(k), pulses[int(np.sign(multiple * direction[k])), abs(multiple)], "perturb")
                    for k in np.flatnonzero(direction)]

        def estimate(X, y) -> np.ndarray:
            nonlocal evaluations
            directions = [rng.choice((-1.0, 1.0), size=n)] if s.estimator == "spsa" else list(np.eye(n))
            # One operation sequence, which the chip runs in as few round trips as it can (in SPICE
            # one per run of consecutive pulses, one per run of array operations: a whole trimmed
            # step is one), charged as the single operations.
            ops = [Infer(X)] if s.difference == "one-sided" else []
            for d in directions:
                if s.difference == "central":
                    ops += moved_by(d, +1) + [Infer(X)] + moved_by(d, -2) + [Infer(X)] + moved_by(d, +1)
                else:
                    ops += moved_by(d, +1) + [Infer(X)] + moved_by(d, -1)
            inferences = chip.run_sequence(ops).inferences
            evaluations += len(inferences)
            costs = (cost(result.outputs, y) for result in inferences)
            c0 = next(costs) if s.difference == "one-sided" else np.nan
            gradient = np.zeros(n)
            for d in directions:
                c_plus = next(costs)
                if s.difference == "central":
                    slope = (c_plus - next(costs)) / (2 * s.perturbation * span)
                else:
                    slope = (c_plus - c0) / (s.perturbation * span)
                gradient += slope * d   # sequential: one entry; SPSA: 1/Δ_k = Δ_k
            return gradient

        def update(gradient: np.ndarray) -> None:
            if s.update_rule == "normalized":
                largest = np.max(np.abs(gradient))
                gradient = gradient / largest if largest > 0 else gradient
            counts = np.abs(s.learning_rate * gradient) / (s.update_step * span)
            if s.rounding == "stochastic":
                counts = np.floor(counts) + (rng.random(n) < counts - np.floor(counts))
            else:
                counts = np.round(counts)
            counts = np.minimum(counts, s.max_update_pulses).astype(int)
            updates = [Pulse.of(int(k), pulses[-1 if gradient[k] > 0 else 1, 0])
                       for k in np.flatnonzero(counts) for _ in range(counts[k])]
            if updates:
                chip.run_sequence(updates)   # one round trip

        def monitor(step: int, X, y) -> None:
            """Batch cost and test accuracy now, measured for the record only: the chip (ledger,
            clock, noise streams) is restored afterwards."""
            saved = chip.snapshot()
            batch_cost = cost(chip.infer(X).outputs, y)
            outputs = chip.infer(task.X_test).outputs
            chip.restore(saved)
            predicted = classes(outputs)
            totals = chip.ledger.totals()
            for key, value in (("step", step), ("batch_cost", batch_cost),
                               ("test_accuracy", float(np.mean(predicted == task.y_test))),
                               ("evaluations", evaluations), ("pulses", totals["pulses"]),
                               ("training_time_s", totals["time_s"]), ("energy_total_J", totals["energy_total_J"])):
                history[key].append(value)

        if not history["step"]:
            monitor(0, *make_dataset(max(s.batch_size // 2, 1), s.batch_noise, rng))
        for step in range(start + 1, s.steps + 1):
            X, y = make_dataset(max(s.batch_size // 2, 1), s.batch_noise, rng)
            update(estimate(X, y))
            if step % s.eval_every == 0 or step == s.steps:
                monitor(step, X, y)
                save({"step": step, "rng": rng.bit_generator.state, "history": history})
        return history


def _accuracies(chip: Chip, task: ChipTask) -> dict:
    """Test-set accuracy and accuracy over every binary input with a nearest prototype, measured for
    the record only (the chip is restored: ledger, clock and noise streams as they were)."""
    saved = chip.snapshot()
    try:
        test = classes(chip.infer(task.X_test).outputs)
    finally:
        chip.restore(saved)
    return {"test_accuracy": float(np.mean(test == task.y_test)), "all_inputs_accuracy": all_inputs_accuracy(chip)}


TRAINER = Dgc
