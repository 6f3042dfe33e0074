"""The process that owns libngspice.

It serves requests from ``engine.SpiceEngine`` over a pipe: load a circuit, apply ``alter``
commands, run an analysis, return the wanted vectors. Everything that can go wrong inside ngspice
(an abort, a segfault, a hang, a library that asked to be detached) stays inside this process.
"""

from __future__ import annotations

import os
import pickle
import select
import shutil
import signal
import socket
import struct
import time
import traceback

import numpy as np

from . import compiled, sequences
from .ngspice import NgSpiceLibrary, library_not_found_message

# ngspice keeps every command in its history (~300 B each) until told to forget; clear it this often.
HISTORY_CLEAR_EVERY_COMMANDS = 2000
SAVE_COMMAND_CHARS = 500
# Setups a worker keeps unpickled (one per pulse table: a tuning uses one, a study a few); past this
# the cache starts again rather than grow with every table a long session has sent.
SETUPS_KEPT = 32
# How often a poller looks again whether a CPU is still free (one small read of /proc/loadavg).
SPARE_CHECK_S = 5e-4

_CONVERGENCE_MARKERS = ("timestep too small", "gmin stepping failed", "source stepping failed",
                        "no convergence", "iteration limit reached")
_REJECTED_MARKERS = ("circuit not parsed", "aren't any circuits loaded", "unknown subckt",
                     "could not find", "error on line", "undefined parameter", "unknown parameter",
                     "no such vector", "cannot recover")


def classify(lines: list[str]) -> str | None:
    """``None`` when ngspice's output shows a good run, else 'convergence', 'rejected' or 'failed'.

    ngspice's return codes are 0 even when a run was aborted, so its words are all we have.
    """
    text = "\n".join(lines).lower()
    if "error" not in text and "abort" not in text and "unknown" not in text and "undefined" not in text \
            and "could not" not in text and "cannot" not in text and "circuit" not in text:
        return None  # the common case, decided without the marker scans below
    failed = "simulation(s) aborted" in text or "\nerror" in "\n" + text or "error:" in text
    if any(marker in text for marker in _CONVERGENCE_MARKERS) and failed:
        return "convergence"
    if any(marker in text for marker in _REJECTED_MARKERS):
        return "rejected"
    return "failed" if failed else None


def resident_set_bytes(pid: int | str = "self") -> int:
    """Resident memory of a process, from /proc (Linux)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise OSError("VmRSS not found")


class _Server:
    def __init__(self, library_path: str | None):
        self.lib = NgSpiceLibrary(library_path)
        self.commands_since_clear = 0
        self.loaded = False
        self.saved: tuple[str, ...] | None = None
        self._setups: dict[bytes, sequences.ProgrammingSetup] = {}
        self.loop = compiled.load(self.lib)
        self.use_loop = self.loop is not None

    def setup(self, pickled: bytes) -> sequences.ProgrammingSetup:
        """A sequence's setup, sent pickled by the engine: unpickled once per worker, not per request
        (a pulse table's alters are most of a one-device request)."""
        setup = self._setups.get(pickled)
        if setup is None:
            if len(self._setups) >= SETUPS_KEPT:
                self._setups.clear()
            setup = self._setups[pickled] = pickle.loads(pickled)
        return setup

    def _command(self, text: str) -> None:
        self.lib.command(text)
        self._sent(1)

    def _sent(self, commands: int) -> None:
        """Count commands sent to ngspice, clearing its history every HISTORY_CLEAR_EVERY_COMMANDS."""
        self.commands_since_clear += commands
        if self.commands_since_clear >= HISTORY_CLEAR_EVERY_COMMANDS:
            self.lib.command(None)
            self.commands_since_clear = 0

    def _failure(self) -> tuple | None:
        if self.lib.exit_status is not None:
            return ("dead", "rejected", "ngspice asked to be detached (library unusable)", self._output())
        kind = classify(self.lib.output)
        if kind is not None:
            return ("error", kind, first_error_line(self.lib.output), self._output())
        return None

    def _output(self) -> str:
        return "\n".join(line for line in self.lib.output if line.strip())[-4000:]

    def load(self, lines: list[str]) -> tuple:
        self.lib.output.clear()
        if self.loaded:
            self._command("destroy all")
            self._command("remcirc")
        status = self.lib.load_circuit(lines)
        self.loaded = status == 0
        self.saved = None
        failure = self._failure()
        if failure is not None:
            return failure
        if status != 0:
            return ("dead", "rejected", f"ngSpice_Circ returned {status}", self._output())
        return ("ok",)

    def write_verify_compiled(self, setup: sequences.ProgrammingSetup, device: int, x0: float,
                              program: dict) -> tuple | None:
        """One device's write-verify in the C loop: (outcome, result table, alters applied), or None
        when there is no C loop or it stopped short or ngspice printed a failure (Python then runs
        it)."""
        if not self.use_loop:
            return None
        self.lib.output.clear()
        self._save(setup.read_vectors)  # reads and pulses keep the same vectors (pulses.setup)
        done, commands = self.loop.write_verify(setup, device, x0, program)
        self._sent(commands)
        # Whatever any operation printed is in the output: a failure in any one shows in the whole.
        return None if done is None or self._failure() is not None else done

    def run(self, alters: list[str], analysis: str, vectors: list[str], save: tuple[str, ...] | None = None) -> tuple:
        """``save``: the vectors ngspice keeps (default: ``vectors``), a superset of those read."""
        self.lib.output.clear()
        wanted = tuple(name for name in (vectors if save is None else save) if name != "time")
        self._save(wanted)
        for alter in alters:
            self._command(alter)
        if self.lib.output or self.lib.exit_status is not None:  # a good alter prints nothing
            failure = self._failure()
            if failure is not None:
                return failure
        start = time.perf_counter()
        self._command(analysis)
        solve_s = time.perf_counter() - start
        failure = self._failure()
        if failure is not None:
            self._command("destroy all")
            if "no data saved" in failure[3]:
                return ("error", "rejected", f"none of the vectors {list(wanted)} exist in the circuit",
                        failure[3])
            return failure
        result = {}
        for name in vectors:
            values = self.lib.vector(name)
            if values is None:
                self._command("destroy all")
                return ("error", "rejected", f"no vector named {name!r} after {analysis!r}",
                        self._output())
            # One-point vectors (operating points) come and travel as floats (pickling a float costs
            # a tenth of pickling a one-element array, and a read returns several), waveforms as bytes.
            result[name] = values
        # Without this, plots pile up: memory grows and each run gets slower.
        self._command("destroy all")
        return ("ok", result, solve_s)

    def _save(self, wanted: tuple[str, ...]) -> None:
        """Have ngspice keep the vectors ``wanted`` (and ``time``) of the next runs."""
        if wanted and wanted != self.saved:
            # Keeping only the wanted vectors makes both the solve and the read-back cheaper.
            self._command("delete all")
            # ngspice silently drops words past ~1000 characters of one command: save in chunks.
            chunk: list[str] = []
            for name in wanted:
                if chunk and sum(len(n) + 1 for n in chunk) + len(name) > SAVE_COMMAND_CHARS:
                    self._command("save " + " ".join(chunk))
                    chunk = []
                chunk.append(name)
            self._command("save " + " ".join(chunk))
            self.saved = wanted

    def run_many(self, alter_lists: list[list[str]], analysis: str, vectors: list[str],
                 rows: list[int] | None = None, total: int | None = None) -> tuple:
        """``run`` once per alter list, in order; stops at the first failure (and reports which:
        its position, or ``rows[position]`` of ``total`` when the caller sent a subset of its runs;
        counted from 1 in the message)."""
        results, solve_times = [], []
        for position, alters in enumerate(alter_lists):
            reply = self.run(alters, analysis, vectors)
            if reply[0] != "ok":
                row = position if rows is None else rows[position]
                of = len(alter_lists) if total is None else total
                return (*reply[:2], f"run {row + 1} of {of}: {reply[2]}", *reply[3:])
            results.append(reply[1])
            solve_times.append(reply[2])
        return ("ok", results, solve_times)

    def op_table(self, alter_lists: list[list[str]], vectors: list[str],
                 rows: list[int] | None = None, total: int | None = None) -> tuple:
        """An operating point per alter list, in order: ('ok', values (runs × vectors) array,
        solve times) — one array to send back instead of a dict of scalars per run."""
        reply = self.run_many(alter_lists, "op", vectors, rows, total)
        if reply[0] != "ok":
            return reply
        # An operating point: one value per vector.
        table = np.array([[values[name] for name in vectors] for values in reply[1]], dtype=float)
        return ("ok", table.reshape(len(alter_lists), len(vectors)), reply[2])


def first_error_line(lines: list[str]) -> str:
    for line in lines:
        lowered = line.lower()
        if "error" in lowered or "aborted" in lowered or "too small" in lowered:
            return line.strip()
    return "ngspice reported a failure"


# -- the wire: length-prefixed pickles over a socket pair ------------------------------------------
# (multiprocessing.Connection.poll(timeout) alone costs ~65 us per call here; a socket timeout
# is enforced in C and keeps a round trip near 30 us, which matters against a 0.5 ms solve.)
_LENGTH = struct.Struct("!Q")


def send_message(sock: socket.socket, message: object) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    sock.sendall(_LENGTH.pack(len(data)) + data)


def _receive_exact(sock: socket.socket, size: int) -> bytes:
    buffer = bytearray()
    while len(buffer) < size:
        chunk = sock.recv(size - len(buffer))
        if not chunk:
            raise EOFError("peer closed the connection")
        buffer += chunk
    return bytes(buffer)


def wait_readable(sock: socket.socket, spin_s: float, cpus: int = 0) -> None:
    """Poll (without sleeping) for up to ``spin_s`` until ``sock`` has data; then return either way.
    With ``cpus`` > 0, only while a CPU is free (``cpu_to_spare``, looked at every SPARE_CHECK_S).

    A process that blocks in recv is woken by the scheduler tens to hundreds of µs after the data
    arrives on a busy VM (its idle virtual CPU has to be scheduled again by the host), which is as
    long as a small circuit's solve; polling for the expected wait avoids that, at the cost of one
    busy core while it lasts: a core nobody else wants, when ``cpus`` is given.
    """
    if spin_s <= 0:
        return
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    now = time.perf_counter()
    deadline, look = now + spin_s, now
    while not poller.poll(0):
        now = time.perf_counter()
        if now >= deadline:
            return
        if cpus and now >= look:
            if not cpu_to_spare(cpus):
                return
            look = now + SPARE_CHECK_S


def receive_message(sock: socket.socket, spin_s: float = 0.0, cpus: int = 0) -> object:
    """The next message; ``spin_s`` and ``cpus`` as in ``wait_readable``."""
    wait_readable(sock, spin_s, cpus)
    (size,) = _LENGTH.unpack(_receive_exact(sock, _LENGTH.size))
    return pickle.loads(_receive_exact(sock, size))


def usable_cpus() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# /proc/loadavg kept open: reading it again costs ~1 µs, opening it each time ~10 µs.
_loadavg: int | None = None


def cpu_to_spare(cpus: int) -> bool:
    """Whether polling would take a CPU nobody else wants: no more runnable tasks than CPUs (the
    kernel's count, /proc/loadavg, includes the poller itself and whoever it waits for).

    Beside a CPU-bound process a polling worker holds the CPU that the caller it answered needs to
    wake up on: one device's write-verify in one round trip went from 1.10 to 1.12x its solves,
    one read per round trip from 2.4 to 3.1-3.6x. Alone, polling catches the next message sooner."""
    global _loadavg
    try:
        if _loadavg is None:
            _loadavg = os.open("/proc/loadavg", os.O_RDONLY | os.O_CLOEXEC)
        text = os.pread(_loadavg, 128, 0)
    except OSError:
        _loadavg = None  # opened again next time (a forked child may have closed the fd)
        return True
    try:
        return int(text.split()[3].split(b"/")[0]) <= cpus
    except (ValueError, IndexError):   # a kernel that writes it otherwise: the fd is kept, not leaked
        return True


def serve(connection: socket.socket, library_path: str | None = None, spin_s: float = 0.0) -> None:
    """Worker entry point: answer requests until the socket closes or 'stop' arrives.

    The first message is ('ready', pid) once libngspice is loaded, or ('fatal', one line) when it
    cannot be. Requests are (sequence, kind, ...) and each reply repeats the sequence number.
    ``spin_s``: after each reply, poll this long for the next request before sleeping in recv (a
    verify loop sends its next read or pulse within a fraction of a millisecond).
    """
    try:
        server = _Server(library_path)
    except OSError as exc:
        send_message(connection, ("fatal", library_not_found_message(library_path, exc)))
        return
    send_message(connection, ("ready", os.getpid()))
    cpus = usable_cpus()
    while True:
        try:
            request = receive_message(connection, spin_s, cpus)
        except (EOFError, OSError):
            return  # the engine closed its end or died: nobody is left to answer
        sequence, kind = request[0], request[1]
        try:
            reply = _answer(server, kind, request[2:])
        except Exception as exc:  # noqa: BLE001 - a bug here must reach the caller as an error, not kill the worker
            reply = ("error", "failed", f"worker error: {type(exc).__name__}: {exc}",
                     traceback.format_exc()[-2000:])
        try:
            send_message(connection, (sequence, *reply))
        except OSError:
            return
        if kind == "stop":
            return


def _answer(server: _Server, kind: str, arguments: tuple) -> tuple:
    if kind == "load":
        return server.load(*arguments)
    if kind == "run":
        return server.run(*arguments)
    if kind == "run_many":
        return server.run_many(*arguments)
    if kind == "op_table":
        return server.op_table(*arguments)
    if kind == "write_verify_many":
        return sequences.run_write_verify_many(server.run, server.setup(arguments[0]), *arguments[1:],
                                               compiled=server.write_verify_compiled)
    if kind == "use_compiled_loop":
        # For tests and benchmarks: the C loop off (False) or back on; answers whether it runs.
        server.use_loop = bool(arguments[0]) and server.loop is not None
        return ("ok", server.use_loop)
    if kind == "program_ops":
        return sequences.run_program_ops(server.run, server.setup(arguments[0]), *arguments[1:])
    if kind == "command":
        # Raw commands are for tests and diagnostics only (SpiceEngine.command_unvalidated).
        server.lib.output.clear()
        server._command(arguments[0])
        return ("ok", list(server.lib.output))
    if kind == "rss":
        return ("ok", resident_set_bytes())
    if kind == "pid":
        return ("ok", os.getpid())
    if kind == "stop":
        return ("ok",)
    return ("error", "failed", f"unknown request {kind!r}", "")


def main(argv: list[str]) -> None:
    """``python -m circuitnn.spice.worker FD SPIN_S [LIBRARY]``: serve on the inherited socket FD."""
    # Ctrl-C in a terminal reaches the whole process group: the engine decides what it means (it
    # kills this worker if a call was interrupted), so the worker itself ignores it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    folder = os.getcwd()
    try:
        serve(socket.socket(fileno=int(argv[1])), argv[3] if len(argv) > 3 else None, float(argv[2]))
    finally:
        # The engine's private folder (see engine._private_folder): gone with the worker, even when
        # the engine's process was killed and could not remove it.
        if os.path.basename(folder).startswith("circuitnn-ngspice-"):
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    import sys

    main(sys.argv)
