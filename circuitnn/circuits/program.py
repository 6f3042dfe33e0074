"""The programming circuit: pulse generator, driver, selection switch, one device, sense resistor.

Any device model (``circuitnn.devices``) sits in it.

In the Eslami et al. circuit each memristor is connected to the pulse generator through its own
selection switch while its array-side switches are open, so a write involves only the selected
device and its path to the driver. Simulating just that path is exact for the device and is what
makes a SPICE write cost milliseconds instead of a whole-array transient.

    Vprog ─ R_driver ─ S_sel (closed) ─ memristor ─ R_sense ─ ground

The device current is V(sense)/R_sense (what the controller's ADC reads); the energy delivered by
the generator includes the driver, switch and sense losses, the device energy only V·I of the device.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..devices.base import DeviceModel
from ..errors import ConfigError
from ..validation import check_range as _check
from .netlist import Netlist, number, tran_command

INSTANCE = "xdut"
SOURCE = "vprog"


@dataclass(frozen=True)
class PulseSpec:
    """One rectangular pulse with linear edges: ``amplitude_V`` for ``width_s`` (flat top)."""

    amplitude_V: float
    width_s: float
    edge_s: float = 100e-9

    def __post_init__(self) -> None:
        _check("pulse.amplitude_V", self.amplitude_V, -10.0, 10.0, True)
        _check("pulse.width_s", self.width_s, 1e-9, 1e4, True)
        _check("pulse.edge_s", self.edge_s, 1e-12, 1e-3, True)
        if self.edge_s > self.width_s:
            raise ConfigError("pulse.edge_s", self.edge_s, f"at most pulse.width_s ({self.width_s:g})")

    @property
    def delay_s(self) -> float:
        """The pulse starts after one edge time so the operating point at t = 0 sees 0 V."""
        return self.edge_s

    @property
    def duration_s(self) -> float:
        """Simulated window: delay, rise, flat top, fall and one edge time of settling."""
        return 4 * self.edge_s + self.width_s

    def breakpoints_s(self) -> tuple[float, float, float, float]:
        """Times where the waveform's slope changes: start of rise, top, start of fall, end."""
        t0 = self.delay_s
        return (t0, t0 + self.edge_s, t0 + self.edge_s + self.width_s, t0 + 2 * self.edge_s + self.width_s)

    def source_voltage_V(self, t_s):
        """The generator's voltage at times ``t_s`` (NumPy twin of the SPICE ``pulse`` source)."""
        t0, t1, t2, t3 = self.breakpoints_s()
        return np.interp(t_s, [0.0, t0, t1, t2, t3, self.duration_s],
                         [0.0, 0.0, self.amplitude_V, self.amplitude_V, 0.0, 0.0])


@dataclass(frozen=True)
class ProgrammingPath:
    """Resistances between the pulse generator and ground, other than the device."""

    r_driver_ohm: float = 50.0
    r_switch_on_ohm: float = 100.0
    r_sense_ohm: float = 100.0

    def __post_init__(self) -> None:
        _check("programming.r_driver_ohm", self.r_driver_ohm, 0.0, 1e6, True)
        _check("programming.r_switch_on_ohm", self.r_switch_on_ohm, 0.0, 1e6)
        _check("programming.r_sense_ohm", self.r_sense_ohm, 0.0, 1e6)

    @property
    def r_series_ohm(self) -> float:
        return self.r_driver_ohm + self.r_switch_on_ohm + self.r_sense_ohm


@dataclass(frozen=True)
class ProgrammingCircuit:
    """One device of any model on its programming path.

    One loaded netlist serves both uses. ``.tran`` applies the generator's pulse (it starts at 0 V);
    ``.op`` reads the device at the generator's DC value, the read voltage, and returns the *stored*
    state (every model's state equation is gated off at time 0). Between runs only ``alter``s change:
    the stored state, the pulse, the read voltage and, for an ageing model, its read inputs.
    """

    device: DeviceModel
    path: ProgrammingPath = ProgrammingPath()
    name: str = "program"
    v_read_V: float = 0.1

    def __post_init__(self) -> None:
        if not isinstance(self.device, DeviceModel):
            raise ConfigError("device", type(self.device).__name__, "a device model (circuitnn.devices)")
        _check("read.v_read_V", self.v_read_V, 0.0, 10.0)

    @cached_property
    def subcircuit(self):
        """The device's subcircuit, made once: every read and pulse names its state source and node."""
        return self.device.spice_subcircuit()

    @cached_property
    def state_node(self) -> str:
        """The device's state inside the circuit (a vector name)."""
        return f"{INSTANCE}.{self.subcircuit.state_node}"

    @cached_property
    def vectors(self) -> tuple[str, ...]:
        """What a pulse reads: time, generator, device terminals, state, generator current."""
        return ("time", "pg", "top", "bot", self.state_node, f"{SOURCE}#branch")

    read_vectors = ("top", "bot")
    read_analysis = "op"

    def netlist(self, x0: float, pulse: PulseSpec, models: str = "inline", inputs: dict | None = None) -> str:
        """A netlist that applies ``pulse`` (``.tran``) to the device stored at state ``x0``.

        ``models`` is "inline" (the subcircuit text is written into the netlist) or the relative
        directory holding the model's library (then the instance carries every model parameter).
        ``inputs``: an ageing model's read inputs (default: its defaults).
        """
        self._check_state(x0)
        net = Netlist(f"{self.name}: programming path, medium {self.device.medium}")
        net.header("circuits.program", {
            "medium": self.device.medium, "r_driver_ohm": self.path.r_driver_ohm,
            "r_switch_on_ohm": self.path.r_switch_on_ohm, "r_sense_ohm": self.path.r_sense_ohm,
            "v_read_V": self.v_read_V,
            "pulse": f"{pulse.amplitude_V:g} V, {pulse.width_s:g} s, edges {pulse.edge_s:g} s",
        }, None)
        if models == "inline":
            net.subcircuit(self.subcircuit)
        else:
            net.include(f"{models}/{self.device.library_file}")
        values = self.device.instance_values(float(x0), inputs)
        # DC value = read voltage (used by .op); the pulse starts at 0 V (used by .tran).
        write_path(net, self.path, ["dc", number(self.v_read_V), pulse_text(pulse)], self.device, values,
                   self.transient(pulse), with_parameters=models != "inline")
        return net.text()

    def transient(self, pulse: PulseSpec) -> tuple[float, float, float]:
        """(print step, stop time, max internal step) for one pulse (the model's time step).

        A 0 V "pulse" is a rest: the device only relaxes at its constant zero-bias rates, so the
        step need not resolve edges (a PCM edge step over a 1 s rest would be 10^7 steps)."""
        max_step = self.device.max_time_step_s(pulse.width_s, pulse.edge_s)
        if pulse.amplitude_V == 0.0:
            max_step = max(max_step, pulse.duration_s / 200.0)
        return max_step, pulse.duration_s, max_step

    def analysis(self, pulse: PulseSpec) -> str:
        return tran_command(*self.transient(pulse))

    # -- alters (the load-once loop) -----------------------------------------------------------------
    def state_alters(self, x: float) -> dict[str, str]:
        """Store state ``x`` (read back by ``.op``; where ``.tran`` starts)."""
        self._check_state(x)
        return {f"v.{INSTANCE}.{self.subcircuit.inputs[0][1]}": f"dc={number(float(x))}"}

    def input_alters(self, inputs: dict) -> dict[str, str]:
        """An ageing model's read inputs (``DeviceModel.read_inputs``), name → value."""
        sub = self.subcircuit
        names = [key for key, _, _ in sub.inputs[1:]]
        alters = {}
        for key, value in inputs.items():
            if key not in names:
                raise ConfigError(f"device_inputs.{key}", key, "one of " + ", ".join(names or ["(none)"]))
            alters[f"v.{INSTANCE}.{sub.source_of(key)}"] = f"dc={number(float(value), key)}"
        return alters

    @staticmethod
    def pulse_alters(pulse: PulseSpec) -> dict[str, str]:
        return {f"@{SOURCE}[pulse]": "= [ " + " ".join(pulse_values(pulse)) + " ]"}

    def read_alters(self, v_read_V: float | None = None) -> dict[str, str]:
        """The generator's DC value: the voltage ``.op`` reads at (``.tran`` ignores it)."""
        v = self.v_read_V if v_read_V is None else v_read_V
        _check("read.v_V", v, -10.0, 10.0, True)
        return {SOURCE: f"dc={number(float(v))}"}

    # -- what a run means ------------------------------------------------------------------------------
    def measured_conductance_S(self, vectors: dict[str, np.ndarray]):
        """Device conductance I/V from an ``.op`` (or per time point of a ``.tran``), same shape.

        The device current is what the sense resistor carries; V is the voltage across the device.
        """
        current = np.asarray(vectors["bot"], dtype=float) / self.path.r_sense_ohm
        return current / (np.asarray(vectors["top"], dtype=float) - np.asarray(vectors["bot"], dtype=float))

    def _check_state(self, x: float) -> None:
        low, high = self.device.state_bounds
        if not (isinstance(x, (int, float, np.floating)) and np.isfinite(x) and low <= x <= high):
            raise ConfigError("x", x, f"[{low:g}, {high:g}]")


def write_path(net: Netlist, path: ProgrammingPath, source: list[str], device: DeviceModel,
               values: dict[str, float], transient: tuple[float, float, float],
               with_parameters: bool = False) -> None:
    """Generator → driver → closed selection switch → device → sense resistor, and the transient."""
    net.card(".model", "swsel", "sw", f"vt=0.5 vh=0.1 ron={number(path.r_switch_on_ohm)} roff=1e12")
    net.element(SOURCE, ["pg", "0"], *source)
    net.element("rdrv", ["pg", "bus"], number(path.r_driver_ohm or 1e-3))
    net.element("vsel", ["sel", "0"], "dc", "1")
    net.element("ssel", ["bus", "top", "sel", "0"], "swsel")
    net.device(INSTANCE, ["top", "bot"], device, values, with_parameters)
    net.element("rsense", ["bot", "0"], number(path.r_sense_ohm))
    # noinit: ngspice would print the initial solution before every pulse (~0.1 ms each).
    net.card(".options", "method=gear noinit")
    step, stop, max_step = transient
    net.card(".tran", number(step), number(stop), "0", number(max_step))
    # Plain `ngspice -b` skips a transient with nothing to print; the engine (shared mode) ignores it.
    net.card(".print", "tran", "v(top)", "v(bot)")


def pulse_values(pulse: PulseSpec) -> list[str]:
    # Period far beyond the window so exactly one pulse happens.
    return [number(v) for v in (0.0, pulse.amplitude_V, pulse.delay_s, pulse.edge_s, pulse.edge_s,
                                pulse.width_s, 10 * pulse.duration_s)]


def pulse_text(pulse: PulseSpec) -> str:
    return "pulse(" + " ".join(pulse_values(pulse)) + ")"
