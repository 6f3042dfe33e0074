"""Operating-point read of a crossbar at given device states and inputs, in SPICE."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..circuits.crossbar import Crossbar
from ..spice.engine import SpiceEngine


@dataclass(frozen=True)
class OperatingPoint:
    states: np.ndarray           # (n_devices,) stored state x of every device
    conductances_S: np.ndarray   # (n_devices,) memristive conductance G(x)
    inputs: np.ndarray           # (n_inputs,) in [-1, 1], times V_read on the rows
    neuron_nodes: dict[str, float]  # TIA outputs l<L>o<j> and activations l<L>a<j>, in V
    outputs_V: np.ndarray        # activations of the last layer
    states_read_back: np.ndarray  # x read from SPICE's state nodes: must equal ``states``


def read_operating_point(crossbar: Crossbar, states, inputs, engine: SpiceEngine) -> OperatingPoint:
    """Load the crossbar at ``states``/``inputs`` and read every neuron and state node."""
    states, inputs = np.asarray(states, float), np.asarray(inputs, float)
    engine.load(crossbar.spec.name, crossbar.netlist(states, inputs))
    nodes = crossbar.neuron_nodes()
    state_nodes = [site.state_node for site in crossbar.sites]
    result = engine.run("op", nodes + state_nodes, step="operating point")
    values = {name: float(result.vectors[name][0]) for name in nodes}
    return OperatingPoint(
        states=states,
        conductances_S=crossbar.spec.device.conductance_S(states),
        inputs=inputs,
        neuron_nodes=values,
        outputs_V=np.array([values[n] for n in crossbar.output_nodes()]),
        states_read_back=np.array([result.vectors[n][0] for n in state_nodes]),
    )
