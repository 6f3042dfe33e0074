"""Programming pulses in SPICE: one device, its driver and sense path, state carried pulse to pulse.

The circuit is loaded once; each pulse is two ``alter``s (stored state, pulse shape) and a short
transient. Energies are integrated from the simulated waveforms, never estimated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..circuits.netlist import check_analysis
from ..circuits.program import SOURCE, ProgrammingCircuit, PulseSpec
from .engine import SpiceEngine, alter_command, check_vectors
from .sequences import ProgrammingSetup, peak_current_A, pulse_outcome, read_outcome


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
        x_after, e_device, e_source, duration = pulse_outcome(
            v, self.circuit.path.r_sense_ohm, self.circuit.state_node, f"{SOURCE}#branch",
            self.circuit.device.state_bounds)
        peak = peak_current_A(v, self.circuit.path.r_sense_ohm)
        return PulseResult(x_before=x, x_after=x_after, energy_device_J=e_device, energy_source_J=e_source,
                           duration_s=duration, peak_current_A=peak, solve_time_s=result.solve_time_s,
                           waveform=dict(v) if self.keep_waveforms else None)

    def read_dc(self, x: float, v_read_V: float, step: str | None = None,
                inputs: dict | None = None) -> tuple[float, float]:
        """Operating point with the generator held at ``v_read_V``: (current A, device voltage V).

        ``inputs``: an ageing model's read inputs for this read (``DeviceModel.read_inputs``)."""
        self._ensure_loaded(PulseSpec(1.0, 1e-6))
        alters = {**self.circuit.state_alters(x), **self.circuit.read_alters(v_read_V)}
        if inputs:
            alters.update(self.circuit.input_alters(inputs))
            self._inputs_altered = True
        v = self.engine.run("op", self.circuit.read_vectors, alters=alters, step=step or "verify read").vectors
        return read_outcome(float(v["top"][0]), float(v["bot"][0]), self.circuit.path.r_sense_ohm)

    # -- whole sequences in one round trip (spice/sequences.py) -----------------------------------------
    def setup(self, pulses: list[PulseSpec], v_read_V: float, r_series_ohm: float) -> ProgrammingSetup:
        """The worker's view of this circuit with a table of ``pulses`` (every alter checked here)."""
        if self.circuit.device.ages:
            raise ValueError("in-worker sequences need a device model that does not age (its reads "
                             "draw read inputs on the Python side)")
        self._ensure_loaded(pulses[0] if pulses else PulseSpec(1.0, 1e-6))
        c = self.circuit
        [(state_target, _)] = c.state_alters(0.5 * sum(c.device.state_bounds)).items()
        table = []
        for pulse in pulses:
            alters = tuple(c.pulse_alters(pulse).items())
            analysis = c.analysis(pulse)
            for target, value in alters:
                alter_command(target, value)
            check_analysis(analysis)
            table.append((alters, analysis))
        read = tuple(c.read_alters(v_read_V).items())
        for target, value in read:
            alter_command(target, value)
        alter_command(state_target, "dc=0.5")
        # Reads save the pulse's vectors too (minus time): ngspice's save list then stays as it is
        # between reads and pulses instead of being rebuilt twice per verify step.
        read_vectors = tuple(check_vectors([v for v in c.vectors if v != "time"]))
        return ProgrammingSetup(state_target, read, read_vectors,
                                tuple(check_vectors(c.vectors)), c.state_node, f"{SOURCE}#branch",
                                c.path.r_sense_ohm, float(v_read_V), float(r_series_ohm),
                                tuple(float(b) for b in c.device.state_bounds), tuple(table))

    def write_verify_many(self, setup: ProgrammingSetup, items, step: str | None = None):
        """Several devices' write-verify, in order, in one round trip: (result table of all devices,
        [(outcome, rows)] per device). ``items``: (device, x0, WriteVerifyProgram)."""
        self._ensure_loaded(PulseSpec(1.0, 1e-6))
        request = [(int(device), float(x0), program.as_dict()) for device, x0, program in items]
        return self.engine.run_sequence(("write_verify_many", setup, request),
                                        step or f"write-verify of {len(request)} devices")

    def program_ops(self, setup: ProgrammingSetup, states: dict[int, float], operations, step: str | None = None):
        """(kind, device, pulse index) operations in one round trip: (result table, final states)."""
        self._ensure_loaded(PulseSpec(1.0, 1e-6))
        return self.engine.run_sequence(("program_ops", setup, dict(states), list(operations)),
                                        step or "operation sequence")

    def train(self, x0: float, pulses: list[PulseSpec]) -> list[PulseResult]:
        """Apply ``pulses`` in order from state ``x0``, carrying the state."""
        results, x = [], x0
        for index, pulse in enumerate(pulses):
            results.append(self.apply(x, pulse, step=f"pulse {index + 1} of {len(pulses)}"))
            x = results[-1].x_after
        return results
