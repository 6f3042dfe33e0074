"""The batch path: one ``ngspice -b -r <name>.raw <name>.cir`` process per simulation.

Slower than the in-process engine for reads (a process start is ~7 ms; see
docs/reference/ngspice-binding.md §5) and about as fast for transients, but nothing is shared
between runs: a useful cross-check of the engine, a fallback where libngspice is unavailable, and a
way to run netlists that ``.include`` model files. Failures are recognised exactly as the engine does
(``worker.classify`` on ngspice's output), because ngspice's exit code alone does not say why it
failed.

ngspice starts with ``-n``: no ``.spiceinit`` (or ``spice.rc``) is read from the working folder,
$HOME or SPICE_USERINIT_DIR, so a folder holding one cannot run commands through circuitnn; its
``spinit`` is circuitnn's own, from a private folder (``SPICE_SCRIPTS``, spice/init_files.py), never
one an environment variable points at. ``run_batch`` takes only netlists that parse as circuitnn
writes them, and model libraries they include only if they hold model statements alone;
``run_batch_unvalidated`` runs any text (``.control`` blocks included) for experts.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..circuits.netlist import check_library_file, check_netlist, included_paths
from ..errors import CircuitRejectedError, ConvergenceError, NgspiceNotFoundError, SimulationError
from . import worker
from .init_files import init_environment, private_init_folder
from .rawfile import RawPlot, read_raw

NGSPICE = "ngspice"
INSTALL_HINT = "install it (Debian/Ubuntu: apt-get install ngspice libngspice0) or put it on PATH"
_OUTPUT_TAIL_CHARS = 4000


@dataclass(frozen=True)
class BatchResult:
    """The plots of one batch run, where its files are, and its wall time in s (write, run, read)."""

    plots: tuple[RawPlot, ...]
    cir_path: Path
    raw_path: Path
    log_path: Path
    wall_time_s: float

    def plot(self, plotname: str) -> RawPlot:
        """The plot whose name starts with ``plotname`` (case-insensitive): 'operating point',
        'transient', 'ac'. ngspice does not write plots in netlist order (AC came before OP)."""
        for plot in self.plots:
            if plot.plotname.lower().startswith(plotname.lower()):
                return plot
        raise KeyError(f"no plot named {plotname!r}; the raw file has {[p.plotname for p in self.plots]}")


def ngspice_executable() -> str:
    """Full path of ``ngspice``; NgspiceNotFoundError says how to install it."""
    found = shutil.which(NGSPICE)
    if found is None:
        raise NgspiceNotFoundError(f"the {NGSPICE!r} executable was not found on PATH: {INSTALL_HINT}")
    return found


def ngspice_version() -> str:
    """ngspice's version as its banner states it (``'39'`` for Debian's 39.3), for run provenance."""
    completed = subprocess.run([ngspice_executable(), "-n", "--version"], stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, errors="replace", timeout=60)
    match = re.search(r"ngspice-(\S+)", completed.stdout + completed.stderr)
    if match is None:
        raise SimulationError("could not find 'ngspice-<version>' in the output of `ngspice --version`",
                              "-", "version", (completed.stdout + completed.stderr)[-_OUTPUT_TAIL_CHARS:])
    return match.group(1)


def run_batch(netlist_text: str, circuit_name: str, workdir: Path | None = None,
              timeout_s: float = 300.0) -> BatchResult:
    """Simulate a netlist written by circuitnn.circuits (with its own analysis cards) in a fresh
    ngspice process.

    The text must pass ``circuits.netlist.check_netlist`` (NetlistError before anything runs
    otherwise); ``.include`` of a relative ``.lib`` path is allowed. Everything else as
    ``run_batch_unvalidated``.
    """
    check_netlist(netlist_text, f"circuit {circuit_name!r}")
    folder = _work_folder(workdir)
    for path in included_paths(netlist_text):
        # An included library reaches ngspice as the netlist does: model statements only.
        check_library_file(folder / path, f"circuit {circuit_name!r}: include")
    return run_batch_unvalidated(netlist_text, circuit_name, folder, timeout_s)


def _work_folder(workdir: Path | None) -> Path:
    """``workdir``, or a new temporary folder (kept: the result's paths point into it)."""
    return Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="circuitnn-batch-"))


def run_batch_unvalidated(netlist_text: str, circuit_name: str, workdir: Path | None = None,
                          timeout_s: float = 300.0) -> BatchResult:
    """Simulate any netlist text, UNVALIDATED (its ``.control`` blocks and shell commands run), in a
    fresh ngspice process. For experts' own netlists; never pass text from a file or a user here.

    The netlist is written to ``<workdir>/<circuit_name>.cir`` and ngspice runs with ``workdir`` as
    its current directory, so relative ``.include`` paths resolve against it. One run at a time per
    (workdir, circuit_name): the files are overwritten. Without ``workdir`` a new temporary
    directory is made and kept, so the paths in the result (and in error messages) stay valid; the
    caller removes ``result.cir_path.parent`` when done.

    The raw file's format (binary, or ASCII with ``SPICE_ASCIIRAWFILE=1`` in the environment) is
    ngspice's choice; both are read. Raises CircuitRejectedError (netlist not accepted),
    ConvergenceError, SimulationError (anything else, including the timeout), all naming
    ``circuit_name`` and step 'batch' and carrying ngspice's output.
    """
    start = time.perf_counter()
    executable = ngspice_executable()
    folder = _work_folder(workdir)
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", circuit_name).lstrip(".") or "circuit"
    cir_path, raw_path, log_path = (folder / f"{stem}{suffix}" for suffix in (".cir", ".raw", ".log"))
    cir_path.write_text(netlist_text if netlist_text.endswith("\n") else netlist_text + "\n", encoding="utf-8")
    # A raw file left by an earlier run must never be read as this run's result.
    raw_path.unlink(missing_ok=True)
    init_folder = private_init_folder()
    try:
        # One stream for the log and for classify (ngspice block-buffers stdout in a pipe, so the
        # order between its stdout and stderr lines is only approximate).
        # -n: no .spiceinit from the folder, $HOME or SPICE_USERINIT_DIR (see the module docstring).
        completed = subprocess.run([executable, "-b", "-n", "-r", raw_path.name, cir_path.name], cwd=folder,
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, timeout=timeout_s,
                                   env={**os.environ, **init_environment(init_folder)})
    except subprocess.TimeoutExpired as exc:
        output = _text(exc.stdout)
        log_path.write_text(output)
        raise SimulationError(f"ngspice gave no result within {timeout_s:g} s (files in {folder})",
                              circuit_name, "batch", output[-_OUTPUT_TAIL_CHARS:]) from None
    finally:
        shutil.rmtree(init_folder, ignore_errors=True)
    output = _text(completed.stdout)
    log_path.write_text(output)
    lines = output.splitlines()
    kind = worker.classify(lines)
    if kind is None and completed.returncode != 0:
        kind = "failed"
    if kind is not None:
        error = {"convergence": ConvergenceError, "rejected": CircuitRejectedError}.get(kind, SimulationError)
        message = (f"{worker.first_error_line(lines)} (ngspice exit code {completed.returncode}; "
                   f"files in {folder})")
        tail = "\n".join(line for line in lines if line.strip())[-_OUTPUT_TAIL_CHARS:]
        raise error(message, circuit_name, "batch", tail)
    if not raw_path.exists():
        raise SimulationError(f"ngspice wrote no raw file {raw_path}: does the netlist have an analysis "
                              f"card (.op, .tran)?", circuit_name, "batch", output[-_OUTPUT_TAIL_CHARS:])
    plots = read_raw(raw_path)
    return BatchResult(plots, cir_path, raw_path, log_path, time.perf_counter() - start)


def _text(output: bytes | str | None) -> str:
    if isinstance(output, bytes):
        return output.decode("utf-8", errors="replace")
    return output or ""
