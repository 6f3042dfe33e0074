"""Engine latency and memory on the default 30-memristor circuit (9-3-1, medium Cr).

Measures, in one run, medians of:
* read: new inputs (9 alters) + operating point + read the 4 neuron outputs, circuit kept loaded,
  timed in the caller; and ngspice's bare solve (the ``op`` command alone, timed inside the worker).
  Once one read per round trip to the worker, once 100 reads per round trip (a test set).
* write: one programming pulse (state + pulse alters, transient, waveforms for the energy),
  timed in the caller; and the bare solve (the ``tran`` command alone).
* batch: the same read as a fresh ``ngspice -b -r`` process per run.
* memory: the worker's resident memory over N reads after a warm-up.

Targets: read/bare ≤ 1.2, write/bare ≤ 1.2, RSS growth ≤ 1 MB over 20 000 runs.
Writes ``benchmarks/results/engine.json``.

    python benchmarks/bench_engine.py [--runs 300] [--rss-runs 20000]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from circuitnn import __version__
from circuitnn.circuits.crossbar import Crossbar
from circuitnn.circuits.default import default_spec, example_states
from circuitnn.circuits.program import ProgrammingCircuit, PulseSpec
from circuitnn.devices.base import preset
from circuitnn.spice.batch import ngspice_version, run_batch
from circuitnn.spice.engine import SpiceEngine
from circuitnn.spice.pulses import SpicePulseWriter
from results_file import write_result



def bench_read(engine: SpiceEngine, crossbar: Crossbar, runs: int, rng) -> dict:
    engine.load("bench_read", crossbar.netlist(example_states(30), np.zeros(9)))
    outputs = [crossbar.activation_node(l, j) for l, layer in enumerate(crossbar.spec.layers)
               for j in range(layer.n_outputs)]
    inputs = rng.integers(0, 2, (runs + 20, 9)).astype(float)
    wall, solve = [], []
    for k, x in enumerate(inputs):
        start = time.perf_counter()
        result = engine.run("op", outputs, alters=crossbar.input_alters(x))
        if k >= 20:  # warm-up
            wall.append(time.perf_counter() - start)
            solve.append(result.solve_time_s)
    return _ratio(wall, solve)


def bench_read_batched(engine: SpiceEngine, crossbar: Crossbar, runs: int, rng, batch: int = 100) -> dict:
    """Reads sent ``batch`` at a time (``run_many``): the per-read latency of a test set."""
    engine.load("bench_read_batched", crossbar.netlist(example_states(30), np.zeros(9)))
    outputs = [crossbar.activation_node(l, j) for l, layer in enumerate(crossbar.spec.layers)
               for j in range(layer.n_outputs)]
    wall, solve = [], []
    for _ in range(max(runs // batch, 1) + 1):
        alters = [crossbar.input_alters(x) for x in rng.integers(0, 2, (batch, 9)).astype(float)]
        start = time.perf_counter()
        results = engine.run_many("op", outputs, alters)
        wall.append((time.perf_counter() - start) / batch)
        solve.append(statistics.median(r.solve_time_s for r in results))
    return _ratio(wall[1:], solve[1:]) | {"batch": batch}


def bench_write(engine: SpiceEngine, runs: int) -> dict:
    writer = SpicePulseWriter(ProgrammingCircuit(preset("Cr")), engine)
    set_pulse, reset_pulse = PulseSpec(1.0, 10e-6), PulseSpec(-1.0, 10e-6)
    x, wall, solve = 0.5, [], []
    for k in range(runs + 20):
        pulse = set_pulse if k % 2 == 0 else reset_pulse
        start = time.perf_counter()
        result = writer.apply(x, pulse)
        wall.append(time.perf_counter() - start)
        solve.append(result.solve_time_s)
        x = result.x_after
    return _ratio(wall[20:], solve[20:])


def bench_batch(crossbar: Crossbar, runs: int, rng) -> dict:
    wall = []
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(runs):
            text = crossbar.netlist(example_states(30), rng.integers(0, 2, 9).astype(float))
            start = time.perf_counter()
            run_batch(text, "bench_batch", workdir=Path(folder))
            wall.append(time.perf_counter() - start)
    return {"median_s": statistics.median(wall), "runs": runs}


def bench_memory(engine: SpiceEngine, crossbar: Crossbar, runs: int, rng) -> dict:
    engine.load("bench_memory", crossbar.netlist(example_states(30), np.zeros(9)))
    inputs = rng.integers(0, 2, (512, 9)).astype(float)
    for k in range(1000):  # warm-up: allocator pools, first history clear
        engine.run("op", ["l2a0"], alters=crossbar.input_alters(inputs[k % 512]))
    start_rss = engine.worker_rss_bytes()
    samples = []
    for k in range(runs):
        engine.run("op", ["l2a0"], alters=crossbar.input_alters(inputs[k % 512]))
        if k % 1000 == 999 or k == runs - 1:
            samples.append(engine.worker_rss_bytes())
    growth = samples[-1] - start_rss
    return {"runs": runs, "rss_start_MB": start_rss / 2**20, "rss_end_MB": samples[-1] / 2**20,
            "rss_growth_MB": growth / 2**20, "rss_samples_MB": [s / 2**20 for s in samples],
            "target_MB": 1.0, "meets_target": growth <= 2**20}


def _ratio(wall: list[float], solve: list[float]) -> dict:
    wall_median, solve_median = statistics.median(wall), statistics.median(solve)
    return {"median_s": wall_median, "bare_solve_median_s": solve_median,
            "ratio": wall_median / solve_median, "p10_s": float(np.percentile(wall, 10)),
            "p90_s": float(np.percentile(wall, 90)), "runs": len(wall), "target_ratio": 1.2,
            "meets_target": wall_median / solve_median <= 1.2}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--batch-runs", type=int, default=50)
    parser.add_argument("--rss-runs", type=int, default=20_000)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    crossbar = Crossbar(default_spec(preset("Cr")))
    with SpiceEngine() as engine:
        read = bench_read(engine, crossbar, args.runs, rng)
        read_batched = bench_read_batched(engine, crossbar, args.runs * 10, rng)
        write = bench_write(engine, args.runs)
        memory = bench_memory(engine, crossbar, args.rss_runs, rng)
    batch = bench_batch(crossbar, args.batch_runs, rng)
    result = {
        "benchmark": "engine", "circuit": "default 9-3-1, 30 memristors, medium Cr",
        "circuitnn": __version__, "ngspice": ngspice_version(), "python": platform.python_version(),
        "machine": f"{platform.machine()}, {platform.processor() or '?'}",
        "read": read, "read_batched": read_batched, "write": write, "memory": memory,
        "batch_read": batch | {"ratio_to_in_process_read": batch["median_s"] / read["median_s"]},
    }
    write_result("engine", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
