"""On-chip write-verify tuning: pulse each device until its read conductance is within tolerance.

The Eslami et al. procedure (§1.5 of the reference notes): select a device through its switch, read
it, optionally reset it first, then apply SET pulses while it reads below the target and RESET
pulses while it reads above, re-reading after each, until |G − G_t| ≤ tol·G_t or a pulse budget is
spent. Written against the Chip protocol only, so it runs on SPICE and on the surrogate alike.

When a pulse overshoots (the direction flips) the pulse widths are halved, down to a minimum: a
coarse-stepping medium (C: a 10 µs pulse moves x by ~40 %) would otherwise oscillate around its
target forever. This is a standard program-and-verify refinement and a config value.

SET pulses raise the conductance, RESET pulses lower it. Their amplitudes and widths are config
values per preset: a bipolar memristor resets with a negative pulse, a PCM cell (unipolar) with a
short pulse above its melting threshold. ``tolerance_floor_S`` adds an absolute floor to the relative
tolerance, for targets near a zero-conductance end where a relative band is narrower than the read
noise.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..chip.protocol import Chip
from ..circuits.program import PulseSpec
from ..chip.sequence import write_verify_op_by_op
from ..circuits.write_verify import WriteVerifyOutcome, WriteVerifyProgram
from ..errors import ConfigError
from ..validation import check_range

# Devices tuned per round trip to a chip's worker. A round trip costs ~0.15 ms with both processes
# awake and ~0.6-0.9 ms after the caller slept through a device's ~8 ms loop (this VM's wake-ups);
# eight devices make that < 1 % while a failure or Ctrl-C still repeats at most eight devices.
DEVICES_PER_ROUND_TRIP = 8


@dataclass(frozen=True)
class TuningConfig:
    tolerance: float = 0.05           # relative: |G − G_t| ≤ max(tolerance · G_t, tolerance_floor_S)
    max_pulses: int = 200             # per device, reset pulse excluded
    initial_reset: bool = False
    set_amplitude_V: float = 1.0
    reset_amplitude_V: float = -1.0   # bipolar devices: negative; PCM: positive, above melting
    pulse_width_s: float = 10e-6
    min_pulse_width_s: float = 0.5e-6
    edge_s: float = 100e-9
    adaptive_width: bool = True       # halve the widths when a pulse overshoots
    reset_width_s: float = 2e-3       # the initial reset: one long RESET pulse (≥ 5 τ for every medium)
    reset_pulse_width_s: float | None = None   # verify-loop RESET width; None: pulse_width_s
    tolerance_floor_S: float = 0.0

    def __post_init__(self) -> None:
        check_range("tuning.tolerance", self.tolerance, 0.0, 0.5)
        check_range("tuning.max_pulses", self.max_pulses, 0, 100_000)
        check_range("tuning.set_amplitude_V", self.set_amplitude_V, 0.0, 10.0)
        check_range("tuning.reset_amplitude_V", self.reset_amplitude_V, -10.0, 10.0, True)
        if self.reset_amplitude_V == 0.0:
            raise ConfigError("tuning.reset_amplitude_V", 0.0, "[-10, 10] V, not 0 (a RESET pulse)")
        check_range("tuning.pulse_width_s", self.pulse_width_s, 1e-9, 1.0)
        check_range("tuning.min_pulse_width_s", self.min_pulse_width_s, 1e-9, self.pulse_width_s)
        if self.reset_pulse_width_s is not None:
            check_range("tuning.reset_pulse_width_s", self.reset_pulse_width_s, self.min_pulse_width_s, 1.0, True)
        check_range("tuning.reset_width_s", self.reset_width_s, 1e-9, 1.0)
        check_range("tuning.edge_s", self.edge_s, 1e-12, self.min_pulse_width_s)
        check_range("tuning.tolerance_floor_S", self.tolerance_floor_S, 0.0, 1.0, True)

    def program(self, index: int, target_S: float) -> WriteVerifyProgram:
        """Device ``index``'s write-verify to ``target_S`` as the controller's data."""
        if not np.isfinite(target_S) or target_S <= 0:
            raise ConfigError(f"targets[{index}]", target_S, "a positive conductance in S")
        reset_width = self.pulse_width_s if self.reset_pulse_width_s is None else self.reset_pulse_width_s
        return WriteVerifyProgram(
            float(target_S), self.tolerance, self.tolerance_floor_S, self.max_pulses, self.initial_reset,
            self.set_amplitude_V, self.reset_amplitude_V, self.pulse_width_s, reset_width, self.min_pulse_width_s,
            self.edge_s, self.adaptive_width, self.reset_width_s)

    def pulse(self, direction: int, width_s: float) -> PulseSpec:
        amplitude = self.set_amplitude_V if direction > 0 else self.reset_amplitude_V
        return PulseSpec(amplitude, width_s, self.edge_s)

    def width_s(self, direction: int, halvings: int) -> float:
        """The width of a SET (+1) or RESET (−1) pulse after ``halvings`` overshoots."""
        full = self.pulse_width_s if direction > 0 or self.reset_pulse_width_s is None else self.reset_pulse_width_s
        return max(full / 2.0 ** min(halvings, 64), self.min_pulse_width_s)


@dataclass(frozen=True)
class DeviceTuning:
    """How one device was tuned."""

    index: int
    target_S: float
    initial_S: float
    final_S: float
    set_pulses: int
    reset_pulses: int        # verify-loop RESET pulses (the initial reset is counted in ``initial_reset``)
    initial_reset: bool
    reads: int
    converged: bool

    @property
    def relative_error(self) -> float:
        return (self.final_S - self.target_S) / self.target_S

    @property
    def pulses(self) -> int:
        return self.set_pulses + self.reset_pulses + int(self.initial_reset)


def program_to_target(chip: Chip, index: int, target_S: float, config: TuningConfig) -> DeviceTuning:
    """Write-verify one device to ``target_S``, one chip operation (read or pulse) per call.

    The decisions are ``circuits.write_verify.controller``'s, the same state machine a chip's own
    ``write_verify`` runs (inside the ngspice worker for ``SpiceChip``)."""
    program = config.program(index, target_S)
    return device_tuning(index, program, write_verify_op_by_op(chip, index, program))


def device_tuning(index: int, program: WriteVerifyProgram, outcome: WriteVerifyOutcome) -> DeviceTuning:
    """The ``DeviceTuning`` record of a controller's outcome."""
    return DeviceTuning(index, float(program.target_S), outcome.initial_S, outcome.final_S, outcome.set_pulses,
                        outcome.reset_pulses, program.initial_reset, outcome.reads, outcome.converged)


def tune_all(chip: Chip, targets_S, config: TuningConfig, done: dict[int, DeviceTuning] | None = None,
             on_device: Callable[[DeviceTuning], None] | None = None) -> list[DeviceTuning]:
    """Tune every device in order. ``done`` (from a checkpoint) skips devices already tuned;
    ``on_device`` is called after each device (progress bars, checkpoints).

    When the chip offers ``write_verify_many`` (SpiceChip: ``DEVICES_PER_ROUND_TRIP`` devices'
    whole loops in one round trip to its worker) or ``write_verify`` (one device's), devices are
    tuned through it; the decisions, states and ledger are the same as ``program_to_target``'s
    operation by operation (``tests/test_sequences.py``), and ``on_device`` still sees the chip
    after each device."""
    targets = np.asarray(targets_S, dtype=float)
    results = dict(done or {})
    pending = [(index, config.program(index, float(target))) for index, target in enumerate(targets)
               if index not in results]

    def outcomes(batch):
        if hasattr(chip, "write_verify_many"):
            return chip.write_verify_many(batch)
        one = getattr(chip, "write_verify", None) or functools.partial(write_verify_op_by_op, chip)
        return (one(index, program) for index, program in batch)

    for first in range(0, len(pending), DEVICES_PER_ROUND_TRIP):
        batch = pending[first:first + DEVICES_PER_ROUND_TRIP]
        for (index, program), outcome in zip(batch, outcomes(batch)):
            results[index] = device_tuning(index, program, outcome)
            if on_device is not None:
                on_device(results[index])
    return [results[i] for i in range(len(targets))]
