"""Train the MNIST-scale networks hardware-aware, and evaluate them through crossbar tiles.

* Networks (``NetworkConfig``): an MLP (784-256-10 by default) and a small CNN (conv 8@5×5 → pool →
  conv 16@5×5 → pool → dense 10). ReLU hidden units, digital biases, softmax cross-entropy.
* Training (``NetworkTrainingConfig``): mini-batch SGD with momentum or Adam, seeded by one
  ``numpy.random.Generator`` (initialisation, batch order, injected noise).
* Hardware-aware training by multiplicative noise (MNT, docs/reference/dgc-drift-programming.md
  §2.4): every mini-batch's forward pass uses W̃ = W ⊙ (1 + σ ε), ε ~ N(0, 1) redrawn per mini-batch,
  and the gradient with respect to W̃ is applied to W unchanged (straight-through). With ``device``
  given, the forward pass also goes through the tile model (``AnalogMatrix.for_training``: DAC, per-read
  noise, ADC, tile splitting); the backward pass treats the tiles as the exact product x W̃
  (straight-through over the quantisers).
* ``evaluate``: program every weight matrix onto tiles of a device with its effects, read them at the
  evaluation time, and run the whole test set with every matrix product done by the tiles; reports
  the float accuracy beside it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import ConfigError
from ..validation import check_choice, check_int, check_range
from .devices import tile_device
from .layers import AvgPool2D, Conv2D, Dense, Flatten, MaxPool2D, Network, ReLU, softmax_cross_entropy
from .tiles import AnalogMatrix, TileConfig, program_weights, tile_slices, wire_maps

NETWORK_KINDS = ("mlp", "cnn")
POOLINGS = ("max", "avg")
OPTIMIZERS = ("adam", "sgd")
NOISE_SAMPLINGS = ("exact", "pool")
DEFAULT_TILE = TileConfig()


def _int_tuple(path: str, value, low: int, high: int, allow_empty: bool) -> tuple[int, ...]:
    value = tuple(value) if isinstance(value, list) else value  # TOML arrays arrive as lists
    if (not isinstance(value, tuple) or (not value and not allow_empty)
            or not all(isinstance(v, int) and not isinstance(v, bool) and low <= v <= high for v in value)):
        raise ConfigError(path, value, f"a tuple of integers in [{low}, {high}]"
                          + ("" if allow_empty else ", at least one"))
    return value


@dataclass(frozen=True)
class NetworkConfig:
    """Architecture; every field is validated as ``network.<field>``.

    ``kind="mlp"``: dense layers of ``hidden`` units between the flattened input and ``n_classes``.
    ``kind="cnn"``: per entry of ``conv_channels`` a ``kernel_size`` convolution (zero ``padding``),
    ReLU and 2×2 ``pooling``; then dense layers of ``hidden`` units (none by default) and the output.
    """

    kind: str = "mlp"
    hidden: tuple[int, ...] = (256,)
    conv_channels: tuple[int, ...] = (8, 16)
    kernel_size: int = 5
    padding: int = 0
    pooling: str = "max"
    n_classes: int = 10

    def __post_init__(self) -> None:
        check_choice("network.kind", self.kind, NETWORK_KINDS)
        object.__setattr__(self, "hidden", _int_tuple("network.hidden", self.hidden, 1, 65536, True))
        object.__setattr__(self, "conv_channels",
                           _int_tuple("network.conv_channels", self.conv_channels, 1, 4096,
                                      allow_empty=self.kind == "mlp"))
        check_int("network.kernel_size", self.kernel_size, 1, 31)
        check_int("network.padding", self.padding, 0, 15)
        check_choice("network.pooling", self.pooling, POOLINGS)
        check_int("network.n_classes", self.n_classes, 2, 100000)

    @classmethod
    def mlp(cls, hidden: tuple[int, ...] = (256,)) -> NetworkConfig:
        return cls(kind="mlp", hidden=hidden)

    @classmethod
    def cnn(cls, **changes) -> NetworkConfig:
        """The small CNN: conv 8@5×5 → pool → conv 16@5×5 → pool → dense (28×28: 256 → 10)."""
        return cls(kind="cnn", hidden=changes.pop("hidden", ()), **changes)

    @classmethod
    def default(cls, kind: str, image_shape: tuple[int, ...], **changes) -> NetworkConfig:
        """The MLP or small CNN (with ``changes``) for images of ``image_shape``: 8×8 digits need
        "same" padding for two 5×5 convolutions with pooling; 28×28 MNIST does not."""
        check_choice("network.kind", kind, NETWORK_KINDS)
        return cls.mlp(**changes) if kind == "mlp" else cls.cnn(padding=2 if image_shape[0] < 28 else 0, **changes)


@dataclass(frozen=True)
class NetworkTrainingConfig:
    """Training hyper-parameters; every field is validated as ``training.<field>``.

    ``weight_noise`` is σ of the multiplicative training noise (0 = plain training); ``weight_limit``
    clips |w| after every step (None = no clipping). ``noise_sampling`` says how ε is drawn:

    * "exact": ``rng.standard_normal(W.shape)`` for every layer and mini-batch.
    * "pool": a ``GaussianPool``: one pool of N(0, 1) values (4× the largest request) is drawn per
      epoch, and every request (each layer's ε, and with ``device`` the tiles' per-read noise) reads a
      window of it at its own random offset. Each value is exactly N(0, 1) and each weight sees a new
      value in every mini-batch (unless two offsets coincide, chance ≈ 1/pool size), but values recur
      at shifted positions, i.e. between *different* weights of different mini-batches. Why: drawing
      200 k normals costs ≈ 2 ms on a 2-core machine, more than all the products of a 64-image
      mini-batch of the 784-256-10 MLP; the pool pays that once per epoch. Evaluation always draws
      exactly.
    """

    epochs: int = 3
    batch_size: int = 64
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    momentum: float = 0.9
    weight_noise: float = 0.0
    weight_limit: float | None = None
    noise_sampling: str = "exact"
    seed: int = 0
    # With a device and a tile with resistances: train through the tiles' linearised wires
    # (``tile_circuit.WireGainMap``) around devices at g_lo + wire_reference_fraction · span.
    through_wires: bool = False
    wire_reference_fraction: float = 0.1

    def __post_init__(self) -> None:
        check_int("training.epochs", self.epochs, 1, 100000)
        check_int("training.batch_size", self.batch_size, 1, 10_000_000)
        check_choice("training.optimizer", self.optimizer, OPTIMIZERS)
        check_range("training.learning_rate", self.learning_rate, 0.0, 100.0)
        check_range("training.momentum", self.momentum, 0.0, 1.0, True)
        if self.momentum >= 1.0:
            raise ConfigError("training.momentum", self.momentum, "[0, 1)")
        check_range("training.weight_noise", self.weight_noise, 0.0, 10.0, True)
        if self.weight_limit is not None:
            check_range("training.weight_limit", self.weight_limit, 0.0, 1e6)
        check_choice("training.noise_sampling", self.noise_sampling, NOISE_SAMPLINGS)
        check_range("training.wire_reference_fraction", self.wire_reference_fraction, 0.0, 1.0)
        check_int("training.seed", self.seed, 0, 2**32 - 1)


# ---- building ---------------------------------------------------------------------------------------
def build_network(config: NetworkConfig, image_shape: tuple[int, ...], rng: np.random.Generator) -> Network:
    """A freshly initialised network for images of ``image_shape`` ((height, width) or flat (n,))."""
    image_shape = tuple(int(s) for s in image_shape)
    layers: list = []
    if config.kind == "mlp":
        input_shape = (int(np.prod(image_shape)),)
        width = input_shape[0]
    else:
        if len(image_shape) not in (2, 3):
            raise ConfigError("network.kind", config.kind,
                              f"mlp for inputs of shape {image_shape} (a CNN needs images)")
        input_shape = image_shape if len(image_shape) == 3 else (*image_shape, 1)
        h, w, channels = input_shape
        for channels_out in config.conv_channels:
            conv = Conv2D(channels, channels_out, config.kernel_size, rng, config.padding)
            h, w, channels = conv.output_shape(h, w)
            if min(h, w) < 2:
                raise ConfigError("network.conv_channels", config.conv_channels,
                                  f"fewer layers, or more padding: the maps of {image_shape} images shrink "
                                  f"below 2×2 before pooling")
            layers += [conv, ReLU(), MaxPool2D() if config.pooling == "max" else AvgPool2D()]
            h, w = h // 2, w // 2
        layers.append(Flatten())
        width = h * w * channels
    for units in config.hidden:
        layers += [Dense(width, units, rng), ReLU()]
        width = units
    layers.append(Dense(width, config.n_classes, rng, gain=1.0))
    return Network(layers, input_shape, name=config.kind)


# ---- optimizers: one small class each, one ``step`` method -------------------------------------------
class SgdMomentum:
    """v ← μ v − η g;  w ← w + v."""

    def __init__(self, learning_rate: float, momentum: float):
        self.learning_rate, self.momentum, self.velocity = learning_rate, momentum, None

    def step(self, params, grads) -> None:
        if self.velocity is None:
            self.velocity = [np.zeros_like(p) for p in params]
        for p, g, v in zip(params, grads, self.velocity):
            v *= self.momentum
            v -= self.learning_rate * g
            p += v


class Adam:
    """Adam (Kingma & Ba 2015), β1 = 0.9, β2 = 0.999, ε = 1e-8."""

    def __init__(self, learning_rate: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        self.learning_rate, self.beta1, self.beta2, self.eps = learning_rate, beta1, beta2, eps
        self.t, self.m, self.v = 0, None, None

    def step(self, params, grads) -> None:
        if self.m is None:
            self.m = [np.zeros_like(p) for p in params]
            self.v = [np.zeros_like(p) for p in params]
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        step_size = self.learning_rate * np.sqrt(1 - b2**self.t) / (1 - b1**self.t)
        for p, g, m, v in zip(params, grads, self.m, self.v):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * (g * g)
            p -= step_size * m / (np.sqrt(v) + self.eps)


# ---- training ---------------------------------------------------------------------------------------
class GaussianPool:
    """N(0, 1) values as windows of one pool at random offsets: a cheap stand-in for fresh draws.

    ``standard_normal(shape, dtype)`` answers like ``Generator.standard_normal`` (a float32 view, cast
    if another dtype is asked for), so tiles can take it in place of a generator. ``refill`` draws a
    new pool; a request larger than a quarter of the pool grows it (and refills).
    """

    GROWTH = 4

    def __init__(self, rng: np.random.Generator, size: int):
        self.rng, self.size = rng, self.GROWTH * int(size)
        self.values = None

    def refill(self) -> None:
        self.values = self.rng.standard_normal(self.size, dtype=np.float32)

    def standard_normal(self, shape, dtype=np.float32) -> np.ndarray:
        n = int(np.prod(shape))
        if self.values is None or self.GROWTH * n > self.size:
            self.size = max(self.size, self.GROWTH * n)
            self.refill()
        offset = int(self.rng.integers(0, self.size - n + 1))
        window = self.values[offset:offset + n].reshape(shape)
        return window if np.dtype(dtype) == np.float32 else window.astype(dtype)


class WeightNoise:
    """Multiplicative training noise W̃ = W ⊙ (1 + σ ε), ε ~ N(0, 1) from a generator or a pool."""

    def __init__(self, sigma: float, source: np.random.Generator | GaussianPool, shapes):
        self.sigma, self.source = sigma, source
        # One output buffer per layer, reused every mini-batch (W̃ lives until the backward pass).
        self.buffers = [np.empty(s) for s in shapes]

    def apply(self, weights: list[np.ndarray]) -> list[np.ndarray]:
        """W̃ for every matrix of ``weights`` (in the internal buffers)."""
        for w, noisy in zip(weights, self.buffers):
            if isinstance(self.source, GaussianPool):
                np.multiply(self.source.standard_normal(w.shape), self.sigma, out=noisy)
            else:
                self.source.standard_normal(out=noisy)
                noisy *= self.sigma
            noisy += 1.0
            noisy *= w
        return self.buffers


@dataclass(frozen=True)
class TrainingHistory:
    """Per epoch: mean training loss, training accuracy (of the noisy forward pass) and wall time (s)."""

    loss: np.ndarray
    accuracy: np.ndarray
    time_s: np.ndarray
    config: NetworkTrainingConfig
    device: str | None = None


def _check_data(network: Network, X, y) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X)
    y = np.asarray(y)
    per_example = int(np.prod(network.input_shape))
    if X.ndim < 2 or int(np.prod(X.shape[1:])) != per_example or len(X) == 0:
        raise ConfigError("training.X", f"shape {X.shape}",
                          f"(n ≥ 1, …) with {per_example} values per example")
    if y.shape != (len(X),) or not np.issubdtype(y.dtype, np.integer):
        raise ConfigError("training.y", f"dtype {y.dtype}, shape {y.shape}",
                          f"integer labels, shape ({len(X)},)")
    n_classes = network.weighted[-1].weight.shape[1]
    if y.min() < 0 or y.max() >= n_classes:
        raise ConfigError("training.y", f"labels in [{y.min()}, {y.max()}]",
                          f"labels in [0, {n_classes - 1}]")
    return X, y


def train(network: Network, X, y, config: NetworkTrainingConfig = NetworkTrainingConfig(),
          device: str | None = None, effects=None, tile: TileConfig = DEFAULT_TILE,
          rng: np.random.Generator | None = None,
          on_epoch: Callable[[int, float, float, float], None] | None = None) -> TrainingHistory:
    """Train ``network`` in place on ``X`` (n, …) and integer labels ``y`` (n,).

    ``device`` ("msdc" | "pcm" | None): run every training forward pass through that device's tile
    model with ``effects`` (converters and per-read noise; see ``AnalogMatrix.for_training``).
    ``rng`` defaults to ``numpy.random.default_rng(config.seed)``. ``on_epoch(epoch, loss, accuracy,
    seconds)`` is called after every epoch (progress display).
    """
    X, y = _check_data(network, X, y)
    rng = np.random.default_rng(config.seed) if rng is None else rng
    tile_model = None if device is None else tile_device(device, effects)
    optimizer = (Adam(config.learning_rate) if config.optimizer == "adam"
                 else SgdMomentum(config.learning_rate, config.momentum))
    params = network.parameters()
    limit = config.weight_limit
    shapes = [w.shape for w in network.weights]
    pool = None
    if config.noise_sampling == "pool" and (config.weight_noise > 0 or tile_model is not None):
        pool = GaussianPool(rng, max([int(np.prod(s)) for s in shapes] + [config.batch_size * tile.cols]))
    noise_source = rng if pool is None else pool
    noise = None if config.weight_noise == 0 else WeightNoise(config.weight_noise, noise_source, shapes)
    analog: list[AnalogMatrix | None] = [None] * len(network.weights)
    wires: list = [None] * len(network.weights)
    if config.through_wires:
        if tile_model is None or not tile.has_parasitics:
            raise ConfigError("training.through_wires", True, "a device and a tile with resistances (tile.r_*_ohm)")
        wires = [wire_maps(s, tile, tile_model.model, config.wire_reference_fraction) for s in shapes]
    losses, accuracies, times = (np.empty(config.epochs) for _ in range(3))
    for epoch in range(config.epochs):
        start = time.perf_counter()
        order = rng.permutation(len(X))
        if pool is not None:
            pool.refill()
        total_loss, correct = 0.0, 0
        for first in range(0, len(X), config.batch_size):
            rows = order[first:first + config.batch_size]
            weights = None if noise is None else noise.apply(network.weights)
            matmuls = None
            if tile_model is not None:
                used = network.weights if weights is None else weights
                analog = [AnalogMatrix.for_training(w, tile_model, tile, reuse, maps)
                          for w, reuse, maps in zip(used, analog, wires)]
                matmuls = [_bind(matrix, noise_source) for matrix in analog]
            logits = network.forward(X[rows], weights, matmuls)
            loss, grad = softmax_cross_entropy(logits, y[rows])
            network.backward(grad)
            optimizer.step(params, network.gradients())
            if limit is not None:
                for w in network.weights:
                    np.clip(w, -limit, limit, out=w)
            total_loss += loss * len(rows)
            correct += int(np.sum(np.argmax(logits, axis=1) == y[rows]))
        losses[epoch], accuracies[epoch] = total_loss / len(X), correct / len(X)
        times[epoch] = time.perf_counter() - start
        if on_epoch is not None:
            on_epoch(epoch, float(losses[epoch]), float(accuracies[epoch]), float(times[epoch]))
    return TrainingHistory(losses, accuracies, times, config, device)


def _bind(matrix: AnalogMatrix, rng):
    return lambda inputs: matrix.matmul(inputs, rng)


def accuracy(network: Network, X, y, batch_size: int = 1000) -> float:
    """Float (software) accuracy of ``network`` on ``X``, ``y``."""
    return float(np.mean(network.predict(np.asarray(X), batch_size) == np.asarray(y)))


# ---- evaluation through the tiles -------------------------------------------------------------------
def tile_accuracy(network: Network, X, y, device: str = "msdc", effects=None, tile: TileConfig = DEFAULT_TILE,
                  rng: np.random.Generator | None = None, batch_size: int = 1000) -> float:
    """Accuracy of one programming of ``network`` onto ``device`` tiles, every product on the tiles."""
    rng = np.random.default_rng(0) if rng is None else rng
    model = tile_device(device, effects)
    programming, reading, noise = rng.spawn(3)
    analog = [m.read(reading) for m in program_weights(network.weights, model, tile, programming)]
    predicted = network.predict(np.asarray(X), batch_size, matmuls=[_bind(a, noise) for a in analog])
    return float(np.mean(predicted == np.asarray(y)))


def evaluate(network: Network, X, y, device: str = "msdc", effects=None, tile: TileConfig = DEFAULT_TILE,
             seed: int = 0, repeats: int = 1, batch_size: int = 1000) -> dict:
    """Accuracy of ``network`` in float and through ``device`` tiles with ``effects``.

    ``device``: "msdc" | "pcm". ``effects``: None (the device's defaults), "ideal" (all off), a dict of
    changed fields, or an ``MsdcEffects`` / ``PcmEffects``. ``repeats`` independent programmings (each
    with its own draws, from ``seed``). Returns a JSON-ready dict: ``accuracy_float``,
    ``accuracy_device`` (mean over repeats), ``accuracy_device_std``, ``accuracy_device_runs``,
    ``accuracy_drop`` (float − device), ``device``, ``effects``, ``tile``, ``n_tiles``, ``seed``.
    """
    check_int("evaluation.repeats", repeats, 1, 100000)
    check_int("evaluation.seed", seed, 0, 2**32 - 1)
    X, y = _check_data(network, X, y)
    model = tile_device(device, effects)
    runs = [tile_accuracy(network, X, y, device, model.effects, tile, child, batch_size)
            for child in np.random.default_rng(seed).spawn(repeats)]
    float_accuracy = accuracy(network, X, y, batch_size)
    return {
        "device": device,
        "effects": asdict(model.effects),
        "tile": asdict(tile),
        "n_tiles": int(sum(len(tile_slices(*w.shape, tile)) for w in network.weights)),
        "n_weights": network.n_weights(),
        "seed": seed,
        "repeats": repeats,
        "accuracy_float": float_accuracy,
        "accuracy_device": float(np.mean(runs)),
        "accuracy_device_std": float(np.std(runs)),
        "accuracy_device_runs": [float(r) for r in runs],
        "accuracy_drop": float_accuracy - float(np.mean(runs)),
    }
