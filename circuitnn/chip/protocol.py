"""The protocol every chip backend implements, and the records it returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..circuits.crossbar import Crossbar
from ..circuits.program import PulseSpec
from ..errors import ConfigError
from ..validation import check_range
from .ledger import Ledger


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
    conductance = current_A / (v_read_V - current_A * r_series_ohm)
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
    """Device states plus the circuit around them. All backends implement this."""

    crossbar: Crossbar
    ledger: Ledger

    @property
    def states(self) -> np.ndarray:
        """A copy of every device's state x, in ``crossbar.sites`` order."""

    def read_device(self, index: int) -> DeviceRead:
        """Select one device and read its conductance (charged to the ledger as 'read')."""

    def pulse_device(self, index: int, pulse: PulseSpec, phase: str = "program") -> PulseEvent:
        """Apply one programming pulse to one device (phase 'program' or 'reset')."""

    def infer(self, inputs: np.ndarray) -> InferenceResult:
        """Run inputs ((n, n_inputs) in [0, 1]) through the array with the switches opened."""

    def rest_device(self, index: int, duration_s: float) -> float:
        """Leave one device unbiased for ``duration_s`` (retention); returns its new state."""

    def load_states(self, states: np.ndarray) -> None:
        """Overwrite the device states without pulses (fabrication variation, experiments)."""


class DeviceStates:
    """What every backend shares: the device-state array and its checks, and ``with`` support."""

    crossbar: Crossbar
    _states: np.ndarray

    @property
    def states(self) -> np.ndarray:
        return self._states.copy()

    @property
    def n_devices(self) -> int:
        return self.crossbar.n_devices

    def _check_index(self, index: int) -> None:
        if not (isinstance(index, (int, np.integer)) and 0 <= index < self.n_devices):
            raise ConfigError("device index", index, f"an integer in [0, {self.n_devices - 1}]")

    def close(self) -> None:
        """Release the backend's resources (worker processes); nothing by default."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
