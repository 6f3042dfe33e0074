"""The write-verify controller of the programming circuit, as data and one state machine.

A device is programmed by its controller: read it, pulse SET while it reads below the target and
RESET while above, re-read after each pulse, halve the widths when a pulse overshoots, stop within
tolerance or when the pulse budget is spent (``training/tuning.py`` explains the procedure).

The decisions live here once, in ``controller``: a generator that yields what to do next ("read",
"reset", or a pulse by direction and width level) and is sent each read's conductance. Python
drives it against any chip one operation at a time (``training.tuning.program_to_target``), and the
ngspice worker drives the same generator inside its own process (``spice/sequences.py``), so a
whole write-verify is one round trip and both paths take the same decisions by construction.

``WriteVerifyProgram`` holds numbers only: it crosses to the worker as a plain dict, no code.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

import numpy as np

from ..validation import check_range
from .program import PulseSpec

# Widths are halved at most this often (2^-64 of a second is below any simulator's resolution).
MAX_HALVINGS = 64


@dataclass(frozen=True)
class WriteVerifyProgram:
    """One device's write-verify: target, tolerance band, pulse shapes, budget (SI units)."""

    target_S: float
    tolerance: float
    tolerance_floor_S: float
    max_pulses: int
    initial_reset: bool
    set_amplitude_V: float
    reset_amplitude_V: float
    set_width_s: float
    reset_width_s: float          # verify-loop RESET width before halving
    min_width_s: float
    edge_s: float
    adaptive_width: bool
    initial_reset_width_s: float  # the one long RESET pulse before the loop

    def __post_init__(self) -> None:
        if not (np.isfinite(self.target_S) and self.target_S > 0):
            raise ValueError(f"target_S = {self.target_S!r}: a positive conductance in S")
        check_range("write_verify.max_pulses", self.max_pulses, 0, 100_000)

    def within(self, g_S: float) -> bool:
        """Whether a read ``g_S`` is close enough to the target to stop."""
        return abs(g_S - self.target_S) <= max(self.tolerance * self.target_S, self.tolerance_floor_S)

    def width_s(self, direction: int, halvings: int) -> float:
        """The width of a SET (+1) or RESET (−1) pulse after ``halvings`` overshoots."""
        full = self.set_width_s if direction > 0 else self.reset_width_s
        return max(full / 2.0 ** min(halvings, MAX_HALVINGS), self.min_width_s)

    def levels(self, direction: int) -> int:
        """The number of distinct widths of one direction: after that many halvings the width
        stays at ``min_width_s`` (so a finite table of pulses serves every decision)."""
        full = self.set_width_s if direction > 0 else self.reset_width_s
        for halvings in range(MAX_HALVINGS + 1):
            if full / 2.0 ** halvings <= self.min_width_s:
                return halvings + 1
        return MAX_HALVINGS + 1

    def pulse(self, direction: int, level: int) -> PulseSpec:
        amplitude = self.set_amplitude_V if direction > 0 else self.reset_amplitude_V
        return PulseSpec(amplitude, self.width_s(direction, level), self.edge_s)

    def reset_pulse(self) -> PulseSpec:
        return PulseSpec(self.reset_amplitude_V, self.initial_reset_width_s, self.edge_s)

    def pulse_table(self) -> list[PulseSpec]:
        """Every pulse the controller can ask for, indexed by ``pulse_index``."""
        table = [self.reset_pulse()]
        for direction in (1, -1):
            table += [self.pulse(direction, level) for level in range(self.levels(direction))]
        return table

    def pulse_index(self, action: tuple) -> int:
        """Position in ``pulse_table`` of a 'reset' or ('pulse', direction, level) action."""
        if action[0] == "reset":
            return 0
        _, direction, level = action
        return 1 + level if direction > 0 else 1 + self.levels(1) + level

    def as_dict(self) -> dict:
        return dict(vars(self))  # plain numbers and bools only (asdict's deep copy costs ~0.1 ms)


@dataclass(frozen=True)
class WriteVerifyOutcome:
    """What the controller concluded: first and last read, pulse counts, reads, convergence."""

    initial_S: float
    final_S: float
    set_pulses: int
    reset_pulses: int
    reads: int
    converged: bool


def controller(program: WriteVerifyProgram) -> Generator[tuple, float | None, WriteVerifyOutcome]:
    """The write-verify decisions. Yields ('reset',), ('read',) or ('pulse', direction, level);
    send the read conductance (S) after a 'read', None after a pulse. Returns the outcome."""
    if program.initial_reset:
        yield ("reset",)
    g = initial = yield ("read",)
    reads, counts, halvings, last = 1, {1: 0, -1: 0}, 0, 0
    converged = program.within(g)
    while not converged and counts[1] + counts[-1] < program.max_pulses:
        direction = 1 if g < program.target_S else -1
        if program.adaptive_width and last and direction != last:
            halvings += 1
        yield ("pulse", direction, min(halvings, program.levels(direction) - 1))
        counts[direction] += 1
        last = direction
        g = yield ("read",)
        reads += 1
        converged = program.within(g)
    return WriteVerifyOutcome(float(initial), float(g), counts[1], counts[-1], reads, bool(converged))


def controller_read(current_A, v_read_V: float, r_series_ohm: float):
    """The conductance a controller infers from a sensed read current, knowing its path:
    G = I / (V_read − I·R_series) (scalars or arrays)."""
    return current_A / (v_read_V - current_A * r_series_ohm)
