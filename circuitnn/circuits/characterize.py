"""The characterisation circuit: a measured (or designed) voltage waveform driving one device.

This is the bench set-up behind an I–V hysteresis loop and behind ``circuitnn fit``:

    Vsweep (PWL: the waveform's corner points) ─ [R_series] ─ memristor ─ ground

The source reproduces the waveform point for point (ngspice puts a breakpoint at every PWL corner,
so the solver never steps over one); without a series resistance the device voltage *is* the
waveform. The device current is read from the source's branch: ngspice's branch current flows into
the source's + node, so the current through the device from p to n is its negative.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..devices.base import DeviceModel
from ..errors import ConfigError
from ..validation import check_range as _check
from .netlist import Netlist, number, tran_command

INSTANCE = "xdut"
SOURCE = "vsweep"
MAX_WAVEFORM_V = 10.0
MIN_POINTS = 2


class IvTrace(NamedTuple):
    """A simulated characterisation run, every array shaped like the waveform's times.

    ``t_s`` in s (the waveform's own times), ``v_device_V`` across the device (p − n) in V,
    ``i_device_A`` through it from p to n in A, ``x`` the device state in [0, 1].
    """

    t_s: np.ndarray
    v_device_V: np.ndarray
    i_device_A: np.ndarray
    x: np.ndarray


# ---- waveforms -----------------------------------------------------------------------------------
def check_waveform(t_s, v_V, path: str = "waveform") -> tuple[np.ndarray, np.ndarray]:
    """``(t_s, v_V)`` as float arrays after checking they can drive a device.

    Both 1-D and equally long with at least two points, every value finite, times strictly
    increasing, |v| ≤ 10 V. A bad value raises ``ConfigError`` naming ``path.t_s[k]`` or ``path.v_V[k]``.
    """
    t = np.asarray(t_s, dtype=float)
    v = np.asarray(v_V, dtype=float)
    if t.ndim != 1 or v.ndim != 1 or t.shape != v.shape:
        raise ConfigError(f"{path}", f"t_s shape {t.shape}, v_V shape {v.shape}",
                          "two 1-D arrays of equal length")
    if t.size < MIN_POINTS:
        raise ConfigError(f"{path}.t_s", t.size, f"at least {MIN_POINTS} points")
    for label, values in (("t_s", t), ("v_V", v)):
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise ConfigError(f"{path}.{label}[{bad[0]}]", float(values[bad[0]]), "a finite number")
    steps = np.flatnonzero(np.diff(t) <= 0)
    if steps.size:
        k = int(steps[0]) + 1
        raise ConfigError(f"{path}.t_s[{k}]", float(t[k]), f"greater than t_s[{k - 1}] = {t[k - 1]!r}"
                          " (times must increase strictly)")
    too_big = np.flatnonzero(np.abs(v) > MAX_WAVEFORM_V)
    if too_big.size:
        k = int(too_big[0])
        raise ConfigError(f"{path}.v_V[{k}]", float(v[k]), f"[-{MAX_WAVEFORM_V:g}, {MAX_WAVEFORM_V:g}] V")
    return t, v


def sine_sweep(amplitude_V: float, frequency_Hz: float, cycles: int = 2,
               points_per_cycle: int = 400, start_s: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The standard hysteresis-loop excitation ``v = A sin(2π f (t − start))``.

    Returns ``(t_s, v_V)`` with ``cycles · points_per_cycle + 1`` points, starting and ending at
    0 V, so sweeps can be joined end to end with ``concatenate_waveforms``.
    """
    _check("sweep.amplitude_V", amplitude_V, 0.0, MAX_WAVEFORM_V)
    _check("sweep.frequency_Hz", frequency_Hz, 0.0, 1e12)
    if isinstance(cycles, bool) or not isinstance(cycles, int) or cycles < 1:
        raise ConfigError("sweep.cycles", cycles, "an integer >= 1")
    if isinstance(points_per_cycle, bool) or not isinstance(points_per_cycle, int) or points_per_cycle < 8:
        raise ConfigError("sweep.points_per_cycle", points_per_cycle, "an integer >= 8")
    phase = np.linspace(0.0, 2 * np.pi * cycles, cycles * points_per_cycle + 1)
    t = start_s + phase / (2 * np.pi * frequency_Hz)
    v = amplitude_V * np.sin(phase)
    v[np.abs(v) < 1e-15 * amplitude_V] = 0.0  # exact zeros at the half periods: the loop's pinch
    return t, v


def concatenate_waveforms(*waveforms: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Join ``(t_s, v_V)`` waveforms end to end into one, each shifted to start where the last ended.

    A waveform whose first voltage equals the previous one's last loses its first point (the join
    is one point, not a zero-length segment); otherwise the jump takes the new waveform's first step.
    """
    if not waveforms:
        raise ConfigError("waveforms", "()", "at least one (t_s, v_V) waveform")
    times, volts = [], []
    end = None
    for index, (t_s, v_V) in enumerate(waveforms):
        t, v = check_waveform(t_s, v_V, f"waveforms[{index}]")
        t = t - t[0]
        if end is None:
            times.append(t)
            volts.append(v)
        elif v[0] == volts[-1][-1]:
            times.append(end + t[1:])
            volts.append(v[1:])
        else:
            times.append(end + t + t[1])
            volts.append(v)
        end = times[-1][-1]
    return np.concatenate(times), np.concatenate(volts)


# ---- the circuit -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CharacterizationCircuit:
    """One device driven by a PWL voltage source, directly or through ``r_series_ohm``."""

    device: DeviceModel
    r_series_ohm: float = 0.0
    name: str = "characterize"

    def __post_init__(self) -> None:
        _check("characterize.r_series_ohm", self.r_series_ohm, 0.0, 1e9, True)

    @property
    def top_node(self) -> str:
        """The device's p terminal (the source node itself when there is no series resistance)."""
        return "top" if self.r_series_ohm > 0 else "src"

    def netlist(self, t_s, v_V, x0: float = 0.0, models: str = "inline") -> str:
        """A netlist that drives the device, starting from state ``x0``, with the waveform.

        The waveform is shifted to start at t = 0 (a measurement may start at any time); the
        transient covers it whole.
        """
        t, v = check_waveform(t_s, v_V)
        _check("x0", x0, *self.device.state_bounds, True)
        net = Netlist(f"{self.name}: characterisation, medium {self.device.medium}")
        net.header("circuits.characterize", {
            "medium": self.device.medium, "r_series_ohm": self.r_series_ohm,
            "waveform": f"{t.size} points over {t[-1] - t[0]:g} s, {v.min():g} .. {v.max():g} V",
        }, None)
        if models == "inline":
            net.subcircuit(self.device.spice_subcircuit())
        else:
            net.include(f"{models}/{self.device.library_file}")
        net.element(SOURCE, ["src", "0"], pwl_text(t - t[0], v))
        if self.r_series_ohm > 0:
            net.element("rseries", ["src", "top"], number(self.r_series_ohm))
        net.device(INSTANCE, [self.top_node, "0"], self.device, self.device.instance_values(float(x0)),
                   with_parameters=models != "inline")
        # Gear is stable on the stiff state equation; the tighter reltol keeps the state integral
        # accurate enough to serve as ground truth for parameter fits (default 1e-3 drifts ~0.1 %).
        net.card(".options", "method=gear", "reltol=1e-5")
        step, stop, max_step = self.transient(t)
        net.card(".tran", number(step), number(stop), "0", number(max_step))
        # Plain `ngspice -b` skips a transient with nothing to print; the engine (shared mode) ignores it.
        net.card(".print", "tran", f"v({self.top_node})")
        return net.text()

    @staticmethod
    def transient(t_s) -> tuple[float, float, float]:
        """(print step, stop time, max internal step): never coarser than the waveform's segments."""
        t = np.asarray(t_s, dtype=float)
        shortest = float(np.min(np.diff(t)))
        return shortest, float(t[-1] - t[0]), shortest

    def analysis(self, t_s) -> str:
        return tran_command(*self.transient(t_s))

    def state_alters(self, x: float) -> dict[str, str]:
        _check("x", x, *self.device.state_bounds, True)
        return {f"v.{INSTANCE}.{self.device.spice_subcircuit().inputs[0][1]}": f"dc={number(float(x))}"}

    @property
    def state_node(self) -> str:
        return f"{INSTANCE}.{self.device.spice_subcircuit().state_node}"

    @property
    def vectors(self) -> tuple[str, ...]:
        return ("time", self.top_node, self.state_node, f"{SOURCE}#branch")


def pwl_text(t_s, v_V) -> str:
    """``pwl(t0 v0 t1 v1 ...)`` with every number written by ``number``."""
    pairs = (f"{number(float(a), 'waveform time')} {number(float(b), 'waveform voltage')}"
             for a, b in zip(t_s, v_V))
    return "pwl(" + " ".join(pairs) + ")"


def simulate_trace(device: DeviceModel, t_s, v_V, engine, x0: float = 0.0,
                   r_series_ohm: float = 0.0) -> IvTrace:
    """Drive ``device`` from state ``x0`` with the waveform in ngspice; read the I–V trace.

    ``engine`` is a ``circuitnn.spice.engine.SpiceEngine`` (the circuit is loaded into it). The
    returned arrays are sampled at the waveform's own times ``t_s`` (ngspice's output, which has a
    point at every PWL corner, is interpolated onto them).
    """
    circuit = CharacterizationCircuit(device, r_series_ohm)
    t, v = check_waveform(t_s, v_V)
    engine.load(circuit.name, circuit.netlist(t, v, x0))
    result = engine.run(circuit.analysis(t), circuit.vectors,
                        step=f"characterisation sweep, {t.size} points")
    out = result.vectors
    time = out["time"]
    at = t - t[0]
    v_device = np.interp(at, time, out[circuit.top_node])
    # The branch current flows into the source's + node, i.e. back from the device: negate it.
    i_device = -np.interp(at, time, out[f"{SOURCE}#branch"])
    x = np.clip(np.interp(at, time, out[circuit.state_node]), *device.state_bounds)
    return IvTrace(t, v_device, i_device, x)
