"""Where every benchmark writes its result: ``benchmarks/results/<name>.json``, also printed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def write_result(name: str, result: dict) -> Path:
    """Write ``result`` as ``results/<name>.json``, print it, and say where it went (on stderr)."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"wrote {path}", file=sys.stderr)
    return path


def with_load(phase: Callable[[], dict], load_processes: int = 0) -> dict:
    """``phase()``'s result with the load averages (os.getloadavg) before and after it. With
    ``load_processes`` > 0, that many CPU-bound processes run beside it: started 5 s before (to
    reach the run queue) and stopped after, whatever happens."""
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(load_processes)]
    try:
        if burners:
            time.sleep(5)
        before = os.getloadavg()
        result = phase()
        result |= {"loadavg_before": before, "loadavg_after": os.getloadavg()}
        if burners:
            result["load_processes_started"] = load_processes
        return result
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
