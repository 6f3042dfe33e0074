"""A tile as a circuit: its conductance pairs read through drivers, wires, switches and sense resistors.

With every resistance of ``TileConfig`` at zero (the default) a tile computes x · (G+ − G−) exactly.
With any of them set, the tile is the differential crossbar ``circuits/crossbar.py`` writes for
ngspice: row driver R_driver, R_line per crosspoint segment on rows and columns, a 1T1R selection
switch R_switch in series with each device, R_sense into a virtual-ground TIA, and the G− device of
a pair on an inverted copy of its row in the same column. ``surrogate/array.py`` solves that circuit
exactly (the same nodal model SurrogateChip uses, checked against ngspice); since it is linear at
fixed states, one solve per input line gives the tile's whole read response, its *effective*
(G+ − G−), and every later read is a matrix product. IR drop shrinks the currents of devices far
from the driver and the TIA, so a tile reads its weights smaller and unevenly; the ADC still
normalises by the nominal window, as a chip that does not know its wires would.

Cost: min(rows, cols) sparse solves of a 2·rows·cols-node system, once per programmed state
(~10 s for 256 × 256 on a 2-core machine). A few devices changed later are corrected in low rank
(``ArrayModel.update``, Woodbury) instead.

Training sees the wires through ``WireGainMap``: the tile's effective weights linearised in every
device's own conductance around a reference state (every device at g_lo + ``reference_fraction``·span),
computed once per tile shape (2·(rows + cols) solves) and applied per mini-batch as an elementwise
gain per weight and sign, which costs about one extra pass over the weights. What it leaves out (each
device's effect on the other entries through the line currents, and second order) is measured
against the exact solve (``benchmarks/bench_wired_mlp.py``, at the trained weights).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ..circuits.crossbar import Crossbar, CrossbarSpec, LayerSpec, NeuronSpec
from ..devices.base import DeviceModel
from ..surrogate.array import ArrayModel

# The crossbar spec needs a positive switch resistance (the netlist's switch model); "no switch" is
# a 1 µΩ stand-in, which changes a 5 kΩ device's conductance by 2e-10 relative.
NO_SWITCH_OHM = 1e-6
# The TIA of a tile: an ideal virtual ground to 1e-9 (gain 1e9) and a 1 kΩ transimpedance; both only
# set the summing node's residual voltage, never the column currents the ADC converts.
TIA = NeuronSpec(r_feedback_ohm=1e3, open_loop_gain=1e9, activation="linear")


def tile_crossbar(rows: int, cols: int, tile, device: DeviceModel) -> Crossbar:
    """The differential ``rows`` × ``cols`` crossbar of one tile of ``device`` with ``tile``'s
    resistances: the circuit ``SpiceChip`` simulates for a tile small enough for SPICE."""
    return Crossbar(CrossbarSpec(
        name="tile", device=device,
        layers=(LayerSpec(rows, cols, TIA),), weights="differential",
        r_driver_ohm=tile.r_driver_ohm, r_line_ohm=tile.r_line_ohm, r_sense_ohm=tile.r_sense_ohm,
        r_switch_on_ohm=tile.r_switch_on_ohm if tile.r_switch_on_ohm > 0 else NO_SWITCH_OHM))


def pair_conductances_in_site_order(g_pair_S: np.ndarray) -> np.ndarray:
    """(2, rows, cols) pairs → the crossbar's device order (row, column, then G+ before G−)."""
    return np.ascontiguousarray(np.moveaxis(np.asarray(g_pair_S, dtype=float), 0, -1)).ravel()


def effective_difference_S(g_pair_S: np.ndarray, tile, device: DeviceModel) -> np.ndarray:
    """The (rows, cols) differences G+ − G− the tile's inputs see through its wires (S).

    Column current j = V_read · Σ_i x_i · result[i, j]: equal to G+ − G− with ideal wires.
    """
    _, rows, cols = np.shape(g_pair_S)
    model = ArrayModel(tile_crossbar(rows, cols, tile, device))
    model.factorize(pair_conductances_in_site_order(g_pair_S))
    return model.transfer_matrix_S()


@dataclass(frozen=True)
class WireGainMap:
    """A tile's normalised effective weights ŵ_eff ≈ offset + ŵ · (gain_plus where ŵ ≥ 0, else gain_minus),
    ŵ = w / w_max ∈ [−1, 1], linearised around the reference state (each (rows, cols))."""

    gain_plus: np.ndarray
    gain_minus: np.ndarray
    offset: np.ndarray
    reference_fraction: float

    def apply(self, w_normalised: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        gain = np.where(w_normalised >= 0, self.gain_plus, self.gain_minus)
        out = np.multiply(w_normalised, gain, out=out)
        out += self.offset
        return out


@functools.lru_cache(maxsize=16)
def wire_gain_map(rows: int, cols: int, tile, device: DeviceModel, reference_fraction: float = 0.1) -> WireGainMap:
    """The ``WireGainMap`` of a ``rows`` × ``cols`` tile of ``device`` with ``tile``'s resistances
    (cached: it depends on the shape, the resistances and the device, never on the weights).

    With the pair mapping of ``networks/devices.py`` (one device at g_lo, the other at g_lo + span·|ŵ|)
    and T the effective difference in S: T ≈ T(G0) + Σ_k ∂T/∂g_k (g_k − g0), keeping each device's own
    entry. Normalised by the span: gain_plus = D+, gain_minus = −D−, offset = (T(G0) − c·span·(D+ + D−))/span,
    where D± = ∂T[i, j]/∂g of the + and − device of (i, j) and c the reference fraction."""
    span = device.g_high_S - device.g_low_S
    crossbar = tile_crossbar(rows, cols, tile, device)
    g0 = np.full(crossbar.n_devices, device.g_low_S + reference_fraction * span)
    model = ArrayModel(crossbar)
    model.factorize(g0)
    network = model.layers[0]
    r_switch = crossbar.spec.r_switch_on_ohm
    # β = g / (1 + R_sw g): dβ/dg = 1 / (1 + R_sw g)².
    d = (network.own_sensitivities() / (1.0 + r_switch * g0) ** 2).reshape(rows, cols, 2)
    t0 = model.transfer_matrix_S()
    c = reference_fraction
    return WireGainMap(d[..., 0], -d[..., 1], (t0 - c * span * (d[..., 0] + d[..., 1])) / span, reference_fraction)
