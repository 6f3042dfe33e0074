"""Back-propagation as a chip with BP circuits computes it: its own derivative and error circuits.

The forward pass is measured on the chip (``ChipNetwork.forward``): the layer inputs x and column
outputs s are what the chip produced. The backward pass runs through circuits the forward pass does
not use, designed for the *nominal* neuron and drawn separately (``circuit_variation``):

    e_y  = y − t                                        the cost circuit (∂C_n/∂y for the ½(y − t)² cost)
    δ_s  = e_y ⊙ d,  d_j = a'_j f'(b'_j s_j + c'_j)       the derivative circuit (f' = step for ReLU, 1 at the outputs)
    ∂C/∂W ≈ mean_n x_n δ_s,n^T,   ∂C/∂b ≈ mean_n δ_s,n   outer products of measured inputs and errors
    e_x  = g ⊙ (W_b δ_s) + o                            the transposed product (``backward_weights``) and
                                                        the error amplifiers at the layer's inputs

so the true derivative a_j b_j f'(b_j s_j + c_j) of a mismatched forward neuron is replaced by the
derivative circuit's, and the transposed weights by the backward array's: every variation of either
path biases the gradient (docs/reference/dgc-drift-programming.md §1.4). With no variation anywhere
this is the exact gradient of the cost (the tests check it against ``layers.Network.backward``).
"""

from __future__ import annotations

import numpy as np

from .chip_network import ChipNetwork, ChipTrace
from .layers import Conv2D, ReLU


def derivative_circuit(chip: ChipNetwork, k: int, s: np.ndarray) -> np.ndarray:
    """d = a' f'(b' s + c') of layer ``k``'s derivative circuits for column outputs ``s``."""
    c = chip.circuits[k]
    if chip.activations[k] == "linear":
        return np.broadcast_to(c.d_gain, s.shape)
    return c.d_gain * ((c.d_input_gain * s + c.d_offset) > 0)


def bp_gradients(chip: ChipNetwork, trace: ChipTrace, lowest: int = 0) -> dict:
    """{k: (grad_weight, grad_bias)} for every weighted layer k ≥ ``lowest``, by the BP circuits, from
    ``trace`` (which must be the latest forward pass of ``chip``: pooling keeps its arg-max).

    Counts one backward evaluation per sample.
    """
    B = len(trace.outputs)
    error = trace.outputs - trace.targets                         # per sample, not yet / B
    grads = {}
    for k in range(len(chip.layers) - 1, lowest - 1, -1):
        layer, circuits = chip.layers[k], chip.circuits[k]
        delta = error * derivative_circuit(chip, k, trace.pre[k])
        if isinstance(layer, Conv2D):
            cols = layer.patches(trace.inputs[k])
            delta2d = delta.reshape(-1, delta.shape[-1])
            grads[k] = (cols.T @ delta2d / B, delta2d.sum(axis=0) / B)
        else:
            grads[k] = (trace.inputs[k].T @ delta / B, delta.sum(axis=0) / B)
        if k == lowest:
            break
        backward_weight = circuits.effective_weight(layer.weight, backward=True) * circuits.error_gain[:, None]
        if isinstance(layer, Conv2D):
            error = layer.input_gradient(delta, backward_weight, circuits.error_offset)
        else:
            error = delta @ backward_weight.T + circuits.error_offset
        # Back through the ideal layers between the two weighted ones (pooling, flattening); the ReLU's
        # derivative is the derivative circuit of layer k − 1.
        for between in reversed(chip.network.layers[chip.positions[k - 1] + 1:chip.positions[k]]):
            if not isinstance(between, ReLU):
                error = between.backward(error)
    chip.counter.backward += B
    return grads
