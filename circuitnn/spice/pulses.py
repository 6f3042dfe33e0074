"""Programming pulses in SPICE: one device, its driver and sense path, state carried pulse to pulse.

The circuit is loaded once; each pulse is two ``alter``s (stored state, pulse shape) and a short
transient. Energies are integrated from the simulated waveforms, never estimated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..circuits.program import SOURCE, ProgrammingCircuit, PulseSpec
from .engine import SpiceEngine


@dataclass(frozen=True)
class PulseResult:
    """What one simulated pulse did. Energies in J, times in s."""

    x_before: float
    x_after: float
    energy_device_J: float   # ∫ V_device · I dt
    energy_source_J: float   # ∫ V_generator · I dt: device plus driver, switch and sense losses
    duration_s: float
    peak_current_A: float
    solve_time_s: float      # wall time of ngspice's transient alone (for overhead benchmarks)
    waveform: dict[str, np.ndarray] | None = None


class SpicePulseWriter:
    """Applies pulses to a device through the programming circuit, in a (shared) engine.

    An ageing model's read inputs (drift, read noise) apply to reads only: a pulse sees the cell as
    just programmed (the inputs at their defaults), since programming restarts the drift clock.
    """

    def __init__(self, circuit: ProgrammingCircuit, engine: SpiceEngine, keep_waveforms: bool = False):
        self.circuit, self.engine, self.keep_waveforms = circuit, engine, keep_waveforms
        self._loaded = False
        sub = circuit.subcircuit
        self._fresh_inputs = {key: default for key, _, default in sub.inputs[1:]}
        self._inputs_altered = False

    def _ensure_loaded(self, pulse: PulseSpec) -> None:
        if not self._loaded or self.engine.circuit_name != self.circuit.name:
            self.engine.load(self.circuit.name, self.circuit.netlist(0.0, pulse))
            self._loaded = True

    def apply(self, x: float, pulse: PulseSpec, step: str | None = None) -> PulseResult:
        """Apply one pulse to a device in state ``x``."""
        self._ensure_loaded(pulse)
        alters = {**self.circuit.state_alters(x), **self.circuit.pulse_alters(pulse)}
        if self._inputs_altered:
            alters.update(self.circuit.input_alters(self._fresh_inputs))
            self._inputs_altered = False
        result = self.engine.run(self.circuit.analysis(pulse), self.circuit.vectors, alters=alters,
                                 step=step or f"pulse {pulse.amplitude_V:+g} V {pulse.width_s:g} s")
        v = result.vectors
        t = v["time"]
        current = v["bot"] / self.circuit.path.r_sense_ohm
        device_power = (v["top"] - v["bot"]) * current
        # The branch current of a voltage source flows into its + node: delivered power is -V·I.
        source_power = -v["pg"] * v[f"{SOURCE}#branch"]
        return PulseResult(
            x_before=x,
            x_after=float(np.clip(v[self.circuit.state_node][-1], *self.circuit.device.state_bounds)),
            energy_device_J=float(np.trapezoid(device_power, t)),
            energy_source_J=float(np.trapezoid(source_power, t)),
            duration_s=float(t[-1]),
            peak_current_A=float(np.max(np.abs(current))),
            solve_time_s=result.solve_time_s,
            waveform=dict(v) if self.keep_waveforms else None,
        )

    def read_dc(self, x: float, v_read_V: float, step: str | None = None,
                inputs: dict | None = None) -> tuple[float, float]:
        """Operating point with the generator held at ``v_read_V``: (current A, device voltage V).

        ``inputs``: an ageing model's read inputs for this read (``DeviceModel.read_inputs``)."""
        self._ensure_loaded(PulseSpec(1.0, 1e-6))
        alters = {**self.circuit.state_alters(x), **self.circuit.read_alters(v_read_V)}
        if inputs:
            alters.update(self.circuit.input_alters(inputs))
            self._inputs_altered = True
        v = self.engine.run("op", ("top", "bot"), alters=alters, step=step or "verify read").vectors
        current = float(v["bot"][0]) / self.circuit.path.r_sense_ohm
        return current, float(v["top"][0] - v["bot"][0])

    def train(self, x0: float, pulses: list[PulseSpec]) -> list[PulseResult]:
        """Apply ``pulses`` in order from state ``x0``, carrying the state."""
        results, x = [], x0
        for index, pulse in enumerate(pulses):
            results.append(self.apply(x, pulse, step=f"pulse {index + 1} of {len(pulses)}"))
            x = results[-1].x_after
        return results
