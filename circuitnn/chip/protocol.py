"""The protocol every chip backend implements, and the records it returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ..circuits.crossbar import Crossbar
from ..circuits.program import ProgrammingPath, PulseSpec
from ..circuits.write_verify import controller_read
from ..errors import ConfigError
from ..validation import check_range
from .ledger import Ledger, LedgerEntry

if TYPE_CHECKING:
    from .sequence import Operation, SequenceResult


def trim_offsets(offsets, n_devices: int, path: str = "trim offsets") -> np.ndarray | None:
    """``Chip.trim``'s offsets checked (ConfigError naming ``path``): a copy, or None for none."""
    if offsets is None:
        return None
    values = np.array(offsets, dtype=float)
    if values.shape != (n_devices,) or not np.all(np.isfinite(values)):
        raise ConfigError(path, f"shape {values.shape}", f"({n_devices},) finite values")
    return values


@dataclass(frozen=True)
class ChipTiming:
    """Controller timing (our choices; the paper gives none).

    ``controller_overhead_s`` is charged once per read or pulse: an MCU setting the selection
    switches, triggering the pulse generator and converting the sense voltage (ADC), ~1 ms for a
    small microcontroller. ``read_duration_s`` is how long the read voltage is applied;
    ``inference_settle_s`` how long an input is applied to the array per image.
    """

    controller_overhead_s: float = 1e-3
    read_duration_s: float = 100e-6
    inference_settle_s: float = 10e-6

    def __post_init__(self) -> None:
        check_range("timing.controller_overhead_s", self.controller_overhead_s, 0.0, 10.0, True)
        check_range("timing.read_duration_s", self.read_duration_s, 1e-9, 1.0)
        check_range("timing.inference_settle_s", self.inference_settle_s, 1e-12, 1.0)


@dataclass(frozen=True)
class DeviceRead:
    """A verify read of one device through its programming path."""

    conductance_S: float     # what the controller computes from the sensed current
    current_A: float
    energy_device_J: float
    energy_total_J: float
    time_s: float


def verify_read_values(current_A, v_device_V, v_read_V: float, r_series_ohm: float, timing: ChipTiming):
    """What the controller makes of a sensed read current (scalars or arrays alike).

    It knows its path, so it infers the device conductance G = I / (V_read − I·R_series); the read
    lasts ``timing.read_duration_s``. Returns (conductance S, device energy J, total energy J, time s).
    """
    duration = timing.read_duration_s
    conductance = controller_read(current_A, v_read_V, r_series_ohm)
    return (conductance, v_device_V * current_A * duration, v_read_V * current_A * duration,
            duration + timing.controller_overhead_s)


@dataclass(frozen=True)
class PulseEvent:
    x_before: float
    x_after: float
    energy_device_J: float
    energy_total_J: float
    time_s: float


@dataclass(frozen=True)
class InferenceResult:
    outputs: np.ndarray      # (n_samples, n_outputs) last-layer activations, in units of V_read
    hidden: list[np.ndarray]  # activations of every earlier layer, same units
    energy_total_J: float    # delivered to the array by its drivers over the whole batch
    time_s: float
    # Per layer, (n_samples, n_outputs): the current through each column's sense resistor, in A.
    column_currents_A: list[np.ndarray] | None = None


class Chip(Protocol):
    """Device states plus the circuit around them. All backends implement this.

    The chip keeps a simulated clock (``clock_s``): every read, pulse and inference advances it by
    the time charged to the ledger. A model that ages (PCM) is read at the time since each device's
    last pulse, with a drift exponent drawn at that pulse and fresh read noise at every read.
    """

    crossbar: Crossbar
    ledger: Ledger
    clock_s: float
    path: ProgrammingPath    # the programming path a selected device is pulsed and read through

    @property
    def states(self) -> np.ndarray:
        """A copy of every device's state x, in ``crossbar.sites`` order."""

    def conductances_S(self) -> np.ndarray:
        """Every device's read conductance now (drift included, no read noise), site order, S."""

    def read_device(self, index: int) -> DeviceRead:
        """Select one device and read its conductance (charged to the ledger as 'read')."""

    def pulse_device(self, index: int, pulse: PulseSpec, phase: str = "program") -> PulseEvent:
        """Apply one programming pulse to one device, charged to ``phase`` ('program', 'reset' or
        'perturb')."""

    def infer(self, inputs: np.ndarray, read_noise: bool = True) -> InferenceResult:
        """Run inputs ((n, n_inputs) in [0, 1]) through the array with the switches opened.
        ``read_noise=False``: an ageing model is read without its read noise (drift still acts)."""

    def run_sequence(self, operations: list[Operation]) -> SequenceResult:
        """Reads, pulses, temporary states and inferences in order (``chip/sequence.py``), in as few
        round trips as the backend allows; results and ledger as the single operations give."""

    def rest_device(self, index: int, duration_s: float) -> float:
        """Leave one device unbiased for ``duration_s`` (retention); returns its new state."""

    def trim(self, offsets, time_s: float = 0.0) -> None:
        """Temporarily change what the array reads, without programming: inference sees every
        device at its state + ``offsets`` (clipped to its bounds) until ``trim(None)``. The hardware
        is the selection transistor's gate setting each cell's series resistance: nothing is
        written, so the device, its drift clock and its verify reads are untouched. Models the
        effect as exact (the best a gate trim can do). ``time_s`` (setting the gates) is charged
        to the ledger as 'perturb'."""

    def load_states(self, states: np.ndarray) -> None:
        """Overwrite the device states without pulses (fabrication variation, experiments): as if
        each device had just been programmed there."""

    def snapshot(self) -> ChipSnapshot:
        """Everything that makes the chip's future: states, clock, ageing, noise streams, ledger."""

    def restore(self, snapshot: ChipSnapshot) -> None:
        """Put the chip back exactly where ``snapshot`` was taken (resume = uninterrupted run)."""


@dataclass(frozen=True)
class ChipSnapshot:
    """A chip's whole mutable state: ``arrays`` (NumPy, for NPZ) and ``state`` (JSON-able)."""

    arrays: dict[str, np.ndarray]
    state: dict


class DeviceStates:
    """What every backend shares: the device states and their checks, the simulated clock, the
    ageing of models that age (time since each device's last pulse, the values drawn at that pulse,
    read noise), snapshots, and ``with`` support.

    Randomness of the device model (drift exponents, read noise) comes from child 2 of
    ``SeedSequence(seed)`` in every backend, so a SPICE and a surrogate chip with the same seed and
    the same operations draw the same values.
    """

    crossbar: Crossbar
    ledger: Ledger
    _states: np.ndarray

    def _init_states(self, initial_states, seed: int) -> None:
        self._states = np.array(self.crossbar._validated_states(initial_states), dtype=float)
        self._trim: np.ndarray | None = None
        self.clock_s = 0.0
        self.seed = seed
        self._model_rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(3)[2])
        self._programmed_at_s = np.zeros(self.n_devices)
        self._memory = self.device.draw_programming_memory(self._states, self._model_rng)

    @property
    def device(self):
        return self.crossbar.spec.device

    @property
    def states(self) -> np.ndarray:
        return self._states.copy()

    @property
    def n_devices(self) -> int:
        return self.crossbar.n_devices

    # -- ageing ------------------------------------------------------------------------------------
    def _charge(self, entry: LedgerEntry) -> None:
        self.ledger.add(entry)
        self.clock_s += entry.time_s

    def _programmed(self, indices, x_after) -> None:
        """Devices ``indices`` were just programmed to ``x_after``: restart their drift clock."""
        if self.device.ages:
            idx = np.atleast_1d(indices)
            self._programmed_at_s[idx] = self.clock_s
            drawn = self.device.draw_programming_memory(np.atleast_1d(x_after), self._model_rng)
            for key, values in drawn.items():
                self._memory[key][idx] = values

    def _read_inputs(self, indices=None, noise: bool = True) -> dict[str, np.ndarray]:
        """The model's read inputs of devices ``indices`` (all: None) now; {} for a model that does
        not age."""
        if not self.device.ages:
            return {}
        idx = slice(None) if indices is None else np.atleast_1d(indices)
        memory = {key: values[idx] for key, values in self._memory.items()}
        return self.device.read_inputs(self._states[idx], memory, self.clock_s - self._programmed_at_s[idx],
                                       self._model_rng if noise else None)

    def conductances_S(self) -> np.ndarray:
        factor = self.device.conductance_factor(self._read_inputs(noise=False)) if self.device.ages else 1.0
        return self._window_conductances(self._states) * factor

    def _window_conductances(self, states) -> np.ndarray:
        return self.device.conductance_S(states)

    def load_states(self, states) -> None:
        self._states = np.array(self.crossbar._validated_states(states), dtype=float)
        self._programmed(np.arange(self.n_devices), self._states)

    # -- temporary read trims -----------------------------------------------------------------------
    def trim(self, offsets, time_s: float = 0.0) -> None:
        self._set_trim(offsets)
        self._charge_trim(time_s)

    def _set_trim(self, offsets) -> None:
        self._trim = trim_offsets(offsets, self.n_devices)

    def _charge_trim(self, time_s: float) -> None:
        if time_s > 0:
            self._charge(LedgerEntry("perturb", -1, 0.0, 0.0, float(time_s)))

    def _inference_states(self) -> np.ndarray:
        """The states the array is read at: the stored ones plus any trim."""
        if self._trim is None:
            return self._states
        return np.clip(self._states + self._trim, *self.device.state_bounds)

    # -- snapshots ---------------------------------------------------------------------------------
    def snapshot(self) -> ChipSnapshot:
        arrays = {"states": self._states.copy(), "programmed_at_s": self._programmed_at_s.copy(),
                  **{f"memory.{key}": values.copy() for key, values in self._memory.items()},
                  **{f"ledger.{key}": values for key, values in self.ledger.to_arrays().items()}}
        if self._trim is not None:
            arrays["trim"] = self._trim.copy()
        return ChipSnapshot(arrays, {"clock_s": self.clock_s, "rngs": self._rng_states()})

    def restore(self, snapshot: ChipSnapshot) -> None:
        arrays = snapshot.arrays
        self.load_states(arrays["states"])
        self._programmed_at_s = np.array(arrays["programmed_at_s"], dtype=float)
        self._memory = {key.split(".", 1)[1]: np.array(values, dtype=float)
                        for key, values in arrays.items() if key.startswith("memory.")}
        self.ledger = Ledger.from_arrays({key.split(".", 1)[1]: values for key, values in arrays.items()
                                          if key.startswith("ledger.")})
        self.clock_s = float(snapshot.state["clock_s"])
        self._set_rng_states(snapshot.state["rngs"])
        self._trim = np.array(arrays["trim"], dtype=float) if "trim" in arrays else None

    def _rngs(self) -> dict[str, np.random.Generator]:
        return {"model": self._model_rng}

    def _rng_states(self) -> dict:
        return {name: rng.bit_generator.state for name, rng in self._rngs().items()}

    def _set_rng_states(self, states: dict) -> None:
        for name, rng in self._rngs().items():
            rng.bit_generator.state = states[name]

    def _check_index(self, index: int) -> None:
        if not (isinstance(index, (int, np.integer)) and 0 <= index < self.n_devices):
            raise ConfigError("device index", index, f"an integer in [0, {self.n_devices - 1}]")

    def close(self) -> None:
        """Release the backend's resources (worker processes); nothing by default."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
