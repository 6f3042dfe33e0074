"""The programming circuit: pulse generator, driver, selection switch, one device, sense resistor.

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

from ..devices import msdc
from ..devices.msdc import MsdcParams
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
        import numpy as np

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
    device: MsdcParams
    path: ProgrammingPath = ProgrammingPath()
    name: str = "program"

    def netlist(self, x0: float, pulse: PulseSpec, models: str = "inline") -> str:
        """A netlist that applies ``pulse`` to the device starting from state ``x0``."""
        if not 0.0 <= x0 <= 1.0:
            raise ConfigError("x0", x0, "[0, 1]")
        net = Netlist(f"{self.name}: programming path, medium {self.device.medium}")
        net.header("circuits.program", {
            "medium": self.device.medium, "r_driver_ohm": self.path.r_driver_ohm,
            "r_switch_on_ohm": self.path.r_switch_on_ohm, "r_sense_ohm": self.path.r_sense_ohm,
            "pulse": f"{pulse.amplitude_V:g} V, {pulse.width_s:g} s, edges {pulse.edge_s:g} s",
        }, None)
        if models == "inline":
            net.raw_model_text(msdc.spice_subckt(self.device))
        else:
            net.include(f"{models}/msdc.lib")
        write_path(net, self.path, [pulse_text(pulse)], msdc.subckt_name(self.device), [f"x0={number(x0)}"],
                   self.transient(pulse))
        return net.text()

    @staticmethod
    def transient(pulse: PulseSpec) -> tuple[float, float, float]:
        """(print step, stop time, max internal step) for one pulse."""
        max_step = min(pulse.width_s / 50.0, max(pulse.edge_s, pulse.width_s / 200.0))
        return max_step, pulse.duration_s, max_step

    def analysis(self, pulse: PulseSpec) -> str:
        return tran_command(*self.transient(pulse))

    @staticmethod
    def state_alters(x: float) -> dict[str, str]:
        if not 0.0 <= x <= 1.0:
            raise ConfigError("x", x, "[0, 1]")
        return {f"v.{INSTANCE}.vx0": f"dc={number(float(x))}"}

    @staticmethod
    def pulse_alters(pulse: PulseSpec) -> dict[str, str]:
        return {f"@{SOURCE}[pulse]": "= [ " + " ".join(pulse_values(pulse)) + " ]"}

    @staticmethod
    def dc_alters(v_V: float) -> dict[str, str]:
        """Hold the generator at ``v_V`` (for an operating-point read through the same path)."""
        _check("read.v_V", v_V, -10.0, 10.0, True)
        values = [number(v) for v in (v_V, v_V, 0.0, 1e-9, 1e-9, 1.0, 10.0)]
        return {f"@{SOURCE}[pulse]": "= [ " + " ".join(values) + " ]"}


def write_path(net: Netlist, path: ProgrammingPath, source: list[str], device_model: str,
               device_parameters: list[str], transient: tuple[float, float, float]) -> None:
    """Generator → driver → closed selection switch → device → sense resistor, and the transient.

    Shared by every device's programming circuit: only the source and the device line differ.
    """
    net.card(".model", "swsel", "sw", f"vt=0.5 vh=0.1 ron={number(path.r_switch_on_ohm)} roff=1e12")
    net.element(SOURCE, ["pg", "0"], *source)
    net.element("rdrv", ["pg", "bus"], number(path.r_driver_ohm or 1e-3))
    net.element("vsel", ["sel", "0"], "dc", "1")
    net.element("ssel", ["bus", "top", "sel", "0"], "swsel")
    net.element(INSTANCE, ["top", "bot"], device_model, *device_parameters)
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
