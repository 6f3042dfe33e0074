"""Where ngspice's time goes in a programming pulse and in an array read, per device model.

For each preset: N programming pulses of the programming path (the middle pulse of the preset's
write-verify pulse table, from varied states) and N operating points of the 30-memristor array
(noisy binary inputs), each through ``SpiceEngine`` as the chips run them. Then ngspice's own
accounting (``rusage all``, read through the engine's diagnostics command) splits its analysis
time into device evaluation and matrix load, factorisation, solve, truncation-error control and
the rest (time-step bookkeeping, output vectors).

The load share bounds what a compiled device model (an OSDI device in place of the behavioural
sources) could gain: even with devices that cost nothing to evaluate, an analysis takes at least
(1 − load share) of its time, so the speed-up is at most 1 / (1 − load share). Writes
``benchmarks/results/solve_anatomy.json`` with the load average before and after.

    python benchmarks/bench_solve_anatomy.py [--runs 200] [--media W,Cr,C,PCM,VTEAM,AgChalc]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np

from circuitnn import __version__
from circuitnn.circuits.crossbar import Crossbar
from circuitnn.circuits.program import ProgrammingCircuit
from circuitnn.experiments.config import load_config
from circuitnn.spice.batch import ngspice_version
from circuitnn.spice.engine import SpiceEngine
from circuitnn.spice.pulses import SpicePulseWriter
from results_file import write_result

_KEYS = {"analysis_s": "{kind} analysis time", "load_s": "{kind} load time", "factor_s": "{kind} factor time",
         "solve_s": "{kind} solve time", "trunc_s": "{kind} trunc time", "timepoints": "{kind} timepoints",
         "iterations": "{kind} iterations"}


def _accounting(engine: SpiceEngine) -> dict[str, float]:
    values = {}
    for line in engine.command_unvalidated("rusage all"):
        if "=" in line:
            key, _, value = line.rpartition("=")
            try:
                values[key.strip()] = float(value.split()[0])
            except (ValueError, IndexError):
                pass
    return values


def _split(before: dict, after: dict, transient: bool, runs: int, wall_s: float, solves_s: float) -> dict:
    """Per-analysis shares from the difference of two accountings."""
    delta = {key: after.get(key, 0.0) - before.get(key, 0.0) for key in after}
    if transient:
        parts = {name: delta.get(key.format(kind="Transient"), 0.0) for name, key in _KEYS.items()}
        parts["timepoints"] = delta.get("Accepted timepoints", 0.0)
        parts["iterations"] = delta.get("Transient iterations", 0.0)
    else:
        # Operating points: ngspice keeps no separate op counters but its matrix totals.
        parts = {"analysis_s": delta.get("Total analysis time (seconds)", 0.0),
                 "load_s": delta.get("Matrix load time", 0.0), "factor_s": delta.get("Matrix factor time", 0.0),
                 "solve_s": delta.get("Matrix solve time", 0.0) + delta.get("Matrix reorder time", 0.0),
                 "trunc_s": 0.0, "timepoints": float(runs), "iterations": delta.get("Total iterations", 0.0)}
    analysis = parts["analysis_s"]
    load_share = parts["load_s"] / analysis if analysis > 0 else float("nan")
    return {
        "runs": runs,
        "wall_per_run_ms": 1e3 * wall_s / runs,
        "solve_per_run_ms": 1e3 * solves_s / runs,
        "ngspice_analysis_per_run_ms": 1e3 * analysis / runs,
        "timepoints_per_run": parts["timepoints"] / runs,
        "iterations_per_timepoint": parts["iterations"] / max(parts["timepoints"], 1.0),
        "share": {name: parts[f"{name}_s"] / analysis if analysis > 0 else float("nan")
                  for name in ("load", "factor", "solve", "trunc")},
        "share_other": 1.0 - sum(parts[f"{name}_s"] for name in ("load", "factor", "solve", "trunc")) / analysis
        if analysis > 0 else float("nan"),
        "compiled_device_speedup_bound": 1.0 / (1.0 - load_share) if load_share < 1 else float("inf"),
        # ngspice's own counters have a 1 ms resolution: shares of a short run are coarse.
        "note": "shares from ngspice's rusage counters (1 ms resolution)",
    }


def pulses(config, runs: int, rng) -> dict:
    device = config.device.params()
    circuit = ProgrammingCircuit(device, config.programming_path(), name=f"anatomy_{device.medium.lower()}",
                                 v_read_V=config.circuit.v_read_V)
    table = config.tuning.program(0, float(device.conductance_S(0.5))).pulse_table()
    pulse = table[len(table) // 2]
    states = rng.uniform(*device.state_bounds, runs)
    with SpiceEngine() as engine:
        writer = SpicePulseWriter(circuit, engine)
        writer.apply(float(states[0]), pulse)   # loads the circuit
        before = _accounting(engine)
        solves, start = 0.0, time.perf_counter()
        for x in states:
            solves += writer.apply(float(x), pulse).solve_time_s
        wall = time.perf_counter() - start
        after = _accounting(engine)
    return {"pulse": {"amplitude_V": pulse.amplitude_V, "width_s": pulse.width_s},
            **_split(before, after, True, runs, wall, solves)}


def reads(config, runs: int, rng) -> dict:
    crossbar = Crossbar(config.crossbar_spec())
    states = rng.uniform(0.2, 0.8, crossbar.n_devices)
    inputs = np.clip(rng.integers(0, 2, (runs, crossbar.n_inputs)) + 0.1 * rng.standard_normal(
        (runs, crossbar.n_inputs)), -1, 1)
    outputs = crossbar.output_nodes()
    with SpiceEngine() as engine:
        engine.load(crossbar.spec.name, crossbar.netlist(states, np.zeros(crossbar.n_inputs)))
        # Warm-up on other inputs: the engine would not solve the timed ones again.
        engine.run_table(outputs, crossbar.input_alter_sets(-inputs[:5]))
        before = _accounting(engine)
        start = time.perf_counter()
        _, solves = engine.run_table(outputs, crossbar.input_alter_sets(inputs))
        wall = time.perf_counter() - start
        after = _accounting(engine)
    return _split(before, after, False, runs, wall, float(np.sum(solves)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--media", default="W,Cr,C,PCM,VTEAM,AgChalc")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    result = {"benchmark": "solve_anatomy", "circuitnn": __version__, "ngspice": ngspice_version(),
              "python": platform.python_version(), "cpus": os.cpu_count(), "loadavg_before": os.getloadavg(),
              "media": {}}
    for medium in args.media.split(","):
        config = load_config(None, medium)
        result["media"][medium] = {"pulse": pulses(config, args.runs, rng), "array_read": reads(config, args.runs, rng)}
    result["loadavg_after"] = os.getloadavg()
    write_result("solve_anatomy", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
