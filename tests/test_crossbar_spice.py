"""The crossbar netlists in ngspice: stored states read back, and neuron outputs match circuit theory."""

import numpy as np
import pytest

from circuitnn.circuits.crossbar import Crossbar, CrossbarSpec, LayerSpec, NeuronSpec
from circuitnn.circuits.default import default_spec
from circuitnn.devices import msdc
from circuitnn.devices.base import preset
from circuitnn.devices.media import MEDIA
from circuitnn.experiments.operating_point import read_operating_point


@pytest.mark.parametrize("name", list(MEDIA))
def test_operating_point_reads_back_stored_states(engine, name):
    # The pitfall: a naive model returns the zero-bias equilibrium, not the stored state.
    crossbar = Crossbar(default_spec(preset(name)))
    rng = np.random.default_rng(1)
    states = rng.uniform(0, 1, crossbar.n_devices)
    point = read_operating_point(crossbar, states, rng.integers(0, 2, 9), engine)
    np.testing.assert_allclose(point.states_read_back, states, atol=1e-9)


def _single_layer(weights: str, n_in=5, n_out=3, r_switch=100.0, gain=1e6) -> Crossbar:
    device = preset("Cr")
    neuron = NeuronSpec(r_feedback_ohm=20_000.0, open_loop_gain=gain, v_rail_V=50.0,
                        activation="linear", activation_gain_per_V=1.0)
    return Crossbar(CrossbarSpec(name="one_layer", device=device, weights=weights,
                                 layers=(LayerSpec(n_in, n_out, neuron),), r_switch_on_ohm=r_switch))


def _expected_tia_outputs(crossbar: Crossbar, states, inputs):
    """Ideal virtual-ground TIA with finite gain: out = −A/(1+A) · R_f · I_in (KCL at the input)."""
    spec = crossbar.spec
    layer = spec.layers[0]
    v = np.asarray(inputs) * spec.v_read_V
    g = msdc.conductance_S(spec.device, states)
    currents = np.zeros(layer.n_outputs)
    for site, gi in zip(crossbar.sites, g):
        # Device in series with its selection switch, driven by +v (or −v on the inverted row).
        currents[site.column] += site.sign * v[site.row] / (spec.r_switch_on_ohm + 1 / gi)
    if spec.weights == "single":
        currents -= spec.reference_conductance_S * v.sum()
    a = layer.neuron.open_loop_gain
    return -a / (1 + a) * layer.neuron.r_feedback_ohm * currents


@pytest.mark.parametrize("weights", ["single", "differential"])
def test_tia_outputs_match_circuit_theory(engine, weights):
    crossbar = _single_layer(weights)
    rng = np.random.default_rng(7)
    states = rng.uniform(0, 1, crossbar.n_devices)
    inputs = rng.uniform(-1, 1, crossbar.n_inputs)
    point = read_operating_point(crossbar, states, inputs, engine)
    measured = np.array([point.neuron_nodes[crossbar.tia_output_node(0, j)] for j in range(3)])
    # The summing node sits at −out/A (µV), which the ideal formula ignores: 1e-4 relative.
    np.testing.assert_allclose(measured, _expected_tia_outputs(crossbar, states, inputs), rtol=1e-4)
    # The linear activation stage is V_read · k · z with z = −V(TIA out).
    acts = np.array([point.neuron_nodes[crossbar.activation_node(0, j)] for j in range(3)])
    np.testing.assert_allclose(acts, -measured * crossbar.spec.v_read_V, rtol=1e-9)


def test_reference_current_makes_devices_below_g_ref_negative_weights(engine):
    crossbar = _single_layer("single", n_in=1, n_out=1, r_switch=1e-3)
    g_ref = crossbar.spec.reference_conductance_S
    device = crossbar.spec.device
    low = float(msdc.state_from_conductance(device, 0.5 * g_ref))
    high = float(msdc.state_from_conductance(device, 1.5 * g_ref))
    z_low = -read_operating_point(crossbar, [low], [1.0], engine).neuron_nodes["l1o0"]
    z_high = -read_operating_point(crossbar, [high], [1.0], engine).neuron_nodes["l1o0"]
    assert z_low < 0 < z_high
    assert z_high == pytest.approx(-z_low, rel=1e-3)  # symmetric around G_ref


def test_rails_clamp_the_neuron_output(engine):
    crossbar = _single_layer("single", n_in=5, n_out=3)
    spec = crossbar.spec
    clamped = Crossbar(CrossbarSpec(**{**spec.__dict__, "layers": (LayerSpec(
        5, 3, NeuronSpec(2e6, 1e5, 1.5, 0.0, "linear", 1.0)),)}))
    point = read_operating_point(clamped, np.ones(15), np.ones(5), engine)
    outputs = [point.neuron_nodes[clamped.tia_output_node(0, j)] for j in range(3)]
    np.testing.assert_allclose(outputs, -1.5, atol=1e-9)


def test_altering_states_and_inputs_equals_loading_them(engine):
    crossbar = Crossbar(default_spec(preset("W")))
    rng = np.random.default_rng(3)
    first, second = rng.uniform(0, 1, (2, crossbar.n_devices))
    in1, in2 = rng.integers(0, 2, (2, 9)).astype(float)
    nodes = crossbar.neuron_nodes()
    engine.load("alter_check", crossbar.netlist(first, in1))
    altered = engine.run("op", nodes, alters={**crossbar.state_alters(second), **crossbar.input_alters(in2)})
    engine.load("fresh_check", crossbar.netlist(second, in2))
    fresh = engine.run("op", nodes)
    for node in nodes:
        np.testing.assert_allclose(altered.vectors[node], fresh.vectors[node], rtol=1e-9, atol=1e-12)


def test_line_resistance_lowers_column_currents(engine):
    base = _single_layer("differential").spec
    lossy = CrossbarSpec(**{**base.__dict__, "r_line_ohm": 200.0})
    states = np.tile([1.0, 0.0], 15)  # every weight at +full scale
    z = [abs(read_operating_point(Crossbar(s), states, np.ones(5), engine).neuron_nodes["l1o0"])
         for s in (base, lossy)]
    assert z[1] < 0.97 * z[0]
