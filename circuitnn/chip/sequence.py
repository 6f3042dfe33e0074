"""Operation sequences on a chip: a small declarative program, results as arrays.

On-chip learning is thousands of small operations: write-verify (pulse, read, decide, repeat) and
perturb/measure/restore steps of a gradient estimate (set a device to a temporary conductance,
infer a mini-batch, put it back). ``SpiceChip`` runs a sequence in as few round trips to its ngspice
workers as the circuits allow (one per run of consecutive programming-path operations, one per run
of consecutive array operations); ``SurrogateChip`` runs the same sequence in NumPy. Either way the
ledger gets one entry per read, pulse and inference, in order, exactly as the single operations
of the ``Chip`` protocol would charge them.

Operations:

* ``Read(index)``: a verify read (``Chip.read_device``).
* ``Pulse(index, amplitude_V, width_s, edge_s, phase)``: a programming pulse (``Chip.pulse_device``),
  charged to ``phase``: one of PULSE_PHASES (a DGC step's perturbations are 'perturb').
* ``SetStates(indices, states)``: put devices at temporary states, without pulses and without
  charge (a perturbation: the conductance a DGC step measures at). Ageing clocks are untouched.
* ``Infer(inputs, read_noise)``: a batch through the array (``Chip.infer``).
* ``Restore()``: every device back to its state before the first ``SetStates`` since the last
  ``Restore`` (pulses in between are overridden too).
* ``Trim(offsets, time_s)``: inference reads every device at its state + offset until the next
  ``Trim`` (``offsets`` None: none), charged ``time_s`` as 'perturb' (``Chip.trim``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..circuits.program import PulseSpec
from ..circuits.write_verify import WriteVerifyOutcome, WriteVerifyProgram, controller
from ..errors import ConfigError
from ..validation import check_range
from .protocol import InferenceResult, trim_offsets

# The ledger phases a pulse may be charged to.
PULSE_PHASES = ("program", "reset", "perturb")


@dataclass(frozen=True)
class Read:
    index: int


@dataclass(frozen=True)
class Pulse:
    index: int
    amplitude_V: float
    width_s: float
    edge_s: float = 100e-9
    phase: str = "program"

    @property
    def spec(self) -> PulseSpec:
        return PulseSpec(self.amplitude_V, self.width_s, self.edge_s)

    @classmethod
    def of(cls, index: int, spec: PulseSpec, phase: str = "program") -> Pulse:
        """The pulse ``spec`` on device ``index`` (``Chip.pulse_device(index, spec, phase)``)."""
        return cls(index, spec.amplitude_V, spec.width_s, spec.edge_s, phase)


@dataclass(frozen=True)
class SetStates:
    indices: tuple[int, ...]
    states: tuple[float, ...]


@dataclass(frozen=True)
class Infer:
    inputs: np.ndarray = field(compare=False)
    read_noise: bool = True


@dataclass(frozen=True)
class Restore:
    pass


@dataclass(frozen=True)
class Trim:
    offsets: np.ndarray | None = field(compare=False)
    time_s: float = 0.0


Operation = Read | Pulse | SetStates | Infer | Restore | Trim


@dataclass(frozen=True)
class ReadBatch:
    """Verify reads of many devices, as arrays (n,) in the order asked."""

    devices: np.ndarray
    conductance_S: np.ndarray
    current_A: np.ndarray
    energy_device_J: np.ndarray
    energy_total_J: np.ndarray
    time_s: np.ndarray


@dataclass(frozen=True)
class PulseBatch:
    """Pulses on many devices, as arrays (n,) in the order asked."""

    devices: np.ndarray
    x_before: np.ndarray
    x_after: np.ndarray
    energy_device_J: np.ndarray
    energy_total_J: np.ndarray
    time_s: np.ndarray


@dataclass(frozen=True)
class SequenceResult:
    """A sequence's results: every ``Read`` and every ``Pulse`` in order, as arrays, and one
    ``InferenceResult`` per ``Infer``."""

    reads: ReadBatch
    pulses: PulseBatch
    inferences: list[InferenceResult]


class SequenceRecorder:
    """Collects the results of a sequence's operations in order."""

    def __init__(self):
        self.reads: list[tuple] = []
        self.pulses: list[tuple] = []
        self.inferences: list[InferenceResult] = []

    def read(self, index: int, read) -> None:
        self.reads.append((index, read.conductance_S, read.current_A, read.energy_device_J,
                           read.energy_total_J, read.time_s))

    def pulse(self, index: int, event) -> None:
        self.pulses.append((index, event.x_before, event.x_after, event.energy_device_J,
                            event.energy_total_J, event.time_s))

    def result(self) -> SequenceResult:
        def columns(rows, n):
            table = np.array(rows, dtype=float).reshape(len(rows), n)
            return [table[:, 0].astype(int)] + [table[:, k] for k in range(1, n)]
        return SequenceResult(ReadBatch(*columns(self.reads, 6)), PulseBatch(*columns(self.pulses, 6)),
                              self.inferences)


def check_operations(operations, n_devices: int) -> list:
    """The operations as a list, each checked (ConfigError names the first bad one)."""
    checked = list(operations)
    for k, op in enumerate(checked):
        if isinstance(op, (Read, Pulse)):
            if not (isinstance(op.index, (int, np.integer)) and 0 <= op.index < n_devices):
                raise ConfigError(f"operations[{k}].index", op.index, f"an integer in [0, {n_devices - 1}]")
            if isinstance(op, Pulse):
                op.spec  # noqa: B018 - PulseSpec's checks
                if op.phase not in PULSE_PHASES:
                    raise ConfigError(f"operations[{k}].phase", op.phase, " or ".join(map(repr, PULSE_PHASES)))
        elif isinstance(op, SetStates):
            idx = np.asarray(op.indices)
            if idx.ndim != 1 or len(idx) != len(op.states) or (
                    len(idx) and (not np.issubdtype(idx.dtype, np.integer) or idx.min() < 0 or idx.max() >= n_devices)):
                raise ConfigError(f"operations[{k}]", "SetStates", "equally many device indices in range and states")
        elif isinstance(op, Trim):
            trim_offsets(op.offsets, n_devices, f"operations[{k}].offsets")
            check_range(f"operations[{k}].time_s", op.time_s, 0.0, 1.0, True)
        elif not isinstance(op, (Infer, Restore)):
            raise ConfigError(f"operations[{k}]", type(op).__name__, "Read, Pulse, SetStates, Infer, Restore or Trim")
    return checked


class SequenceStates:
    """Temporary states for ``SetStates``/``Restore`` (a mixin over ``DeviceStates``)."""

    _saved_states: np.ndarray | None = None

    def _set_temporary(self, op: SetStates) -> None:
        if self._saved_states is None:
            self._saved_states = self._states.copy()
        states = self._states.copy()
        states[np.asarray(op.indices, dtype=int)] = np.asarray(op.states, dtype=float)
        self._states = np.array(self.crossbar._validated_states(states), dtype=float)

    def _restore_temporary(self) -> None:
        if self._saved_states is not None:
            self._states, self._saved_states = self._saved_states, None

    def run_sequence_op_by_op(self, operations) -> SequenceResult:
        """The sequence through the single operations of the Chip protocol, one by one."""
        recorder = SequenceRecorder()
        for op in check_operations(operations, self.n_devices):
            if isinstance(op, Read):
                recorder.read(op.index, self.read_device(op.index))
            elif isinstance(op, Pulse):
                recorder.pulse(op.index, self.pulse_device(op.index, op.spec, phase=op.phase))
            elif isinstance(op, SetStates):
                self._set_temporary(op)
            elif isinstance(op, Infer):
                recorder.inferences.append(self.infer(op.inputs, read_noise=op.read_noise))
            elif isinstance(op, Trim):
                self.trim(op.offsets, op.time_s)
            else:
                self._restore_temporary()
        return recorder.result()


def write_verify_op_by_op(chip, index: int, program: WriteVerifyProgram) -> WriteVerifyOutcome:
    """Drive ``circuits.write_verify.controller`` with a chip's single reads and pulses."""
    steps = controller(program)
    action = next(steps)
    try:
        while True:
            if action[0] == "read":
                action = steps.send(chip.read_device(index).conductance_S)
            elif action[0] == "reset":
                chip.pulse_device(index, program.reset_pulse(), phase="reset")
                action = steps.send(None)
            else:
                chip.pulse_device(index, program.pulse(action[1], action[2]), phase="program")
                action = steps.send(None)
    except StopIteration as stop:
        return stop.value
