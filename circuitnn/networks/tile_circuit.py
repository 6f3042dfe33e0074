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
(~10 s for 256 × 256 on a 2-core machine); training does not see the wires (the weights change on
every mini-batch).
"""

from __future__ import annotations

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
