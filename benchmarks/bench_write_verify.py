"""Write-verify of one device in one round trip, against ngspice's own solve times (30-memristor
circuit, medium Cr unless --medium).

For every device of the on-chip task in turn (as ``tune_all`` tunes them), with and without the
initial reset: the wall time of
``SpiceChip.write_verify`` (the whole loop inside the worker, in C: ``spice/compiled.py``) divided
by the sum of ngspice's bare solve times it contains (each ``op``/``tran`` command timed inside the
worker); for comparison the same inside the worker with the loop in Python, and the same device
tuned op by op (``program_to_target``: one round trip per read or pulse); and the whole tuning as
``tune_all`` runs it (``DEVICES_PER_ROUND_TRIP`` devices per round trip). Measured
twice in one run: at the machine's current load, and with CPU-bound processes this benchmark starts
itself (``--load-processes``, default 1) running beside it. Load averages (os.getloadavg) are
recorded before and after each phase: the machine is shared.

Target: total ≤ 1.1 × the sum of solve times. Writes ``benchmarks/results/write_verify.json``.

    python benchmarks/bench_write_verify.py [--medium Cr] [--repeats 3] [--load-processes 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import sys
import time

from circuitnn import __version__
from circuitnn.chip.spice_chip import SpiceChip
from circuitnn.circuits.crossbar import Crossbar
from circuitnn.experiments import onchip
from circuitnn.experiments.config import load_config
from circuitnn.spice.batch import ngspice_version
from circuitnn.spice.engine import STATS
from circuitnn.training.tuning import DEVICES_PER_ROUND_TRIP, program_to_target, tune_all
from results_file import with_load, write_result

TARGET = 1.1
PATHS = ("in_worker", "in_worker_python", "op_by_op")


def _phase(config, crossbar, states, targets, repeats: int) -> dict:
    rows, tunings = [], []
    with SpiceChip(crossbar, states, config.programming, config.timing) as chip:
        for reset in (False, True):
            tuning = dataclasses.replace(config.tuning, initial_reset=reset)
            # Not timed: the workers' start-up (an interpreter and libngspice, ~0.2 s), the circuit's
            # load and the pulse table's checks, paid once per chip and tuning, not per device.
            chip.load_states(states)
            chip.write_verify(0, tuning.program(0, float(targets[0])))
            program_to_target(chip, 0, float(targets[0]), tuning)
            for _ in range(repeats):
                # Each path tunes the devices one after another, as tune_all does.
                for path in PATHS:
                    chip._program_engine.use_compiled_loop(path != "in_worker_python")
                    for index, target in enumerate(targets):
                        chip.load_states(states)
                        solve_before, runs_before, worker_before = STATS.solve_time_s, STATS.runs, STATS.worker_time_s
                        in_c_before = STATS.compiled_devices
                        start = time.perf_counter()
                        if path != "op_by_op":
                            chip.write_verify(index, tuning.program(index, float(target)))
                        else:
                            program_to_target(chip, index, float(target), tuning)
                        wall = time.perf_counter() - start
                        rows.append({"path": path, "reset": reset, "device": index, "wall_s": wall,
                                     "solve_s": STATS.solve_time_s - solve_before,
                                     "worker_s": STATS.worker_time_s - worker_before,
                                     "solves": STATS.runs - runs_before,
                                     "in_c": STATS.compiled_devices - in_c_before})
                chip._program_engine.use_compiled_loop(True)
                # The whole tuning as tune_all runs it: DEVICES_PER_ROUND_TRIP devices per round trip.
                chip.load_states(states)
                solve_before, runs_before, worker_before = STATS.solve_time_s, STATS.runs, STATS.worker_time_s
                start = time.perf_counter()
                tune_all(chip, targets, tuning)
                wall = time.perf_counter() - start
                tunings.append({"wall_s": wall, "solve_s": STATS.solve_time_s - solve_before,
                                "worker_s": STATS.worker_time_s - worker_before, "solves": STATS.runs - runs_before})
    out = {}
    for path in PATHS:
        chosen = [r for r in rows if r["path"] == path]
        wall, solve = sum(r["wall_s"] for r in chosen), sum(r["solve_s"] for r in chosen)
        ratios = [r["wall_s"] / r["solve_s"] for r in chosen]
        out[path] = {"devices_tuned": len(chosen), "solves": sum(r["solves"] for r in chosen),
                     "wall_s": wall, "solve_s": solve, "ratio_total": wall / solve,
                     "ratio_median_per_device": statistics.median(ratios),
                     "ratio_p90_per_device": sorted(ratios)[int(0.9 * (len(ratios) - 1))],
                     "wall_per_solve_s": wall / sum(r["solves"] for r in chosen)}
        if path != "op_by_op":
            # Inside the worker (solves + alters + vector reads + the loop) vs the round trip.
            worker = sum(r["worker_s"] for r in chosen)
            out[path] |= {"worker_s": worker, "ratio_worker_to_solve": worker / solve,
                          "ratio_wall_to_worker": wall / worker,
                          "devices_run_in_c": sum(r["in_c"] for r in chosen)}
    wall, solve, worker = (sum(t[k] for t in tunings) for k in ("wall_s", "solve_s", "worker_s"))
    out["whole_tuning"] = {"devices_per_round_trip": DEVICES_PER_ROUND_TRIP, "tunings": len(tunings),
                           "devices_tuned": len(tunings) * len(targets), "solves": sum(t["solves"] for t in tunings),
                           "wall_s": wall, "solve_s": solve, "ratio_total": wall / solve,
                           "worker_s": worker, "ratio_worker_to_solve": worker / solve,
                           "meets_target": wall / solve <= TARGET}
    out["in_worker"]["meets_target"] = out["in_worker"]["ratio_total"] <= TARGET
    out["speedup_in_worker_vs_op_by_op"] = out["op_by_op"]["wall_s"] / out["in_worker"]["wall_s"]
    out["speedup_c_loop_vs_python_loop"] = out["in_worker_python"]["wall_s"] / out["in_worker"]["wall_s"]
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--medium", default="Cr")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--load-processes", type=int, default=1)
    args = parser.parse_args(argv)
    config = load_config(None, args.medium)
    crossbar = Crossbar(config.crossbar_spec())
    states = onchip.initial_states(config, crossbar.n_devices)
    targets = onchip.make_task(config, crossbar).targets_S
    result = {"benchmark": "write_verify", "medium": args.medium, "circuitnn": __version__,
              "ngspice": ngspice_version(), "python": platform.python_version(), "cpus": os.cpu_count(),
              "target_ratio": TARGET}
    result["current_load"] = with_load(lambda: _phase(config, crossbar, states, targets, args.repeats))
    result["added_load"] = with_load(lambda: _phase(config, crossbar, states, targets, args.repeats),
                                     args.load_processes)
    write_result(f"write_verify{'' if args.medium == 'Cr' else '_' + args.medium}", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
