"""Operation sequences on the programming circuit, run inside the ngspice worker.

A verify read is an operating point and a pulse a short transient: each costs ngspice 0.3–1 ms on
the default circuit, about what one round trip to the worker costs on a busy machine. A controller
that decides after every read (write-verify) would pay that round trip per operation. Here the
worker runs the whole sequence itself and answers once, with every operation's result as one row of
a table (``COLUMNS``).

What crosses is data only (no code, no netlist text): the alter targets and values the engine has
already checked, the vector names, the analyses, one table of pulses, and either a
``WriteVerifyProgram`` as a dict (the worker drives ``circuits.write_verify.controller``, the same
decisions Python takes op by op) or a list of (kind, device, pulse) operations. Each read and
pulse is the very ``run`` the engine would send for it (same alters in the same order, same
analysis, same vectors), so the results are those of the op-by-op path, bit for bit.

``pulse_outcome`` turns a pulse's waveforms into state and energies; ``SpicePulseWriter`` uses it
too, so both paths compute them with the same arithmetic.

A write-verify runs in C where the worker could build it (``compiled.py``, ``write_verify_loop.c``):
the same commands and arithmetic as ``_Programmer`` and ``controller``, here the reference it is
tested against bit for bit, and the loop that runs where there is no C compiler.
"""

from __future__ import annotations

import time
from collections import namedtuple
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..circuits.netlist import MIN_MAGNITUDE, number
from ..circuits.write_verify import WriteVerifyProgram, controller, controller_read

# Operation kinds in the result columns (and in ``run_program_ops``' operations). The pulse kinds
# differ only in the ledger phase the chip charges them to.
READ, RESET, PROGRAM, PERTURB = 0, 1, 2, 3
COLUMNS = ("kind", "device", "x_before", "x_after", "current_A", "v_device_V", "conductance_S",
           "energy_device_J", "energy_source_J", "duration_s", "solve_s")
# A row of the result table by name, so a reader does not depend on the columns' order.
OperationRow = namedtuple("OperationRow", COLUMNS)
# The table crosses from the worker as its rows' bytes (float64, this machine's byte order): a
# pickled array costs ~25 µs to pickle and ~20 µs to unpickle after a solve has left the caches
# cold, bytes a few µs. Worker and caller run on the same machine.
ROW_BYTES = 8 * len(COLUMNS)


def read_table(data: bytes) -> np.ndarray:
    """The result table (rows of ``COLUMNS``) from the bytes a sequence's reply carries."""
    return np.frombuffer(bytearray(data), dtype=np.float64).reshape(-1, len(COLUMNS))


@dataclass(frozen=True)
class ProgrammingSetup:
    """What the worker needs to read and pulse the loaded programming circuit (plain data).

    ``pulses``: per pulse of the table, its alters [(target, value)] and its transient command.
    Every target, value, vector and analysis is checked by the engine before it is sent."""

    state_target: str
    read_alters: tuple[tuple[str, str], ...]
    read_vectors: tuple[str, ...]      # saved during a read (only top and bot are read back)
    pulse_vectors: tuple[str, ...]
    state_vector: str
    source_branch: str
    r_sense_ohm: float
    v_read_V: float
    r_series_ohm: float
    state_bounds: tuple[float, float]
    pulses: tuple[tuple[tuple[tuple[str, str], ...], str], ...]


def pulse_outcome(vectors: dict, r_sense_ohm: float, state_vector: str, source_branch: str,
                  state_bounds: tuple[float, float]) -> tuple[float, float, float, float]:
    """(state after, device energy J, source energy J, duration s) of a pulse from its waveforms:
    energies integrated from the simulated V·I (trapezoid rule)."""
    t, bot = vectors["time"], vectors["bot"]
    # The trapezoid rule as one weight per time point, shared by both integrals.
    dt = t[1:] - t[:-1]
    weights = np.empty_like(t)
    weights[:-1] = dt
    weights[-1] = 0.0
    weights[1:] += dt
    # Summed in time order (add.accumulate is sequential): the same sum on every CPU, and the one
    # the C loop computes (write_verify_loop.c). A BLAS dot sums in an order of its own, from a
    # kernel chosen for the CPU it runs on.
    device_energy = float(np.add.accumulate((vectors["top"] - bot) * bot * weights)[-1]) * 0.5 / r_sense_ohm
    # The branch current of a voltage source flows into its + node: delivered power is -V·I.
    source_energy = -float(np.add.accumulate(vectors["pg"] * vectors[source_branch] * weights)[-1]) * 0.5
    low, high = state_bounds
    return (min(max(float(vectors[state_vector][-1]), low), high), device_energy, source_energy, float(t[-1]))


def peak_current_A(vectors: dict, r_sense_ohm: float) -> float:
    """The largest device current of a pulse (through the sense resistor)."""
    bot = vectors["bot"]
    return max(float(bot.max()), -float(bot.min())) / r_sense_ohm


def read_outcome(top_V: float, bot_V: float, r_sense_ohm: float) -> tuple[float, float]:
    """(device current A, device voltage V) of a verify read's operating point."""
    return float(bot_V) / r_sense_ohm, float(top_V - bot_V)


class _Failed(Exception):
    def __init__(self, reply: tuple, position: int):
        super().__init__(reply)
        self.reply, self.position = reply, position


class _Programmer:
    """Reads and pulses of the loaded programming circuit through the worker's ``run``."""

    def __init__(self, run: Callable, setup: ProgrammingSetup):
        self.run, self.setup = run, setup
        self.rows: list[tuple] = []
        self.applied: dict[str, str] = {}

    def _run(self, alters: list[tuple[str, str]], analysis: str, vectors, save=None) -> tuple[dict, float]:
        # A value this sequence already set is still set (a state a read left for the next pulse,
        # the read voltage): ngspice need not hear it again.
        applied = self.applied
        commands = [f"alter {target} {value}" for target, value in alters if applied.get(target) != value]
        reply = self.run(commands, analysis, vectors, save)
        if reply[0] != "ok":
            raise _Failed(reply, len(self.rows))
        applied.update(alters)
        return reply[1], reply[2]

    def _state(self, x: float) -> tuple[str, str]:
        # A state is a clipped ngspice output or a checked start value: finite, in its bounds.
        value = f"dc={x:.12g}" if x == 0.0 or MIN_MAGNITUDE <= abs(x) <= 1.0 else f"dc={number(float(x))}"
        return (self.setup.state_target, value)

    def read(self, device: int, x: float) -> float:
        s = self.setup
        v, solve = self._run([self._state(x), *s.read_alters], "op", ("top", "bot"), s.read_vectors)
        current, v_device = read_outcome(v["top"], v["bot"], s.r_sense_ohm)
        g = controller_read(current, s.v_read_V, s.r_series_ohm)
        self.rows.append((READ, device, x, x, current, v_device, g, 0.0, 0.0, 0.0, solve))
        return g

    def pulse(self, device: int, x: float, kind: int, index: int) -> float:
        s = self.setup
        alters, analysis = s.pulses[index]
        waveforms, solve = self._run([self._state(x), *alters], analysis, s.pulse_vectors)
        v = {name: np.frombuffer(data) for name, data in waveforms.items()}   # the worker's run gives bytes
        x_after, e_dev, e_src, duration = pulse_outcome(v, s.r_sense_ohm, s.state_vector, s.source_branch,
                                                        s.state_bounds)
        self.rows.append((kind, device, x, x_after, 0.0, 0.0, 0.0, e_dev, e_src, duration, solve))
        return x_after

    def table(self) -> bytes:
        """The rows as the reply carries them (``read_table`` reads them back)."""
        return np.array(self.rows, dtype=np.float64).reshape(len(self.rows), len(COLUMNS)).tobytes()


def _write_verify(programmer: _Programmer, device: int, x0: float, program: dict) -> tuple:
    """Drive the controller for one device; its outcome as a tuple (raises _Failed)."""
    wv = WriteVerifyProgram(**program)
    steps = controller(wv)
    x = float(x0)
    try:
        action = next(steps)
        while True:
            if action[0] == "read":
                action = steps.send(programmer.read(device, x))
            else:
                kind = RESET if action[0] == "reset" else PROGRAM
                x = programmer.pulse(device, x, kind, wv.pulse_index(action))
                action = steps.send(None)
    except StopIteration as stop:
        o = stop.value
        return (o.initial_S, o.final_S, o.set_pulses, o.reset_pulses, o.reads, o.converged)


def run_write_verify_many(run: Callable, setup: ProgrammingSetup, items: list[tuple[int, float, dict]],
                          compiled: Callable | None = None) -> tuple:
    """Devices' whole write-verify, one after another: each (device, x0, program dict) from a fresh
    ``_Programmer`` (its own first alters sent again), so a device's reads and pulses do not depend
    on the devices before it. ('ok', result table of all devices in order, as bytes (``read_table``),
    [(outcome, rows)] per device, alters now applied, seconds, devices run in C), or the failed
    run's reply naming the device.

    ``compiled(setup, device, x0, program)``: the same device in C (``compiled.py``): (outcome,
    result table's bytes, alters applied), or None when it stopped short, and the device then runs
    here."""
    started = time.perf_counter()
    tables, outcomes, applied, in_c = [], [], {}, 0
    for device, x0, program in items:
        done = compiled(setup, device, x0, program) if compiled is not None else None
        in_c += done is not None
        if done is None:
            programmer = _Programmer(run, setup)
            try:
                outcome = _write_verify(programmer, device, x0, program)
            except _Failed as failed:
                return _failure(failed, f"write-verify of device {device}")
            done = (outcome, programmer.table(), programmer.applied)
        outcome, table, device_applied = done
        tables.append(table)
        outcomes.append((outcome, len(table) // ROW_BYTES))
        applied.update(device_applied)
    return ("ok", b"".join(tables), outcomes, applied, time.perf_counter() - started, in_c)


def run_program_ops(run: Callable, setup: ProgrammingSetup, states: dict[int, float],
                    operations: list[tuple[int, int, int]]) -> tuple:
    """(kind, device, pulse index) operations in order, carrying each device's state from ``states``;
    ('ok', result table's bytes, final states, alters now applied, seconds, 0 devices run in C) or the failed
    run's reply."""
    started = time.perf_counter()
    programmer = _Programmer(run, setup)
    x = {int(k): float(v) for k, v in states.items()}
    try:
        for kind, device, index in operations:
            if kind == READ:
                programmer.read(device, x[device])
            else:
                x[device] = programmer.pulse(device, x[device], kind, index)
    except _Failed as failed:
        return _failure(failed, "operation sequence")
    return ("ok", programmer.table(), x, programmer.applied, time.perf_counter() - started, 0)


def _failure(failed: _Failed, what: str) -> tuple:
    reply = failed.reply
    return (*reply[:2], f"{what}, operation {failed.position + 1}: {reply[2]}", *reply[3:])
