"""What the 9-3-1 circuit computes, over all 512 binary inputs, when the device targets compensate only
the selection switch, and when they are solved through the whole circuit (wires, sense resistors,
reference path, finite op-amp gain). Run: python examples/circuit_aware_mapping.py"""

import numpy as np

from circuitnn import SurrogateChip, circuit_conductances, fidelity, load_config, train_default
from circuitnn.circuits.crossbar import Crossbar
from circuitnn.training.mapping import binary_inputs, weights_to_conductances

for name in ("W", "Cr", "C"):
    config = load_config(medium_name=name)
    crossbar = Crossbar(config.crossbar_spec())
    network = train_default(config.software_training())
    inputs = binary_inputs(crossbar.n_inputs)
    for label, targets in (("switch only", weights_to_conductances(network.weights, crossbar, 0.05)),
                           ("through the circuit", circuit_conductances(network.weights, crossbar, 0.05))):
        states = np.clip(crossbar.spec.device.state_from_conductance(targets), 0, 1)
        result = SurrogateChip(crossbar, states).infer(inputs)
        f = fidelity(network.weights, [*result.hidden, result.outputs], inputs)
        print(f"{name:3s} {label:20s} max activation error {f['max_error']:.4f} of full scale, "
              f"{f['class_flips']} of {f['inputs']} outputs change class")
