"""Software training of the crossbar network: a bias-free sigmoid MLP, written in NumPy.

In software units the circuit of ``circuits/crossbar.py`` is exactly ``h = σ(x W1)``,
``y = σ(h W2)`` (no biases, inputs x in {0, 1}, activations in [0, 1]), so the target weights are
trained here and mapped to conductances by ``training/mapping.py``.

* Loss: binary cross-entropy of the output unit(s), mean over the batch. Class = y > 0.5 for one
  output unit (argmax for several, with one-hot targets).
* Optimizer: Adam (default) or plain gradient descent, full-batch or mini-batch. NumPy rather than a
  framework because the network has 30 weights: the two-line backward pass is exact, runs in
  microseconds per epoch, is bit-for-bit reproducible from a seed, and adds no dependency.
* Weight limit: after every step the weights are clipped to ±``w_limit``. Keep it below the
  circuit's ``w_full_scale`` (4 by the default design rule) with room for the selection-switch
  loss and a programming margin, so every target lies inside the device window;
  ``mapping.max_symmetric_weight`` gives the exact bound for a crossbar. The default 3.2
  (0.8 · w_full_scale) fits all three media in the single scheme with the default 100 Ω switch and
  a 5 % programming margin (the tightest, W, allows 3.58 without margin, 3.21 with 5 %).
* Noise augmentation: with ``training_noise`` > 0 every epoch sees fresh pixel flips of the
  training images at that level (the paper: < 15 % training noise helps robustness).
* Restarts: without biases an input class can drive every hidden unit to ≈ 0, and then the output
  sits at σ(0) = 0.5 for that class whatever W2 is — a local minimum (loss ≈ 0.35) that about one
  run in five of the default task falls into. ``n_restarts`` independent runs are trained and the
  one with the lowest loss on the given data is kept (5 restarts: failure ≈ 0.2⁵ ≈ 3e-4).
* Seeds: one ``numpy.random.Generator`` drives initialisation, augmentation and batch order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from ..data.patterns import add_pixel_noise, check_noise, make_dataset
from ..errors import ConfigError
from ..validation import check_choice, check_int, check_range

OPTIMIZERS = ("adam", "gd")


@dataclass(frozen=True)
class SoftwareTrainingConfig:
    """Hyper-parameters of software training; every field is validated as ``training.<field>``."""

    layer_sizes: tuple[int, ...] = (9, 3, 1)
    epochs: int = 300
    learning_rate: float = 0.05
    batch_size: int | None = None     # None: full batch
    optimizer: str = "adam"
    w_limit: float = 3.2              # |w| ≤ w_limit after every step (0.8 · w_full_scale)
    init_scale: float = 0.5           # initial weights ~ N(0, init_scale²)
    training_noise: float = 0.0       # pixel-flip probability of the per-epoch augmentation
    n_train_per_class: int = 200      # training-set size used by ``train_default``
    n_restarts: int = 5               # independent initialisations; the lowest clean-data loss wins
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.layer_sizes, list):  # TOML arrays arrive as lists
            object.__setattr__(self, "layer_sizes", tuple(self.layer_sizes))
        sizes = self.layer_sizes
        if (not isinstance(sizes, tuple) or len(sizes) < 2
                or not all(isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 1024 for n in sizes)):
            raise ConfigError("training.layer_sizes", sizes, "a tuple of ≥ 2 integers in [1, 1024]")
        check_int("training.epochs", self.epochs, 1, 1_000_000)
        check_range("training.learning_rate", self.learning_rate, 0.0, 100.0)
        if self.batch_size is not None:
            check_int("training.batch_size", self.batch_size, 1, 10_000_000)
        check_choice("training.optimizer", self.optimizer, OPTIMIZERS)
        check_range("training.w_limit", self.w_limit, 0.0, 1e3)
        check_range("training.init_scale", self.init_scale, 0.0, 1e3, True)
        check_noise(self.training_noise, "training.training_noise")
        check_int("training.n_train_per_class", self.n_train_per_class, 1, 10_000_000)
        check_int("training.n_restarts", self.n_restarts, 1, 1000)
        check_int("training.seed", self.seed, 0, 2**32 - 1)


@dataclass(frozen=True)
class TrainedNetwork:
    """Trained weights, one (n_in, n_out) array per layer, and the loss after every epoch."""

    weights: tuple[np.ndarray, ...]
    loss_history: np.ndarray          # (epochs,) mean BCE on the (augmented) epoch data of the chosen run
    restart_losses: np.ndarray        # (n_restarts,) final BCE on the given (clean) data of every run
    config: SoftwareTrainingConfig


# ---- the network -------------------------------------------------------------------------------
def forward(weights, X) -> list[np.ndarray]:
    """Activations of every layer for inputs ``X`` (n, n_in): ``[h1, ..., y]``, each (n, n_units)."""
    activations, a = [], np.asarray(X, dtype=float)
    for W in weights:
        a = expit(a @ W)
        activations.append(a)
    return activations


def classes(outputs) -> np.ndarray:
    """Class labels (n,) int from output activations (n, n_out) in [0, 1]: output > 0.5 for one
    output unit, argmax for several (the software network's and the chip's rule alike)."""
    y = np.asarray(outputs)
    return (y[:, 0] > 0.5).astype(int) if y.shape[1] == 1 else np.argmax(y, axis=1)


def predict(weights, X) -> np.ndarray:
    """Class labels (n,) int of the software network."""
    return classes(forward(weights, X)[-1])


def accuracy(weights, X, y) -> float:
    """Fraction of images classified correctly."""
    return float(np.mean(predict(weights, X) == np.asarray(y)))


def accuracy_by_noise(weights, noise_levels, n_per_class: int,
                      rng: np.random.Generator) -> dict[float, float]:
    """Accuracy on a fresh test set of ``n_per_class`` images per class at every test-noise level."""
    return {float(p): accuracy(weights, *make_dataset(n_per_class, p, rng)) for p in noise_levels}


def _targets(y, n_out: int) -> np.ndarray:
    labels = np.asarray(y)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ConfigError("training.y", f"dtype {labels.dtype}, shape {labels.shape}",
                          "integer labels, shape (n,)")
    n_classes = 2 if n_out == 1 else n_out
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ConfigError("training.y", f"labels {np.unique(labels).tolist()}",
                          f"labels in [0, {n_classes - 1}]")
    return labels[:, None].astype(float) if n_out == 1 else np.eye(n_out)[labels]


def _bce_and_gradients(weights, X, T) -> tuple[float, list[np.ndarray]]:
    """Mean binary cross-entropy and its gradient with respect to each weight matrix."""
    activations = forward(weights, X)
    y = activations[-1]
    eps = 1e-12
    loss = float(-np.mean(np.sum(T * np.log(y + eps) + (1 - T) * np.log(1 - y + eps), axis=1)))
    # σ with BCE: dL/d(pre-activation) of the output is (y − t)/n; hidden layers chain σ' = a(1 − a).
    delta = (y - T) / len(X)
    inputs = [np.asarray(X, dtype=float)] + activations[:-1]
    grads = [np.empty(0)] * len(weights)
    for layer in range(len(weights) - 1, -1, -1):
        grads[layer] = inputs[layer].T @ delta
        if layer:
            a = activations[layer - 1]
            delta = (delta @ weights[layer].T) * a * (1 - a)
    return loss, grads


# ---- optimizers: one small class each, same two-method protocol ----------------------------------
class GradientDescent:
    """Plain gradient descent: w ← w − η g."""

    def __init__(self, learning_rate: float):
        self.learning_rate = learning_rate

    def step(self, weights: list[np.ndarray], grads: list[np.ndarray]) -> None:
        for W, g in zip(weights, grads):
            W -= self.learning_rate * g


class Adam:
    """Adam (Kingma & Ba 2015) with the usual β1 = 0.9, β2 = 0.999, ε = 1e-8."""

    def __init__(self, learning_rate: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        self.learning_rate, self.beta1, self.beta2, self.eps = learning_rate, beta1, beta2, eps
        self.t, self.m, self.v = 0, None, None

    def step(self, weights: list[np.ndarray], grads: list[np.ndarray]) -> None:
        if self.m is None:
            self.m = [np.zeros_like(W) for W in weights]
            self.v = [np.zeros_like(W) for W in weights]
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        for W, g, m, v in zip(weights, grads, self.m, self.v):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            m_hat, v_hat = m / (1 - b1 ** self.t), v / (1 - b2 ** self.t)
            W -= self.learning_rate * m_hat / (np.sqrt(v_hat) + self.eps)


def _optimizer(config: SoftwareTrainingConfig):
    return Adam(config.learning_rate) if config.optimizer == "adam" else GradientDescent(config.learning_rate)


# ---- training ----------------------------------------------------------------------------------
def train_network(X, y, config: SoftwareTrainingConfig = SoftwareTrainingConfig(),
                  rng: np.random.Generator | None = None) -> TrainedNetwork:
    """Train on images ``X`` (n, layer_sizes[0]) in {0, 1} with labels ``y`` (n,) int.

    With ``config.training_noise`` > 0 pass the clean images: each epoch flips pixels of ``X`` afresh.
    ``rng`` (default: ``numpy.random.default_rng(config.seed)``) drives initialisation, augmentation
    and batch order, so the result is a pure function of the inputs and the seed.
    """
    if rng is None:
        rng = np.random.default_rng(config.seed)
    elif not isinstance(rng, np.random.Generator):
        raise ConfigError("training.rng", type(rng).__name__, "a numpy.random.Generator or None")
    images = np.asarray(X, dtype=float)
    sizes = config.layer_sizes
    if images.ndim != 2 or images.shape[1] != sizes[0] or len(images) == 0:
        raise ConfigError("training.X", f"shape {images.shape}", f"shape (n ≥ 1, {sizes[0]})")
    T = _targets(y, sizes[-1])
    if len(T) != len(images):
        raise ConfigError("training.y", f"{len(T)} labels", f"one per image ({len(images)})")

    runs = [_train_once(images, T, config, rng) for _ in range(config.n_restarts)]
    restart_losses = np.array([_bce_and_gradients(weights, images, T)[0] for weights, _ in runs])
    weights, losses = runs[int(np.argmin(restart_losses))]
    return TrainedNetwork(tuple(weights), losses, restart_losses, config)


def _train_once(images, T, config: SoftwareTrainingConfig, rng) -> tuple[list[np.ndarray], np.ndarray]:
    """One run from a fresh initialisation: the final weights and the per-epoch loss."""
    sizes, limit = config.layer_sizes, config.w_limit
    weights = [np.clip(rng.normal(0.0, config.init_scale, (a, b)), -limit, limit)
               for a, b in zip(sizes[:-1], sizes[1:])]
    optimizer = _optimizer(config)
    batch = len(images) if config.batch_size is None else min(config.batch_size, len(images))
    losses = np.empty(config.epochs)
    for epoch in range(config.epochs):
        data = add_pixel_noise(images, config.training_noise, rng) if config.training_noise > 0 else images
        order = rng.permutation(len(images)) if batch < len(images) else np.arange(len(images))
        epoch_loss = 0.0
        for start in range(0, len(images), batch):
            rows = order[start:start + batch]
            loss, grads = _bce_and_gradients(weights, data[rows], T[rows])
            epoch_loss += loss * len(rows)
            optimizer.step(weights, grads)
            for W in weights:
                np.clip(W, -limit, limit, out=W)
        losses[epoch] = epoch_loss / len(images)
    return weights, losses


def train_default(config: SoftwareTrainingConfig = SoftwareTrainingConfig()) -> TrainedNetwork:
    """Train on the default task: ``n_train_per_class`` clean prototypes per class, seeded by ``config.seed``.

    The training set is clean; ``training_noise`` adds fresh flips every epoch.
    """
    trained = _DEFAULT_RUNS.get(config)
    if trained is None:
        rng = np.random.default_rng(config.seed)
        X, y = make_dataset(config.n_train_per_class, 0.0, rng)
        trained = _DEFAULT_RUNS[config] = train_network(X, y, config, rng)
    # A fresh copy each time: the run is deterministic in its config, and callers may change arrays.
    return TrainedNetwork(tuple(w.copy() for w in trained.weights), trained.loss_history.copy(),
                          trained.restart_losses.copy(), trained.config)


# compare-media trains the same seeded network for every medium and mode: once per config is enough.
_DEFAULT_RUNS: dict[SoftwareTrainingConfig, TrainedNetwork] = {}
