"""A few devices of a wired 256×256 tile changed: low-rank (Woodbury) update vs refactorisation.

The tile is the differential crossbar of ``networks/tile_circuit.py`` (1 Ω per line segment, 10 Ω
drivers and sense resistors, 100 Ω switches; medium Cr, random states). Measured in one run:

* refactorisation and re-read: ``factorize`` of the new states plus ``transfer_matrix_S`` (what reading
  a tile through its wires costs after a change without low-rank updates), and ``factorize`` alone;
* update and re-read: ``ArrayModel.update`` of k devices plus ``transfer_matrix_updated_S``, for
  k = 1, 4, 16 on the same factorisation (each from the factorised states), and three successive
  updates of 16 devices (the correction grows to rank 48);
* the relative error of the updated transfer matrix against the fresh one;
* the first update after the factorisation, which also prepares the reading of rows apart
  (``surrogate/inverse_rows.py``; once per factorisation, not in the ratio, as the factorised
  states' own transfer matrix is not).

The ratio is the median update of 16 devices (``--repeats`` draws) over the median of two
refactorisations, measured twice in one run: at the machine's current load, and with CPU-bound
processes this benchmark starts itself (``--load-processes``) running beside it.
Target: k ≤ 16 at ≤ 1/20 of the refactorisation and re-read, ≤ 1e-9 relative error, in both.
Writes ``benchmarks/results/woodbury.json`` with os.getloadavg() before and after each phase.

    python benchmarks/bench_woodbury.py [--size 256] [--repeats 5] [--load-processes 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np

from circuitnn import __version__
from circuitnn.devices.base import preset
from circuitnn.networks.tile_circuit import tile_crossbar
from circuitnn.networks.tiles import TileConfig
from circuitnn.surrogate.array import ArrayModel
from results_file import with_load, write_result



def _timed(call):
    start = time.perf_counter()
    value = call()
    return value, time.perf_counter() - start


def _phase(crossbar, device, rng, repeats: int) -> dict:
    """One measurement of every quantity; the ratio from medians over ``repeats`` draws."""
    g = rng.uniform(device.g_low_S, device.g_high_S, crossbar.n_devices)
    model = ArrayModel(crossbar)
    _, factorize_s = _timed(lambda: model.factorize(g))
    _, transfer_s = _timed(model.transfer_matrix_updated_S)
    updates = {}
    for k in (1, 4, 16):
        times = []
        for _ in range(repeats):
            idx = rng.choice(crossbar.n_devices, k, replace=False)
            new = rng.uniform(device.g_low_S, device.g_high_S, k)
            _, seconds = _timed(lambda: (model.update(idx, new), model.transfer_matrix_updated_S()))
            times.append(seconds)
            model.discard_updates()   # back to the factorised states
        updates[k] = times
    successive, current = [], g.copy()
    first_error = None
    refactor = []
    for step in range(3):
        idx = rng.choice(crossbar.n_devices, 16, replace=False)
        current[idx] = rng.uniform(device.g_low_S, device.g_high_S, 16)
        updated, seconds = _timed(lambda: (model.update(idx, current[idx]), model.transfer_matrix_updated_S())[1])
        successive.append({"rank": model.layers[0].low_rank_size, "update_and_read_s": seconds})
        if step < 2:
            fresh = ArrayModel(crossbar)
            _, refactor_factorize_s = _timed(lambda: fresh.factorize(current))
            expected, refactor_transfer_s = _timed(fresh.transfer_matrix_S)
            refactor.append(refactor_factorize_s + refactor_transfer_s)
            error = float(np.max(np.abs(updated - expected)) / np.max(np.abs(expected)))
            first_error = error if first_error is None else max(first_error, error)
    update16 = statistics.median(updates[16])
    refactor_s = statistics.median(refactor)
    return {
        "factorize_s": factorize_s, "transfer_s": transfer_s,
        "refactorize_and_read_s": refactor, "update_and_read_s": {str(k): v for k, v in updates.items()},
        # The first update after a factorisation also prepares the reading of rows (the triangular
        # factors, the fixed rows' operator: surrogate/inverse_rows.py), once per factorisation.
        "first_update_and_read_s": updates[1][0],
        "median_update16_s": update16, "median_refactorize_and_read_s": refactor_s,
        "ratio_update16_to_refactorize_and_read": update16 / refactor_s,
        "successive_updates_of_16": successive, "max_relative_error_rank16_and_32": first_error,
        "meets_target": update16 / refactor_s <= 1 / 20 and first_error <= 1e-9,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--load-processes", type=int, default=1)
    args = parser.parse_args(argv)
    n = args.size
    device = preset("Cr")
    tile = TileConfig(rows=n, cols=n, r_line_ohm=1.0, r_driver_ohm=10.0, r_sense_ohm=10.0, r_switch_on_ohm=100.0)
    crossbar = tile_crossbar(n, n, tile, device)
    rng = np.random.default_rng(0)
    result = {"benchmark": "woodbury", "tile": f"{n}x{n} differential, 1 ohm lines, 10/10/100 ohm periphery, Cr",
              "unknowns": ArrayModel(crossbar).n_unknowns, "circuitnn": __version__,
              "python": platform.python_version(), "cpus": os.cpu_count(), "target_ratio": 1 / 20,
              "target_error": 1e-9, "repeats": args.repeats}
    result["current_load"] = with_load(lambda: _phase(crossbar, device, rng, args.repeats))
    result["added_load"] = with_load(lambda: _phase(crossbar, device, rng, args.repeats), args.load_processes)
    result["meets_target"] = result["current_load"]["meets_target"] and result["added_load"]["meets_target"]
    write_result("woodbury", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
