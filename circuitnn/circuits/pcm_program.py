"""The programming path of one PCM cell: pulse generator, driver, selection switch, cell, sense resistor.

The same path as ``program.ProgrammingCircuit`` (the M-SDC one), with the ``pcm`` subcircuit of
``devices.pcm`` as the device:

    Vprog ─ R_driver ─ S_sel (closed) ─ PCM cell ─ R_sense ─ ground

One loaded netlist serves both uses. ``.tran`` applies the generator's pulse (it starts at 0 V);
``.op`` reads the cell at the generator's DC value, the read voltage, and returns the *stored*
state, because the cell's state equation is gated off at time 0. Between runs only ``alter``s
change: the stored state g, the pulse, the drift inputs (ν, time since programming) and the
read-noise factor, all sampled in NumPy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..devices import pcm
from ..devices.pcm import PcmParams, PcmPulseParams
from ..errors import ConfigError
from ..validation import is_real
from .netlist import Netlist, number, tran_command
from .program import INSTANCE, SOURCE, ProgrammingPath, PulseSpec, pulse_text, pulse_values, write_path

STATE_NODE = f"{INSTANCE}.g"
# The most a programmed conductance can exceed g_max by (programming noise) and still be stored.
_G_OVERSHOOT = 2.0


@dataclass(frozen=True)
class PcmProgrammingCircuit:
    """One PCM cell on its programming path. ``statistics`` supplies the drift time constant t0."""

    device: PcmPulseParams = PcmPulseParams()
    statistics: PcmParams = PcmParams()
    path: ProgrammingPath = ProgrammingPath()
    name: str = "pcm_program"

    vectors = ("time", "pg", "top", "bot", STATE_NODE, f"{SOURCE}#branch")
    read_vectors = ("top", "bot", STATE_NODE)

    def netlist(self, g0: float, pulse: PulseSpec, models: str = "inline", nu: float = 0.0,
                t_since_prog_s: float = 0.0, k_read: float = 1.0) -> str:
        """A netlist that applies ``pulse`` (``.tran``) to a cell stored at state ``g0``.

        ``models`` is "inline" (the subcircuit text is written into the netlist) or the relative
        directory holding ``pcm.lib``. Every model parameter is also written on the instance line.
        """
        self._check_state(g0)
        _check_drift(nu, t_since_prog_s)
        _check_read_factor(k_read)
        net = Netlist(f"{self.name}: PCM programming path")
        net.header("circuits.pcm_program", {
            "device": "pcm (behavioural pulse response, power-law drift)",
            "r_driver_ohm": self.path.r_driver_ohm, "r_switch_on_ohm": self.path.r_switch_on_ohm,
            "r_sense_ohm": self.path.r_sense_ohm, "v_read_V": self.device.v_read_V,
            "pulse": f"{pulse.amplitude_V:g} V, {pulse.width_s:g} s, edges {pulse.edge_s:g} s",
        }, None)
        if models == "inline":
            net.raw_model_text(pcm.spice_subckt(self.device, self.statistics))
        else:
            net.include(f"{models}/pcm.lib")
        instance = {"g0": number(g0), "nu": number(nu), "t_prog": number(t_since_prog_s),
                    "k_read": number(k_read), **pcm.spice_parameters(self.device, self.statistics)}
        # DC value = read voltage (used by .op); the pulse starts at 0 V (used by .tran).
        write_path(net, self.path, ["dc", number(self.device.v_read_V), pulse_text(pulse)], pcm.SUBCKT_NAME,
                   [f"{k}={v}" for k, v in instance.items()], self.transient(pulse))
        return net.text()

    @staticmethod
    def transient(pulse: PulseSpec) -> tuple[float, float, float]:
        """(print step, stop time, max internal step) for one pulse.

        The thresholds are a few tens of mV wide, so an edge is cut into at least 20 steps, and the
        flat top into 50, however short the RESET time constant.
        """
        max_step = min(pulse.width_s / 50.0, pulse.edge_s / 20.0)
        return max_step, pulse.duration_s, max_step

    def analysis(self, pulse: PulseSpec) -> str:
        return tran_command(*self.transient(pulse))

    read_analysis = "op"

    # -- alters (the load-once loop) -----------------------------------------------------------------
    def state_alters(self, g: float) -> dict[str, str]:
        """Store state ``g`` (read back by ``.op``; where ``.tran`` starts)."""
        self._check_state(g)
        return {f"v.{INSTANCE}.vg0": f"dc={number(float(g))}"}

    def pulse_alters(self, pulse: PulseSpec) -> dict[str, str]:
        return {f"@{SOURCE}[pulse]": "= [ " + " ".join(pulse_values(pulse)) + " ]"}

    def drift_alters(self, nu: float, t_since_prog_s: float) -> dict[str, str]:
        """Drift exponent ν and time since the end of programming (s) used for G at a read."""
        _check_drift(nu, t_since_prog_s)
        return {f"v.{INSTANCE}.vnu": f"dc={number(float(nu))}",
                f"v.{INSTANCE}.vtp": f"dc={number(float(t_since_prog_s))}"}

    def read_noise_alters(self, k_read: float) -> dict[str, str]:
        """Read-noise factor k_read = max(1 + σ N(0,1), 0), sampled in NumPy (1 = noiseless)."""
        _check_read_factor(k_read)
        return {f"v.{INSTANCE}.vkr": f"dc={number(float(k_read))}"}

    def read_alters(self, v_read_V: float | None = None) -> dict[str, str]:
        """Read voltage for ``.op`` (default: the device's ``v_read_V``); ``.tran`` ignores it."""
        v = self.device.v_read_V if v_read_V is None else v_read_V
        if not (_is_real(v) and 0.0 < abs(v) < self.device.v_set_V):
            raise ConfigError("v_read_V", v, f"0 < |v| < v_set_V = {self.device.v_set_V:g} V")
        return {SOURCE: f"dc={number(float(v))}"}

    # -- what a run means ------------------------------------------------------------------------------
    def measured_conductance_S(self, vectors: dict[str, np.ndarray]):
        """Cell conductance I/V from an ``.op`` (or per time point of a ``.tran``), same shape.

        The cell current is what the sense resistor carries; V is the voltage across the cell.
        """
        current = np.asarray(vectors["bot"], dtype=float) / self.path.r_sense_ohm
        return current / (np.asarray(vectors["top"], dtype=float) - np.asarray(vectors["bot"], dtype=float))

    def _check_state(self, g: float) -> None:
        low = -self.device.g_min_S / (self.device.g_max_S - self.device.g_min_S)  # G(g) = 0
        high = _G_OVERSHOOT
        if not (_is_real(g) and low <= g <= high):
            raise ConfigError("g", g, f"[{low:g}, {high:g}] (0 S ≤ G(g); 0..1 is the programmed window)")


def _is_real(value) -> bool:
    return is_real(value)


def _check_drift(nu: float, t_since_prog_s: float) -> None:
    if not (_is_real(nu) and 0.0 <= nu <= 1.0):
        raise ConfigError("nu", nu, "[0, 1] (drift exponent)")
    if not (_is_real(t_since_prog_s) and t_since_prog_s >= 0.0):
        raise ConfigError("t_since_prog_s", t_since_prog_s, "[0, inf) seconds since programming")


def _check_read_factor(k_read: float) -> None:
    if not (_is_real(k_read) and 0.0 <= k_read <= 10.0):
        raise ConfigError("k_read", k_read, "[0, 10] (1 = no read noise)")
