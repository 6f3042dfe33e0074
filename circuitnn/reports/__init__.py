"""Reports from stored runs: Markdown, HTML, CSV tables and PNG figures; nothing here simulates.

``build_report(run)`` picks the builder for the run's kind; every kind ``circuitnn runs`` lists has one.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path

# run kind → module (in this package) whose build_report(run) makes its Report
BUILDERS = {
    "train": "onchip_report",
    "compare-media": "onchip_report",
    "calibration": "calibration_report",
    "crosscheck": "crosscheck_report",
    "networks": "networks_report",
    "learn-networks": "network_learning_report",
    "mismatch": "mismatch_report",
    "drift": "drift_report",
    "sweep": "sweep_report",
}


def build_report(run):
    """The Report of a stored run of any kind (ReportError, one line, if it cannot have one)."""
    from .document import ReportError

    kind = run.info.kind
    if kind not in BUILDERS:
        raise ReportError(f"run {run.id} is of kind {kind!r}, which has no report; reported kinds: "
                          + ", ".join(sorted(set(BUILDERS))))
    return import_module(f".{BUILDERS[kind]}", __name__).build_report(run)


def write_report_to(run, out: Path) -> list[Path]:
    """Regenerate a stored run's report into ``out`` without simulating; returns the files written."""
    from .document import write_to_folder

    return write_to_folder(build_report(run), Path(out))


def write_report(run) -> dict:
    """Build a (running) run's report and write it into the run; returns the report's summary.

    What the CLI hands the experiments, which never import this layer: ``run_*(..., write_report=...)``.
    """
    from .document import write_into_run

    return write_into_run(run, build_report(run))
