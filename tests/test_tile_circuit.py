"""Tiles read through their wires: the solved crossbar circuit, checked against ngspice and closed forms."""

import numpy as np
import pytest

from circuitnn.circuits.crossbar import Crossbar, CrossbarSpec, LayerSpec, NeuronSpec
from circuitnn.devices.base import preset
from circuitnn.errors import ConfigError
from circuitnn.chip.spice_chip import SpiceChip
from circuitnn.networks import NetworkConfig, ProgrammedMatrix, TileConfig, build_network, evaluate, tile_device
from circuitnn.networks.tile_circuit import effective_difference_S, pair_conductances_in_site_order, tile_crossbar
from circuitnn.surrogate.array import ArrayModel

WIRES = TileConfig(rows=12, cols=5, r_line_ohm=2.0, r_driver_ohm=10.0, r_sense_ohm=10.0, r_switch_on_ohm=100.0)


@pytest.mark.parametrize("shape", [(12, 5), (5, 12)])
@pytest.mark.parametrize("weights", ["differential", "single"])
def test_transfer_matrix_is_the_array_response(shape, weights):
    """Both ways of computing it (unit inputs, adjoint solves) reproduce the full solve."""
    n_in, n_out = shape
    device = preset("Cr")
    crossbar = Crossbar(CrossbarSpec(name="t", device=device, weights=weights, r_line_ohm=5.0,
                                     r_driver_ohm=10.0, r_sense_ohm=10.0,
                                     layers=(LayerSpec(n_in, n_out, NeuronSpec(4e4, activation="linear")),)))
    model = ArrayModel(crossbar)
    rng = np.random.default_rng(0)
    model.factorize(rng.uniform(device.g_off_S, device.g_on_S, crossbar.n_devices))
    inputs = rng.uniform(-0.1, 0.1, (7, n_in))
    expected = (model.solve(inputs).column_currents_A[0]
                - model.solve(np.zeros((1, n_in))).column_currents_A[0])
    np.testing.assert_allclose(inputs @ model.transfer_matrix_S(), expected, rtol=1e-9,
                               atol=1e-12 * np.abs(expected).max())


def test_one_pair_tile_is_the_closed_form_series_circuit():
    """1 × 1: +V and −V each through R_drv + R_line + R_sw + 1/G into the column node, R_sense to ground."""
    tile = TileConfig(rows=1, cols=1, r_line_ohm=3.0, r_driver_ohm=20.0, r_sense_ohm=50.0, r_switch_on_ohm=100.0)
    g_plus, g_minus = 1 / 6_000.0, 1 / 40_000.0
    series = tile.r_driver_ohm + tile.r_line_ohm + tile.r_switch_on_ohm
    a, b = 1 / (series + 1 / g_plus), 1 / (series + 1 / g_minus)
    v_column = (a - b) / (a + b + 1 / tile.r_sense_ohm)     # per volt of input
    expected = v_column / tile.r_sense_ohm
    got = effective_difference_S(np.array([[[g_plus]], [[g_minus]]]), tile, preset("Cr"))
    # The TIA's virtual ground is ideal to 1e-9 (open-loop gain 1e9).
    assert got[0, 0] == pytest.approx(expected, rel=1e-7)
    assert got[0, 0] < g_plus - g_minus


def test_ir_drop_shrinks_the_far_corner_most():
    """Equal pairs everywhere: devices far from the row driver (last column) and far from the TIA
    (first row) see the least voltage; every effective difference is below the ideal one."""
    device = preset("Cr")
    pair = np.stack([np.full((32, 16), device.g_on_S), np.full((32, 16), device.g_off_S)])
    tile = TileConfig(rows=32, cols=16, r_line_ohm=2.0)
    effective = effective_difference_S(pair, tile, device)
    ideal = device.g_on_S - device.g_off_S
    assert np.all(effective < ideal)
    assert np.all(np.diff(effective, axis=1) < 0)          # along a row, away from its driver
    assert np.all(np.diff(effective, axis=0) > 0)          # down a column, toward its TIA
    assert effective[0, -1] < 0.9 * ideal < effective[-1, 0]


def test_tile_reads_through_wires_match_ngspice(engine):
    """The evaluated tile (effects off, no converters) against ngspice's operating points of the
    same crossbar netlist at the programmed states."""
    model = tile_device("msdc", "ideal")
    rng = np.random.default_rng(5)
    W = rng.normal(0, 1, (WIRES.rows, WIRES.cols))
    programmed = ProgrammedMatrix(W, model, WIRES, np.random.default_rng(0))
    analog = programmed.read(np.random.default_rng(1))
    x = rng.uniform(-1, 1, (6, WIRES.rows))
    ours = analog.matmul(x)

    crossbar = tile_crossbar(WIRES.rows, WIRES.cols, WIRES, model.model)
    states = pair_conductances_in_site_order(programmed.states[0].x)
    a = np.max(np.abs(x), axis=1, keepdims=True)
    engine.load(crossbar.spec.name, crossbar.netlist(states, x[0] / a[0]))
    sense = [crossbar.sense_nodes(0, j) for j in range(WIRES.cols)]
    wanted = sorted({node for pair in sense for node in pair})
    results = engine.run_many("op", wanted, [crossbar.input_alters(v) for v in x / a])
    currents = np.array([[(r.vectors[end][0] - r.vectors[s][0]) / crossbar.sense_resistance_ohm
                          for end, s in sense] for r in results])
    state = programmed.states[0]
    expected = currents / (crossbar.spec.v_read_V * model.g_span_S) * a * state.w_max
    np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-9 * np.abs(expected).max())
    # And the wires matter here: the ideal product differs by far more than the tolerance.
    assert np.max(np.abs(x @ W - expected)) > 1e-3 * np.abs(expected).max()


@pytest.mark.parametrize("device", ["msdc", "pcm"])
def test_a_16x16_tile_rechecks_on_the_spice_chip(device):
    """A programmed 16 × 16 tile with wires, its states loaded into a ``SpiceChip`` of the tile's own
    crossbar (PCM tiles are PCM cells in the netlist): the chip's column currents are what the tile
    computes from its solved circuit."""
    tile = TileConfig(rows=16, cols=16, r_line_ohm=2.0, r_driver_ohm=10.0, r_sense_ohm=10.0, r_switch_on_ohm=100.0)
    tile_model = tile_device(device, "ideal")
    rng = np.random.default_rng(8)
    W = rng.normal(0, 1, (16, 16))
    programmed = ProgrammedMatrix(W, tile_model, tile, np.random.default_rng(0))
    g_pair = programmed.device.readout(programmed.states[0], np.random.default_rng(1)).g_pair_S
    model = tile_model.model
    crossbar = tile_crossbar(16, 16, tile, model)
    assert crossbar.spec.device is model and crossbar.spec.device.family == ("pcm" if device == "pcm" else "msdc")
    states = np.clip(model.state_from_conductance(pair_conductances_in_site_order(g_pair)), *model.state_bounds)
    x = rng.uniform(0, 1, (5, 16))
    with SpiceChip(crossbar, states) as chip:
        spice = chip.infer(x, read_noise=False).column_currents_A[0]
    expected = crossbar.spec.v_read_V * x @ effective_difference_S(g_pair, tile, model)
    np.testing.assert_allclose(spice, expected, rtol=1e-6, atol=1e-9 * np.abs(expected).max())


def test_evaluation_reads_through_wires_and_records_them():
    rng = np.random.default_rng(0)
    network = build_network(NetworkConfig.mlp(hidden=(8,)), (12,), rng)
    X, y = rng.normal(0, 1, (40, 12)), rng.integers(0, 10, 40)
    ideal = evaluate(network, X, y, "msdc", "ideal", TileConfig(rows=12, cols=8))
    wired = evaluate(network, X, y, "msdc", "ideal", WIRES)
    assert wired["tile"]["r_line_ohm"] == 2.0 and ideal["tile"]["r_line_ohm"] == 0.0
    assert ideal["accuracy_device"] == ideal["accuracy_float"]


@pytest.mark.parametrize("changes, field, allowed", [
    ({"r_line_ohm": -1.0}, "tile.r_line_ohm", "[0, 1e+06]"),
    ({"r_sense_ohm": "ten"}, "tile.r_sense_ohm", ""),
    ({"rows": 2048, "r_line_ohm": 1.0}, "tile.rows", "[1, 1024]"),
])
def test_bad_tile_values_name_the_field(changes, field, allowed):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")) as error:
        TileConfig(**changes)
    assert allowed in str(error.value)
