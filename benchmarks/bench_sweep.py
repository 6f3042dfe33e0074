"""A 40-run SPICE sweep on a LocalCluster of 2 worker processes against 1, and the scheduling
overhead per run. Writes ``benchmarks/results/sweep.json``.

The runs are small on purpose (a short software training, 10 test images per class, no
conductance-error draws): Cr and PCM × tolerance 5 % / 10 % × 10 seeds, each the on-chip training
with and without the initial reset in ngspice. Each phase stores into a fresh store, on a cluster
started before the clock starts (its start-up is reported apart).

* speed-up = wall time with 1 worker / wall time with 2 workers (target ≥ 1.6 on 2 cores);
* scheduling overhead per run = (wall time − time spent inside the tasks) / runs, with 1 worker,
  where nothing runs in parallel: submitting, dispatching, returning results, progress and the
  client's index update (target ≤ 50 ms); also the cost per run of a re-run that finds every run
  stored (no task is submitted).

The machine may be shared: the 1-minute load average is sampled every 2 s during each phase and
recorded beside the times, with the CPU count. A load above the core count slows the 2-worker phase
more than the 1-worker one (there is no idle core to give it), so read the ratio with the load.

    python benchmarks/bench_sweep.py [--seeds 10]
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

from circuitnn import __version__
from circuitnn.experiments.sweep import expand_sweep, run_sweep
from circuitnn.spice.batch import ngspice_version
from circuitnn.store import RunStore
from results_file import write_result

TARGET_SPEEDUP = 1.6
TARGET_OVERHEAD_S = 0.050


def spec(seeds: int) -> dict:
    return {
        "name": "bench",
        "base": {"onchip": {"n_test_per_class": 10, "conductance_errors": [0.0], "error_draws": 1},
                 "training": {"epochs": 40, "n_restarts": 1, "n_train_per_class": 30}},
        "grid": {"device": {"medium": ["Cr", "PCM"]}, "tuning": {"tolerance": [0.05, 0.1]},
                 "seed": list(range(seeds))},
    }


class LoadSampler:
    """The 1-minute load average every ``period_s`` while running."""

    def __init__(self, period_s: float = 2.0):
        self.period_s, self.samples = period_s, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.samples.append(os.getloadavg()[0])
            self._stop.wait(self.period_s)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict:
        return {"mean_1min": sum(self.samples) / len(self.samples), "max_1min": max(self.samples),
                "min_1min": min(self.samples), "samples": len(self.samples)}


def phase(sweep, workers: int, folder: Path) -> dict:
    from distributed import Client, LocalCluster

    load_before = os.getloadavg()
    started = time.perf_counter()
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        client.wait_for_workers(workers)
        startup_s = time.perf_counter() - started
        store = RunStore(folder / f"runs-{workers}")
        with LoadSampler() as load:
            start = time.perf_counter()
            result = run_sweep(store, sweep, client=client, progress=False)
            wall = time.perf_counter() - start
        inside = sum(answer["seconds"] for answer in result.finished.values())
        cpu = sum(answer["cpu_s"] for answer in result.finished.values())
        start = time.perf_counter()
        again = run_sweep(store, sweep, client=client, progress=False)
        rerun = time.perf_counter() - start
    assert result.complete and len(result.finished) == len(sweep.points) and len(again.skipped) == len(sweep.points)
    n = len(sweep.points)
    return {"workers": workers, "runs": n, "wall_time_s": wall, "cluster_startup_s": startup_s,
            "time_inside_tasks_s": inside, "mean_task_s": inside / n,
            # CPU time the tasks got (worker and its ngspice processes) per second of wall time and
            # worker: near 1 when each worker had a core to itself, lower when others took it.
            "cpu_time_inside_tasks_s": cpu, "mean_task_cpu_s": cpu / n, "cpu_share_per_worker": cpu / (wall * workers),
            "overhead_per_run_s": (wall * workers - inside) / n,
            "rerun_all_stored_s": rerun, "rerun_per_run_s": rerun / n,
            "worker_pids": len({answer["pid"] for answer in result.finished.values()}),
            "load_average_before": list(load_before), "load_average_after": list(os.getloadavg()),
            "load_during": load.summary()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="seeds per point (default 10: 40 runs)")
    args = parser.parse_args()
    import distributed  # noqa: F401 - sets its loggers when imported; quiet them after

    logging.getLogger("distributed").setLevel(logging.ERROR)
    sweep = expand_sweep(spec(args.seeds))
    with tempfile.TemporaryDirectory() as folder:
        one = phase(sweep, 1, Path(folder))
        two = phase(sweep, 2, Path(folder))
    speedup = one["wall_time_s"] / two["wall_time_s"]
    overhead = one["overhead_per_run_s"]
    result = {
        "benchmark": "sweep", "circuitnn": __version__, "ngspice": ngspice_version(),
        "python": platform.python_version(), "cpu_count": os.cpu_count(),
        "runs": len(sweep.points), "spec": spec(args.seeds),
        "speedup_2_vs_1_workers": speedup, "target_speedup": TARGET_SPEEDUP, "meets_speedup": speedup >= TARGET_SPEEDUP,
        "overhead_per_run_s": overhead, "target_overhead_per_run_s": TARGET_OVERHEAD_S,
        "meets_overhead": overhead <= TARGET_OVERHEAD_S,
        "one_worker": one, "two_workers": two,
    }
    write_result("sweep", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
