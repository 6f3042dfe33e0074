"""The in-process ngspice engine: load once, alter, run, read, clear, inside a supervised worker.

``SpiceEngine`` keeps the loaded netlist and every persistent ``alter`` (device states, source
values) on the parent's side. When the worker dies, hangs or ngspice asks to be detached, the engine
starts a new worker, loads the circuit again, re-applies those alters and repeats the run once, so
a long experiment survives a crash inside the simulator. Restarts are counted and logged.

Nothing reaches ngspice unchecked: ``load`` takes only netlists that parse as circuitnn writes them
(``circuits.netlist.check_netlist``), and every vector name, ``alter`` and analysis command matches a
strict grammar in full. ``load_unvalidated`` and ``command_unvalidated`` pass raw text, for experts
and diagnostics; nothing in circuitnn calls them with user text.

The worker runs in a private folder holding only circuitnn's own ``spinit`` and ``.spiceinit``, which
``SPICE_SCRIPTS``, ``HOME`` and ``SPICE_USERINIT_DIR`` name too (spice/init_files.py): no init file in
the user's folder, home or environment ever runs.

A call interrupted in the middle of a round trip (Ctrl-C, a signal turned into an exception) kills
the worker; the next call starts a new one with the state the engine knows, so no answer to an old
request can be taken for the answer to a new one (requests and replies also carry a sequence number).
"""

from __future__ import annotations

import functools
import logging
import os
import pickle
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .. import native
from ..circuits.netlist import NUMBER_TEXT, check_analysis, check_netlist
from ..errors import (
    CircuitRejectedError,
    ConvergenceError,
    EngineCrashedError,
    NetlistError,
    NgspiceNotFoundError,
    SimulationError,
)
from . import sequences, worker
from .init_files import init_environment, private_init_folder

log = logging.getLogger("circuitnn.spice")

# Longer than a read or a short pulse of the small circuits (0.3-1.5 ms on the development VM), so
# their answers are caught by polling; longer runs fall through to a sleeping recv after it.
DEFAULT_SPIN_S = 2e-3

# What may follow 'alter', what may be saved and read, what an analysis command may look like.
# Everything the engine sends is produced by circuitnn.circuits; these checks make sure nothing else
# (a newline, ';', a backquote, 'shell', 'quit', a second command, a NUL that ends the C string early,
# a number ngspice cannot hold) can reach ngspice even if a caller bypasses that layer.
# fullmatch, not match with ^…$: "$" also matches before a final newline.
_ALTER_TARGET = re.compile(r"@?[A-Za-z][A-Za-z0-9_.#]{0,199}(\[[A-Za-z0-9_]{1,32}\])?")
_ALTER_VALUE = re.compile(rf"= ?\[(?: {NUMBER_TEXT}){{1,64}} \]|[A-Za-z]{{1,16}} ?= ?{NUMBER_TEXT}|= ?{NUMBER_TEXT}")
# A node (l1a0), a node inside an instance (xdut.x), a branch current (vprog#branch), a device
# parameter (@brefl1[i]).
_VECTOR = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}(\.[A-Za-z][A-Za-z0-9_]{0,63}){0,8}(#branch)?"
                     r"|@[A-Za-z][A-Za-z0-9_.]{0,199}\[[A-Za-z0-9_]{1,32}\]")


# How long the caller polls for a sequence's answer (while a CPU is free) before sleeping: one
# device's write-verify takes ~10 ms; waking from sleep cost it 0.1-0.2 ms on the development VM.
SEQUENCE_SPIN_S = 0.1
_SOLVE_COLUMN = sequences.COLUMNS.index("solve_s")

# Runs per call from which the caller sleeps for the answer instead of polling (each run takes
# ≥ 0.3 ms, so such a call outlasts DEFAULT_SPIN_S).
SLEEP_FROM_RUNS = 8

# Values (key entries plus vector values) an engine's remembered operating points may hold before it
# forgets them all. With the alter strings they keep alive, ~50 bytes a value (measured: 3.3 kB per
# operating point of the 30-device circuit, 67 values): ≤ ~26 MB, ~7800 operating points there.
SOLUTIONS_KEPT_VALUES = 1 << 19


class _SolvedPoints:
    """Operating points an engine has solved since its circuit was loaded, for one list of vectors:
    every value the circuit then held (a tuple, in the engine's fixed target order) → the values
    read. Bounded by SOLUTIONS_KEPT_VALUES; off after a raw command (which may change what no alter
    names) until the next load."""

    def __init__(self):
        self.reset()

    def reset(self, enabled: bool = True) -> None:
        self.rows: dict[tuple, np.ndarray] = {}
        self.vectors: tuple[str, ...] = ()
        self.size = 0   # values held by keys and rows
        self.enabled = enabled

    def __len__(self) -> int:
        return len(self.rows)

    def for_vectors(self, vectors: tuple[str, ...]) -> dict[tuple, np.ndarray]:
        return self.rows if self.enabled and self.vectors == vectors else {}

    def add(self, vectors: tuple[str, ...], keys: list[tuple], table: np.ndarray) -> None:
        """Remember ``table``'s rows under ``keys`` (a copy: the caller owns the table)."""
        if not self.enabled or not keys:
            return
        per_point = len(keys[-1]) + len(vectors)
        if self.vectors != vectors or self.size + per_point * len(keys) > SOLUTIONS_KEPT_VALUES:
            self.rows, self.size, self.vectors = {}, 0, vectors
        stored = keys[:SOLUTIONS_KEPT_VALUES // per_point]
        self.rows.update(zip(stored, table[:len(stored)].copy()))
        self.size += per_point * len(stored)


@dataclass
class EngineStats:
    """Process-wide counters over every engine: how much of a job's time ngspice itself took."""

    runs: int = 0               # operating points and transients solved (a reused one is not)
    solve_time_s: float = 0.0   # inside ngspice's analysis command, measured in the worker
    call_time_s: float = 0.0    # the whole run() call as the caller sees it
    worker_time_s: float = 0.0  # whole sequences (run_sequence) as the worker timed them
    compiled_devices: int = 0   # write-verify sequences of one device the C loop ran (spice/compiled.py)

    def reset(self) -> None:
        self.runs, self.solve_time_s, self.call_time_s, self.worker_time_s = 0, 0.0, 0.0, 0.0
        self.compiled_devices = 0


STATS = EngineStats()


@dataclass(frozen=True)
class RunResult:
    """Vectors read after one analysis (name → float64 array) and ngspice's own solve time in s."""

    vectors: dict[str, np.ndarray]
    solve_time_s: float


def _checked_target(target: str) -> str:
    if not isinstance(target, str) or not _target_ok(target):
        raise NetlistError(f"refusing to alter {target!r:.80}: not an instance or @parameter name")
    return target


def _checked_vector(name: str) -> str:
    if not isinstance(name, str) or not _vector_ok(name):
        raise NetlistError(f"refusing vector name {name!r:.80}: a node (l1a0), instance node (xdut.x), "
                           "branch current (vprog#branch) or device parameter (@brefl1[i])")
    return name


# A chip alters and reads the same few hundred names over and over: check each once.
@functools.lru_cache(maxsize=65536)
def _target_ok(target: str) -> bool:
    return bool(_ALTER_TARGET.fullmatch(target))


@functools.lru_cache(maxsize=65536)
def _vector_ok(name: str) -> bool:
    return bool(_VECTOR.fullmatch(name))


@functools.lru_cache(maxsize=65536)   # a test set repeats the same few input values thousands of times
def alter_command(target: str, value: str) -> str:
    """``alter <target> <value>`` after checking both parts cannot carry another command, and that
    every number is one ``circuits.netlist.number`` could have written (finite, |x| ≤ 1e300)."""
    _checked_target(target)
    if not isinstance(value, str) or not _ALTER_VALUE.fullmatch(value):
        raise NetlistError(f"refusing alter value {value!r:.80} for {target!r}: only numbers written by "
                           "circuits.netlist.number may be set")
    return f"alter {target} {value}"


def check_vectors(vectors: Sequence[str]) -> list[str]:
    """The vector names as a list, each checked (NetlistError names the first bad one)."""
    if isinstance(vectors, str):
        raise NetlistError(f"vectors must be a list of names, not the string {vectors!r:.80}")
    return [_checked_vector(name) for name in vectors]


def _reply_text(reply: tuple) -> tuple[str, str]:
    """(message, ngspice's output) of a failed reply: ('crash', why), or (status, kind, message,
    output) for 'error' and 'dead'."""
    if len(reply) >= 4:
        return str(reply[2]), str(reply[3])
    return (str(reply[1]) if len(reply) > 1 else "no reason given"), ""


class SpiceEngine:
    """A supervised ngspice worker holding one loaded circuit.

    Use as a context manager, or call ``close()``. Not thread-safe: one engine per thread; for
    parallel work use one engine (one process) per core.
    """

    def __init__(self, timeout_s: float = 300.0, library_path: str | None = None, spin_s: float | None = None):
        """``spin_s``: how long the caller polls for the worker's answer before sleeping in recv (the
        worker polls a quarter of it for the next request; a sequence's answer is polled for up to
        SEQUENCE_SPIN_S). None: ``DEFAULT_SPIN_S`` when this process may use two or more CPUs, else
        0 (a poller on the only CPU would starve the worker). Either side polls only while a CPU is
        free (``worker.cpu_to_spare``). Polling trades a core nobody wants for ~0.1 ms less latency
        per call; set 0 to never poll."""
        self.timeout_s = timeout_s
        self.library_path = library_path
        self._cpus = worker.usable_cpus()
        if spin_s is None:
            spin_s = DEFAULT_SPIN_S if self._cpus >= 2 else 0.0
        if not 0.0 <= spin_s <= 1.0:
            raise ValueError(f"spin_s = {spin_s!r}: allowed [0, 1] s")
        self.spin_s = float(spin_s)
        self.restarts = 0
        self.circuit_name: str | None = None
        self._netlist_lines: list[str] | None = None
        self._persistent: dict[str, str] = {}
        self._process: subprocess.Popen | None = None
        self._connection = None
        self._folder: Path | None = None
        self._ready = False
        self._sequence = 0
        self._held_known = True   # the worker holds exactly _persistent (see _batch)
        self._solved = _SolvedPoints()
        self._setups_pickled: dict[int, tuple] = {}
        self._start_worker()

    # -- worker life cycle -------------------------------------------------------------------
    def _start_worker(self) -> None:
        # A fresh interpreter via subprocess, not multiprocessing: it never re-imports the caller's
        # __main__, so scripts and notebooks need no `if __name__ == "__main__"` guard.
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        package_parent = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
        # The worker's current folder, its spinit and .spiceinit circuitnn's own (spice/init_files.py).
        self._folder = private_init_folder()
        env.update(init_environment(self._folder))
        env["CIRCUITNN_CACHE"] = native.cache_base()  # the user's, not the private folder's HOME
        command = [sys.executable, "-m", "circuitnn.spice.worker", str(theirs.fileno()), repr(self.spin_s / 4)]
        if self.library_path:
            command.append(self.library_path)
        try:
            self._process = subprocess.Popen(command, pass_fds=[theirs.fileno()], env=env, cwd=self._folder,
                                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        except BaseException:
            ours.close()
            shutil.rmtree(self._folder, ignore_errors=True)
            raise
        finally:
            theirs.close()
        ours.settimeout(self.timeout_s)
        self._connection = ours
        self._ready = False

    def _await_ready(self) -> None:
        """Take the worker's first message (sent once libngspice is loaded) before the first request.

        Waiting here rather than in ``_start_worker`` lets two engines start their workers in
        parallel. A library that cannot be loaded raises NgspiceNotFoundError (one line)."""
        if self._ready:
            return
        hello = worker.receive_message(self._connection)
        if hello[0] == "fatal":
            self._stop_worker()
            raise NgspiceNotFoundError(hello[1])
        self._ready = True

    def _stop_worker(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait(timeout=10)
        self._connection.close()
        self._process = self._connection = None
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def _restart(self, reason: str, persistent: dict[str, str] | None = None, step: str = "restart") -> None:
        """New worker, circuit reloaded, ``persistent`` alters (default: all so far) re-applied.

        EngineCrashedError names the circuit and ``step`` (the call that needed the restart) if the
        new worker cannot load the circuit or take its state again."""
        self.restarts += 1
        self._held_known = True   # the new worker gets exactly the circuit and the persistent alters
        log.warning("ngspice worker restarted (%s) for circuit %r; restarts so far: %d",
                    reason, self.circuit_name, self.restarts)
        self._stop_worker()
        self._start_worker()
        if self._netlist_lines is not None:
            try:
                reply = self._call(("load", self._netlist_lines))
            except NgspiceNotFoundError as exc:
                raise EngineCrashedError(f"could not restart ngspice ({reason}): {exc}",
                                         self.circuit_name or "?", f"{step} (reload)") from None
            if reply[0] != "ok":
                message, output = _reply_text(reply)
                raise EngineCrashedError(f"could not reload the circuit after a restart ({reason}): {message}",
                                         self.circuit_name or "?", f"{step} (reload)", output)
            state = self._persistent if persistent is None else persistent
            if state:
                alters = [alter_command(t, v) for t, v in state.items()]
                reply = self._call(("run", alters, "op", []))
                # The op only proves the re-applied state is loadable; its result is discarded.
                if reply[0] != "ok":
                    message, output = _reply_text(reply)
                    raise EngineCrashedError(f"could not re-apply device states after a restart: {message}",
                                             self.circuit_name or "?", f"{step} (reload)", output)

    def _call(self, request: tuple, spin_s: float | None = None) -> tuple:
        """Send a request; ('crash', why) when the worker died or hung instead of answering.

        An exception in the middle (KeyboardInterrupt) leaves the worker busy with, or part-way
        through, a request whose answer nobody will read: it is killed, and the next call starts a
        new one from the state this engine holds."""
        if self._process is None:
            self._restart("an earlier call was interrupted")
        self._sequence += 1
        sequence = self._sequence
        try:
            self._await_ready()
            worker.send_message(self._connection, (sequence, *request))
            reply = worker.receive_message(self._connection, self.spin_s if spin_s is None else spin_s, self._cpus)
        except TimeoutError:
            return ("crash", f"no answer within {self.timeout_s:g} s")
        except NgspiceNotFoundError:
            raise
        except (EOFError, OSError) as exc:
            code = self._process.poll() if self._process is not None else None
            return ("crash", f"worker died ({type(exc).__name__}, exit code {code})")
        except BaseException:
            self._stop_worker()
            raise
        if reply[0] != sequence:
            return ("crash", f"worker answered request {reply[0]!r} when {sequence} was asked")
        return reply[1:]

    # -- public API ----------------------------------------------------------------------------
    def load(self, circuit_name: str, netlist: str) -> None:
        """Load a netlist written by circuitnn.circuits and forget earlier persistent alters.

        The text must parse as circuitnn's writers write netlists (``check_netlist``: a title,
        comments, element lines and the cards .subckt/.ends/.param/.model/.func/.options/.op/.tran,
        ending with .end; no ``.include``, since the worker runs in a private folder): anything else
        raises NetlistError before ngspice sees it. Use ``load_unvalidated`` for hand-written text.
        """
        check_netlist(netlist, f"circuit {circuit_name!r}", allow_include=False)
        self._load(circuit_name, netlist.splitlines())

    def load_unvalidated(self, circuit_name: str, netlist: str) -> None:
        """Load raw netlist text, UNVALIDATED: ngspice runs whatever it holds, ``.control`` blocks
        and their shell commands included. For experts with their own netlists; never pass text
        from a file, a config or a user through it."""
        self._load(circuit_name, netlist.splitlines())

    def _load(self, circuit_name: str, lines: list[str]) -> None:
        self.circuit_name = circuit_name
        self._netlist_lines = None
        self._persistent = {}
        self._held_known = True
        self._solved.reset()
        reply = self._call(("load", lines))
        if reply[0] == "crash":
            self._restart(reply[1], step="load")
            reply = self._call(("load", lines))
        if reply[0] == "dead":
            self._restart("ngspice detached while loading", step="load")
        if reply[0] != "ok":
            message, output = _reply_text(reply)
            raise CircuitRejectedError(message, circuit_name, "load", output)
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
        the worker process, which is comparable to a small circuit's solve time. ``analysis`` is
        ``op`` or a ``tran`` as ``circuits.netlist.tran_command`` writes it (within its limits);
        a bad analysis, vector name or alter raises NetlistError before anything is sent.
        """
        reply = self._batch("run_many", analysis, vectors, alter_sets, step)
        # A waveform crosses as its bytes (NgSpiceLibrary.vector), an operating point's value as a float.
        return [RunResult({name: np.array([v]) if isinstance(v, float) else np.frombuffer(bytearray(v))
                           for name, v in vectors_.items()}, solve) for vectors_, solve in zip(reply[1], reply[2])]

    def run_table(
        self,
        vectors: Sequence[str],
        alter_sets: Sequence[Mapping[str, str]],
        step: str | None = None,
        numbers: Sequence[int] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """An operating point per alter set, as ``run_many("op", ...)``, returned as one table:
        (values (runs × vectors), ngspice's solve time per run in s). For many reads of node
        voltages and branch currents (a test set through the array), where building a dict of
        one-element arrays per run would cost more than a tenth of the solve.

        A run that would hold the very values an earlier run held since the circuit was loaded (a
        test image that repeats, under the same device states; the same inputs read again) is not
        solved again: its row is that run's row, with a solve time of 0. ngspice's operating point
        depends only on what the circuit holds, never on the runs before it (bit for bit, the device
        contract's test), so the table is the one solving every run would give. Solutions from before
        a failed run are not used, and after a raw command (which may change what no alter names)
        none are kept until the next ``load``. The last run is always solved: the worker then holds
        what the caller set last. ``numbers``: what an error calls each run (its 0-based position in
        the caller's own order when the caller sends its runs in another one; default: position)."""
        if numbers is not None and len(numbers) != len(alter_sets):
            raise ValueError(f"numbers has {len(numbers)} entries for {len(alter_sets)} runs")
        reply = self._batch("op_table", "op", vectors, alter_sets, step, numbers)
        return reply[1], np.asarray(reply[2], dtype=float)

    def _batch(self, kind: str, analysis: str, vectors, alter_sets, step: str | None,
               numbers: Sequence[int] | None = None) -> tuple:
        if self._netlist_lines is None:
            raise SimulationError("no circuit loaded", self.circuit_name or "?", step or str(analysis)[:80])
        check_analysis(analysis)
        names = check_vectors(vectors)
        if isinstance(alter_sets, Mapping) or not all(isinstance(a, Mapping) for a in alter_sets):
            raise NetlistError("alter_sets must be a list of mappings (target → value), one per run")
        started = time.perf_counter()
        # A value the worker already holds (set by an earlier run, kept in _persistent) need not be
        # sent again: a test set's inputs repeat from one sample to the next. After a failed run or
        # a raw command the worker may hold other values: the first run then sends every value the
        # engine has set again, so the worker holds _persistent once more (a raw change to one of
        # those values is undone; to other parts of the circuit it stays).
        before = self._persistent   # replaced, never changed in place, below
        resend = not self._held_known
        held = {} if resend else dict(before)
        reuse = kind == "op_table"
        # An operating point depends only on what the circuit holds (tests/test_engine.py and the
        # device contract hold it bit for bit), so one the engine has solved since the circuit was
        # loaded, in this call or an earlier one, is not solved again. The key is every value the
        # circuit holds (the worker holds _persistent plus the call's alters, resent or not): targets
        # are only ever added to it, in a fixed order, so equal value tuples are equal states.
        known = self._solved.for_vectors(tuple(names)) if reuse else {}
        state = dict(before)
        solved_at: dict[tuple, int] = {}   # this call's solved states → position among the runs sent
        source: list = []   # per run: that position, or the row solved in an earlier call
        rows, keys = [], []   # per run sent: its position among the caller's runs, its state
        commands = []
        # Values and their commands not sent yet (two dicts rather than a tuple per alter: a test
        # set brings thousands of alters).
        pending = dict(before) if resend else {}
        pending_commands = {t: alter_command(t, v) for t, v in before.items()} if resend else {}
        last = len(alter_sets) - 1
        for row, alters in enumerate(alter_sets):
            for target, value in alters.items():
                pending_commands[target] = alter_command(target, value)   # every alter is checked
                pending[target] = value
                if reuse:
                    state[target] = value
            if reuse:
                key = tuple(state.values())
                # The last run is always solved: the worker then holds what the caller set last.
                if row != last:
                    earlier = solved_at.get(key)
                    if earlier is None:
                        earlier = known.get(key)
                    if earlier is not None:
                        source.append(earlier)
                        continue
                solved_at[key] = len(commands)
                source.append(len(commands))
                keys.append(key)
            commands.append([pending_commands[t] for t, v in pending.items() if held.get(t) != v])
            held.update(pending)
            pending, pending_commands = {}, {}
            rows.append(row)
        if reuse:
            request = (kind, commands, names, rows if numbers is None else [int(numbers[r]) for r in rows],
                       len(alter_sets))
        else:
            request = (kind, commands, analysis, names)
        # Polling pays only for an answer due within the spin: a batch of runs outlasts it, and a
        # poller would only take a core from the worker (and from whatever else runs).
        spin = 0.0 if len(commands) >= SLEEP_FROM_RUNS else None
        reply = self._call_restarting(request, before, step or analysis, spin_s=spin)
        if reply[0] != "ok":
            self._held_known = False   # the runs before the failure and its own alters were applied
            raise self._error(reply, step or analysis)
        self._persistent = {**before, **held}   # one assignment: never half-recorded
        if commands or not resend:
            self._held_known = True
        STATS.runs += len(commands)
        STATS.solve_time_s += sum(reply[2])
        STATS.call_time_s += time.perf_counter() - started
        if not reuse:
            return reply
        table = reply[1]
        self._solved.add(tuple(names), keys, table)
        if len(commands) == len(alter_sets):
            return reply
        solves = np.zeros(len(alter_sets))
        solves[rows] = reply[2]
        return (reply[0], np.array([table[s] if isinstance(s, int) else s for s in source]), solves)

    def _call_restarting(self, request: tuple, before: dict[str, str], step: str, spin_s: float | None = None) -> tuple:
        """``_call``; a crash restarts the worker from the circuit and the alters ``before`` the
        request and repeats it once (every request is deterministic from that state); a second crash
        raises EngineCrashedError."""
        reply = self._call(request, spin_s)
        if reply[0] in ("crash", "dead"):
            self._restart(reply[1] if reply[0] == "crash" else "ngspice detached", before, step)
            reply = self._call(request, spin_s)
            if reply[0] in ("crash", "dead"):
                self._restart("second failure", before, step)
                message, output = _reply_text(reply)
                raise EngineCrashedError(f"ngspice failed twice: {message}", self.circuit_name, step, output)
        return reply

    def _error(self, reply: tuple, step: str) -> SimulationError:
        """The exception for a worker's ('error', kind, message, output) reply."""
        _, kind, message, output = reply
        error = {"convergence": ConvergenceError, "rejected": CircuitRejectedError}.get(kind, SimulationError)
        return error(message, self.circuit_name, step, output)

    def run_sequence(self, request: tuple, step: str) -> tuple:
        """A whole operation sequence on the loaded circuit in one round trip (``spice/sequences.py``):
        ('write_verify_many', setup, [(device, x0, program dict)]) or ('program_ops', setup, states,
        operations).

        Built by ``SpicePulseWriter``, which checks every alter, vector and analysis it carries. A
        crash is handled as in ``run_many``: a new worker from the state held before, the sequence
        repeated once (it is deterministic from that state). Returns (result table, one row per
        operation with ``sequences.COLUMNS``; the outcomes or the final states)."""
        if self._netlist_lines is None:
            raise SimulationError("no circuit loaded", self.circuit_name or "?", step)
        if request[0] not in ("write_verify_many", "program_ops"):
            raise ValueError(f"unknown sequence {request[0]!r}")
        started = time.perf_counter()
        before = dict(self._persistent)
        request = (request[0], self._pickled_setup(request[1]), *request[2:])
        # A sequence lasts many solves: polled for only while a CPU is free, so that on a loaded
        # machine the caller sleeps and leaves the cores to the worker and whatever else runs.
        reply = self._call_restarting(request, before, step, spin_s=SEQUENCE_SPIN_S if self.spin_s > 0 else 0.0)
        if reply[0] != "ok":
            # The worker holds alters of the operations before the failure, unknown here: start afresh.
            self._stop_worker()
            self._persistent = before
            raise self._error(reply, step)
        table, applied = sequences.read_table(reply[1]), reply[3]
        try:
            self._persistent.update(applied)
        except BaseException:
            self._stop_worker()
            raise
        STATS.runs += len(table)
        # Summed from the reply's bytes: a numpy reduction costs ~40 µs here, right after the caches
        # went cold waiting for the worker, and a one-device sequence's answer is waited for.
        STATS.solve_time_s += sum(memoryview(reply[1]).cast("d")[_SOLVE_COLUMN::len(sequences.COLUMNS)])
        STATS.call_time_s += time.perf_counter() - started
        STATS.worker_time_s += reply[4]
        STATS.compiled_devices += reply[5]
        return table, reply[2]

    def _pickled_setup(self, setup) -> bytes:
        """``setup`` pickled once (the worker keeps what it unpickled from the same bytes). Up to
        ``worker.SETUPS_KEPT`` setups are kept, and alive, here: ``ProgrammingSetup`` is frozen plain
        data, so bytes pickled once stay its bytes."""
        # Keyed by id: the setup kept beside its bytes holds the id for no other object.
        kept = self._setups_pickled.get(id(setup))
        if kept is None:
            if len(self._setups_pickled) >= worker.SETUPS_KEPT:
                self._setups_pickled.clear()
            kept = self._setups_pickled[id(setup)] = (setup, pickle.dumps(setup, protocol=pickle.HIGHEST_PROTOCOL))
        return kept[1]

    def command_unvalidated(self, text: str) -> list[str]:
        """Send one raw ngspice command, UNVALIDATED, and return what it printed. For diagnostics
        and tests: ngspice's command language runs shell commands (``shell``, backquotes)."""
        self._held_known = False   # the command may have changed values the engine tracks
        self._solved.reset(enabled=False)   # or anything else
        reply = self._call(("command", text))
        if reply[0] != "ok":
            self._restart(reply[1], step=text[:80])
            raise EngineCrashedError(str(reply[1]), self.circuit_name or "?", text[:80])
        return reply[1]

    def use_compiled_loop(self, enabled: bool) -> bool:
        """Run write-verify sequences in the C loop (``spice/compiled.py``; the default when it
        could be built) or in Python; returns whether the C loop runs now. For tests and
        benchmarks, which compare the two. A restarted worker uses the C loop again."""
        reply = self._call(("use_compiled_loop", bool(enabled)))
        if reply[0] != "ok":
            raise EngineCrashedError(str(reply[1]), self.circuit_name or "?", "use_compiled_loop")
        return bool(reply[1])

    def set_timeout(self, timeout_s: float) -> None:
        """How long a call may wait for the worker's answer from now on."""
        self.timeout_s = timeout_s
        if self._connection is not None:
            self._connection.settimeout(timeout_s)

    def alive(self) -> bool:
        """Whether the worker process is running (a killed or interrupted one is not)."""
        return self._process is not None and self._process.poll() is None

    def unload(self) -> None:
        """Forget the circuit: every run is refused until the next ``load`` (which replaces all the
        worker holds). For handing a running worker to its next user (``spice/pool.py``)."""
        self.circuit_name = None
        self._netlist_lines = None
        self._persistent = {}
        self._held_known = True
        self._solved.reset()

    def worker_pid(self) -> int:
        """Process id of the current worker (it changes after a restart)."""
        return self._call(("pid",))[1]

    def worker_rss_bytes(self) -> int:
        """Resident memory of the worker process."""
        return self._call(("rss",))[1]

    def close(self) -> None:
        """Stop the worker."""
        if self._connection is not None and self._process.poll() is None:
            try:
                self._connection.settimeout(2)
                worker.send_message(self._connection, (0, "stop"))
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
