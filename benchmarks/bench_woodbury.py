"""A few devices of a wired 256×256 tile changed: low-rank (Woodbury) update vs refactorisation.

The tile is the differential crossbar of ``networks/tile_circuit.py`` (1 Ω per line segment, 10 Ω
drivers and sense resistors, 100 Ω switches; medium Cr, random states). Measured in one run:

* refactorisation and re-read: ``factorize`` of the new states plus ``transfer_matrix_S`` (what reading
  a tile through its wires costs today after any change), and ``factorize`` alone;
* update and re-read: ``ArrayModel.update`` of k devices plus ``transfer_matrix_updated_S``, for
  k = 1, 4, 16 on the same factorisation (each from the factorised states), and three successive
  updates of 16 devices (the correction grows to rank 48);
* the relative error of the updated transfer matrix against the fresh one.

Target: k ≤ 16 at ≤ 1/20 of the refactorisation and re-read, ≤ 1e-9 relative error.
Writes ``benchmarks/results/woodbury.json`` with os.getloadavg() before and after.

    python benchmarks/bench_woodbury.py [--size 256]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np

from circuitnn import __version__
from circuitnn.devices.base import preset
from circuitnn.networks.tile_circuit import tile_crossbar
from circuitnn.networks.tiles import TileConfig
from circuitnn.surrogate.array import ArrayModel
from results_file import write_result



def _timed(call):
    start = time.perf_counter()
    value = call()
    return value, time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args(argv)
    n = args.size
    load_before = os.getloadavg()
    device = preset("Cr")
    tile = TileConfig(rows=n, cols=n, r_line_ohm=1.0, r_driver_ohm=10.0, r_sense_ohm=10.0, r_switch_on_ohm=100.0)
    crossbar = tile_crossbar(n, n, tile, device)
    rng = np.random.default_rng(0)
    g = rng.uniform(device.g_low_S, device.g_high_S, crossbar.n_devices)
    model = ArrayModel(crossbar)
    _, factorize_s = _timed(lambda: model.factorize(g))
    _, transfer_s = _timed(model.transfer_matrix_updated_S)
    updates = {}
    for k in (1, 4, 16):
        idx = rng.choice(crossbar.n_devices, k, replace=False)
        new = rng.uniform(device.g_low_S, device.g_high_S, k)
        _, seconds = _timed(lambda: (model.update(idx, new), model.transfer_matrix_updated_S()))
        updates[k] = seconds
        model.discard_updates()   # back to the factorised states
    successive, current = [], g.copy()
    first_error = None
    for step in range(3):
        idx = rng.choice(crossbar.n_devices, 16, replace=False)
        current[idx] = rng.uniform(device.g_low_S, device.g_high_S, 16)
        updated, seconds = _timed(lambda: (model.update(idx, current[idx]), model.transfer_matrix_updated_S())[1])
        successive.append({"rank": model.layers[0].low_rank_size, "update_and_read_s": seconds})
        if step == 0:
            fresh = ArrayModel(crossbar)
            _, refactor_factorize_s = _timed(lambda: fresh.factorize(current))
            expected, refactor_transfer_s = _timed(fresh.transfer_matrix_S)
            first_error = float(np.max(np.abs(updated - expected)) / np.max(np.abs(expected)))
    refactor_s = refactor_factorize_s + refactor_transfer_s
    result = {
        "benchmark": "woodbury", "tile": f"{n}x{n} differential, 1 ohm lines, 10/10/100 ohm periphery, Cr",
        "unknowns": model.n_unknowns, "circuitnn": __version__, "python": platform.python_version(),
        "cpus": os.cpu_count(), "loadavg_before": load_before,
        "factorize_s": factorize_s, "transfer_s": transfer_s,
        "refactorize_and_read_s": refactor_s, "refactorize_factorize_s": refactor_factorize_s,
        "refactorize_transfer_s": refactor_transfer_s,
        "update_and_read_s": {str(k): v for k, v in updates.items()},
        "ratio_update16_to_refactorize_and_read": successive[0]["update_and_read_s"] / refactor_s,
        "ratio_update16_to_factorize_alone": successive[0]["update_and_read_s"] / refactor_factorize_s,
        "successive_updates_of_16": successive,
        "relative_error_rank16": first_error, "target_ratio": 1 / 20, "target_error": 1e-9,
        "loadavg_after": os.getloadavg(),
    }
    result["meets_target"] = (result["ratio_update16_to_refactorize_and_read"] <= 1 / 20
                              and first_error <= 1e-9)
    write_result("woodbury", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
