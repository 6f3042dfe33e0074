"""Training through the tiles' wires: the linearised wire map against the exact tile solve, and the
training path that uses it."""

import numpy as np
import pytest

from circuitnn.devices.base import preset
from circuitnn.errors import ConfigError
from circuitnn.networks import NetworkConfig, NetworkTrainingConfig, build_network, train
from circuitnn.networks.devices import tile_device, weights_to_conductance_pair
from circuitnn.networks.tile_circuit import effective_difference_S, wire_gain_map
from circuitnn.networks.tiles import AnalogMatrix, TileConfig

TILE = TileConfig(rows=32, cols=24, r_line_ohm=2.0, r_driver_ohm=10.0, r_sense_ohm=10.0, r_switch_on_ohm=100.0)


@pytest.mark.parametrize("spread", [0.05, 0.3])
def test_the_wire_map_is_closer_to_the_exact_tile_than_ideal_wires(spread):
    device = preset("Cr")
    span = device.g_high_S - device.g_low_S
    rng = np.random.default_rng(0)
    w = np.clip(rng.normal(0.0, spread, (32, 24)), -1, 1)
    w /= np.max(np.abs(w))
    g_plus, g_minus, _ = weights_to_conductance_pair(device.g_low_S, device.g_high_S, w, 1.0)
    exact = effective_difference_S(np.stack([g_plus, g_minus]), TILE, device) / span
    linear = wire_gain_map(32, 24, TILE, device, 0.1).apply(w)
    error_linear = np.max(np.abs(linear - exact))
    error_ideal = np.max(np.abs(w - exact))
    assert error_ideal > 0.05              # the wires matter on this tile
    assert error_linear < 0.6 * error_ideal


def test_training_forward_goes_through_the_wire_map():
    model = tile_device("msdc", "ideal")
    rng = np.random.default_rng(1)
    weight = rng.normal(0, 0.2, (40, 24))
    tile = TileConfig(rows=32, cols=24, r_line_ohm=2.0, r_driver_ohm=10.0, r_sense_ohm=10.0, r_switch_on_ohm=100.0)
    from circuitnn.networks.tiles import wire_maps
    maps = wire_maps(weight.shape, tile, model.model)
    wired = AnalogMatrix.for_training(weight, model, tile, wires=maps)
    plain = AnalogMatrix.for_training(weight, model, tile)
    for k, (rows, cols) in enumerate(plain.slices):
        np.testing.assert_allclose(wired.weights_normalised[rows, cols],
                                   maps[k].apply(plain.weights_normalised[rows, cols]), rtol=0, atol=1e-15)
    x = rng.uniform(-1, 1, (5, 40))
    assert not np.allclose(wired.matmul(x), plain.matmul(x))


def test_through_wires_needs_a_device_and_resistances():
    X = np.random.default_rng(0).uniform(0, 1, (20, 4, 4))
    y = np.arange(20) % 3
    network = build_network(NetworkConfig.mlp((8,)), (4, 4), np.random.default_rng(0))
    with pytest.raises(ConfigError, match="through_wires"):
        train(network, X, y, NetworkTrainingConfig(epochs=1, through_wires=True), device="msdc")
    history = train(network, X, y, NetworkTrainingConfig(epochs=1, through_wires=True), device="msdc",
                    tile=TileConfig(rows=16, cols=8, r_line_ohm=1.0))
    assert np.isfinite(history.loss[0])
