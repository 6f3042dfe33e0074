"""The in-process ngspice engine: load once, alter, run, read, clear, inside a supervised worker.

``SpiceEngine`` keeps the loaded netlist and every persistent ``alter`` (device states, source
values) on the parent's side. When the worker dies, hangs or ngspice asks to be detached, the engine
starts a new worker, loads the circuit again, re-applies those alters and repeats the run once, so
a long experiment survives a crash inside the simulator. Restarts are counted and logged.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import (
    CircuitRejectedError,
    ConvergenceError,
    EngineCrashedError,
    SimulationError,
)
from . import worker

log = logging.getLogger("circuitnn.spice")

# Longer than a read or a short pulse of the small circuits (0.3-1.5 ms on the development VM), so
# their answers are caught by polling; longer runs fall through to a sleeping recv after it.
DEFAULT_SPIN_S = 2e-3

# What may follow 'alter' and what an analysis command may look like. Everything the engine sends is
# produced by circuitnn.circuits; these checks make sure nothing else (a newline, 'shell', 'quit',
# a second command) can reach ngspice even if a caller bypasses that layer.
# fullmatch, not match with ^…$: "$" also matches before a final newline.
_ALTER_TARGET = re.compile(r"@?[a-z][a-z0-9_.#]*(\[[a-z0-9_]+\])?", re.IGNORECASE)
_ALTER_VALUE = re.compile(r"= *\[[0-9eE+\-. ]+\]|[a-z]+ *= *[0-9eE+\-.]+|= *[0-9eE+\-.]+", re.IGNORECASE)
_ANALYSIS = re.compile(r"op|tran( [0-9eE+\-.]+){2,4}")


@dataclass
class EngineStats:
    """Process-wide counters over every engine: how much of a job's time ngspice itself took."""

    runs: int = 0
    solve_time_s: float = 0.0   # inside ngspice's analysis command, measured in the worker
    call_time_s: float = 0.0    # the whole run() call as the caller sees it

    def reset(self) -> None:
        self.runs, self.solve_time_s, self.call_time_s = 0, 0.0, 0.0


STATS = EngineStats()


@dataclass(frozen=True)
class RunResult:
    """Vectors read after one analysis (name → float64 array) and ngspice's own solve time in s."""

    vectors: dict[str, np.ndarray]
    solve_time_s: float


@functools.lru_cache(maxsize=65536)
def _checked_target(target: str) -> str:
    # A chip alters the same few hundred names over and over: check each once.
    if not isinstance(target, str) or not _ALTER_TARGET.fullmatch(target):
        raise ValueError(f"refusing to alter {target!r}: not an instance or @parameter name")
    return target


def alter_command(target: str, value: str) -> str:
    """``alter <target> <value>`` after checking both parts cannot carry another command."""
    _checked_target(target)
    if not isinstance(value, str) or not _ALTER_VALUE.fullmatch(value):
        raise ValueError(f"refusing alter value {value!r} for {target!r}: only numbers may be set")
    return f"alter {target} {value}"


class SpiceEngine:
    """A supervised ngspice worker holding one loaded circuit.

    Use as a context manager, or call ``close()``. Not thread-safe: one engine per thread; for
    parallel work use one engine (one process) per core.
    """

    def __init__(self, timeout_s: float = 300.0, library_path: str | None = None, spin_s: float | None = None):
        """``spin_s``: how long the caller polls for the worker's answer before sleeping in recv (the
        worker polls a quarter of it for the next request). None: ``DEFAULT_SPIN_S`` when this
        process may use two or more CPUs, else 0 (a poller on the only CPU would starve the worker).
        Polling trades a busy core for ~0.1 ms less latency per call on a small circuit; set 0 when
        more engines than cores run at once."""
        self.timeout_s = timeout_s
        self.library_path = library_path
        if spin_s is None:
            usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
            spin_s = DEFAULT_SPIN_S if usable >= 2 else 0.0
        if not 0.0 <= spin_s <= 1.0:
            raise ValueError(f"spin_s = {spin_s!r}: allowed [0, 1] s")
        self.spin_s = float(spin_s)
        self.restarts = 0
        self.circuit_name: str | None = None
        self._netlist_lines: list[str] | None = None
        self._persistent: dict[str, str] = {}
        self._process: subprocess.Popen | None = None
        self._connection = None
        self._start_worker()

    # -- worker life cycle -------------------------------------------------------------------
    def _start_worker(self) -> None:
        # A fresh interpreter via subprocess, not multiprocessing: it never re-imports the caller's
        # __main__, so scripts and notebooks need no `if __name__ == "__main__"` guard.
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        package_parent = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
        command = [sys.executable, "-m", "circuitnn.spice.worker", str(theirs.fileno()), repr(self.spin_s / 4)]
        if self.library_path:
            command.append(self.library_path)
        self._process = subprocess.Popen(command, pass_fds=[theirs.fileno()], env=env,
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        theirs.close()
        ours.settimeout(self.timeout_s)
        self._connection = ours
        self._in_sync = True

    def _stop_worker(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait(timeout=10)
        self._connection.close()
        self._process = self._connection = None

    def _restart(self, reason: str, persistent: dict[str, str] | None = None) -> None:
        """New worker, circuit reloaded, ``persistent`` alters (default: all so far) re-applied."""
        self.restarts += 1
        log.warning("ngspice worker restarted (%s) for circuit %r; restarts so far: %d",
                    reason, self.circuit_name, self.restarts)
        self._stop_worker()
        self._start_worker()
        if self._netlist_lines is not None:
            reply = self._call(("load", self._netlist_lines))
            if reply[0] != "ok":
                raise EngineCrashedError(
                    f"could not reload the circuit after a restart: {reply[2]}",
                    self.circuit_name or "?", "reload", reply[3],
                )
            state = self._persistent if persistent is None else persistent
            if state:
                alters = [alter_command(t, v) for t, v in state.items()]
                reply = self._call(("run", alters, "op", []))
                # The op only proves the re-applied state is loadable; its result is discarded.
                if reply[0] != "ok":
                    raise EngineCrashedError(
                        f"could not re-apply device states after a restart: {reply[2]}",
                        self.circuit_name or "?", "reload", reply[3],
                    )

    def _call(self, request: tuple) -> tuple:
        """Send a request; ('crash', why) when the worker died or hung instead of answering."""
        try:
            worker.send_message(self._connection, request)
            return worker.receive_message(self._connection, self.spin_s)
        except KeyboardInterrupt:
            # An answer (or part of one) may be left in the socket: no further exchange can be trusted.
            self._in_sync = False
            raise
        except TimeoutError:
            return ("crash", f"no answer within {self.timeout_s:g} s")
        except (EOFError, OSError) as exc:
            code = self._process.poll() if self._process is not None else None
            return ("crash", f"worker died ({type(exc).__name__}, exit code {code})")

    # -- public API ----------------------------------------------------------------------------
    def load(self, circuit_name: str, netlist: str) -> None:
        """Load a netlist (text written by circuitnn.circuits) and forget earlier persistent alters."""
        lines = netlist.splitlines()
        self.circuit_name = circuit_name
        self._netlist_lines = None
        self._persistent = {}
        reply = self._call(("load", lines))
        if reply[0] == "crash":
            self._restart(reply[1])
            reply = self._call(("load", lines))
        if reply[0] == "dead":
            self._restart("ngspice detached while loading")
        if reply[0] != "ok":
            raise CircuitRejectedError(reply[-2] if len(reply) > 2 else reply[1],
                                       circuit_name, "load", reply[-1] if len(reply) > 3 else "")
        self._netlist_lines = lines

    def run(
        self,
        analysis: str,
        vectors: Sequence[str],
        alters: Mapping[str, str] | None = None,
        step: str | None = None,
    ) -> RunResult:
        """Apply ``alters`` (kept: they are re-applied after a worker restart), run, read vectors.

        ``alters`` maps an instance or @parameter (``v.xw3.vx0``, ``@vprog[pulse]``) to what it is set
        to (``dc=0.42``, ``= [ 0 1 1e-08 ... ]``). ``step`` names the experiment step in errors.
        """
        return self.run_many(analysis, vectors, [alters or {}], step)[0]

    def run_many(
        self,
        analysis: str,
        vectors: Sequence[str],
        alter_sets: Sequence[Mapping[str, str]],
        step: str | None = None,
    ) -> list[RunResult]:
        """``run`` once per alter set, in order, in one round trip to the worker.

        For many reads (a test set through the array) this removes the per-run cost of talking to
        the worker process, which is comparable to a small circuit's solve time.
        """
        if self._netlist_lines is None:
            raise SimulationError("no circuit loaded", self.circuit_name or "?", step or analysis)
        if not _ANALYSIS.fullmatch(analysis):
            raise ValueError(f"refusing analysis command {analysis!r}")
        started = time.perf_counter()
        commands = [[alter_command(t, v) for t, v in alters.items()] for alters in alter_sets]
        before = dict(self._persistent)
        request = ("run_many", commands, analysis, list(vectors))
        reply = self._call(request)
        if reply[0] in ("crash", "dead"):
            self._restart(reply[1] if reply[0] == "crash" else "ngspice detached", before)
            reply = self._call(request)
            if reply[0] in ("crash", "dead"):
                self._restart("second failure", before)
                raise EngineCrashedError(f"ngspice failed twice: {reply[1]}", self.circuit_name,
                                         step or analysis, reply[-1] if reply[0] == "dead" else "")
        if reply[0] != "ok":
            _, kind, message, output = reply
            error = {"convergence": ConvergenceError, "rejected": CircuitRejectedError}.get(
                kind, SimulationError)
            raise error(message, self.circuit_name, step or analysis, output)
        for alters in alter_sets:
            self._persistent.update(alters)
        STATS.runs += len(alter_sets)
        STATS.solve_time_s += sum(reply[2])
        STATS.call_time_s += time.perf_counter() - started
        return [RunResult({name: np.array([v]) if isinstance(v, float) else v for name, v in vectors_.items()},
                          solve) for vectors_, solve in zip(reply[1], reply[2])]

    def command(self, text: str) -> list[str]:
        """Send one raw ngspice command and return what it printed. For diagnostics and tests."""
        reply = self._call(("command", text))
        if reply[0] != "ok":
            self._restart(reply[1])
            raise EngineCrashedError(str(reply[1]), self.circuit_name or "?", text)
        return reply[1]

    def worker_pid(self) -> int:
        """Process id of the current worker (it changes after a restart)."""
        return self._call(("pid",))[1]

    def worker_rss_bytes(self) -> int:
        """Resident memory of the worker process."""
        return self._call(("rss",))[1]

    def close(self) -> None:
        """Stop the worker (politely, unless an interrupted exchange left the socket out of step)."""
        if self._connection is not None and self._process.poll() is None and getattr(self, "_in_sync", True):
            try:
                self._connection.settimeout(2)
                worker.send_message(self._connection, ("stop",))
                worker.receive_message(self._connection)
            except (EOFError, OSError):
                pass
        self._stop_worker()

    def __enter__(self) -> SpiceEngine:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
