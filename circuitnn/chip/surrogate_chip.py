"""``SurrogateChip``: the chip of ``SpiceChip`` in NumPy, vectorised over devices and inputs.

The same two circuits as ``SpiceChip``: the programming path (one selected device behind its
generator, driver, switch and sense resistor) for verify reads and pulses, and the array with its
neurons for inference. What each operation computes, and what it charges to the ledger, mirrors
``SpiceChip`` exactly:

* ``read_device``: the DC divider of the programming path at V_read (SPICE: an operating point);
  the controller computes G = I/(V_read − I·R_series) with its nominal path; energies V·I·t_read;
  time t_read + overhead.
* ``pulse_device``: the pulse through the path (the device model's ``pulse_response``: e.g. exponential-integrator
  sub-steps, energies integrated); time ``pulse.duration_s`` + overhead.
* ``infer``: the DC solution of the whole array for the batch (``surrogate/array.py``), energy
  −Σ V·I of the driving sources × settle time per sample; time n · (settle + overhead).
* ``rest_device``: exact relaxation at 0 V over the same window SpiceChip simulates (the hold
  pulse's ``duration_s``); not charged.

Optional non-idealities (``DeviceEffects``) and calibration parameters (``SurrogateCalibration``)
are off / identity by default; ``describe()`` names both, so every result can say what it used.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..circuits.crossbar import Crossbar
from ..circuits.program import ProgrammingPath, PulseSpec
from ..errors import ConfigError
from ..surrogate import effects as fx
from ..surrogate import reads
from ..surrogate.array import ArrayModel, ArrayResponse, check_linear
from ..surrogate.calibration_params import SurrogateCalibration
from ..surrogate.effects import DeviceEffects
from .ledger import PHASES, Ledger, LedgerEntry
from .protocol import ChipTiming, DeviceRead, DeviceStates, InferenceResult, PulseEvent, verify_read_values

# The programming netlist writes R_driver = 0 as 1 mΩ (circuits/program.py); so does the surrogate.
MIN_PROGRAM_DRIVER_OHM = 1e-3


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


def _check_pulses(amplitude_V: np.ndarray, width_s: np.ndarray, edge_s: np.ndarray) -> None:
    """PulseSpec's checks on arrays; the first offending pulse is named by its position."""
    bad = ~(np.isfinite(amplitude_V) & (np.abs(amplitude_V) <= 10.0) & np.isfinite(width_s)
            & (width_s >= 1e-9) & (width_s <= 1e4) & np.isfinite(edge_s) & (edge_s >= 1e-12)
            & (edge_s <= 1e-3) & (edge_s <= width_s))
    if np.any(bad):
        k = int(np.flatnonzero(bad)[0])
        try:
            PulseSpec(float(amplitude_V[k]), float(width_s[k]), float(edge_s[k]))
        except ConfigError as exc:
            raise ConfigError(f"{exc.path}[{k}]", exc.value, exc.allowed) from None


class SurrogateChip(DeviceStates):
    """A crossbar chip in NumPy. ``close()`` and ``with`` are accepted (nothing to stop)."""

    def __init__(self, crossbar: Crossbar, initial_states, path: ProgrammingPath = ProgrammingPath(),
                 timing: ChipTiming = ChipTiming(), effects: DeviceEffects = DeviceEffects(),
                 calibration: SurrogateCalibration | None = None, seed: int = 0):
        check_linear(crossbar.spec.device)
        self.crossbar, self.path, self.timing, self.effects = crossbar, path, timing, effects
        self.calibration = calibration if calibration is not None else SurrogateCalibration()
        self.ledger = Ledger()
        device = crossbar.spec.device
        nominal = (path.r_driver_ohm or MIN_PROGRAM_DRIVER_OHM) + path.r_switch_on_ohm + path.r_sense_ohm
        offset = self.calibration.series_resistance_offset_ohm
        if nominal + offset <= 0:
            raise ConfigError("calibration.series_resistance_offset_ohm", offset,
                              f"(-{nominal:g}, 1e6]: the programming path's resistance must stay positive")
        self._r_program_ohm = nominal + offset
        # Streams: the per-device draws (made once), the per-operation noise of the effects, and
        # (child 2, shared with SpiceChip) the device model's own draws.
        fixed, noise = np.random.SeedSequence(seed).spawn(2)
        self._rng = np.random.default_rng(noise)
        self._draws = fx.sample_devices(effects, device.g_high_S, device.g_low_S, crossbar.n_devices,
                                        np.random.default_rng(fixed))
        self._g_high, self._g_low = self._draws.g_high_S, self._draws.g_low_S
        self._init_states(self._draws.apply_stuck(
            np.array(crossbar._validated_states(initial_states), dtype=float)), seed)
        self._array = ArrayModel(crossbar, gain_scale=self.calibration.gain_scale)
        self._array_states: np.ndarray | None = None  # the conductances the factorisation holds

    # -- protocol ----------------------------------------------------------------------------------

    @staticmethod
    def _check_phase(phase: str) -> None:
        if phase not in PHASES:
            raise ValueError(f"unknown ledger phase {phase!r}; one of {PHASES}")

    def read_device(self, index: int) -> DeviceRead:
        self._check_index(index)
        # Plain floats: one device costs a few µs, not the ~10 µs of NumPy's per-call overhead.
        g = float(self.device.conductance_S(float(self._states[index]), float(self._g_low[index]),
                                            float(self._g_high[index])))
        if self.device.ages:
            g *= float(self.device.conductance_factor(self._read_inputs(index))[0])
        current, v_device = reads.read_dc(g, self.crossbar.spec.v_read_V, self._r_program_ohm)
        return self._record_read(index, current, v_device)

    def read_devices(self, indices, as_arrays: bool = False) -> list[DeviceRead] | ReadBatch:
        """Verify reads of many devices at once; the ledger gets one 'read' entry each, in order.

        ``as_arrays`` returns one ``ReadBatch`` of arrays instead of a record per device (for large
        batches, where building the records costs more than the physics)."""
        idx = self._checked_indices(indices, unique=False)
        g = self.device.conductance_S(self._states[idx], self._g_low[idx], self._g_high[idx])
        if self.device.ages:
            g = g * self.device.conductance_factor(self._read_inputs(idx))
        current, v_device = reads.read_dc(np.asarray(g, float), self.crossbar.spec.v_read_V, self._r_program_ohm)
        conductance, energy_device, energy_total, time_s = verify_read_values(
            current, v_device, self.crossbar.spec.v_read_V, self.path.r_series_ohm, self.timing)
        conductance = np.asarray(fx.noisy_read(self.effects, conductance, self._rng), dtype=float)
        batch = ReadBatch(idx, conductance, current, energy_device, energy_total, np.full(len(idx), time_s))
        self.ledger.add_many("read", idx, batch.energy_device_J, batch.energy_total_J, batch.time_s,
                             np.zeros(len(idx), dtype=int))
        self.clock_s += float(np.sum(batch.time_s))
        if as_arrays:
            return batch
        return [DeviceRead(float(g), float(i), float(ed), float(et), float(t))
                for g, i, ed, et, t in zip(batch.conductance_S, batch.current_A, batch.energy_device_J,
                                           batch.energy_total_J, batch.time_s)]

    def _record_read(self, index: int, current: float, v_device: float) -> DeviceRead:
        conductance, energy_device, energy_total, time_s = verify_read_values(
            current, v_device, self.crossbar.spec.v_read_V, self.path.r_series_ohm, self.timing)
        read = DeviceRead(float(fx.noisy_read(self.effects, conductance, self._rng)), current, energy_device,
                          energy_total, time_s)
        self._charge(LedgerEntry("read", int(index), read.energy_device_J, read.energy_total_J, read.time_s))
        return read

    def pulse_device(self, index: int, pulse: PulseSpec, phase: str = "program") -> PulseEvent:
        self._check_index(index)
        self._check_phase(phase)
        x_before = float(self._states[index])
        width = self._effective_width(pulse.amplitude_V, pulse.width_s)
        g_high, g_low = float(self._g_high[index]), float(self._g_low[index])
        response = self.device.pulse_response(x_before, pulse.amplitude_V, width, pulse.edge_s,
                                              self._r_program_ohm, g_low, g_high)
        x_after, e_dev, e_src = float(response.x_after), float(response.energy_device_J), float(response.energy_source_J)
        # Drawn for every pulse, stuck or not, so the noise stream is the same as pulse_devices'.
        x_after = float(fx.programmed_state(self.effects, x_after, self._rng))
        if self._draws.stuck[index]:
            x_after = x_before
            g = float(self.device.conductance_S(x_before, g_low, g_high))
            e_dev, e_src = (float(e) for e in reads.fixed_state_energies(
                g, pulse.amplitude_V, width, pulse.edge_s, self._r_program_ohm))
        self._states[index] = x_after
        event = PulseEvent(x_before, x_after, e_dev, e_src, pulse.duration_s + self.timing.controller_overhead_s)
        self._charge(LedgerEntry(phase, index, e_dev, e_src, event.time_s, pulses=1))
        self._programmed(index, x_after)
        return event

    def pulse_devices(self, indices, amplitudes_V, widths_s, edge_s=100e-9, phase: str = "program",
                      as_arrays: bool = False) -> list[PulseEvent] | PulseBatch:
        """One pulse on each of several distinct devices at once (arrays broadcast to len(indices)).

        The same physics and ledger entries (one per device, in order) as ``pulse_device`` called
        for each; every pulse is validated as a ``PulseSpec`` would be. ``as_arrays`` returns one
        ``PulseBatch`` of arrays instead of a record per pulse.
        """
        self._check_phase(phase)
        idx = self._checked_indices(indices, unique=True)
        amp, width, edge = (np.broadcast_to(np.asarray(a, dtype=float), idx.shape).copy()
                            for a in (amplitudes_V, widths_s, edge_s))
        _check_pulses(amp, width, edge)
        x_before = self._states[idx].copy()
        effective = self._effective_width(amp, width)
        g_high, g_low = self._g_high[idx], self._g_low[idx]
        response = self.device.pulse_response(x_before, amp, effective, edge, self._r_program_ohm, g_low, g_high)
        x_after = fx.programmed_state(self.effects, np.asarray(response.x_after, float), self._rng)
        e_dev = np.array(response.energy_device_J, dtype=float)
        e_src = np.array(response.energy_source_J, dtype=float)
        stuck = self._draws.stuck[idx]
        if np.any(stuck):
            x_after = np.where(stuck, x_before, x_after)
            fixed_dev, fixed_src = reads.fixed_state_energies(
                self.device.conductance_S(x_before, g_low, g_high), amp, effective, edge, self._r_program_ohm)
            e_dev, e_src = np.where(stuck, fixed_dev, e_dev), np.where(stuck, fixed_src, e_src)
        self._states[idx] = x_after
        times = 4 * edge + width + self.timing.controller_overhead_s
        self.ledger.add_many(phase, idx, e_dev, e_src, times, np.ones(len(idx), dtype=int))
        self.clock_s += float(np.sum(times))
        self._programmed(idx, x_after)
        batch = PulseBatch(idx, x_before, np.asarray(x_after, float), e_dev, e_src, times)
        if as_arrays:
            return batch
        return [PulseEvent(float(b), float(a), float(ed), float(es), float(t))
                for b, a, ed, es, t in zip(x_before, batch.x_after, e_dev, e_src, times)]

    def rest_device(self, index: int, duration_s: float) -> float:
        """The device at 0 V for SpiceChip's hold window (``duration_s`` plus its four edges):
        exact relaxation. Not charged to the ledger."""
        self._check_index(index)
        hold = PulseSpec(0.0, duration_s, edge_s=min(1e-6, duration_s / 10))
        if not self._draws.stuck[index]:
            x = self.device.state_after_constant_voltage(float(self._states[index]), 0.0, hold.duration_s)
            self._states[index] = min(max(float(x), self.device.state_bounds[0]), self.device.state_bounds[1])
        return float(self._states[index])

    def load_states(self, states) -> None:
        super().load_states(self._draws.apply_stuck(np.array(self.crossbar._validated_states(states), dtype=float)))

    def infer(self, inputs, read_noise: bool = True) -> InferenceResult:
        """The whole batch through the array in one sparse solve per layer."""
        x = self._validated_inputs(inputs)
        response = self._solve(x, self._read_inputs(noise=read_noise))
        v_read = self.crossbar.spec.v_read_V
        energy = float(np.sum(response.power_W)) * self.timing.inference_settle_s
        duration = len(x) * (self.timing.inference_settle_s + self.timing.controller_overhead_s)
        self._charge(LedgerEntry("inference", -1, 0.0, energy, duration))
        activations = [a / v_read for a in response.activations_V]
        return InferenceResult(activations[-1], activations[:-1], energy, duration, response.column_currents_A)

    # -- beyond the protocol -----------------------------------------------------------------------
    def array_response(self, inputs) -> ArrayResponse:
        """TIA outputs, activations, column currents and source power for inputs (n, n_inputs) in
        [-1, 1], without charging the ledger (for calibration and inspection)."""
        return self._solve(self._validated_inputs(inputs), self._read_inputs(noise=False))

    def _window_conductances(self, states) -> np.ndarray:
        """Read conductances at ``states``, each device with its own window under variation."""
        return self.device.conductance_S(states, self._g_low, self._g_high)

    @property
    def stuck_devices(self) -> np.ndarray:
        """Indices of the stuck devices (empty unless ``effects.stuck_fraction`` > 0)."""
        return np.flatnonzero(self._draws.stuck)

    def describe(self) -> dict:
        """What this surrogate is: backend, calibration (name, source, values), effects, seed."""
        return {"backend": "surrogate", "calibration": self.calibration.name,
                "calibration_source": self.calibration.source,
                "calibration_values": self.calibration.as_dict(),
                "effects": dataclasses.asdict(self.effects), "seed": self.seed}

    def _rngs(self) -> dict[str, np.random.Generator]:
        return {"model": self._model_rng, "effects": self._rng}

    def netlists(self) -> dict[str, str]:
        """The surrogate simulates no netlist."""
        return {}


    # -- internals ---------------------------------------------------------------------------------
    def _effective_width(self, amplitude_V, width_s):
        """The flat-top width the device sees: the calibration's scale for SET (≥ 0 V) or RESET."""
        c = self.calibration
        if np.ndim(amplitude_V) == 0:
            return width_s * (c.pulse_width_scale_set if amplitude_V >= 0 else c.pulse_width_scale_reset)
        return width_s * np.where(amplitude_V >= 0, c.pulse_width_scale_set, c.pulse_width_scale_reset)

    def _checked_indices(self, indices, unique: bool) -> np.ndarray:
        idx = np.atleast_1d(np.asarray(indices))
        if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
            raise ConfigError("device indices", indices, "a 1-D sequence of integers")
        bad = np.flatnonzero((idx < 0) | (idx >= self.n_devices))
        if bad.size:
            raise ConfigError(f"device indices[{bad[0]}]", int(idx[bad[0]]), f"an integer in [0, {self.n_devices - 1}]")
        if unique and len(np.unique(idx)) != len(idx):
            raise ConfigError("device indices", "repeated indices", "distinct devices (pulse one device once per call)")
        return idx.astype(int)

    def _validated_inputs(self, inputs) -> np.ndarray:
        x = np.atleast_2d(np.asarray(inputs, dtype=float))
        n_in = self.crossbar.n_inputs
        if x.ndim != 2 or x.shape[1] != n_in:
            raise ConfigError("inputs", f"shape {x.shape}", f"shape (n, {n_in})")
        bad = np.argwhere(~np.isfinite(x) | (np.abs(x) > 1.0))
        if bad.size:
            row, column = bad[0]
            raise ConfigError(f"inputs[{row}, {column}]", float(x[row, column]), "[-1, 1]")
        return x

    def _solve(self, x: np.ndarray, device_inputs: dict[str, np.ndarray]) -> ArrayResponse:
        g = self._window_conductances(self._inference_states())
        if device_inputs:
            g = g * self.device.conductance_factor(device_inputs)
        if self._array_states is None or not np.array_equal(self._array_states, g):
            self._array.factorize(g)
            self._array_states = g
        spec, e = self.crossbar.spec, self.effects
        v = fx.quantize(x * spec.v_read_V, spec.v_read_V, e.input_bits)
        noise = (lambda i: fx.column_noise_A(e, i, self._rng)) if e.column_noise_sigma > 0 else None
        adc = (lambda out, rail: fx.quantize(out, rail, e.output_bits)) if e.output_bits is not None else None
        return self._array.solve(v, current_noise=noise, quantize_output=adc)
