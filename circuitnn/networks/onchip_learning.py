"""On-chip learning of a network chip: every layer by its own method (DGC, BP, SPSA, parallel perturbation).

``learn(chip, X, y, config)`` trains a ``ChipNetwork`` in place by mini-batch gradient descent. Per step:
one forward pass of the mini-batch on the chip (the baseline every method needs, and the forward
half of BP), then per weighted layer the gradient of its ``config.methods`` entry:

* "dgc": DGC, one weight at a time (``perturbation.dgc_gradient``);
* "bp": back-propagation through the BP circuits (``backprop_circuits.bp_gradients``), run down to the
  lowest BP layer (error propagation passes through the layers above it, whatever their method);
* "spsa": one simultaneous random-sign perturbation of all SPSA layers together;
* "parallel": per-output / per-neuron parallel perturbation (dense layers).

A hybrid is a per-layer list, e.g. ("dgc", "dgc", "bp") for a CNN whose two convolutions learn by DGC
and whose dense layer by BP. The update Δw = −η g (plus momentum) is applied to the nominal weights,
optionally as whole device pulses: ``pulse_levels`` steps span one device's window (0 … weight
range), Δw is rounded to a whole number of steps (nearest, or stochastically: up with probability
equal to the remainder, which keeps updates smaller than a pulse alive on average), and weights are
clipped to ± the weight range. Biases are digital and not quantised.

Every chip evaluation is counted (``ChipNetwork.counter``); ``LearningHistory`` keeps per epoch the
mean training cost, the test accuracy on the chip, the evaluations so far and the wall time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import ConfigError
from ..validation import check_choice, check_int, check_range
from .backprop_circuits import bp_gradients
from .chip_network import ChipNetwork
from .layers import Dense
from .perturbation import DIFFERENCES, dgc_gradient, parallel_gradient, spsa_gradients

METHODS = ("dgc", "bp", "spsa", "parallel")
ROUNDINGS = ("nearest", "stochastic")


@dataclass(frozen=True)
class OnChipLearningConfig:
    """On-chip learning; every field validated as ``learning.<field>``.

    ``methods``: one method for every weighted layer, or one per layer (a hybrid). ``difference``:
    "central" or "one_sided" finite differences (DGC, SPSA, parallel). ``perturbation``: δ relative to
    each layer's weight range (the reference suggests sweeping 1e-3 … 1e-1; 1e-3 is our default: the
    chip is deterministic, so a small δ only reduces the O(δ) / O(δ²) bias). ``learning_rate``,
    ``momentum``: plain SGD on the cost ½Σ(y − t)², the same for every method. ``spsa_draws``:
    random-sign draws averaged per step. ``pulse_levels``: None (analog updates) or the number of
    pulse steps across one device's window; ``pulse_rounding``: "nearest" or "stochastic".
    """

    methods: tuple[str, ...] = ("dgc",)
    difference: str = "central"
    perturbation: float = 1e-3
    learning_rate: float = 0.02
    momentum: float = 0.9
    epochs: int = 10
    batch_size: int = 32
    spsa_draws: int = 1
    pulse_levels: int | None = None
    pulse_rounding: str = "stochastic"
    seed: int = 0

    def __post_init__(self) -> None:
        methods = tuple(self.methods) if isinstance(self.methods, (list, tuple)) else self.methods
        if not isinstance(methods, tuple) or not methods:
            raise ConfigError("learning.methods", self.methods, "a list of methods: " + ", ".join(METHODS))
        for method in methods:
            check_choice("learning.methods", method, METHODS)
        object.__setattr__(self, "methods", methods)
        check_choice("learning.difference", self.difference, DIFFERENCES)
        check_range("learning.perturbation", self.perturbation, 0.0, 1.0)
        check_range("learning.learning_rate", self.learning_rate, 0.0, 100.0)
        check_range("learning.momentum", self.momentum, 0.0, 0.999, True)
        check_int("learning.epochs", self.epochs, 1, 100000)
        check_int("learning.batch_size", self.batch_size, 1, 1_000_000)
        check_int("learning.spsa_draws", self.spsa_draws, 1, 10000)
        if self.pulse_levels is not None:
            check_int("learning.pulse_levels", self.pulse_levels, 1, 1_000_000)
        check_choice("learning.pulse_rounding", self.pulse_rounding, ROUNDINGS)
        check_int("learning.seed", self.seed, 0, 2**32 - 1)

    def layer_methods(self, n_layers: int) -> tuple[str, ...]:
        if len(self.methods) == 1:
            return self.methods * n_layers
        if len(self.methods) != n_layers:
            raise ConfigError("learning.methods", list(self.methods),
                              f"one method, or one per weighted layer ({n_layers})")
        return self.methods

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class LearningHistory:
    """Per epoch: mean training cost (of the baseline forward passes), test accuracy on the chip (NaN
    without a test set), chip evaluations so far (forward, backward) and wall time (s) of training."""

    cost: np.ndarray
    test_accuracy: np.ndarray
    forward_evaluations: np.ndarray
    backward_evaluations: np.ndarray
    time_s: np.ndarray
    methods: tuple[str, ...]

    def as_dict(self) -> dict:
        return {"cost": self.cost.tolist(), "test_accuracy": self.test_accuracy.tolist(),
                "forward_evaluations": self.forward_evaluations.tolist(),
                "backward_evaluations": self.backward_evaluations.tolist(),
                "time_s": self.time_s.tolist(), "methods": list(self.methods)}


def layer_gradients(chip: ChipNetwork, X, labels, methods: tuple[str, ...], config: OnChipLearningConfig,
                    rng: np.random.Generator):
    """One step's gradients [(grad_weight, grad_bias)] of every layer and the baseline cost."""
    trace = chip.forward(X, labels)
    deltas = [config.perturbation * r for r in chip.weight_range]
    grads: dict = {}
    if "bp" in methods:  # first: the backward pass needs the pooling caches of the baseline pass
        lowest = methods.index("bp")
        grads.update({k: g for k, g in bp_gradients(chip, trace, lowest).items() if methods[k] == "bp"})
    spsa_layers = [k for k, m in enumerate(methods) if m == "spsa"]
    if spsa_layers:
        grads.update(spsa_gradients(chip, trace, X, labels, spsa_layers, [deltas[k] for k in spsa_layers], rng,
                                    config.difference, config.spsa_draws))
    for k, method in enumerate(methods):
        if method == "dgc":
            grads[k] = dgc_gradient(chip, trace, k, deltas[k], config.difference)
        elif method == "parallel":
            grads[k] = parallel_gradient(chip, trace, k, deltas[k], config.difference)
    return [grads[k] for k in range(len(methods))], trace.cost()


def check_methods(chip: ChipNetwork, methods: tuple[str, ...]) -> None:
    for k, (layer, method) in enumerate(zip(chip.layers, methods)):
        if method == "parallel" and not isinstance(layer, Dense):
            raise ConfigError("learning.methods", list(methods),
                              f"dgc, bp or spsa for layer {k} ({type(layer).__name__}): parallel perturbation "
                              "needs dense layers")


def learn(chip: ChipNetwork, X, y, config: OnChipLearningConfig = OnChipLearningConfig(), X_test=None,
          y_test=None, on_epoch: Callable[[int, dict], None] | None = None) -> LearningHistory:
    """Train ``chip`` in place on ``X`` (n, …), integer labels ``y``; test accuracy per epoch on ``X_test``.

    ``on_epoch(epoch, row)`` after every epoch with that epoch's values (progress display).
    """
    X, y = np.asarray(X), np.asarray(y)
    if len(X) == 0 or len(X) != len(y):
        raise ConfigError("learning.X", f"{len(X)} examples, {len(y)} labels", "as many labels as examples, ≥ 1")
    methods = config.layer_methods(len(chip.layers))
    check_methods(chip, methods)
    rng = np.random.default_rng(config.seed)
    order_rng, spsa_rng, pulse_rng = rng.spawn(3)
    params = [p for layer in chip.layers for p in (layer.weight, layer.bias)]
    velocity = [np.zeros_like(p) for p in params]
    history = {name: np.full(config.epochs, np.nan) for name in
               ("cost", "test_accuracy", "forward_evaluations", "backward_evaluations", "time_s")}
    elapsed = 0.0
    for epoch in range(config.epochs):
        start = time.perf_counter()
        order = order_rng.permutation(len(X))
        costs = []
        for first in range(0, len(X), config.batch_size):
            rows = order[first:first + config.batch_size]
            grads, cost = layer_gradients(chip, X[rows], y[rows], methods, config, spsa_rng)
            costs.append(cost * len(rows))
            flat = [g for pair in grads for g in pair]
            for i, (p, g, v) in enumerate(zip(params, flat, velocity)):
                v *= config.momentum
                v -= config.learning_rate * g
                if i % 2 == 0:  # a weight: realised as device pulses, within the window
                    k = i // 2
                    step = _pulses(v, chip.weight_range[k], config, pulse_rng)
                    np.clip(p + step, -chip.weight_range[k], chip.weight_range[k], out=p)
                else:
                    p += v
        elapsed += time.perf_counter() - start
        history["cost"][epoch] = float(np.sum(costs) / len(X))
        if X_test is not None:
            history["test_accuracy"][epoch] = chip.accuracy(X_test, y_test)
        history["forward_evaluations"][epoch] = chip.counter.forward
        history["backward_evaluations"][epoch] = chip.counter.backward
        history["time_s"][epoch] = elapsed
        if on_epoch is not None:
            on_epoch(epoch, {name: float(values[epoch]) for name, values in history.items()})
    return LearningHistory(history["cost"], history["test_accuracy"], history["forward_evaluations"],
                           history["backward_evaluations"], history["time_s"], methods)


def _pulses(update: np.ndarray, weight_range: float, config: OnChipLearningConfig,
            rng: np.random.Generator) -> np.ndarray:
    """The update as whole pulses of weight_range / pulse_levels (unchanged when analog)."""
    if config.pulse_levels is None:
        return update
    step = weight_range / config.pulse_levels
    n = update / step
    if config.pulse_rounding == "nearest":
        return np.rint(n) * step
    low = np.floor(n)
    return (low + (rng.random(n.shape) < n - low)) * step
