"""Low-rank (Woodbury) updates of the array solve: a few devices changed without refactorising equal a
fresh factorisation of the new states, for the transfer matrix and for batch solves."""

import logging

import numpy as np
import pytest
from scipy import sparse
from scipy.sparse.linalg import splu

from circuitnn.circuits.crossbar import Crossbar
from circuitnn.circuits.default import default_spec
from circuitnn.devices.base import preset
from circuitnn.networks.tile_circuit import tile_crossbar
from circuitnn.networks.tiles import TileConfig
from circuitnn import native
from circuitnn.surrogate import inverse_rows
from circuitnn.surrogate.array import ArrayModel

WIRES = TileConfig(rows=48, cols=40, r_line_ohm=1.0, r_driver_ohm=10.0, r_sense_ohm=10.0, r_switch_on_ohm=100.0)


def _relative(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.mark.parametrize("k", [1, 5, 16])
def test_woodbury_transfer_matrix_equals_a_fresh_solve(k):
    device = preset("Cr")
    crossbar = tile_crossbar(WIRES.rows, WIRES.cols, WIRES, device)
    rng = np.random.default_rng(k)
    g = rng.uniform(device.g_low_S, device.g_high_S, crossbar.n_devices)
    model = ArrayModel(crossbar)
    model.factorize(g)
    before = model.transfer_matrix_updated_S()
    current = g.copy()
    for _ in range(3):  # successive updates accumulate in the same correction
        idx = rng.choice(crossbar.n_devices, k, replace=False)
        current[idx] = rng.uniform(device.g_low_S, device.g_high_S, k)
        model.update(idx, current[idx])
        fresh = ArrayModel(crossbar)
        fresh.factorize(current)
        expected = fresh.transfer_matrix_S()
        assert _relative(model.transfer_matrix_updated_S(), expected) <= 1e-9
        x = rng.uniform(-0.1, 0.1, (7, WIRES.rows))
        assert _relative(model.solve(x).column_currents_A[0], fresh.solve(x).column_currents_A[0]) <= 1e-9
    assert model.layers[0].low_rank_size <= 3 * k      # it did not refactorise
    assert _relative(model.transfer_matrix_updated_S(), before) > 1e-4   # and the devices mattered


def test_setting_devices_back_returns_the_original_transfer_matrix():
    device = preset("W")
    crossbar = tile_crossbar(16, 16, WIRES, device)
    rng = np.random.default_rng(0)
    g = rng.uniform(device.g_low_S, device.g_high_S, crossbar.n_devices)
    model = ArrayModel(crossbar)
    model.factorize(g)
    original = model.transfer_matrix_updated_S()
    idx = np.array([3, 40, 41, 200])
    model.update(idx, g[idx] * 2)
    model.update(idx, g[idx])
    assert _relative(model.transfer_matrix_updated_S(), original) <= 1e-12


def test_beyond_the_rank_limit_or_without_wires_it_refactorises_and_stays_exact():
    device = preset("Cr")
    crossbar = Crossbar(default_spec(device))   # the 9-3-1 circuit: two layers
    rng = np.random.default_rng(2)
    g = rng.uniform(device.g_low_S, device.g_high_S, crossbar.n_devices)
    model = ArrayModel(crossbar)
    model.factorize(g)
    idx = np.arange(0, 30, 2)
    g[idx] = rng.uniform(device.g_low_S, device.g_high_S, len(idx))
    model.update(idx, g[idx], max_rank=4)
    fresh = ArrayModel(crossbar)
    fresh.factorize(g)
    x = rng.uniform(0, 0.1, (5, 9))
    for layer_got, layer_want in zip(model.solve(x).activations_V, fresh.solve(x).activations_V):
        np.testing.assert_allclose(layer_got, layer_want, rtol=1e-10, atol=1e-15)
    # Layer 1 got 14 changed devices (> 4): refactorised; layer 2 one (device 28): corrected.
    assert [layer.low_rank_size for layer in model.layers] == [0, 1]


def test_own_sensitivities_are_the_derivatives_of_the_transfer_matrix():
    from circuitnn.networks.tile_circuit import tile_crossbar as make
    device = preset("Cr")
    crossbar = make(5, 4, TileConfig(rows=5, cols=4, r_line_ohm=2.0, r_driver_ohm=10.0, r_sense_ohm=10.0,
                                     r_switch_on_ohm=100.0), device)
    rng = np.random.default_rng(1)
    g = rng.uniform(device.g_low_S, device.g_high_S, crossbar.n_devices)
    model = ArrayModel(crossbar)
    model.factorize(g)
    base = model.transfer_matrix_S()
    branch_slope = 1.0 / (1.0 + crossbar.spec.r_switch_on_ohm * g) ** 2
    sensitivities = model.layers[0].own_sensitivities() * branch_slope
    for k in (0, 7, 13, 39):
        step = g[k] * 1e-6
        model.update([k], [g[k] + step])
        i, j, _ = np.unravel_index(k, (5, 4, 2))
        finite = (model.transfer_matrix_updated_S()[i, j] - base[i, j]) / step
        model.discard_updates()
        assert finite == pytest.approx(sensitivities[k], rel=1e-5)
        assert 0.5 < abs(sensitivities[k]) < 1.0   # the wires attenuate, the sign is the polarity's


def test_wire_gain_map_is_exact_at_its_reference_and_first_order_near_it():
    from circuitnn.networks.devices import weights_to_conductance_pair
    from circuitnn.networks.tile_circuit import effective_difference_S, wire_gain_map
    device = preset("Cr")
    tile = TileConfig(rows=6, cols=5, r_line_ohm=2.0, r_driver_ohm=10.0, r_sense_ohm=10.0, r_switch_on_ohm=100.0)
    fraction = 0.2
    gains = wire_gain_map(6, 5, tile, device, fraction)
    span = device.g_high_S - device.g_low_S
    errors, cross = [], []
    for size in (1e-3, 1e-2):
        # Every device at the reference but the + device of (2, 3), moved by ``size`` (in ŵ).
        w = np.full((6, 5), fraction)
        w[2, 3] += size
        g_plus, _, _ = weights_to_conductance_pair(device.g_low_S, device.g_high_S, w, 1.0)
        g_minus = np.full_like(g_plus, device.g_low_S + fraction * span)
        exact = effective_difference_S(np.stack([g_plus, g_minus]), tile, device) / span
        linear = gains.offset + gains.gain_plus * w - gains.gain_minus * fraction
        errors.append(abs(linear[2, 3] - exact[2, 3]))
        # What the map leaves out: the device's first-order pull on the other entries (IR drop).
        moved = np.abs(exact - (gains.offset + (gains.gain_plus - gains.gain_minus) * fraction))
        cross.append(np.max(np.delete(moved.ravel(), 2 * 5 + 3)) / moved[2, 3])
    assert errors[0] < 1e-7 and errors[1] / errors[0] > 50   # second order: 10× the step, ~100× the error
    assert max(cross) < 0.05


def test_surrogate_chip_corrects_a_few_pulsed_devices_in_low_rank():
    from circuitnn.chip.surrogate_chip import SurrogateChip
    from circuitnn.circuits.program import PulseSpec
    device = preset("Cr")
    crossbar = tile_crossbar(WIRES.rows, WIRES.cols, WIRES, device)
    rng = np.random.default_rng(3)
    states = rng.uniform(0.1, 0.9, crossbar.n_devices)
    x = rng.uniform(-1, 1, (4, WIRES.rows))
    chip = SurrogateChip(crossbar, states)
    chip.infer(x)
    for index in (5, 300, 1001):
        chip.pulse_device(index, PulseSpec(1.0, 2e-6))
    got = chip.infer(x)
    assert chip._array.layers[0].low_rank_size == 3           # corrected, not refactorised
    fresh = SurrogateChip(crossbar, chip.states).infer(x)
    assert _relative(got.column_currents_A[0], fresh.column_currents_A[0]) <= 1e-9
    np.testing.assert_allclose(got.outputs, fresh.outputs, rtol=1e-9, atol=1e-15)


def test_large_tiles_are_ordered_by_nested_dissection_with_the_same_solution(monkeypatch):
    """Above NESTED_DISSECTION_MIN_UNKNOWNS a layer is factorised in METIS's order; the solution is
    the minimum-degree one's to rounding, and the order is the same every time."""
    from circuitnn.surrogate import array

    device = preset("Cr")
    crossbar = tile_crossbar(WIRES.rows, WIRES.cols, WIRES, device)
    g = np.random.default_rng(9).uniform(device.g_low_S, device.g_high_S, crossbar.n_devices)
    x = np.random.default_rng(10).uniform(-0.1, 0.1, (5, WIRES.rows))
    ordered = ArrayModel(crossbar)
    assert ordered.n_unknowns >= array.NESTED_DISSECTION_MIN_UNKNOWNS
    assert ordered.layers[0]._order is not None
    np.testing.assert_array_equal(ordered.layers[0]._order, ArrayModel(crossbar).layers[0]._order)
    monkeypatch.setattr(array, "NESTED_DISSECTION_MIN_UNKNOWNS", 10**9)
    minimum_degree = ArrayModel(crossbar)
    assert minimum_degree.layers[0]._order is None
    for model in (ordered, minimum_degree):
        model.factorize(g)
    assert _relative(ordered.transfer_matrix_S(), minimum_degree.transfer_matrix_S()) <= 1e-12
    a, b = ordered.solve(x), minimum_degree.solve(x)
    assert _relative(a.column_currents_A[0], b.column_currents_A[0]) <= 1e-12
    assert np.sort(ordered.layers[0]._order).tolist() == list(range(ordered.n_unknowns))


def _wired_tile(seed):
    device = preset("Cr")
    crossbar = tile_crossbar(WIRES.rows, WIRES.cols, WIRES, device)
    rng = np.random.default_rng(seed)
    model = ArrayModel(crossbar)
    model.factorize(rng.uniform(device.g_low_S, device.g_high_S, crossbar.n_devices))
    return crossbar, device, model, rng


def _fresh_transfer(crossbar, model, idx, g):
    """The transfer matrix of a fresh factorisation: ``model``'s factorised states with ``idx`` at ``g``."""
    branch = model.layers[0]._base_branch
    conductances = branch / (1.0 - crossbar.spec.r_switch_on_ohm * branch)   # back from branch values
    conductances[idx] = g
    fresh = ArrayModel(crossbar)
    fresh.factorize(conductances)
    return fresh.transfer_matrix_S()


def test_rows_of_the_inverse_read_apart_equal_the_full_solve():
    crossbar, _, model, rng = _wired_tile(4)
    layer = model.layers[0]
    rows = layer._inverse_rows()
    assert rows is not None   # a nested-dissection layer with the C kernel: read apart
    devices = rng.choice(crossbar.n_devices, 20, replace=False)   # two blocks of right-hand sides
    a, b = layer._terminal_a[devices], layer._terminal_b[devices]
    full = layer.lu.solve(layer._incidence(devices))
    wanted = np.concatenate([layer._fixed_rows(), a, b, rng.choice(layer.n_unknown, 40, replace=False)])
    z = rows.forward(a, b)
    assert _relative(rows.rows(wanted, z), full[wanted]) <= 1e-12
    assert _relative(np.asarray(rows.operator(a[:3]) @ z), full[a[:3]]) <= 1e-12
    # Each row's operator is sparse: it reaches a part of the unknowns, not all.
    assert rows.operator(layer._fixed_rows()).nnz < 0.5 * len(layer._fixed_rows()) * layer.n_unknown


def test_a_transfer_matrix_after_an_update_needs_no_full_solve():
    crossbar, device, model, rng = _wired_tile(5)
    model.transfer_matrix_updated_S()
    idx = rng.choice(crossbar.n_devices, 16, replace=False)
    g = rng.uniform(device.g_low_S, device.g_high_S, 16)
    model.update(idx, g)
    got = model.transfer_matrix_updated_S()
    assert model.layers[0]._w.shape[1] == 0            # W at the rows the read needs, never in full
    assert _relative(got, _fresh_transfer(crossbar, model, idx, g)) <= 1e-9


@pytest.mark.parametrize("broken", ["no compiler", "a library that does not load"])
def test_without_the_c_kernel_updates_solve_in_full_and_stay_exact(broken, tmp_path, monkeypatch, caplog):
    cache = tmp_path / "cache"
    monkeypatch.setenv("CIRCUITNN_CACHE", str(cache))
    if broken == "no compiler":
        monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    else:   # found in the cache but not loadable (another machine's build, a noexec mount)
        cache.mkdir(mode=0o700)
        (cache / native.library_name(inverse_rows.SOURCE)).write_bytes(b"not a shared library")
    inverse_rows._kernel.cache_clear()
    try:
        with caplog.at_level(logging.WARNING):
            crossbar, device, model, rng = _wired_tile(6)
            assert model.layers[0]._inverse_rows() is None
        assert inverse_rows.FALLBACK in caplog.text
        model.transfer_matrix_updated_S()
        idx = rng.choice(crossbar.n_devices, 5, replace=False)
        g = rng.uniform(device.g_low_S, device.g_high_S, 5)
        model.update(idx, g)
        got = model.transfer_matrix_updated_S()
        assert model.layers[0]._w.shape[1] == 5            # solved in full instead
        assert _relative(got, _fresh_transfer(crossbar, model, idx, g)) <= 1e-9
    finally:
        inverse_rows._kernel.cache_clear()


def test_a_factorisation_that_pivoted_is_not_read_apart():
    lu = splu(sparse.csc_matrix(np.array([[1e-3, 1.0], [1.0, 1.0]])), permc_spec="NATURAL",
              options={"SymmetricMode": True})
    assert not np.array_equal(lu.perm_r, [0, 1])   # the pivot left the diagonal: Y ≠ LU as read
    assert inverse_rows.InverseRows.of(lu, np.arange(2), np.arange(2)) is None


def test_a_read_interrupted_part_way_leaves_the_correction_consistent(monkeypatch):
    crossbar, device, model, rng = _wired_tile(7)
    model.transfer_matrix_updated_S()
    idx = rng.choice(crossbar.n_devices, 5, replace=False)
    g = rng.uniform(device.g_low_S, device.g_high_S, 5)
    model.update(idx[:1], g[:1])
    model.transfer_matrix_updated_S()
    model.update(idx[1:], g[1:])
    operator = inverse_rows.InverseRows.operator

    def fails_once(self, rows):
        monkeypatch.setattr(inverse_rows.InverseRows, "operator", operator)
        raise MemoryError("interrupted")

    monkeypatch.setattr(inverse_rows.InverseRows, "operator", fails_once)
    with pytest.raises(MemoryError):
        model.transfer_matrix_updated_S()
    expected = _fresh_transfer(crossbar, model, idx, g)
    assert _relative(model.transfer_matrix_updated_S(), expected) <= 1e-9
    x = rng.uniform(-0.1, 0.1, (3, WIRES.rows))
    fresh = ArrayModel(crossbar)
    branch = model.layers[0]._base_branch
    conductances = branch / (1.0 - crossbar.spec.r_switch_on_ohm * branch)
    conductances[idx] = g
    fresh.factorize(conductances)
    assert _relative(model.solve(x).column_currents_A[0], fresh.solve(x).column_currents_A[0]) <= 1e-9
