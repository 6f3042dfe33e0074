"""On-chip learning of the surrogate networks: DGC, SPSA, parallel perturbation and BP with its own circuits.

Closed forms and exact equalities where they exist (DGC against the analytic gradient, the per-weight
evaluation against re-running the chip, BP's bias from its circuits), a statistical bound for SPSA,
and one fixed-seed training run with a stated accuracy.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from circuitnn.data.mnist import load_digits_default, split
from circuitnn.errors import ConfigError
from circuitnn.networks.backprop_circuits import bp_gradients
from circuitnn.networks.chip_network import ChipNetwork, one_hot
from circuitnn.networks.circuit_variation import CircuitVariation
from circuitnn.networks.layers import Dense, Network, ReLU
from circuitnn.networks.onchip_learning import OnChipLearningConfig, layer_gradients, learn
from circuitnn.networks.perturbation import (
    dense_perturbed_costs, dgc_gradient, parallel_gradient, spsa_gradients,
)
from circuitnn.networks.train import NetworkConfig, build_network


def _analytic(network, X, labels):
    """The exact gradient of the mean ½Σ(y − t)² cost by the network's own backward pass."""
    outputs = network.forward(X)
    network.backward((outputs - one_hot(labels, outputs.shape[1])) / len(X))
    return [(layer.grad_weight.copy(), layer.grad_bias.copy()) for layer in network.weighted]


def _mlp(n_in=12, hidden=(7,), classes=4, seed=0):
    rng = np.random.default_rng(seed)
    network = build_network(NetworkConfig(kind="mlp", hidden=hidden, n_classes=classes), (n_in,), rng)
    for layer in network.weighted:  # non-zero biases so that no pre-activation sits at a ReLU kink by design
        layer.bias[:] = 0.1 * rng.standard_normal(layer.bias.shape)
    X = rng.uniform(0.0, 1.0, (10, n_in))
    labels = rng.integers(0, classes, 10)
    return network, X, labels


@pytest.mark.parametrize("difference, tolerance", [("central", 1e-7), ("one_sided", 1e-3)])
def test_dgc_matches_the_analytic_gradient_without_variation(difference, tolerance):
    """Without variation the chip is the network: central DGC (δ = 1e-6) equals the analytic gradient to
    1e-7 of its largest entry (piecewise-linear ReLU: exact away from kinks); one-sided to 1e-3 (O(δ))."""
    network, X, labels = _mlp(hidden=(7, 5))
    expected = _analytic(network, X, labels)
    chip = ChipNetwork(network)
    trace = chip.forward(X, labels)
    for k, (weight_grad, bias_grad) in enumerate(expected):
        got_w, got_b = dgc_gradient(chip, trace, k, 1e-6, difference)
        scale = max(np.abs(weight_grad).max(), np.abs(bias_grad).max())
        assert scale > 1e-3
        np.testing.assert_allclose(got_w, weight_grad, rtol=0, atol=tolerance * scale)
        np.testing.assert_allclose(got_b, bias_grad, rtol=0, atol=tolerance * scale)


def test_dgc_of_a_convolution_by_re_evaluation_matches_the_analytic_gradient():
    rng = np.random.default_rng(3)
    network = build_network(NetworkConfig(kind="cnn", conv_channels=(2,), kernel_size=3, padding=1, hidden=(),
                                          n_classes=3), (6, 6), rng)
    for layer in network.weighted:
        layer.bias[:] = 0.1 * rng.standard_normal(layer.bias.shape)
    X = rng.uniform(0, 1, (5, 6, 6))
    labels = rng.integers(0, 3, 5)
    expected = _analytic(network, X, labels)
    chip = ChipNetwork(network)
    trace = chip.forward(X, labels)
    got_w, got_b = dgc_gradient(chip, trace, 0, 1e-6, "central")
    scale = np.abs(expected[0][0]).max()
    np.testing.assert_allclose(got_w, expected[0][0], rtol=0, atol=1e-7 * scale)
    np.testing.assert_allclose(got_b, expected[0][1], rtol=0, atol=1e-7 * scale)
    # central DGC of a conv layer: 2 cost measurements per kernel weight and bias, one per sample each
    assert chip.counter.forward == 5 + 5 * 2 * (9 + 1) * 2


def test_per_weight_evaluation_equals_re_running_the_chip():
    """With device and neuron variation, the vectorised per-weight costs equal a full forward pass of the
    chip with that one weight moved (through its device), for weights of every layer."""
    network, X, labels = _mlp(hidden=(6, 5))
    variation = CircuitVariation(conductance_sigma=0.2, neuron_gain_sigma=0.2, neuron_offset_sigma=0.2)
    chip = ChipNetwork(network, variation, np.random.default_rng(7))
    trace = chip.forward(X, labels)
    delta = 0.05
    for k, layer in enumerate(chip.layers):
        circuits = chip.circuits[k]
        n_in = layer.weight.shape[0]
        rows = np.concatenate([trace.inputs[k], np.ones((len(X), 1))], axis=1)
        changes = np.vstack([circuits.effective_weight(layer.weight + delta)
                             - circuits.effective_weight(layer.weight), np.full((1, layer.weight.shape[1]), delta)])
        fast = dense_perturbed_costs(chip, trace, k, rows, changes)          # (B, n_in + 1, n_out)
        for i in range(n_in + 1):
            for j in range(layer.weight.shape[1]):
                weights = [w.copy() for w in network.weights]
                biases = [None] * len(weights)
                if i < n_in:
                    weights[k][i, j] += delta
                else:
                    biases[k] = layer.bias.copy()
                    biases[k][j] += delta
                slow = chip.forward(X, labels, weights, biases, count=False).sample_costs()
                np.testing.assert_allclose(fast[:, i, j], slow, rtol=1e-12, atol=1e-14)


def test_spsa_is_unbiased_in_expectation():
    """Central SPSA with a small δ gives per draw g_w + Δ_w Σ_{v≠w} g_v Δ_v: mean g_w, variance
    Σ_{v≠w} g_v². Over M draws every component lies within 5 standard errors of the analytic gradient."""
    network, X, labels = _mlp(n_in=5, hidden=(4,), classes=3)
    expected = _analytic(network, X, labels)
    chip = ChipNetwork(network)
    trace = chip.forward(X, labels)
    draws = 6000
    got = spsa_gradients(chip, trace, X, labels, [0, 1], [1e-6, 1e-6], np.random.default_rng(11), "central", draws)
    assert chip.counter.forward == len(X) * (1 + 2 * draws)
    true = np.concatenate([np.concatenate([w.ravel(), b.ravel()]) for w, b in expected])
    estimate = np.concatenate([np.concatenate([got[k][0].ravel(), got[k][1].ravel()]) for k in (0, 1)])
    standard_error = np.sqrt((np.sum(true**2) - true**2) / draws)
    assert np.all(np.abs(estimate - true) <= 5 * standard_error)
    # and the bound is tight enough to mean something: a fraction of the largest components
    assert 5 * standard_error.max() < 0.5 * np.abs(true).max()


def test_bp_with_backward_mismatch_follows_the_closed_form():
    """One output neuron, exact forward circuits, mismatched BP circuits without offsets: BP's gradient
    is the true one times a'_out for the output layer and times a'_out · g_j · a'_j · k_j for hidden
    neuron j (derivative-circuit gains a', error-amplifier gain g, backward-array device gain k)."""
    rng = np.random.default_rng(4)
    network = Network([Dense(8, 6, rng), ReLU(), Dense(6, 1, rng, gain=1.0)], (8,))
    network.weighted[0].bias[:] = 0.1 * rng.standard_normal(6)
    X = rng.uniform(0, 1, (10, 8))
    labels = np.zeros(len(X), dtype=int)  # one output, target 1
    expected = _analytic(network, X, labels)
    variation = CircuitVariation(conductance_sigma=0.2, backward_gain_sigma=0.3)
    chip = ChipNetwork(network, variation, np.random.default_rng(5))
    for k, circuits in enumerate(chip.circuits):  # the forward array exact: only the backward path varies
        chip.circuits[k] = replace(circuits, gain_plus=np.ones_like(circuits.gain_plus),
                                   gain_minus=np.ones_like(circuits.gain_minus))
    trace = chip.forward(X, labels)
    got = bp_gradients(chip, trace)
    hidden, output = chip.circuits
    w_out = network.weighted[1].weight[:, 0]
    k_backward = np.where(w_out > 0, output.backward_gain_plus[:, 0], output.backward_gain_minus[:, 0])
    factor_out = output.d_gain[0]
    factor_hidden = factor_out * output.error_gain * hidden.d_gain * k_backward
    assert np.ptp(factor_hidden) > 0.1  # the factors really differ between neurons
    np.testing.assert_allclose(got[1][0], expected[1][0] * factor_out, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(got[0][0], expected[0][0] * factor_hidden[None, :], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(got[0][1], expected[0][1] * factor_hidden, rtol=1e-12, atol=1e-15)
    assert chip.counter.backward == len(X)


def test_bp_without_variation_is_the_exact_gradient_and_dgc_is_blind_to_backward_circuits():
    network, X, labels = _mlp(hidden=(6,))
    expected = _analytic(network, X, labels)
    chip = ChipNetwork(network)
    got = bp_gradients(chip, chip.forward(X, labels))
    for k in (0, 1):
        np.testing.assert_allclose(got[k][0], expected[k][0], rtol=1e-12, atol=1e-15)
    # Backward-circuit variation changes BP's gradient, never DGC's (DGC uses no backward circuit).
    varied = ChipNetwork(network, CircuitVariation(backward_gain_sigma=0.3, backward_offset_sigma=0.3),
                         np.random.default_rng(2))
    trace = varied.forward(X, labels)
    assert not np.allclose(bp_gradients(varied, trace)[0][0], expected[0][0], atol=1e-6)
    np.testing.assert_allclose(dgc_gradient(varied, trace, 0, 1e-6)[0], expected[0][0], rtol=0,
                               atol=1e-7 * np.abs(expected[0][0]).max())


def test_parallel_perturbation_counts_and_gradient():
    """Parallel perturbation: output layer in one measurement per sample, hidden layers one per neuron;
    without variation its gradient is the analytic one."""
    network, X, labels = _mlp(hidden=(6,), classes=4)
    expected = _analytic(network, X, labels)
    chip = ChipNetwork(network)
    trace = chip.forward(X, labels)
    before = chip.counter.forward
    out_w, _ = parallel_gradient(chip, trace, 1, 1e-6, "central")
    assert chip.counter.forward - before == len(X) * 1 * 2
    hidden_w, _ = parallel_gradient(chip, trace, 0, 1e-6, "central")
    assert chip.counter.forward - before == len(X) * (1 + 6) * 2
    for got, (want, _) in ((hidden_w, expected[0]), (out_w, expected[1])):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-7 * np.abs(want).max())


def test_evaluation_counts_of_one_step_per_method():
    network, X, labels = _mlp(n_in=12, hidden=(7,), classes=4)
    n_params = (12 + 1) * 7 + (7 + 1) * 4
    B = len(X)
    for methods, difference, expected in [
            (("dgc",), "central", (B + 2 * B * n_params, 0)),
            (("dgc",), "one_sided", (B + B * n_params, 0)),
            (("bp",), "central", (B, B)),
            (("spsa",), "central", (B + 2 * B, 0)),
            (("parallel",), "one_sided", (B + B * 7 + B, 0)),
            (("bp", "dgc"), "central", (B + 2 * B * (7 + 1) * 4, B))]:
        chip = ChipNetwork(network)
        config = OnChipLearningConfig(methods=methods, difference=difference)
        layer_gradients(chip, X, labels, config.layer_methods(2), config, np.random.default_rng(0))
        assert (chip.counter.forward, chip.counter.backward) == expected, methods


def test_pulse_quantised_updates_are_whole_pulses():
    network, X, labels = _mlp()
    chip = ChipNetwork(network)
    before = [w.copy() for w in network.weights]
    learn(chip, X, labels, OnChipLearningConfig(methods=("bp",), epochs=2, batch_size=5, pulse_levels=16,
                                                pulse_rounding="nearest", momentum=0.0, learning_rate=0.5))
    for w, w0, r in zip(network.weights, before, chip.weight_range):
        pulses = (w - w0) / (r / 16)
        moved = np.abs(w) < r  # not clipped at the window's end
        np.testing.assert_allclose(pulses[moved], np.rint(pulses[moved]), atol=1e-9)
        assert np.any(pulses != 0)


def test_bad_learning_config_names_the_field():
    with pytest.raises(ConfigError, match="learning.methods"):
        OnChipLearningConfig(methods=("backprop",))
    with pytest.raises(ConfigError, match="variation.conductance_sigma"):
        CircuitVariation(conductance_sigma=2.0)
    cnn = build_network(NetworkConfig(kind="cnn", conv_channels=(2,), kernel_size=3, padding=1), (6, 6),
                        np.random.default_rng(0))
    with pytest.raises(ConfigError, match="parallel perturbation needs dense layers"):
        learn(ChipNetwork(cnn), np.zeros((2, 6, 6)), np.zeros(2, int), OnChipLearningConfig(methods=("parallel",)))


def test_dgc_training_on_digits_reaches_a_stated_accuracy():
    """DGC (central) on the 8×8 digits, MLP 64-16-10, 5 epochs, fixed seeds, on a chip with 10 %
    conductance and 10 % neuron-circuit variation: ≥ 75 % test accuracy (measured 77.7 %), and at least
    5 points above BP on the same chip with its separately varied backward circuits (measured 68.2 %)."""
    images, labels = load_digits_default()
    X_train, y_train, X_test, y_test = split(images.reshape(len(images), -1), labels, 0.8, 0)
    variation = CircuitVariation.neurons(0.1, conductance_sigma=0.1)
    accuracies = {}
    for method in ("dgc", "bp"):
        network = build_network(NetworkConfig(kind="mlp", hidden=(16,)), (64,), np.random.default_rng(0))
        chip = ChipNetwork(network, variation, np.random.default_rng(1))
        history = learn(chip, X_train, y_train, OnChipLearningConfig(
            methods=(method,), epochs=5, learning_rate=0.01, batch_size=16), X_test, y_test)
        accuracies[method] = history.test_accuracy[-1]
    assert accuracies["dgc"] >= 0.75, accuracies
    assert accuracies["dgc"] >= accuracies["bp"] + 0.05, accuracies
