"""The write-verify loop in C (``write_verify_loop.c``), built once per machine, run in the worker.

``sequences.run_write_verify_many`` runs each device here when the library could be built, else
through ``sequences._Programmer`` in Python: the same commands in the same order and the same
arithmetic, so the two give the same table bit for bit (``tests/test_compiled_loop.py``). The C
loop exists for speed alone: between two solves Python costs ~50 µs an operation with cold caches,
C ~10 µs (``benchmarks/bench_write_verify.py``).

Building: ``circuitnn.native`` (once per source hash, into a folder only this user can write). No
compiler: a warning line, and the Python loop. ``CIRCUITNN_COMPILED_LOOP=0`` asks for the Python
loop.

A failure inside the C loop (ngspice's printed error, a missing vector, a bad state) is not
reported from here: the device is run again in Python, which stops at the failing operation and
says which it was, exactly as without C.
"""

from __future__ import annotations

import ctypes
import logging
import os
from pathlib import Path

from .. import native
from ..circuits.netlist import MAX_MAGNITUDE, MIN_MAGNITUDE
from ..circuits.write_verify import WriteVerifyProgram
from .sequences import ROW_BYTES, ProgrammingSetup

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("write_verify_loop.c")


class _Setup(ctypes.Structure):
    _fields_ = [
        ("command", ctypes.c_void_p), ("vector", ctypes.c_void_p), ("exited", ctypes.POINTER(ctypes.c_int)),
        ("alter_text", ctypes.POINTER(ctypes.c_char_p)), ("alter_target", ctypes.POINTER(ctypes.c_int)),
        ("alter_value", ctypes.POINTER(ctypes.c_int)), ("n_targets", ctypes.c_int),
        ("read_first", ctypes.c_int), ("read_count", ctypes.c_int),
        ("pulse_first", ctypes.POINTER(ctypes.c_int)), ("pulse_count", ctypes.POINTER(ctypes.c_int)),
        ("pulse_analysis", ctypes.POINTER(ctypes.c_char_p)), ("read_analysis", ctypes.c_char_p),
        ("read_vectors", ctypes.POINTER(ctypes.c_char_p)), ("pulse_vectors", ctypes.POINTER(ctypes.c_char_p)),
        ("n_pulse_vectors", ctypes.c_int), ("time_vector", ctypes.c_int), ("pg_vector", ctypes.c_int),
        ("top_vector", ctypes.c_int), ("bot_vector", ctypes.c_int), ("branch_vector", ctypes.c_int),
        ("state_vector", ctypes.c_int),
        ("state_prefix", ctypes.c_char_p), ("destroy", ctypes.c_char_p),
        ("r_sense_ohm", ctypes.c_double), ("v_read_V", ctypes.c_double), ("r_series_ohm", ctypes.c_double),
        ("low", ctypes.c_double), ("high", ctypes.c_double),
        ("min_magnitude", ctypes.c_double), ("max_magnitude", ctypes.c_double),
    ]


class _Program(ctypes.Structure):
    _fields_ = [("target_S", ctypes.c_double), ("tolerance", ctypes.c_double),
                ("tolerance_floor_S", ctypes.c_double), ("max_pulses", ctypes.c_int),
                ("initial_reset", ctypes.c_int), ("adaptive_width", ctypes.c_int),
                ("levels_set", ctypes.c_int), ("levels_reset", ctypes.c_int)]


class _Out(ctypes.Structure):
    _fields_ = [("rows", ctypes.POINTER(ctypes.c_double)), ("rows_capacity", ctypes.c_long),
                ("applied", ctypes.POINTER(ctypes.c_int)), ("applied_capacity", ctypes.c_int),
                ("n_rows", ctypes.c_long), ("commands", ctypes.c_long),
                ("initial_S", ctypes.c_double), ("final_S", ctypes.c_double),
                ("set_pulses", ctypes.c_int), ("reset_pulses", ctypes.c_int), ("reads", ctypes.c_int),
                ("converged", ctypes.c_int), ("state_text", ctypes.c_char * 512)]


def build() -> Path | None:
    """The built library (built now if this source has not been built yet), or None with a warning."""
    return native.build(SOURCE, "the compiled write-verify loop", "the Python loop, ~10 % slower")


class CompiledLoop:
    """The C loop bound to the worker's libngspice."""

    def __init__(self, library_path: Path, ngspice):
        self._c = ctypes.CDLL(str(library_path))
        self._c.cnn_write_verify.argtypes = [ctypes.POINTER(_Setup), ctypes.POINTER(_Program), ctypes.c_int,
                                             ctypes.c_double, ctypes.POINTER(_Out)]
        self._c.cnn_write_verify.restype = ctypes.c_int
        self._ngspice = ngspice
        self._out = _Out()
        self._plans: dict[int, tuple] = {}
        self._levels: dict[tuple, tuple[int, int]] = {}

    def plan(self, setup: ProgrammingSetup) -> tuple:
        """The C view of ``setup`` (kept while the setup is kept: by id, with the setup)."""
        kept = self._plans.get(id(setup))
        if kept is not None:   # the kept setup holds its id: no other object has it
            return kept[1]
        if len(self._plans) >= 64:
            self._plans.clear()
        texts, targets, values, target_ids, value_ids = [], [], [], {}, {}

        def add(alters) -> tuple[int, int]:
            first = len(texts)
            for target, value in alters:
                texts.append(f"alter {target} {value}".encode())
                targets.append(target_ids.setdefault(target, len(target_ids)))
                values.append(value_ids.setdefault(value, len(value_ids)))
            return first, len(alters)

        target_ids[setup.state_target] = 0
        read_first, read_count = add(setup.read_alters)
        pulses = [add(alters) for alters, _ in setup.pulses]
        names = list(target_ids)
        value_names = list(value_ids)
        vectors = list(setup.pulse_vectors)
        keep = {  # the buffers the structure points into live as long as the plan
            "texts": (ctypes.c_char_p * max(len(texts), 1))(*texts),
            "targets": (ctypes.c_int * max(len(targets), 1))(*targets),
            "values": (ctypes.c_int * max(len(values), 1))(*values),
            "first": (ctypes.c_int * max(len(pulses), 1))(*[p[0] for p in pulses]),
            "count": (ctypes.c_int * max(len(pulses), 1))(*[p[1] for p in pulses]),
            "analysis": (ctypes.c_char_p * max(len(pulses), 1))(*[a.encode() for _, a in setup.pulses]),
            "read_vectors": (ctypes.c_char_p * 2)(b"top", b"bot"),
            "pulse_vectors": (ctypes.c_char_p * len(vectors))(*[v.encode() for v in vectors]),
            "prefix": f"alter {setup.state_target} dc=".encode(),
        }
        ngspice = self._ngspice.functions
        c_setup = _Setup(
            ctypes.cast(ngspice.ngSpice_Command, ctypes.c_void_p), ctypes.cast(ngspice.ngGet_Vec_Info, ctypes.c_void_p),
            ctypes.pointer(self._ngspice.exited), keep["texts"], keep["targets"], keep["values"], len(names),
            read_first, read_count, keep["first"], keep["count"], keep["analysis"], b"op",
            keep["read_vectors"], keep["pulse_vectors"], len(vectors),
            *(vectors.index(name) for name in ("time", "pg", "top", "bot", setup.source_branch, setup.state_vector)),
            keep["prefix"], b"destroy all", setup.r_sense_ohm, setup.v_read_V, setup.r_series_ohm,
            setup.state_bounds[0], setup.state_bounds[1], MIN_MAGNITUDE, MAX_MAGNITUDE)
        plan = (c_setup, keep, names, value_names)
        self._plans[id(setup)] = (setup, plan)
        return plan

    def write_verify(self, setup: ProgrammingSetup, device: int, x0: float, program: dict):
        """((outcome tuple, result table, alters left applied) or None when the C loop stopped short
        (the caller then runs the device in Python, which names the failure), commands sent)."""
        c_setup, keep, names, value_names = self.plan(setup)
        c_program = self._program(program)
        out = self._out
        status = self._c.cnn_write_verify(ctypes.byref(c_setup), ctypes.byref(c_program), int(device), float(x0),
                                          ctypes.byref(out))
        commands = int(out.commands)
        if status != 0:
            return None, commands
        # The rows' bytes are what the reply carries (sequences.read_table): no array made here.
        table = ctypes.string_at(out.rows, out.n_rows * ROW_BYTES)
        return (self._outcome(out), table, self._applied(setup, out, names, value_names)), commands

    def _program(self, program: dict) -> _Program:
        """A ``WriteVerifyProgram.as_dict()`` (checked where it was made) for C, with its width levels."""
        widths = (program["set_width_s"], program["reset_width_s"], program["min_width_s"])
        levels = self._levels.get(widths)
        if levels is None:
            if len(self._levels) >= 64:
                self._levels.clear()
            made = WriteVerifyProgram(**program)
            levels = self._levels[widths] = (made.levels(1), made.levels(-1))
        return _Program(program["target_S"], program["tolerance"], program["tolerance_floor_S"],
                        program["max_pulses"], int(program["initial_reset"]), int(program["adaptive_width"]), *levels)

    @staticmethod
    def _outcome(out: _Out) -> tuple:
        return (out.initial_S, out.final_S, out.set_pulses, out.reset_pulses, out.reads, bool(out.converged))

    @staticmethod
    def _applied(setup: ProgrammingSetup, out: _Out, names: list[str], value_names: list[str]) -> dict:
        """The alters this device's sequence left set, as ``_Programmer.applied`` holds them."""
        # One slice reads the C array (indexing a ctypes pointer costs ~1 µs a time with cold caches).
        values = out.applied[1:len(names)]
        applied = {names[t]: value_names[v] for t, v in enumerate(values, 1) if v >= 0}
        if out.state_text:
            applied[setup.state_target] = out.state_text.decode().split(" ", 2)[2]
        return applied


def load(ngspice) -> CompiledLoop | None:
    """The C loop for this worker's libngspice, or None (the Python loop runs)."""
    if os.environ.get("CIRCUITNN_COMPILED_LOOP", "1") == "0":
        return None
    path = build()
    if path is None:
        return None
    try:
        return CompiledLoop(path, ngspice)
    except OSError as exc:
        log.warning("loading the compiled write-verify loop failed (%s): using the Python loop", exc)
        return None

