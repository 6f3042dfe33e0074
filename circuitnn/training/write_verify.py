"""Ex-situ training: write-verify every device to the software network's mapped targets.

The Eslami et al. procedure (``tuning.py``) as a trainer: the network is trained in software, its
weights are mapped to conductances through the nominal circuit, and each device is pulsed and read
until it is within tolerance. Variants: ``reset`` (one long RESET pulse first) and ``noreset``. Its
settings are the ``[tuning]`` table shared with every trainer that programs targets, so this
trainer has none of its own. It never measures the network it programs: a chip whose neuron
circuits differ from the nominal design keeps their error (what perturb-and-measure learning
removes).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from ..chip.protocol import Chip
from .trainer import ChipTask, Checkpoint, Trainer, TrainerState, TrainingOutcome
from .tuning import DeviceTuning, tune_all

TUNING_FIELDS = ("index", "target_S", "initial_S", "final_S", "set_pulses", "reset_pulses", "reads", "converged")


@dataclass(frozen=True)
class WriteVerifySettings:
    """Nothing of its own: write-verify is set by ``[tuning]``."""


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

    def as_trainer_state(self) -> TrainerState:
        return TrainerState(self.to_state(), {"initial_states": self.initial_states})


def tune_with_progress(chip: Chip, targets_S, tuning, progress: TuningProgress,
                       on_device=None) -> list[DeviceTuning]:
    """``tune_all`` that records, per finished device, its completion time and conductance."""

    def record(result: DeviceTuning) -> None:
        progress.tunings[result.index] = result
        progress.completed_at_s[result.index] = chip.ledger.totals(("read", "reset", "program"))["time_s"]
        progress.completed_S[result.index] = float(chip.conductances_S()[result.index])
        if on_device is not None:
            on_device(progress)

    return tune_all(chip, targets_S, tuning, done=dict(progress.tunings), on_device=record)


def tuning_tables(tunings: list[DeviceTuning], progress: TuningProgress) -> tuple[dict, dict, np.ndarray, np.ndarray]:
    """(devices table, summary, completion times, conductances at completion) of a finished tuning."""
    n = len(tunings)
    errors = np.array([t.relative_error for t in tunings])
    table = {**{name: [getattr(t, name) for t in tunings] for name in TUNING_FIELDS},
             "relative_error": errors}
    summary = {"converged_devices": int(sum(t.converged for t in tunings)),
               "max_relative_conductance_error": float(np.max(np.abs(errors)))}
    times = np.array([progress.completed_at_s.get(i, 0.0) for i in range(n)])
    at_completion = np.array([progress.completed_S.get(i, np.nan) for i in range(n)])
    return table, summary, times, at_completion


class WriteVerify(Trainer):
    name = "write-verify"
    settings_type = WriteVerifySettings
    variants = ("reset", "noreset")
    summary_line = "ex-situ: software training, mapping, write-verify of every device (Eslami et al.)"
    noise_heatmap = True

    def train(self, chip: Chip, task: ChipTask, variant: str, resume: TrainerState | None,
              checkpoint: Checkpoint) -> TrainingOutcome:
        self.check_variant(variant)
        if resume is not None:
            progress = TuningProgress.from_state(resume.state, resume.arrays["initial_states"])
        else:
            progress = TuningProgress(chip.states)
        tuning = dataclasses.replace(self.tuning, initial_reset=(variant == "reset"))
        tunings = tune_with_progress(chip, task.targets_S, tuning, progress,
                                     on_device=lambda now: checkpoint(now.as_trainer_state()))
        table, summary, times, at_completion = tuning_tables(tunings, progress)
        return TrainingOutcome({"devices": table}, summary, times, at_completion)


TRAINER = WriteVerify
