"""A network as one chip instance computes it: device gains on every weight, a mismatched neuron circuit
after every column, a cost circuit at the outputs, and a count of every chip evaluation.

``ChipNetwork`` wraps a ``layers.Network`` (its weights are the nominal weights the controller
programs and updates) and one draw of ``circuit_variation.LayerCircuits`` per weighted layer. The
forward pass is the network's own layers with two changes: every weighted layer computes with the
effective weights ``LayerCircuits.effective_weight`` (device gains), and the neuron that follows it
computes a · f(b · s + c) (f = ReLU, and the identity for the output layer). Biases stay digital, as
in ``layers.py``; pooling and flattening are ideal.

Cost (our choice, the DGC paper does not say which it used): the mean over the mini-batch of the
per-sample squared error C_n = ½ Σ_k (y_nk − t_nk)² against one-hot targets t. It is separable
(a sum of one term per output), which the per-output parallel perturbation needs, and every
method uses the same cost so their accuracies compare.

Chip evaluations (``EvaluationCounter``): ``forward`` counts inputs run forward through the chip
(one per sample of every measured mini-batch, perturbed or not); ``backward`` counts error vectors
run backward through the BP circuits. Monitoring (test accuracy) is not counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from .circuit_variation import CircuitVariation, LayerCircuits, draw_chip_circuits
from .layers import Conv2D, Dense, Network, ReLU


@dataclass
class EvaluationCounter:
    """Chip evaluations so far: samples run forward, error vectors run backward."""

    forward: int = 0
    backward: int = 0

    @property
    def total(self) -> int:
        return self.forward + self.backward

    def as_dict(self) -> dict:
        return {"forward": self.forward, "backward": self.backward, "total": self.total}


@dataclass
class ChipTrace:
    """One forward pass. Per weighted layer k: ``inputs[k]`` what its array saw ((n, n_in), or NHWC
    images for a convolution), ``pre[k]`` its column outputs s before the neuron, ``post[k]`` the neuron
    outputs y = a f(b s + c). ``outputs`` (n, classes) the output neurons; ``targets`` one-hot.

    The layer objects keep caches of the latest forward pass (pooling's arg-max): back-propagation
    through a trace must run before any other forward pass of the same network.
    """

    inputs: list = field(default_factory=list)
    pre: list = field(default_factory=list)
    post: list = field(default_factory=list)
    outputs: np.ndarray | None = None
    targets: np.ndarray | None = None

    def sample_costs(self) -> np.ndarray:
        return sample_costs(self.outputs, self.targets)

    def cost(self) -> float:
        return float(np.mean(self.sample_costs()))


def cost_terms(outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """The per-output cost terms ½ (y − t)², shaped like ``outputs``."""
    return 0.5 * np.square(outputs - targets)


def sample_costs(outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """C_n = ½ Σ_k (y_nk − t_nk)²: one cost per sample (the last axis summed)."""
    return cost_terms(outputs, targets).sum(axis=-1)


def one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    labels = np.asarray(labels)
    targets = np.zeros((len(labels), n_classes))
    targets[np.arange(len(labels)), labels] = 1.0
    return targets


class ChipNetwork:
    """``network`` on one chip instance with ``variation`` drawn from ``rng``.

    ``weight_range`` (one value per weighted layer): the largest |w| the device pairs hold (updates are
    clipped to it); ``None`` takes 2 × the largest |w| at construction (our choice: room to grow
    while keeping the initial weights well inside the window).
    """

    def __init__(self, network: Network, variation: CircuitVariation = CircuitVariation(),
                 rng: np.random.Generator | None = None, weight_range: list[float] | None = None):
        self.network, self.variation = network, variation
        layers = network.layers
        self.positions = [p for p, layer in enumerate(layers) if layer.has_weights]
        self.activations = []
        for k, p in enumerate(self.positions):
            last = k == len(self.positions) - 1
            if last and p != len(layers) - 1:
                raise ConfigError("network.layers", type(layers[-1]).__name__,
                                  "a weighted layer last (the output neurons)")
            if not last and not isinstance(layers[p + 1], ReLU):
                raise ConfigError("network.layers", type(layers[p + 1]).__name__,
                                  "a ReLU after every weighted layer but the last")
            self.activations.append("linear" if last else "relu")
        for layer in network.weighted:
            if not isinstance(layer, (Dense, Conv2D)):
                raise ConfigError("network.layers", type(layer).__name__, "Dense or Conv2D weighted layers")
        rng = np.random.default_rng(0) if rng is None else rng
        self.circuits: list[LayerCircuits] = draw_chip_circuits([w.shape for w in network.weights],
                                                                variation, rng)
        if weight_range is None:
            weight_range = [2.0 * max(float(np.max(np.abs(w))), 1e-12) for w in network.weights]
        if len(weight_range) != len(network.weights):
            raise ConfigError("learning.weight_range", weight_range, f"{len(network.weights)} values")
        self.weight_range = [float(r) for r in weight_range]
        self.n_classes = network.weighted[-1].weight.shape[1]
        self.counter = EvaluationCounter()

    # ---- the circuit ------------------------------------------------------------------------------
    @property
    def layers(self) -> list:
        return self.network.weighted

    def effective_weights(self, weights: list[np.ndarray] | None = None) -> list:
        """The weights the forward arrays compute with for nominal ``weights`` (default: the network's)."""
        weights = self.network.weights if weights is None else weights
        return [c.effective_weight(w) for c, w in zip(self.circuits, weights)]

    def neuron(self, k: int, s: np.ndarray) -> np.ndarray:
        """Neuron outputs a · f(b · s + c) of layer ``k`` for column outputs ``s`` (…, n_out)."""
        c = self.circuits[k]
        z = s * c.b
        z += c.c
        if self.activations[k] == "relu":
            np.maximum(z, 0.0, out=z)
        z *= c.a
        return z

    def _continue(self, k: int, y: np.ndarray, effective: list, trace: ChipTrace | None,
                  biases: list | None = None) -> np.ndarray:
        """Outputs of the network from layer ``k``'s neuron outputs ``y`` on (through the later layers)."""
        x = y
        index = k
        for layer in self.network.layers[self.positions[k] + 1:]:
            if isinstance(layer, ReLU):
                continue  # the neuron circuit applied f already
            if layer.has_weights:
                index += 1
                s = self._weighted(index, x, effective[index], biases)
                if trace is not None:
                    trace.inputs.append(x)
                    trace.pre.append(s)
                x = self.neuron(index, s)
                if trace is not None:
                    trace.post.append(x)
            else:
                x = layer.forward(x)
        return x

    def _weighted(self, k: int, x: np.ndarray, weight: np.ndarray, biases: list | None = None) -> np.ndarray:
        layer = self.layers[k]
        if isinstance(layer, Dense) and x.ndim > 2:  # extra leading axes (perturbation copies)
            out = x @ weight + layer.bias
        else:
            out = layer.forward(x, weight)
        if biases is not None and biases[k] is not None:
            out = out + (biases[k] - layer.bias)
        return out

    def forward(self, X, labels=None, weights: list | None = None, biases: list | None = None,
                count: bool = True) -> ChipTrace:
        """One forward pass of inputs ``X`` (n, …) on the chip; ``labels`` (n,) give the targets.

        ``weights``: nominal weights to use instead of the network's (a perturbation); ``biases``
        likewise for the digital biases (None entries keep the layer's). ``count``: add n to the
        forward evaluations.
        """
        X = np.asarray(X, dtype=float)
        x = X.reshape(len(X), *self.network.input_shape)
        effective = self.effective_weights(weights)
        trace = ChipTrace()
        # Layers before the first weighted one (none in build_network's networks) run as they are.
        for layer in self.network.layers[:self.positions[0]]:
            x = layer.forward(x)
        s = self._weighted(0, x, effective[0], biases)
        y = self.neuron(0, s)
        trace.inputs.append(x)
        trace.pre.append(s)
        trace.post.append(y)
        trace.outputs = self._continue(0, y, effective, trace, biases)
        if labels is not None:
            trace.targets = one_hot(labels, self.n_classes)
        if count:
            self.counter.forward += len(X)
        return trace

    def outputs_from(self, k: int, s: np.ndarray, weights: list | None = None) -> np.ndarray:
        """Network outputs when layer ``k``'s column outputs are ``s`` (any leading axes for dense layers,
        (n, h, w, C) for convolutions). Counts nothing: the caller knows how many chip evaluations
        its perturbations stand for."""
        return self._continue(k, self.neuron(k, s), self.effective_weights(weights), None)

    def predict(self, X, batch_size: int = 500) -> np.ndarray:
        X = np.asarray(X)
        return np.concatenate([np.argmax(self.forward(X[i:i + batch_size], count=False).outputs, axis=1)
                               for i in range(0, len(X), batch_size)])

    def accuracy(self, X, y, batch_size: int = 500) -> float:
        """Test accuracy on the chip (not counted as training evaluations)."""
        return float(np.mean(self.predict(X, batch_size) == np.asarray(y)))
