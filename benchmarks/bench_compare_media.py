"""Wall time of the full compare-media reproduction in SPICE, and the share spent inside ngspice.

Three media, with and without the initial reset, the conductance-error sweeps and the Cr noise
heat-map, on the presets' defaults, stored in a temporary run store. Targets: ≤ 30 s at load ≈ 1 on
a 2-core machine, with ≥ 80 % of the wall time inside ngspice's analyses (the bare ``op``/``tran``
commands, timed in the worker). The load average (os.getloadavg) is recorded before and after: the
machine is shared. Writes ``benchmarks/results/compare_media.json``.

    python benchmarks/bench_compare_media.py
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time

from circuitnn import __version__
from circuitnn.devices.media import MEDIA
from circuitnn.experiments.config import load_config
from circuitnn.experiments.reproduction import run_reproduction
from circuitnn.spice.batch import ngspice_version
from circuitnn.spice.engine import STATS
from circuitnn.store import RunStore
from results_file import write_result



TARGET_S = 30.0
TARGET_SHARE = 0.80


def main() -> int:
    configs = [load_config(None, name) for name in MEDIA]
    load_before = os.getloadavg()
    STATS.reset()
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        run = run_reproduction(RunStore(folder), configs, "compare-media", heatmap_medium="Cr", progress=False)
        wall = time.perf_counter() - start
        summary = run.info.summary
    result = {
        "benchmark": "compare_media", "circuitnn": __version__, "ngspice": ngspice_version(),
        "python": platform.python_version(),
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(), "cpus": os.cpu_count(),
        "wall_time_s": wall, "target_s": TARGET_S, "ratio_to_target": wall / TARGET_S,
        "ngspice_solve_time_s": STATS.solve_time_s, "engine_call_time_s": STATS.call_time_s,
        "worker_sequence_time_s": STATS.worker_time_s,
        "share_inside_ngspice": STATS.solve_time_s / wall, "target_share": TARGET_SHARE,
        "share_in_engine_calls": STATS.call_time_s / wall,
        "meets_target": wall <= TARGET_S and STATS.solve_time_s / wall >= TARGET_SHARE,
        "simulations": STATS.runs, "summary": summary,
    }
    write_result("compare_media", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
