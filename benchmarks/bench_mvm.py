"""One matrix-vector product at equal size: ngspice's operating point vs the surrogate's, with their error.

The circuit is a tile: an N × N differential M-SDC (Cr) crossbar (2N² devices at seeded random states)
with line resistance 1 Ω per crosspoint segment, row drivers 10 Ω, sense 10 Ω and 1T1R switches
100 Ω (``networks/tile_circuit.py``; the netlist ngspice runs is the one ``tile_crossbar`` writes).
An MVM applies one input vector (uniform in [−1, 1], × V_read) and reads the N column currents.

* SPICE: the netlist loaded once, then one ``op`` per input with the inputs altered (the engine's
  per-run path, states already in the circuit), one run per call and 20 runs per round trip.
* surrogate, solve: ``ArrayModel.solve`` of one input with the circuit factorised once.
* surrogate, tile: the tile's transfer matrix computed once per state (``transfer_matrix_S``), then
  each MVM is one product ``v @ T``, one input per call and 1000 per call.

Set-up costs (loading the netlist; factorising and computing the transfer matrix) are reported
beside, since states change when a tile is programmed. Error: max |ΔI| / max |I| of every MVM against
ngspice. Target: ≥ 10^3× per MVM at equal size. Medians. Writes
``benchmarks/results/mvm.json``.

    python benchmarks/bench_mvm.py [--sizes 8 16 32] [--inputs 40]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time

import numpy as np

from circuitnn import __version__
from circuitnn.devices import msdc
from circuitnn.devices.base import preset
from circuitnn.networks import TileConfig
from circuitnn.networks.tile_circuit import tile_crossbar
from circuitnn.spice.batch import ngspice_version
from circuitnn.spice.engine import SpiceEngine
from circuitnn.surrogate.array import ArrayModel
from results_file import write_result

TARGET_RATIO = 1e3


def _median_per_item(fn, items: int, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) / items)
    return statistics.median(times)


def bench_size(n: int, n_inputs: int, rng: np.random.Generator) -> dict:
    device = preset("Cr")
    tile = TileConfig(rows=n, cols=n, r_line_ohm=1.0, r_driver_ohm=10.0, r_sense_ohm=10.0, r_switch_on_ohm=100.0)
    crossbar = tile_crossbar(n, n, tile, device)
    states = rng.uniform(0, 1, crossbar.n_devices)
    inputs = rng.uniform(-1, 1, (n_inputs, n))
    v_read = crossbar.spec.v_read_V
    sense = [crossbar.sense_nodes(0, j) for j in range(n)]
    wanted = sorted({node for pair in sense for node in pair})

    with SpiceEngine(timeout_s=600) as engine:
        start = time.perf_counter()
        engine.load(crossbar.spec.name, crossbar.netlist(states, inputs[0]))
        engine.run("op", wanted, crossbar.input_alters(inputs[0]))
        spice_setup = time.perf_counter() - start
        results = engine.run_many("op", wanted, [crossbar.input_alters(x) for x in inputs])
        spice_currents = np.array([[(r.vectors[a][0] - r.vectors[b][0]) / crossbar.sense_resistance_ohm
                                    for a, b in sense] for r in results])
        single = [crossbar.input_alters(x) for x in inputs]
        spice_single = _median_per_item(lambda: [engine.run("op", wanted, a) for a in single[:10]], 10, 3)
        spice_batched = _median_per_item(lambda: engine.run_many("op", wanted, single[:20]), 20, 3)

    model = ArrayModel(crossbar)
    start = time.perf_counter()
    model.factorize(msdc.conductance_S(device, states))
    factorize_s = time.perf_counter() - start
    start = time.perf_counter()
    transfer = model.transfer_matrix_S()
    transfer_s = time.perf_counter() - start

    volts = inputs * v_read
    zero = model.solve(np.zeros((1, n))).column_currents_A[0][0]
    solved = np.vstack([model.solve(v[None]).column_currents_A[0] for v in volts])
    product = volts @ transfer + zero
    scale = np.abs(spice_currents).max()
    error_solve = float(np.abs(solved - spice_currents).max() / scale)
    error_tile = float(np.abs(product - spice_currents).max() / scale)

    one = volts[:1]
    solve_single = _median_per_item(lambda: [model.solve(one) for _ in range(50)], 50, 5)
    tile_single = _median_per_item(lambda: [one @ transfer for _ in range(1000)], 1000, 5)
    many = np.tile(volts, (1000 // n_inputs + 1, 1))[:1000]
    tile_batched = _median_per_item(lambda: many @ transfer, 1000, 5)

    return {
        "n": n, "devices": crossbar.n_devices, "inputs": n_inputs,
        "spice_per_mvm_s": {"single_call": spice_single, "20_per_call": spice_batched},
        "surrogate_per_mvm_s": {"solve_single": solve_single, "tile_single": tile_single,
                                "tile_1000_per_call": tile_batched},
        "setup_s": {"spice_load_and_first_op": spice_setup, "surrogate_factorize": factorize_s,
                    "surrogate_transfer_matrix": transfer_s},
        "ratio": {"solve_single": spice_single / solve_single, "tile_single": spice_single / tile_single,
                  "tile_batched_vs_spice_batched": spice_batched / tile_batched},
        "error_vs_spice": {"solve": error_solve, "tile": error_tile, "units": "max |ΔI| / max |I|"},
        "meets_target": {"solve_single": spice_single / solve_single >= TARGET_RATIO,
                         "tile_single": spice_single / tile_single >= TARGET_RATIO,
                         "tile_batched": spice_batched / tile_batched >= TARGET_RATIO},
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--inputs", type=int, default=40)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    sizes = []
    for n in args.sizes:
        sizes.append(bench_size(n, args.inputs, rng))
        r = sizes[-1]
        print(f"N={n:3d}: spice {r['spice_per_mvm_s']['single_call'] * 1e3:8.3f} ms  solve "
              f"{r['surrogate_per_mvm_s']['solve_single'] * 1e6:8.1f} µs ({r['ratio']['solve_single']:7.0f}x)  tile "
              f"{r['surrogate_per_mvm_s']['tile_single'] * 1e6:6.2f} µs ({r['ratio']['tile_single']:7.0f}x)  "
              f"error {r['error_vs_spice']['tile']:.1e}", file=sys.stderr, flush=True)
    result = {"benchmark": "mvm", "circuit": "N x N differential M-SDC (Cr) tile, R_line 1 ohm, periphery 10/10/100 ohm",
              "circuitnn": __version__, "ngspice": ngspice_version(), "python": platform.python_version(),
              "numpy": np.__version__, "target_ratio": TARGET_RATIO, "sizes": sizes}
    write_result("mvm", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
