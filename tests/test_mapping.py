"""Weights ↔ device conductances and states: exact round trips, the circuit formula, window errors."""

import numpy as np
import pytest

from circuitnn.circuits.crossbar import Crossbar
from circuitnn.circuits.default import default_spec
from circuitnn.devices import msdc
from circuitnn.devices.media import MEDIA
from circuitnn.errors import ConfigError
from circuitnn.training import mapping
from circuitnn.training.software import SoftwareTrainingConfig, forward

SCHEMES = ("single", "differential")
CASES = [(medium, scheme) for medium in MEDIA for scheme in SCHEMES]


def _crossbar(medium: str, scheme: str, **overrides) -> Crossbar:
    return Crossbar(default_spec(MEDIA[medium], weights=scheme, **overrides))


def _random_weights(crossbar: Crossbar, rng, fill: float = 0.999) -> list[np.ndarray]:
    """Uniform weights over (almost) each layer's whole allowed range, edges included sometimes."""
    weights = []
    for index, layer in enumerate(crossbar.spec.layers):
        low, high = mapping.weight_range(crossbar, index)
        W = rng.uniform(fill * low, fill * high, (layer.n_inputs, layer.n_outputs))
        W[0, 0], W[-1, -1] = low, high  # the window edges themselves must map
        weights.append(W)
    return weights


def _circuit_preactivations(crossbar: Crossbar, states, layer: int, inputs) -> np.ndarray:
    """k·z_j of one layer from the circuit formula: z_j = R_f Σ_i v_i (±G_eff,ij) − R_f G_ref Σ_i v_i,
    v_i = V_read x_i, each device in series with its selection switch (ideal virtual-ground TIA)."""
    spec = crossbar.spec
    neuron = spec.layers[layer].neuron
    v = np.asarray(inputs) * spec.v_read_V
    g_device = msdc.conductance_S(spec.device, states)
    currents = np.zeros((len(v), spec.layers[layer].n_outputs))
    for site in crossbar.sites:
        if site.layer == layer:
            g_effective = 1.0 / (spec.r_switch_on_ohm + 1.0 / g_device[site.index])
            currents[:, site.column] += site.sign * v[:, site.row] * g_effective
    if spec.weights == "single":
        currents -= spec.reference_conductance_S * v.sum(axis=1, keepdims=True)
    return neuron.activation_gain_per_V * neuron.r_feedback_ohm * currents


@pytest.mark.parametrize("medium, scheme", CASES)
def test_weights_round_trip_through_conductances_and_states(medium, scheme):
    crossbar = _crossbar(medium, scheme)
    weights = _random_weights(crossbar, np.random.default_rng(1))
    g = mapping.weights_to_conductances(weights, crossbar)
    states = mapping.target_states(weights, crossbar)
    assert g.shape == states.shape == (crossbar.n_devices,)
    device = crossbar.spec.device
    assert np.all((g >= device.g_off_S) & (g <= device.g_on_S))
    assert np.all((states >= 0) & (states <= 1))
    for back in (mapping.conductances_to_weights(g, crossbar), mapping.states_to_weights(states, crossbar)):
        for W, W_back in zip(weights, back):
            np.testing.assert_allclose(W_back, W, rtol=0, atol=1e-12)


@pytest.mark.parametrize("medium, scheme", CASES)
def test_circuit_formula_with_switches_equals_software_layers(medium, scheme):
    crossbar = _crossbar(medium, scheme)
    rng = np.random.default_rng(2)
    weights = _random_weights(crossbar, rng)
    states = mapping.target_states(weights, crossbar)
    # Layer 0 sees binary images, layer 1 hidden activations in [0, 1].
    for layer, inputs in ((0, rng.integers(0, 2, (64, 9)).astype(float)), (1, rng.uniform(0, 1, (64, 3)))):
        np.testing.assert_allclose(_circuit_preactivations(crossbar, states, layer, inputs),
                                   inputs @ weights[layer], rtol=0, atol=1e-9)


def test_circuit_forward_pass_equals_software_forward_pass():
    crossbar = _crossbar("Cr", "single")
    rng = np.random.default_rng(3)
    weights = _random_weights(crossbar, rng)
    states = mapping.target_states(weights, crossbar)
    X = rng.integers(0, 2, (32, 9)).astype(float)
    h = 1 / (1 + np.exp(-_circuit_preactivations(crossbar, states, 0, X)))
    y = 1 / (1 + np.exp(-_circuit_preactivations(crossbar, states, 1, h)))
    software = forward(weights, X)
    np.testing.assert_allclose(h, software[0], atol=1e-12)
    np.testing.assert_allclose(y, software[1], atol=1e-12)


def test_switch_compensation_raises_the_device_target():
    rng = np.random.default_rng(4)
    with_switch, no_switch = _crossbar("W", "single"), _crossbar("W", "single", r_switch_on_ohm=1e-9)
    weights = [rng.uniform(-3, 3, (9, 3)), rng.uniform(-3, 3, (3, 1))]
    g_with = mapping.weights_to_conductances(weights, with_switch)
    g_without = mapping.weights_to_conductances(weights, no_switch)
    assert np.all(g_with > g_without)
    # Forgetting the switch would cost up to several tenths of a weight unit on W (2 kΩ vs 100 Ω).
    naive = mapping.conductances_to_weights(g_without, with_switch)
    assert max(np.abs(a - b).max() for a, b in zip(naive, weights)) > 0.3


@pytest.mark.parametrize("medium", list(MEDIA))
def test_default_weight_limit_fits_every_medium_with_a_programming_margin(medium):
    w_limit = SoftwareTrainingConfig().w_limit
    for scheme in SCHEMES:
        crossbar = _crossbar(medium, scheme)
        assert w_limit <= mapping.max_symmetric_weight(crossbar, margin=0.05)
        weights = [np.full((9, 3), w_limit), np.full((3, 1), -w_limit)]
        mapping.target_states(weights, crossbar, margin=0.05)  # does not raise


@pytest.mark.parametrize("scheme", SCHEMES)
def test_single_scheme_range_is_the_design_rule_minus_switch_loss(scheme):
    crossbar = _crossbar("Cr", scheme)
    low, high = mapping.weight_range(crossbar, 0)
    if scheme == "single":
        # A device at either end of its window is ±4 (design rule); the switch shaves the ON end.
        assert low == pytest.approx(-4.0, abs=0.01) and 3.7 < high < 4.0
    else:
        assert low == -high and 7.5 < high < 8.0


@pytest.mark.parametrize("scheme", SCHEMES)
def test_out_of_window_weight_names_the_weight_and_its_range(scheme):
    crossbar = _crossbar("Cr", scheme)
    weights = [np.zeros((9, 3)), np.zeros((3, 1))]
    low, high = mapping.weight_range(crossbar, 0)
    weights[0][4, 2] = high + 0.01
    with pytest.raises(ConfigError) as caught:
        mapping.weights_to_conductances(weights, crossbar)
    error = caught.value
    assert error.path == "weights[0][4, 2]" and error.value == pytest.approx(high + 0.01)
    assert f"[{low:.6g}, {high:.6g}]" in str(error) and "layer 0 (row 4, column 2" in str(error)
    weights[0][4, 2] = 0.0
    weights[1][1, 0] = low - 0.01
    with pytest.raises(ConfigError, match=r"weights\[1\]\[1, 0\]"):
        mapping.target_states(weights, crossbar)


def test_margin_shrinks_the_allowed_range():
    crossbar = _crossbar("Cr", "single")
    weights = [np.zeros((9, 3)), np.zeros((3, 1))]
    weights[1][2, 0] = 0.99 * mapping.weight_range(crossbar, 1)[1]
    mapping.weights_to_conductances(weights, crossbar)
    with pytest.raises(ConfigError, match=r"weights\[1\]\[2, 0\].*margin 0.05"):
        mapping.weights_to_conductances(weights, crossbar, margin=0.05)
    with pytest.raises(ConfigError, match="mapping.margin"):
        mapping.weights_to_conductances(weights, crossbar, margin=0.5)


def test_shapes_are_validated():
    crossbar = _crossbar("W", "single")
    with pytest.raises(ConfigError, match="weights"):
        mapping.weights_to_conductances([np.zeros((9, 3))], crossbar)
    with pytest.raises(ConfigError, match=r"weights\[1\]"):
        mapping.weights_to_conductances([np.zeros((9, 3)), np.zeros((1, 3))], crossbar)
    with pytest.raises(ConfigError, match="conductances"):
        mapping.conductances_to_weights(np.ones(29), crossbar)
    with pytest.raises(ConfigError, match="states"):
        mapping.states_to_weights(np.ones(31), crossbar)
