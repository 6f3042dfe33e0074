"""The drift regularizer and weight-programming search at network scale: exact gradients (finite
differences), analytic against Monte-Carlo variance, strategy decoding within the conductance bounds,
and fixed-seed training that lowers the drift penalty."""

from __future__ import annotations

import numpy as np
import pytest

from circuitnn.data.mnist import load_digits_default, split
from circuitnn.devices import pcm
from circuitnn.errors import ConfigError
from circuitnn.networks import NetworkConfig, NetworkTrainingConfig, build_network
from circuitnn.networks import programming as wp
from circuitnn.networks.drift import (
    DAY_S, HOUR_S, DriftRegularizer, DriftRegularizerConfig, accuracy_over_time, analytic_moments, analytic_penalty,
    drift_factors, montecarlo_moments, montecarlo_penalty, montecarlo_penalty_fast, train_drift_regularized,
)
from circuitnn.networks.layers import softmax_cross_entropy

P = pcm.PcmParams()


def _numeric_gradient(f, array, index, h=1e-6):
    array[index] += h
    up = f()
    array[index] -= 2 * h
    down = f()
    array[index] += h
    return (up - down) / (2 * h)


@pytest.mark.parametrize("compensated", [True, False])
def test_analytic_penalty_gradient_matches_finite_differences(compensated):
    rng = np.random.default_rng(1)
    W = rng.normal(0, 0.3, (12, 5))
    X = rng.random((7, 12))
    w_max = 1.2 * float(np.abs(W).max())   # constant in the gradient, as in training
    p = analytic_penalty(W, X, w_max, DAY_S, compensated)

    def value():
        return analytic_penalty(W, X, w_max, DAY_S, compensated).value

    for index in np.ndindex(W.shape):
        assert _numeric_gradient(value, W, index) == pytest.approx(p.grad_weight[index], rel=1e-5, abs=1e-9)
    for index in [(0, 0), (3, 7), (6, 11)]:
        assert _numeric_gradient(value, X, index) == pytest.approx(p.grad_inputs[index], rel=1e-5, abs=1e-9)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
@pytest.mark.parametrize("normalize", [False, True])
def test_network_gradient_of_loss2_matches_finite_differences(kind, normalize):
    """loss1 + λR through the whole network: weight gradients and what R sends into earlier layers."""
    rng = np.random.default_rng(2)
    if kind == "mlp":
        config, shape = NetworkConfig.mlp((6,)), (5, 5)
    else:
        config, shape = NetworkConfig.cnn(conv_channels=(2,), kernel_size=3, padding=1), (6, 6)
    network = build_network(config, shape, np.random.default_rng(0))
    X, y = rng.random((4, *shape)), rng.integers(0, 10, 4)
    regularizer = DriftRegularizer(DriftRegularizerConfig(strength=50.0, time_s=DAY_S, normalize=normalize))

    def loss2():
        loss, _ = softmax_cross_entropy(network.forward(X), y)
        return loss + regularizer.config.strength * sum(p.value for p in regularizer.penalties(network, rng))

    _, grad = softmax_cross_entropy(network.forward(X), y)
    regularizer.backward(network, grad, regularizer.penalties(network, rng))
    analytic = [layer.grad_weight.copy() for layer in network.weighted]
    for layer, expected in zip(network.weighted, analytic):
        W = layer.weight
        largest = np.unravel_index(np.argmax(np.abs(W)), W.shape)   # w_max is held constant
        for index in [i for i in list(np.ndindex(W.shape))[::7] if i != largest][:6]:
            assert _numeric_gradient(loss2, W, index) == pytest.approx(expected[index], rel=1e-4, abs=1e-8)


@pytest.mark.parametrize("time_s, tolerance", [(HOUR_S, 0.05), (DAY_S, 0.06)])
def test_analytic_variance_matches_monte_carlo_on_a_small_layer(time_s, tolerance):
    """First order in (ν − ν̄)L against 4000 exact drift draws with GDC: within 5-6 % at 1 h and 1 day
    (the Monte-Carlo error of the sums is ~1 %; the rest is the first-order approximation)."""
    rng = np.random.default_rng(3)
    W = rng.normal(0, 0.3, (64, 8))
    X = rng.random((20, 64))
    w_max = float(np.abs(W).max())
    factors = drift_factors(W, w_max, np.full(4000, time_s), rng.standard_normal((4000, 64, 8)))
    variance, squared_error = montecarlo_moments(W, X, factors)
    analytic_var, systematic = analytic_moments(W, X, w_max, time_s)
    assert variance.sum() / analytic_var.sum() == pytest.approx(1.0, abs=tolerance)
    assert squared_error.sum() / (analytic_var + systematic).sum() == pytest.approx(1.0, abs=tolerance)
    # and the Monte-Carlo penalty is that mean squared error, per example
    p = montecarlo_penalty(W, X, factors[:50])
    _, mse50 = montecarlo_moments(W, X, factors[:50])
    assert p.value == pytest.approx(mse50.sum() / len(X), rel=1e-9)


def test_fast_monte_carlo_penalty_equals_the_reference():
    rng = np.random.default_rng(4)
    W, X = rng.normal(0, 0.3, (30, 6)), rng.random((5, 30))
    normals = rng.standard_normal((30, 4, 6)).astype(np.float32)
    times = np.array([HOUR_S, DAY_S, 10 * DAY_S, 100 * DAY_S])
    reference = montecarlo_penalty(W, X, drift_factors(W, 1.0, times, normals.transpose(1, 0, 2)))
    fast = montecarlo_penalty_fast(W, X, 1.0, times, normals.copy(), reparameterized=False)
    assert fast.value == pytest.approx(reference.value, rel=1e-4)
    np.testing.assert_allclose(fast.grad_weight, reference.grad_weight, rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(fast.grad_inputs, reference.grad_inputs, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("compensated", [True, False])
def test_monte_carlo_pathwise_gradient_matches_finite_differences(compensated):
    """For fixed normals R is a smooth function of W (through ν(ĝ) and GDC's α): its gradient is exact
    up to the float32 arithmetic of the training path (finite differences of float32 values: 3 %)."""
    rng = np.random.default_rng(4)
    W, X = rng.normal(0, 0.3, (30, 6)), rng.random((5, 30))
    normals = rng.standard_normal((30, 4, 6)).astype(np.float32)
    times = np.array([HOUR_S, DAY_S, 10 * DAY_S, 100 * DAY_S])
    p = montecarlo_penalty_fast(W, X, 1.0, times, normals, compensated)

    def value():
        return montecarlo_penalty_fast(W, X, 1.0, times, normals, compensated).value

    scale = np.abs(p.grad_weight).max()
    for index in [(0, 0), (3, 2), (10, 5), (29, 1), (15, 3), (21, 4)]:
        numeric = _numeric_gradient(value, W, index, h=1e-3)
        assert numeric == pytest.approx(p.grad_weight[index], rel=0.03, abs=0.01 * scale)


def test_drifted_conductance_moments_match_the_lognormal_closed_form():
    """10^6 devices at ĝ = 0.5 (ν unfolded there): E[g(t)] and std of g(t)/g_prog after one day."""
    rng = np.random.default_rng(5)
    g = np.full(1_000_000, 0.5 * P.g_max_S)
    nu = pcm.sample_drift_nu(P, g, rng)
    factor = pcm.drift(P, 1.0, nu, DAY_S)
    L = np.log1p(DAY_S / P.t0_s)
    mu, sigma = float(pcm.drift_nu_mean(P, g[0])), float(pcm.drift_nu_std(P, g[0]))
    mean = np.exp(-mu * L + (sigma * L) ** 2 / 2)
    std = mean * np.sqrt(np.expm1((sigma * L) ** 2))
    assert factor.mean() == pytest.approx(mean, rel=0.01)
    assert factor.std() == pytest.approx(std, rel=0.01)


def test_strategy_decoding_respects_the_conductance_bounds_and_maps_weights_exactly():
    rng = np.random.default_rng(6)
    params = rng.random((wp.n_parameters(6), 500))
    params[:, :20] = rng.integers(0, 2, (wp.n_parameters(6), 20))     # corners of the hypercube
    tables, f, full = wp.decode(params)
    assert np.all(tables >= 0.0) and np.all(tables <= 1.0)
    assert np.all((f >= 0.1) & (f <= 5.0)) and np.all(full > 0)
    w = np.linspace(-1, 1, 41)
    for p in range(0, 500, 50):
        strategy = wp.strategy_from_params(params[:, p])
        g = strategy.conductances(w)
        assert np.all(g >= 0.0) and np.all(g <= 1.0)
        # without noise the unit cell reads back exactly the weight it was given
        np.testing.assert_allclose(strategy.weights(g), w, atol=1e-12)
    for baseline in (wp.single_pair(), wp.dual_pair()):
        np.testing.assert_allclose(baseline.weights(baseline.conductances(w)), w, atol=1e-12)


def test_dual_pair_beats_single_pair_and_errors_grow_with_time():
    rng = np.random.default_rng(7)
    w = np.clip(rng.normal(0, 1 / 3, 2048), -1, 1)
    single = wp.strategy_error_over_time(wp.single_pair(), w, wp.OBJECTIVE_TIMES_S, 3, 0).mean(axis=0)
    dual = wp.strategy_error_over_time(wp.dual_pair(), w, wp.OBJECTIVE_TIMES_S, 3, 0).mean(axis=0)
    assert np.all(dual < single)
    assert np.all(np.diff(single[2:]) > 0) and np.all(np.diff(dual[2:]) > 0)


def test_short_differential_evolution_improves_and_reports_its_search():
    rng = np.random.default_rng(0)
    w = rng.normal(0, 1 / 3, 1024)
    w /= np.abs(w).max()
    result = wp.optimize_strategy(w, wp.ProgrammingSearchConfig(maxiter=5, popsize=10, n_weights=1024, polish=False))
    assert result.generations == 5 and len(result.history) == 5
    assert result.history == sorted(result.history, reverse=True)   # the best never gets worse
    assert result.history[-1] < 0.8 * result.history[0]
    assert result.objective == pytest.approx(result.history[-1])
    assert 0.1 <= result.strategy.f <= 5.0
    assert result.evaluations >= 5 * 10 * wp.n_parameters(6)   # the whole population, every generation


def test_regularized_training_lowers_the_drift_penalty_at_a_fixed_seed():
    X, y = load_digits_default()
    X_train, y_train, X_test, _ = split(X, y, 0.8, 0)
    training = NetworkTrainingConfig(epochs=4, batch_size=32, seed=0)
    config = DriftRegularizerConfig(form="analytic", strength=10.0)
    penalty = DriftRegularizer(config)
    values = {}
    for form in ("none", "analytic", "montecarlo"):
        network = build_network(NetworkConfig.mlp((32,)), X_train.shape[1:], np.random.default_rng(0))
        # the Monte-Carlo gradient is noisier (16 examples, 8 draws per step): a larger λ
        regularizer = config if form == "analytic" else DriftRegularizerConfig(form=form, strength=40.0)
        train_drift_regularized(network, X_train, y_train, training, regularizer)
        network.forward(X_test)
        values[form] = sum(p.value for p in penalty.penalties(network, np.random.default_rng(0)))
    assert values["analytic"] < 0.7 * values["none"]
    assert values["montecarlo"] < 0.9 * values["none"]


def test_accuracy_over_time_pairs_draws_and_validates():
    X, y = load_digits_default()
    X_train, y_train, X_test, y_test = split(X, y, 0.8, 0)
    network = build_network(NetworkConfig.mlp((32,)), X_train.shape[1:], np.random.default_rng(0))
    train_drift_regularized(network, X_train, y_train, NetworkTrainingConfig(epochs=15, batch_size=32, seed=0),
                            DriftRegularizerConfig(form="none"))
    acc = accuracy_over_time(network, X_test, y_test, (0.0, DAY_S, 365 * DAY_S), draws=3, seed=0)
    assert acc.shape == (2, 3, 3)
    # right after programming GDC corrects only the read-noise snapshot: same draws, nearly the same accuracy
    assert np.abs(acc[0, :, 0] - acc[1, :, 0]).max() <= 0.03
    assert acc[:, :, 0].mean() > 0.75
    with pytest.raises(ConfigError, match="evaluation.draws"):
        accuracy_over_time(network, X_test, y_test, draws=0)
    with pytest.raises(ConfigError, match="regularizer.form"):
        DriftRegularizerConfig(form="exact")


def test_dual_pair_parameters_decode_to_the_dual_pair_mapping():
    strategy = wp.strategy_from_params(wp.dual_pair_params())
    assert strategy.f == pytest.approx(1.0) and strategy.full == pytest.approx(2.0)
    w = np.linspace(-1, 1, 21)
    on_grid = np.abs(w) != 0.5   # the 6-point grid has no knot at the dual pair's kink
    np.testing.assert_allclose(strategy.conductances(w)[:, on_grid],
                               wp.dual_pair().conductances(w)[:, on_grid], atol=1e-12)
