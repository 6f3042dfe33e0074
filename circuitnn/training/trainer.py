"""The trainer protocol: every on-chip training loop is one module of ``circuitnn/training/``.

A trainer is written only against the ``Chip`` protocol, so it runs on ``SpiceChip`` and
``SurrogateChip`` alike, on every device model. It is selected by the config value
``trainer.kind``; its own settings are a frozen dataclass (``settings_type``) read from
``[trainer.settings]`` and validated as ``trainer.settings.<field>``. Experiments and the CLI look
it up by name (``trainer(kind)``) and never branch on which trainer it is.

Adding a trainer: one module here that defines a ``Trainer`` subclass and ends with
``TRAINER = YourTrainer``. The registry imports every module of this package that defines
``TRAINER``; ``register()`` adds one defined elsewhere (a script, a test).

What a trainer gets (``ChipTask``): the software network trained ex-situ and its conductance
targets mapped through the *nominal* circuit, a noisy training set for in-situ loops, and the test
set. What it returns (``TrainingOutcome``): tables (CSV columns), headline numbers, and when each
device was last programmed (for the retention check). Pulses, reads, inferences, energy and time
are all in the chip's ledger, so every trainer is costed the same way.

Resumable: a trainer calls ``checkpoint(TrainerState)`` whenever it can be continued exactly from
the chip's snapshot plus that state (the experiment stores both), and is handed the last one back
as ``resume``.
"""

from __future__ import annotations

import importlib
import pkgutil
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ..chip.protocol import Chip
from ..data.patterns import nearest_prototype
from ..errors import ConfigError
from .mapping import binary_inputs
from .software import classes
from .tuning import TuningConfig


@dataclass(frozen=True)
class ChipTask:
    """What every trainer trains toward, in the circuit's software units."""

    weights: tuple[np.ndarray, ...]   # the ex-situ software network, per layer (n_in, n_out)
    targets_S: np.ndarray             # its device targets, mapped through the nominal circuit
    X_train: np.ndarray               # (n, n_inputs) noisy training images, for in-situ learning
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


@dataclass
class TrainerState:
    """A trainer's own resumable state: JSON-able ``state`` and NumPy ``arrays``."""

    state: dict = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class TrainingOutcome:
    """What a trainer did, beyond the chip's ledger and states.

    ``tables``: name → columns (equal-length sequences), stored as ``<name>.csv``; a ``devices``
    table has one row per device in site order. ``summary``: scalar headline numbers.
    ``programmed_at_s``: per device, the training time of its last programming pulse (NaN: never
    pulsed), from which the retention check rests each device to the end.
    """

    tables: dict[str, dict] = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    programmed_at_s: np.ndarray | None = None
    programmed_S: np.ndarray | None = None   # its read conductance right then (drift reference)


Checkpoint = Callable[[TrainerState], None]


class Trainer(ABC):
    """One on-chip training loop. Subclasses set the class attributes and implement ``train``."""

    name: ClassVar[str]                     # the config value trainer.kind
    settings_type: ClassVar[type]           # frozen dataclass; checked as trainer.settings.<field>
    variants: ClassVar[tuple[str, ...]]     # each is one stored part per medium: "<medium>-<variant>"
    summary_line: ClassVar[str] = ""        # one line for `circuitnn train --help`
    # Whether the stored run also gets the paper's training-noise × test-noise heat-map, which
    # retrains and re-programs ex-situ networks (only meaningful for an ex-situ trainer).
    noise_heatmap: ClassVar[bool] = False

    def __init__(self, settings, tuning: TuningConfig, seed: int):
        if not isinstance(settings, self.settings_type):
            raise ConfigError("trainer.settings", type(settings).__name__, f"{self.settings_type.__name__}")
        self.settings, self.tuning, self.seed = settings, tuning, seed

    @abstractmethod
    def train(self, chip: Chip, task: ChipTask, variant: str, resume: TrainerState | None,
              checkpoint: Checkpoint) -> TrainingOutcome:
        """Train ``chip`` (its states as found, or as restored with ``resume``) for ``variant``."""

    def checkpoints(self, variant: str, n_devices: int) -> int | None:
        """How many times ``train`` will call ``checkpoint`` (for a progress bar); None: unknown."""
        return None

    def check_variant(self, variant: str) -> None:
        if variant not in self.variants:
            raise ConfigError("trainer.variant", variant, f"one of {', '.join(self.variants)} ({self.name})")


_REGISTRY: dict[str, type[Trainer]] = {}
_DISCOVERED = False


def register(cls: type[Trainer]) -> type[Trainer]:
    """Make a trainer class selectable by ``trainer.kind = cls.name`` (usable as a decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, Trainer)):
        raise ConfigError("trainer", cls, "a Trainer subclass")
    _REGISTRY[cls.name] = cls
    return cls


def _discover() -> None:
    global _DISCOVERED
    if _DISCOVERED:
        return
    _DISCOVERED = True
    from .. import training

    for module in pkgutil.iter_modules(training.__path__):
        loaded = importlib.import_module(f"{training.__name__}.{module.name}")
        found = getattr(loaded, "TRAINER", None)
        if found is not None:
            register(found)


def trainers() -> dict[str, type[Trainer]]:
    """Every registered trainer, by name, in a stable order (write-verify first)."""
    _discover()
    return dict(sorted(_REGISTRY.items(), key=lambda item: (item[0] != "write-verify", item[0])))


def trainer(name: str) -> type[Trainer]:
    known = trainers()
    if name not in known:
        raise ConfigError("trainer.kind", name, "one of " + ", ".join(known))
    return known[name]


def last_programmed(chip: Chip) -> tuple[np.ndarray, np.ndarray]:
    """Per device, the ledger time at the end of its last pulse (NaN if never pulsed), and the chip
    time now; from the ledger alone, so any trainer gets it the same way."""
    arrays = chip.ledger.to_arrays()
    ends = np.cumsum(arrays["time_s"])
    at = np.full(chip.crossbar.n_devices, -np.inf)
    pulsed = arrays["pulses"] > 0
    np.maximum.at(at, arrays["device"][pulsed], ends[pulsed])
    at[np.isinf(at)] = np.nan
    return at, float(ends[-1]) if len(ends) else 0.0


def all_inputs_accuracy(chip: Chip) -> float:
    """Accuracy over every binary input that has a class (the nearest prototype; 372 of 512), read
    without read noise; the chip is left exactly as it was (ledger, clock, noise streams)."""
    inputs = binary_inputs(chip.crossbar.n_inputs)
    labels, defined = nearest_prototype(inputs)
    saved = chip.snapshot()
    try:
        outputs = chip.infer(inputs[defined], read_noise=False).outputs
    finally:
        chip.restore(saved)
    return float(np.mean(classes(outputs) == labels[defined]))
