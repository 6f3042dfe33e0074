"""``SpiceChip``: the chip simulated in ngspice.

Two circuits, each kept loaded in its own engine (worker process): the programming path (one
selected device with its pulse generator, driver, switch and sense resistor), and the array with
its neurons (inference, switches opened toward the pulse bus). Device states live here and are
carried between the two.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator

import numpy as np

from ..circuits.crossbar import Crossbar
from ..circuits.program import ProgrammingCircuit, ProgrammingPath, PulseSpec
from ..spice import pool
from ..spice.pulses import SpicePulseWriter
from ..spice.sequences import PERTURB, PROGRAM, READ, RESET, OperationRow
from ..circuits.write_verify import WriteVerifyOutcome, WriteVerifyProgram
from .ledger import Ledger, LedgerEntry
from .sequence import (Pulse, Read, Restore, SequenceRecorder, SequenceResult, SequenceStates, SetStates, Trim,
                       check_operations, write_verify_op_by_op)
from .protocol import ChipTiming, DeviceRead, DeviceStates, InferenceResult, PulseEvent, verify_read_values


# Inputs sent to the worker per round trip: large enough to hide the round trip, small enough that a
# failure names a narrow range of samples.
INFERENCE_BATCH = 256


class _InferencePlan:
    """Which vectors an inference reads (each once) and where each quantity sits among them."""

    def __init__(self, crossbar: Crossbar):
        layers = crossbar.spec.layers
        vectors: dict[str, int] = {}

        def column(name: str) -> int:
            return vectors.setdefault(name, len(vectors))

        self.activation = [[column(crossbar.activation_node(l, j)) for j in range(layer.n_outputs)]
                           for l, layer in enumerate(layers)]
        self.sense = [([column(crossbar.sense_nodes(l, j)[0]) for j in range(layer.n_outputs)],
                       [column(crossbar.sense_nodes(l, j)[1]) for j in range(layer.n_outputs)])
                      for l, layer in enumerate(layers)]
        pairs = crossbar.driver_power_vectors()
        inputs = {f"in{i}" for i in range(crossbar.n_inputs)}
        # The input nodes sit at the voltages their sources are set to: their currents are read, and
        # the voltages come from the inputs (nine vectors fewer to save and read per operating point).
        self.input_currents = [column(current) for node, current in pairs if node in inputs]
        others = [(node, current) for node, current in pairs if node not in inputs]
        self.power_nodes = [column(node) for node, _ in others]
        self.power_currents = [column(current) for _, current in others]
        self.vectors = list(vectors)


def few_changes_order(rows) -> np.ndarray:
    """An order of ``rows`` (n × m) in which consecutive rows differ in few columns: the reflected
    Gray code's order when the rows are binary (each next row differs in one column when all 2^m
    are there). Lexicographic, except that within the k-th group of rows equal in the columns before
    it, a column is traversed in descending order when k is odd.

    Each changed input is an ``alter`` (~6 µs inside ngspice) before an operating point of ~0.5 ms:
    256 random binary images of 9 pixels need 1.4 per image in this order, 1.8 in lexicographic
    order and 4.6 in a random one."""
    rows = np.asarray(rows, dtype=float)
    n = len(rows)
    group = np.zeros(n, dtype=np.int64)   # rank of each row's group of equal columns so far
    descending = np.zeros(n, dtype=bool)
    for column in rows.T:
        values = np.where(descending, -column, column)
        order = np.lexsort((values, group))
        g, v = group[order], values[order]
        new_parent = np.ones(n, dtype=bool)
        new_parent[1:] = g[1:] != g[:-1]
        new_group = new_parent.copy()
        new_group[1:] |= v[1:] != v[:-1]
        rank = np.cumsum(new_group) - 1
        first_of_parent = np.maximum.accumulate(np.where(new_parent, rank, 0))
        group[order] = rank
        descending[order] = (rank - first_of_parent) % 2 == 1
    return np.argsort(group, kind="stable")


def _in_caller_order(solved: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Rows solved in ``order`` put back in the caller's order."""
    rows = np.empty_like(solved)
    rows[order] = solved
    return rows


# The ledger phase of a worker sequence's pulse, by its kind.
_PULSE_PHASES = {RESET: "reset", PROGRAM: "program", PERTURB: "perturb"}
_PULSE_KINDS = {phase: kind for kind, phase in _PULSE_PHASES.items()}


def _program_shape(program: WriteVerifyProgram) -> tuple:
    """What a write-verify program's pulse table depends on: everything but its target."""
    return tuple(value for name, value in vars(program).items() if name != "target_S")


class _Closed:
    """Stands for the engines of a closed chip."""

    def __getattr__(self, name):
        raise RuntimeError("this SpiceChip is closed: its ngspice workers serve other chips now")


_CLOSED = _Closed()


class SpiceChip(SequenceStates, DeviceStates):
    """A crossbar chip in ngspice. Close it (or use ``with``) to hand its two worker processes to the
    next chip (``spice/pool.py``)."""

    def __init__(self, crossbar: Crossbar, initial_states, path: ProgrammingPath = ProgrammingPath(),
                 timing: ChipTiming = ChipTiming(), timeout_s: float = 300.0, seed: int = 0):
        self.crossbar, self.timing = crossbar, timing
        self.program_circuit = ProgrammingCircuit(crossbar.spec.device, path, name=f"{crossbar.spec.name}_program",
                                                  v_read_V=crossbar.spec.v_read_V)
        self.ledger = Ledger()
        self._init_states(initial_states, seed)
        self._program_engine = pool.take(timeout_s)
        self._array_engine = pool.take(timeout_s)
        self._writer = SpicePulseWriter(self.program_circuit, self._program_engine)
        self._array_loaded = False
        self._setups: dict = {}  # the worker's view of the programming circuit, per pulse table

    @property
    def path(self) -> ProgrammingPath:
        return self.program_circuit.path

    # -- protocol ----------------------------------------------------------------------------------

    def read_device(self, index: int) -> DeviceRead:
        self._check_index(index)
        v_read = self.crossbar.spec.v_read_V
        site = self.crossbar.sites[index]
        inputs = {key: float(values[0]) for key, values in self._read_inputs(index).items()}
        current, v_device = self._writer.read_dc(float(self._states[index]), v_read,
                                                 step=f"verify read of {site.instance}", inputs=inputs)
        conductance, energy_device, energy_total, time_s = verify_read_values(
            current, v_device, v_read, self.program_circuit.path.r_series_ohm, self.timing)
        read = DeviceRead(conductance, current, energy_device, energy_total, time_s)
        self._charge(LedgerEntry("read", index, read.energy_device_J, read.energy_total_J, read.time_s))
        return read

    def pulse_device(self, index: int, pulse: PulseSpec, phase: str = "program") -> PulseEvent:
        self._check_index(index)
        site = self.crossbar.sites[index]
        result = self._writer.apply(float(self._states[index]), pulse,
                                    step=f"{phase} pulse {pulse.amplitude_V:+g} V on {site.instance}")
        self._states[index] = result.x_after
        event = PulseEvent(result.x_before, result.x_after, result.energy_device_J, result.energy_source_J,
                           result.duration_s + self.timing.controller_overhead_s)
        self._charge(LedgerEntry(phase, index, event.energy_device_J, event.energy_total_J,
                                 event.time_s, pulses=1))
        self._programmed(index, result.x_after)
        return event

    def rest_device(self, index: int, duration_s: float) -> float:
        """Simulate the device at 0 V for ``duration_s`` (a transient of the programming path with
        the generator at 0 V): its state relaxes as the model says. Not charged to the ledger."""
        self._check_index(index)
        hold = PulseSpec(0.0, duration_s, edge_s=min(1e-6, duration_s / 10))
        result = self._writer.apply(float(self._states[index]), hold,
                                    step=f"retention of {self.crossbar.sites[index].instance}")
        self._states[index] = result.x_after
        return result.x_after

    def infer(self, inputs, read_noise: bool = True) -> InferenceResult:
        x = np.atleast_2d(np.asarray(inputs, dtype=float))
        self.crossbar.input_volts(x)   # a bad input is named by its row of ``inputs``, before batching
        array_alters = self._array_alters(self._read_inputs(noise=read_noise))
        plan = self._plan
        tables = []
        for first in range(0, len(x), INFERENCE_BATCH):
            batch = x[first:first + INFERENCE_BATCH]
            sets, order = self._input_sets(batch)
            if first == 0:
                sets[0] = {**array_alters, **sets[0]}
            solved = self._array_engine.run_table(
                plan.vectors, sets, numbers=order,
                step=f"inference of samples {first + 1}-{first + len(batch)} of {len(x)}")[0]
            tables.append(_in_caller_order(solved, order))
        table = np.concatenate(tables) if tables else np.zeros((0, len(plan.vectors)))
        return self._inference_result(table, x)

    @functools.cached_property
    def _plan(self) -> _InferencePlan:
        return _InferencePlan(self.crossbar)

    def _inference_result(self, table: np.ndarray, inputs: np.ndarray) -> InferenceResult:
        """Activations, column currents and energy of one inference per operating point (a row of
        ``table``, the plan's vectors), charged."""
        plan, crossbar = self._plan, self.crossbar
        v_read = crossbar.spec.v_read_V
        activations = [table[:, columns] / v_read for columns in plan.activation]
        currents = [(table[:, ends] - table[:, summing]) / crossbar.sense_resistance_ohm
                    for ends, summing in plan.sense]
        # The input drivers' nodes sit at the voltages their alters set (those are rounded to the
        # netlist's 12 digits: the energy differs by < 1e-11 relative).
        power = -(np.sum(inputs * v_read * table[:, plan.input_currents], axis=1)
                  + np.sum(table[:, plan.power_nodes] * table[:, plan.power_currents], axis=1))
        energy = float(np.sum(power)) * self.timing.inference_settle_s
        duration = len(table) * (self.timing.inference_settle_s + self.timing.controller_overhead_s)
        self._charge(LedgerEntry("inference", -1, 0.0, energy, duration))
        return InferenceResult(activations[-1], activations[:-1], energy, duration, currents)

    def _input_sets(self, x: np.ndarray) -> tuple[list[dict[str, str]], np.ndarray]:
        """The input alters of samples ``x`` in the order they are solved, and that order: one that
        changes few inputs from one operating point to the next (``few_changes_order``). An
        operating point depends only on what the circuit holds, so the rows are those of the
        caller's order (``_in_caller_order``). The caller has checked ``x`` (so that a bad input is
        named by its row of the caller's inputs, not of the reordered batch)."""
        order = few_changes_order(x)
        return self.crossbar.input_alter_changes(x[order]), order

    def _array_alters(self, device_inputs: dict[str, np.ndarray]) -> dict[str, str]:
        """The array circuit loaded, and the alters that bring it to the chip's states (with any
        trim) and the read inputs of this inference. All of them: the engine sends only values the
        worker does not hold yet, and they ride on the inference's first operating point."""
        states = self._inference_states()
        if not self._array_loaded:
            self._array_engine.load(self.crossbar.spec.name,
                                    self.crossbar.netlist(states, np.zeros(self.crossbar.n_inputs),
                                                          device_inputs=device_inputs))
            self._array_loaded = True
        alters = self.crossbar.state_alters(states)
        if device_inputs:
            alters.update(self.crossbar.device_input_alters(device_inputs))
        return alters

    # -- sequences in few round trips (chip/sequence.py) ---------------------------------------------
    def write_verify(self, index: int, program: WriteVerifyProgram) -> WriteVerifyOutcome:
        """One device's whole write-verify in one round trip to the programming worker.

        The worker drives ``circuits.write_verify.controller`` (the decisions of
        ``training.tuning.program_to_target``) with the very reads and pulses ``read_device`` and
        ``pulse_device`` would send, so pulses, states and ledger entries are the same, bit for bit
        (``tests/test_sequences.py``). A device model that ages is tuned op by op (its reads draw
        read inputs here). If ngspice fails part-way, nothing of the sequence is charged."""
        (outcome,) = self.write_verify_many([(index, program)])
        return outcome

    def write_verify_many(self, items) -> Iterator[WriteVerifyOutcome]:
        """Several devices' write-verify, ``items`` = (index, WriteVerifyProgram) in order, in one
        round trip: the worker runs each exactly as ``write_verify`` would, one after another.

        Returns an iterator of the outcomes: each device is charged (states, ledger, clock) just
        before its outcome is yielded, so a caller that checkpoints or stops between two devices sees
        the chip as after the last one yielded, as with ``write_verify`` device by device
        (``tests/test_sequences.py``: bit for bit). The indices are checked now; the simulation runs
        when the first outcome is asked for. If ngspice fails, nothing of that round trip is
        charged. A device model that ages is tuned op by op."""
        items = [(int(index), program) for index, program in items]
        for index, _ in items:
            self._check_index(index)
        return self._write_verify_many(items)

    def _write_verify_many(self, items) -> Iterator[WriteVerifyOutcome]:
        if self.device.ages:
            for index, program in items:
                yield write_verify_op_by_op(self, index, program)
            return
        start = 0
        while start < len(items):
            # One pulse table per round trip (the programs of one tuning share it: all but the
            # target), and a device tuned twice starts its second tuning where the first left it.
            shape, devices = _program_shape(items[start][1]), {items[start][0]}
            stop = start + 1
            while stop < len(items) and _program_shape(items[stop][1]) == shape and items[stop][0] not in devices:
                devices.add(items[stop][0])
                stop += 1
            # The pulse table depends on everything but the target: built and checked once per tuning.
            setup = self._setup(("program", shape), items[start][1].pulse_table)
            yield from self._write_verify_batch(items[start:stop], setup)
            start = stop

    def _write_verify_batch(self, items, setup) -> Iterator[WriteVerifyOutcome]:
        sites = [self.crossbar.sites[index].instance for index, _ in items]
        table, outcomes = self._writer.write_verify_many(
            setup, [(index, float(self._states[index]), program) for index, program in items],
            step="write-verify of " + (sites[0] if len(sites) == 1 else f"{sites[0]}..{sites[-1]}"))
        first = 0
        for outcome, rows in outcomes:
            self._charge_program_rows(table[first:first + rows])
            first += rows
            yield WriteVerifyOutcome(*outcome)

    def run_sequence(self, operations) -> SequenceResult:
        """Read / Pulse / SetStates / Infer / Restore / Trim operations in order (``chip/sequence.py``).

        Consecutive reads and pulses go to the programming worker in one round trip, consecutive
        SetStates / Infer / Restore / Trim to the array worker in one (a DGC perturb/measure/restore
        over a mini-batch: one ``run_table``; a restore or trim costs no solve of its own, it is
        folded into the next operation that needs the array). Results and ledger as the single
        operations give. A device model that ages runs op by op."""
        ops = check_operations(operations, self.n_devices)
        if self.device.ages:
            return self.run_sequence_op_by_op(ops)
        recorder = SequenceRecorder()
        k = 0
        while k < len(ops):
            start = k
            programming = isinstance(ops[k], (Read, Pulse))
            while k < len(ops) and isinstance(ops[k], (Read, Pulse)) == programming:
                k += 1
            if programming:
                self._program_segment(ops[start:k], recorder)
            else:
                self._array_segment(ops[start:k], recorder)
        return recorder.result()

    def _setup(self, key: tuple, table: Callable[[], list[PulseSpec]]):
        """The worker's setup for the pulse table ``table()``, built once per ``key``."""
        if key not in self._setups:
            self._setups[key] = self._writer.setup(table(), self.crossbar.spec.v_read_V,
                                                   self.program_circuit.path.r_series_ohm)
        return self._setups[key]

    def _program_segment(self, ops, recorder: SequenceRecorder) -> None:
        table = sorted({op.spec for op in ops if isinstance(op, Pulse)},
                       key=lambda p: (p.amplitude_V, p.width_s, p.edge_s)) or [PulseSpec(1.0, 1e-6)]
        position = {pulse: k for k, pulse in enumerate(table)}
        operations = [(READ, op.index, 0) if isinstance(op, Read) else
                      (_PULSE_KINDS[op.phase], op.index, position[op.spec]) for op in ops]
        states = {op.index: float(self._states[op.index]) for op in ops}
        result, _ = self._writer.program_ops(self._setup(tuple(table), lambda: table), states, operations)
        self._charge_program_rows(result, recorder)

    def _charge_program_rows(self, table: np.ndarray, recorder: SequenceRecorder | None = None) -> None:
        """Ledger entries, states and clock of a worker sequence's reads and pulses (its result table,
        ``spice.sequences.COLUMNS``), in order, as ``read_device`` and ``pulse_device`` charge them:
        the same scalar arithmetic, operation by operation (only models that do not age come here,
        so no drift clock restarts). In plain floats and without making an entry object per row: a
        device's ~16 rows are charged while the caller waits for nothing else."""
        v_read, r_series = self.crossbar.spec.v_read_V, self.program_circuit.path.r_series_ohm
        timing, ledger, states, clock = self.timing, self.ledger, self._states, self.clock_s
        overhead_s = timing.controller_overhead_s
        for row in map(OperationRow._make, table.tolist()):
            index = int(row.device)
            if row.kind == READ:
                conductance, energy_device, energy_total, time_s = verify_read_values(
                    row.current_A, row.v_device_V, v_read, r_series, timing)
                ledger.add_values("read", index, energy_device, energy_total, time_s)
                if recorder is not None:
                    recorder.read(index, DeviceRead(conductance, row.current_A, energy_device, energy_total, time_s))
            else:
                time_s = row.duration_s + overhead_s
                ledger.add_values(_PULSE_PHASES[int(row.kind)], index, row.energy_device_J, row.energy_source_J,
                                  time_s, 1)
                states[index] = row.x_after
                if recorder is not None:
                    recorder.pulse(index, PulseEvent(row.x_before, row.x_after, row.energy_device_J,
                                                     row.energy_source_J, time_s))
            clock += time_s  # as _charge adds each entry's time, in order
        self.clock_s = clock

    def _array_segment(self, ops, recorder: SequenceRecorder) -> None:
        """SetStates / Infer / Restore / Trim in one run_table: each Infer's first operating point
        also carries the states it reads at (the engine sends those that changed). Trims and
        inferences are charged afterwards, in their order."""
        alter_sets, charges, numbers = [], [], []   # charges: ("trim", time) or ("infer", rows, x, order)
        for op in ops:
            if isinstance(op, SetStates):
                self._set_temporary(op)
            elif isinstance(op, Restore):
                self._restore_temporary()
            elif isinstance(op, Trim):
                self._set_trim(op.offsets)
                charges.append(("trim", op.time_s))
            else:
                x = np.atleast_2d(np.asarray(op.inputs, dtype=float))
                self.crossbar.input_volts(x)
                sets, order = self._input_sets(x)
                if sets:
                    sets[0] = {**self._array_alters({}), **sets[0]}
                charges.append(("infer", slice(len(alter_sets), len(alter_sets) + len(sets)), x, order))
                numbers += (len(alter_sets) + order).tolist()
                alter_sets += sets
        table = np.zeros((0, len(self._plan.vectors)))
        if alter_sets:
            table, _ = self._array_engine.run_table(self._plan.vectors, alter_sets, numbers=numbers,
                                                    step=f"array sequence of {len(alter_sets)} operating points")
        for kind, *what in charges:
            if kind == "trim":
                self._charge_trim(*what)
            else:
                rows, x, order = what
                recorder.inferences.append(self._inference_result(_in_caller_order(table[rows], order), x))

    # -- for stored runs --------------------------------------------------------------------------------
    def netlists(self) -> dict[str, str]:
        """The netlists this chip simulates, at its current states (for a run's netlists/ folder)."""
        return {
            f"{self.crossbar.spec.name}.cir": self.crossbar.netlist(self._states, np.zeros(self.crossbar.n_inputs)),
            f"{self.program_circuit.name}.cir": self.program_circuit.netlist(
                float(self._states[0]), PulseSpec(1.0, 10e-6)),
        }

    def close(self) -> None:
        """Hand both workers back for the next chip (``spice/pool.py``); a second close does nothing."""
        if self._array_engine is _CLOSED:
            return
        engines = (self._program_engine, self._array_engine)
        # The workers may serve another chip from now on: this one must not reach them.
        self._program_engine = self._array_engine = self._writer.engine = _CLOSED
        for engine in engines:
            pool.give_back(engine)

