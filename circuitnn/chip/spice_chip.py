"""``SpiceChip``: the chip simulated in ngspice.

Two circuits, each kept loaded in its own engine (worker process): the programming path (one
selected device with its pulse generator, driver, switch and sense resistor), and the array with
its neurons (inference, switches opened toward the pulse bus). Device states live here and are
carried between the two.
"""

from __future__ import annotations

import numpy as np

from ..circuits.crossbar import Crossbar
from ..circuits.program import ProgrammingCircuit, ProgrammingPath, PulseSpec
from ..spice.engine import SpiceEngine
from ..spice.pulses import SpicePulseWriter
from .ledger import Ledger, LedgerEntry
from .protocol import ChipTiming, DeviceRead, DeviceStates, InferenceResult, PulseEvent, verify_read_values


# Inputs sent to the worker per round trip: large enough to hide the round trip, small enough that a
# failure names a narrow range of samples.
INFERENCE_BATCH = 256


class SpiceChip(DeviceStates):
    """A crossbar chip in ngspice. Close it (or use ``with``) to stop its two worker processes."""

    def __init__(self, crossbar: Crossbar, initial_states, path: ProgrammingPath = ProgrammingPath(),
                 timing: ChipTiming = ChipTiming(), timeout_s: float = 300.0, seed: int = 0):
        self.crossbar, self.timing = crossbar, timing
        self.program_circuit = ProgrammingCircuit(crossbar.spec.device, path, name=f"{crossbar.spec.name}_program",
                                                  v_read_V=crossbar.spec.v_read_V)
        self.ledger = Ledger()
        self._init_states(initial_states, seed)
        self._program_engine = SpiceEngine(timeout_s=timeout_s)
        self._array_engine = SpiceEngine(timeout_s=timeout_s)
        self._writer = SpicePulseWriter(self.program_circuit, self._program_engine)
        self._array_states: np.ndarray | None = None  # the states the loaded array holds
        self._array_inputs: dict[str, np.ndarray] = {}  # the read inputs it holds (ageing models)

    @property
    def path(self) -> ProgrammingPath:
        return self.program_circuit.path

    # -- protocol ----------------------------------------------------------------------------------

    def read_device(self, index: int) -> DeviceRead:
        self._check_index(index)
        v_read = self.crossbar.spec.v_read_V
        site = self.crossbar.sites[index]
        inputs = {key: float(values[0]) for key, values in self._read_inputs(index).items()}
        current, v_device = self._writer.read_dc(float(self._states[index]), v_read,
                                                 step=f"verify read of {site.instance}", inputs=inputs)
        conductance, energy_device, energy_total, time_s = verify_read_values(
            current, v_device, v_read, self.program_circuit.path.r_series_ohm, self.timing)
        read = DeviceRead(conductance, current, energy_device, energy_total, time_s)
        self._charge(LedgerEntry("read", index, read.energy_device_J, read.energy_total_J, read.time_s))
        return read

    def pulse_device(self, index: int, pulse: PulseSpec, phase: str = "program") -> PulseEvent:
        self._check_index(index)
        site = self.crossbar.sites[index]
        result = self._writer.apply(float(self._states[index]), pulse,
                                    step=f"{phase} pulse {pulse.amplitude_V:+g} V on {site.instance}")
        self._states[index] = result.x_after
        event = PulseEvent(result.x_before, result.x_after, result.energy_device_J, result.energy_source_J,
                           result.duration_s + self.timing.controller_overhead_s)
        self._charge(LedgerEntry(phase, index, event.energy_device_J, event.energy_total_J,
                                 event.time_s, pulses=1))
        self._programmed(index, result.x_after)
        return event

    def rest_device(self, index: int, duration_s: float) -> float:
        """Simulate the device at 0 V for ``duration_s`` (a transient of the programming path with
        the generator at 0 V): its state relaxes as the model says. Not charged to the ledger."""
        self._check_index(index)
        hold = PulseSpec(0.0, duration_s, edge_s=min(1e-6, duration_s / 10))
        result = self._writer.apply(float(self._states[index]), hold,
                                    step=f"retention of {self.crossbar.sites[index].instance}")
        self._states[index] = result.x_after
        return result.x_after

    def infer(self, inputs, read_noise: bool = True) -> InferenceResult:
        x = np.atleast_2d(np.asarray(inputs, dtype=float))
        crossbar = self.crossbar
        self._sync_array(self._read_inputs(noise=read_noise))
        layers = crossbar.spec.layers
        nodes = [[crossbar.activation_node(l, j) for j in range(layer.n_outputs)] for l, layer in enumerate(layers)]
        power_pairs = crossbar.driver_power_vectors()
        sense = [[crossbar.sense_nodes(l, j) for j in range(layer.n_outputs)] for l, layer in enumerate(layers)]
        wanted = [n for layer_nodes in nodes for n in layer_nodes]
        wanted += sorted({v for v, _ in power_pairs} | {i for _, i in power_pairs}
                         | {n for layer_sense in sense for pair in layer_sense for n in pair})
        activations = [np.zeros((len(x), layer.n_outputs)) for layer in layers]
        currents = [np.zeros((len(x), layer.n_outputs)) for layer in layers]
        r_sense = crossbar.sense_resistance_ohm
        energy = 0.0
        v_read = crossbar.spec.v_read_V
        for first in range(0, len(x), INFERENCE_BATCH):
            batch = x[first:first + INFERENCE_BATCH]
            results = self._array_engine.run_many(
                "op", wanted, [crossbar.input_alters(sample) for sample in batch],
                step=f"inference of samples {first}-{first + len(batch) - 1}")
            for k, result in enumerate(results, start=first):
                v = result.vectors
                for l, layer_nodes in enumerate(nodes):
                    activations[l][k] = [v[n][0] / v_read for n in layer_nodes]
                    currents[l][k] = [(v[end][0] - v[summing][0]) / r_sense for end, summing in sense[l]]
                power = -sum(v[node][0] * v[current][0] for node, current in power_pairs)
                energy += power * self.timing.inference_settle_s
        duration = len(x) * (self.timing.inference_settle_s + self.timing.controller_overhead_s)
        self._charge(LedgerEntry("inference", -1, 0.0, energy, duration))
        return InferenceResult(activations[-1], activations[:-1], energy, duration, currents)

    def _sync_array(self, device_inputs: dict[str, np.ndarray]) -> None:
        """Bring the loaded array to the chip's states (with any trim) and the read inputs of this
        inference."""
        states = self._inference_states()
        if self._array_states is None:
            self._array_engine.load(self.crossbar.spec.name,
                                    self.crossbar.netlist(states, np.zeros(self.crossbar.n_inputs),
                                                          device_inputs=device_inputs))
        else:
            changed = np.flatnonzero(self._array_states != states)
            alters = self.crossbar.state_alters(states)
            sites = self.crossbar.sites
            alters = {sites[i].state_target: alters[sites[i].state_target] for i in changed}
            for key, values in device_inputs.items():
                moved = np.flatnonzero(self._array_inputs[key] != values)
                alters.update(self.crossbar.device_input_alters({key: values}, indices=moved))
            if alters:
                self._array_engine.run("op", [self.crossbar.output_nodes()[0]], step="load device states",
                                       alters=alters)
        self._array_states = states.copy()
        self._array_inputs = {key: np.array(values) for key, values in device_inputs.items()}

    # -- for stored runs --------------------------------------------------------------------------------
    def netlists(self) -> dict[str, str]:
        """The netlists this chip simulates, at its current states (for a run's netlists/ folder)."""
        return {
            f"{self.crossbar.spec.name}.cir": self.crossbar.netlist(self._states, np.zeros(self.crossbar.n_inputs)),
            f"{self.program_circuit.name}.cir": self.program_circuit.netlist(
                float(self._states[0]), PulseSpec(1.0, 10e-6)),
        }

    def close(self) -> None:
        self._program_engine.close()
        self._array_engine.close()

