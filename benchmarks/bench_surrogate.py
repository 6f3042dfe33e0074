"""Surrogate vs SPICE: latency and error of reads, pulses and inference on the default circuit.

The default 9-3-1 crossbar (30 memristors) for each medium (Cr first, then W and C), with the
preset's programming path and timing. ``SpiceChip`` (ngspice workers, circuits kept loaded) and
``SurrogateChip`` (NumPy) get the same seeded random device states and the same operations, and
each measurement puts the error on those operations beside its speed-up:

* read: ``read_device`` one device at a time on both backends, and the surrogate's ``read_devices``
  over all 30 devices (per device). Error: max relative difference of the read conductance.
* pulse: ``pulse_device`` one device at a time on both backends (SET/RESET at the tuning
  amplitudes, widths on the write-verify ladder 10 µs, 5 µs, ... down to the minimum width), and
  the surrogate's ``pulse_devices`` over 30 and over 3000 device-pulses per call (per
  device-pulse; the 3000 are the 30 states and pulses tiled ×100 on a 100×30 crossbar of the same
  devices, since one call pulses each device once). Every surrogate pulse starts from the state
  SPICE started from. Error: max |Δx| after the pulse, max relative difference of the device and
  source energies.
* inference: ``infer`` on 200 samples (100 binary 3×3 images, 100 uniform in [0, 1]) per call,
  per sample (SpiceChip sends them to its worker in batches). Error: max |Δ output| (units of
  V_read), also the hidden activations and the batch energy.

The SPICE-side batched-read/pulse ratios divide SPICE's single-operation median (it has no batched
call) by the surrogate's per-device batched median. Medians after one warm-up round; device order
shuffled per round. Target: ≥ 10^3× per read and per pulse, recorded separately for the
single-operation and the batched cases. Writes ``benchmarks/results/surrogate.json``.

    python benchmarks/bench_surrogate.py [--rounds 20] [--media Cr W C]
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import statistics
import sys
import time

import numpy as np

from circuitnn import __version__
from circuitnn.chip.spice_chip import SpiceChip
from circuitnn.chip.surrogate_chip import SurrogateChip
from circuitnn.circuits.crossbar import Crossbar, LayerSpec
from circuitnn.circuits.program import PulseSpec
from circuitnn.experiments.config import load_config
from circuitnn.spice.batch import ngspice_version
from circuitnn.surrogate import reads as surrogate_reads
from results_file import write_result

TARGET_RATIO = 1e3
N_SAMPLES = 200
TILE = 100  # 30 devices × 100 = 3000 device-pulses per batched call


def _stats(times: list[float]) -> dict:
    return {"median_s": statistics.median(times), "p10_s": float(np.percentile(times, 10)),
            "p90_s": float(np.percentile(times, 90)), "runs": len(times)}


def _compare(spice: list[float], surrogate: list[float], error: dict, target: float | None = TARGET_RATIO) -> dict:
    spice_stats, surrogate_stats = _stats(spice), _stats(surrogate)
    ratio = spice_stats["median_s"] / surrogate_stats["median_s"]
    result = {"spice": spice_stats, "surrogate": surrogate_stats, "ratio": ratio, "error": error}
    if target is not None:
        result |= {"target_ratio": target, "meets_target": ratio >= target}
    return result


def _kernel(spice: list[float], kernel: list[float], name: str) -> dict:
    """The surrogate's NumPy kernel alone (no DeviceRead/PulseEvent records, no ledger): context for
    where the batched call's time goes; not the chip API, so not held to the target."""
    median = statistics.median(kernel)
    return {"function": f"circuitnn.surrogate.{name}", "median_s": median, "runs": len(kernel),
            "ratio": statistics.median(spice) / median}


def _width_ladder(tuning) -> list[float]:
    """The widths write-verify uses: the nominal width halved per overshoot, down to the minimum."""
    widths, w = [], tuning.pulse_width_s
    while w > tuning.min_pulse_width_s:
        widths.append(w)
        w /= 2
    return widths + [tuning.min_pulse_width_s]


def _timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def _rel(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.abs(b)))


def bench_medium(name: str, rounds: int, rng) -> dict:
    config = load_config(None, name)
    crossbar = Crossbar(config.crossbar_spec())
    n = crossbar.n_devices
    spec = crossbar.spec
    big = Crossbar(dataclasses.replace(spec, name=f"{spec.name}_tiled",
                                       layers=(LayerSpec(TILE, n, spec.layers[0].neuron),)))
    assert big.n_devices == TILE * n
    tuning, widths = config.tuning, _width_ladder(config.tuning)
    states = rng.uniform(0.0, 1.0, n)
    inputs = np.vstack([rng.integers(0, 2, (N_SAMPLES // 2, crossbar.n_inputs)),
                        rng.uniform(0.0, 1.0, (N_SAMPLES - N_SAMPLES // 2, crossbar.n_inputs))])

    t = {k: [] for k in ("sp_read", "su_read", "su_reads", "su_reads_big", "sp_pulse", "su_pulse", "su_pulses",
                         "su_pulses_big",
                         "kernel_reads", "kernel_pulses_big")}
    err = {k: 0.0 for k in ("read_single", "read_batched", "read_big", "x_single", "x_batched", "x_big",
                            "e_dev_single", "e_dev_batched", "e_dev_big", "e_src_single", "e_src_batched", "e_src_big")}
    surrogate = SurrogateChip(crossbar, states, config.programming, config.timing)
    surrogate_big = SurrogateChip(big, np.tile(states, TILE), config.programming, config.timing)
    # For the kernel-only timings: the surrogate's own path resistance and device windows (no effects).
    r_program, g_on, g_off = surrogate._r_program_ohm, surrogate._g_high, surrogate._g_low
    start = time.perf_counter()
    with SpiceChip(crossbar, states, config.programming, config.timing) as spice:
        for r in range(rounds + 1):
            keep = r > 0  # round 0 is the warm-up (its errors still count)
            x = spice.states
            order = rng.permutation(n)
            all_devices = np.arange(n)
            surrogate.load_states(x)

            # -- reads (states unchanged) -------------------------------------------------------------
            g_spice = np.zeros(n)
            for i in order:
                dt, read = _timed(spice.read_device, int(i))
                g_spice[i] = read.conductance_S
                if keep:
                    t["sp_read"].append(dt)
            for _ in range(3):
                g_single = np.zeros(n)
                for i in order:
                    dt, read = _timed(surrogate.read_device, int(i))
                    g_single[i] = read.conductance_S
                    if keep:
                        t["su_read"].append(dt)
                err["read_single"] = max(err["read_single"], _rel(g_single, g_spice))
            for _ in range(10):
                dt, reads = _timed(surrogate.read_devices, all_devices, True)  # as arrays
                if keep:
                    t["su_reads"].append(dt / n)
                err["read_batched"] = max(err["read_batched"], _rel(reads.conductance_S, g_spice))
                surrogate_big.load_states(np.tile(x, TILE))
                dt, reads = _timed(surrogate_big.read_devices, np.arange(TILE * n), True)
                if keep:
                    t["su_reads_big"].append(dt / (TILE * n))
                err["read_big"] = max(err["read_big"], _rel(reads.conductance_S, np.tile(g_spice, TILE)))
                # the NumPy kernel alone, without the per-device records and ledger entries
                dt, _ = _timed(lambda: surrogate_reads.read_dc(spec.device.conductance_S(x, g_off, g_on), spec.v_read_V,
                                                               r_program))
                if keep:
                    t["kernel_reads"].append(dt / n)

            # -- pulses: one per device, from SPICE's state before it --------------------------------------
            amps = np.where(rng.random(n) < 0.5, tuning.set_amplitude_V, tuning.reset_amplitude_V)
            wids = rng.choice(widths, n)
            pulses = [PulseSpec(float(a), float(w), tuning.edge_s) for a, w in zip(amps, wids)]
            ev_spice = [None] * n
            for i in order:
                dt, ev_spice[i] = _timed(spice.pulse_device, int(i), pulses[i])
                if keep:
                    t["sp_pulse"].append(dt)
            x_sp = np.array([e.x_after for e in ev_spice])
            ed_sp = np.array([e.energy_device_J for e in ev_spice])
            es_sp = np.array([e.energy_total_J for e in ev_spice])

            def account(events, tag, tile=1):
                if isinstance(events, list):  # PulseEvent records -> columns
                    x_after = np.array([e.x_after for e in events])
                    e_dev = np.array([e.energy_device_J for e in events])
                    e_src = np.array([e.energy_total_J for e in events])
                else:  # a PulseBatch of arrays
                    x_after, e_dev, e_src = events.x_after, events.energy_device_J, events.energy_total_J
                err[f"x_{tag}"] = max(err[f"x_{tag}"], float(np.max(np.abs(x_after - np.tile(x_sp, tile)))))
                err[f"e_dev_{tag}"] = max(err[f"e_dev_{tag}"], _rel(e_dev, np.tile(ed_sp, tile)))
                err[f"e_src_{tag}"] = max(err[f"e_src_{tag}"], _rel(e_src, np.tile(es_sp, tile)))

            for _ in range(3):
                surrogate.load_states(x)
                events = [None] * n
                for i in order:
                    dt, events[i] = _timed(surrogate.pulse_device, int(i), pulses[i])
                    if keep:
                        t["su_pulse"].append(dt)
                account(events, "single")
            for _ in range(10):
                surrogate.load_states(x)
                dt, events = _timed(surrogate.pulse_devices, all_devices, amps, wids, tuning.edge_s, "program", True)
                if keep:
                    t["su_pulses"].append(dt / n)
                account(events, "batched")
            for _ in range(2):
                surrogate_big.load_states(np.tile(x, TILE))
                dt, events = _timed(surrogate_big.pulse_devices, np.arange(TILE * n),
                                    np.tile(amps, TILE), np.tile(wids, TILE), tuning.edge_s, "program", True)
                if keep:
                    t["su_pulses_big"].append(dt / (TILE * n))
                account(events, "big", TILE)
                dt, _ = _timed(spec.device.pulse_response, np.tile(x, TILE), np.tile(amps, TILE),
                               np.tile(wids, TILE), np.full(TILE * n, tuning.edge_s), r_program,
                               np.tile(g_off, TILE), np.tile(g_on, TILE))
                if keep:
                    t["kernel_pulses_big"].append(dt / (TILE * n))

        # -- inference: the initial states on both ----------------------------------------------------------
        spice.load_states(states)
        surrogate.load_states(states)
        spice.infer(inputs[:2])      # warm-up: loads the array netlist and its states
        surrogate.infer(inputs[:2])  # warm-up: factorises the array
        t_sp_inf, t_su_inf = [], []
        for _ in range(5):
            dt, inf_spice = _timed(spice.infer, inputs)
            t_sp_inf.append(dt / N_SAMPLES)
        for _ in range(50):
            dt, inf_surrogate = _timed(surrogate.infer, inputs)
            t_su_inf.append(dt / N_SAMPLES)
    wall = time.perf_counter() - start

    inference_error = {
        "output_max_abs_diff": float(np.max(np.abs(inf_surrogate.outputs - inf_spice.outputs))),
        "hidden_max_abs_diff": max(float(np.max(np.abs(a - b)))
                                   for a, b in zip(inf_surrogate.hidden, inf_spice.hidden)),
        "energy_rel_diff": abs(inf_surrogate.energy_total_J - inf_spice.energy_total_J) / inf_spice.energy_total_J,
        "units": "outputs and hidden in units of V_read (activations in [0, 1])",
    }
    read_error = {"conductance_max_rel_diff": err["read_single"]}
    read_batched_error = {"conductance_max_rel_diff": err["read_batched"]}

    def pulse_error(tag):
        return {"state_max_abs_diff": err[f"x_{tag}"], "energy_device_max_rel_diff": err[f"e_dev_{tag}"],
                "energy_total_max_rel_diff": err[f"e_src_{tag}"]}

    result = {
        "circuit": f"default 9-3-1, {n} memristors, medium {config.device.medium}",
        "states": "seeded uniform in [0, 1], carried by SPICE's pulses round to round",
        "pulses": {"amplitudes_V": [tuning.set_amplitude_V, tuning.reset_amplitude_V], "widths_s": widths,
                   "edge_s": tuning.edge_s},
        "rounds": rounds,
        "read_single": _compare(t["sp_read"], t["su_read"], read_error),
        "read_batched_30": _compare(t["sp_read"], t["su_reads"], read_batched_error)
        | {"batch": n, "kernel_only": _kernel(t["sp_read"], t["kernel_reads"], "pulses.read_dc")},
        "read_batched_3000": _compare(t["sp_read"], t["su_reads_big"], {"conductance_max_rel_diff": err["read_big"]})
        | {"batch": TILE * n, "note": f"a {TILE}x{n} crossbar of the same devices; SPICE results tiled"},
        "pulse_single": _compare(t["sp_pulse"], t["su_pulse"], pulse_error("single")),
        "pulse_batched_30": _compare(t["sp_pulse"], t["su_pulses"], pulse_error("batched")) | {"batch": n},
        "pulse_batched_3000": _compare(t["sp_pulse"], t["su_pulses_big"], pulse_error("big"))
        | {"batch": TILE * n, "note": f"a {TILE}x{n} crossbar of the same devices; SPICE results tiled",
           "kernel_only": _kernel(t["sp_pulse"], t["kernel_pulses_big"], "pulses.apply_pulses")},
        "inference_per_sample": _compare(t_sp_inf, t_su_inf, inference_error, target=None)
        | {"samples_per_call": N_SAMPLES},
        "wall_s": wall,
    }
    result["meets_target"] = {
        "single": result["read_single"]["meets_target"] and result["pulse_single"]["meets_target"],
        "batched_30": result["read_batched_30"]["meets_target"] and result["pulse_batched_30"]["meets_target"],
        "batched_3000": result["read_batched_3000"]["meets_target"] and result["pulse_batched_3000"]["meets_target"],
    }
    return result


def _summary_line(name: str, r: dict) -> str:
    parts = [f"{name}:"]
    for key in ("read_single", "read_batched_30", "read_batched_3000", "pulse_single", "pulse_batched_30",
                "pulse_batched_3000",
                "inference_per_sample"):
        m = r[key]
        parts.append(f"  {key:22s} spice {m['spice']['median_s'] * 1e6:9.2f} µs  surrogate "
                     f"{m['surrogate']['median_s'] * 1e6:8.3f} µs  ratio {m['ratio']:8.1f}  "
                     + "  ".join(f"{k}={v:.2e}" for k, v in m["error"].items() if isinstance(v, float)))
    return "\n".join(parts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="rounds of 30 reads + 30 pulses after warm-up")
    parser.add_argument("--media", nargs="+", default=["Cr", "W", "C"])
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    media = {name: bench_medium(name, args.rounds, rng) for name in args.media}
    first = media[args.media[0]]
    result = {
        "benchmark": "surrogate", "circuit": "default 9-3-1, 30 memristors (per medium)",
        "circuitnn": __version__, "ngspice": ngspice_version(), "python": platform.python_version(),
        "numpy": np.__version__, "machine": f"{platform.machine()}, {platform.processor() or '?'}",
        "target_ratio": TARGET_RATIO,
        "meets_target": {"medium": args.media[0]} | first["meets_target"],
        "media": media,
        "total_wall_s": time.perf_counter() - start,
    }
    write_result("surrogate", result)
    for name, r in media.items():
        print(_summary_line(name, r), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
