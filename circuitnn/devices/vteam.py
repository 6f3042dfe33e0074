"""VTEAM: a threshold memristor (Kvatinsky, Ramadan, Friedman, Kolodny, "VTEAM: A General Model for
Voltage-Controlled Memristors", IEEE TCAS-II 62(8), 786-790, 2015).

Equations, in circuitnn's conventions (state x in [0, 1], 1 = ON; positive V(p, n) drives toward ON,
so VTEAM's w → 1 − x and v → −v):

    dx/dt = k_on  (V/V_on − 1)^α_on  (1 − x)      V > V_on  > 0     (SET)
          = −k_off (−V/V_off − 1)^α_off x         V < −V_off < 0    (RESET)
          = 0                                      otherwise          (no drift: a threshold device)
    R(x)  = R_off + (R_on − R_off) x                VTEAM's linear I–V: I = V / R(x)

The windows f_on = 1 − x, f_off = x are our choice (VTEAM leaves them open): they keep the state in
[0, 1] without a hard clip, and they put the model in the two-rate form of ``base.TwoRateModel``,
which supplies its exact constant-voltage solution and its pulse integrator. Unlike the M-SDC and
PCM models the conductance is not linear in the state (the resistance is), and nothing happens
below threshold, however long.

The preset's numbers are designed for this demonstration, not fitted to a device: a 1 kΩ/20 kΩ
window, symmetric 0.6 V thresholds, cubic rates, k = 5·10⁴ /s, so a 1 V, 10 µs pulse through the
programming path moves x by ~10 % of the remaining range from the far end and ~2 % near the
target end (the device takes more of the voltage as its resistance rises).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..validation import check_range
from .base import Retention, SpiceSubcircuit, TwoRateModel


@dataclass(frozen=True)
class VteamParams(TwoRateModel):
    """Parameters of a VTEAM device. SI units in the names; ``provenance`` says where they came from."""

    family = "vteam"
    rate_voltage_scale_V = 0.05   # no exponential in the rates: a ramp is resolved in 12.5 mV steps

    medium: str = "VTEAM"
    r_on_ohm: float = 1_000.0
    r_off_ohm: float = 20_000.0
    v_on_V: float = 0.6
    v_off_V: float = 0.6
    k_on_per_s: float = 5e4
    k_off_per_s: float = 5e4
    alpha_on: float = 3.0
    alpha_off: float = 3.0
    i_max_A: float = 1e-3
    provenance: str = ("VTEAM equations (Kvatinsky et al., IEEE TCAS-II 62(8) 786, 2015) with linear "
                       "windows; parameters designed for circuitnn's demonstration, not fitted")
    retention: Retention = Retention()

    def __post_init__(self) -> None:
        check_range("device.r_on_ohm", self.r_on_ohm, 0.0, 1e9)
        check_range("device.r_off_ohm", self.r_off_ohm, self.r_on_ohm, 1e12)
        check_range("device.v_on_V", self.v_on_V, 0.0, 10.0)
        check_range("device.v_off_V", self.v_off_V, 0.0, 10.0)
        check_range("device.k_on_per_s", self.k_on_per_s, 0.0, 1e15)
        check_range("device.k_off_per_s", self.k_off_per_s, 0.0, 1e15)
        # α ≥ 1 keeps the rate's derivative continuous at the threshold (ngspice's Newton needs it).
        check_range("device.alpha_on", self.alpha_on, 1.0, 10.0, True)
        check_range("device.alpha_off", self.alpha_off, 1.0, 10.0, True)
        check_range("device.i_max_A", self.i_max_A, 0.0, 10.0)

    @property
    def g_low_S(self) -> float:
        return 1.0 / self.r_off_ohm

    @property
    def g_high_S(self) -> float:
        return 1.0 / self.r_on_ohm

    def _resistances(self, g_low_S, g_high_S):
        r_on = self.r_on_ohm if g_high_S is None else 1.0 / np.asarray(g_high_S, dtype=float)
        r_off = self.r_off_ohm if g_low_S is None else 1.0 / np.asarray(g_low_S, dtype=float)
        return r_on, r_off

    def conductance_S(self, x, g_low_S=None, g_high_S=None):
        r_on, r_off = self._resistances(g_low_S, g_high_S)
        return 1.0 / (r_off + (r_on - r_off) * np.asarray(x, dtype=float))

    def state_from_conductance(self, g_S, g_low_S=None, g_high_S=None):
        r_on, r_off = self._resistances(g_low_S, g_high_S)
        return (1.0 / np.asarray(g_S, dtype=float) - r_off) / (r_on - r_off)

    def current_A(self, x, v_V):
        return np.asarray(v_V, dtype=float) * self.conductance_S(x)

    def rates_per_s(self, v_V):
        v = np.asarray(v_V, dtype=float)
        on = self.k_on_per_s * np.maximum(v / self.v_on_V - 1.0, 0.0) ** self.alpha_on
        off = self.k_off_per_s * np.maximum(-v / self.v_off_V - 1.0, 0.0) ** self.alpha_off
        return on, off

    def spice_subcircuit(self) -> SpiceSubcircuit:
        """Pins p n; the state x on a held capacitor node as in the M-SDC model (``.op`` reads it back)."""
        return SpiceSubcircuit(
            name=self.family if self.medium.lower() == self.family else f"{self.family}_{self.medium.lower()}",
            pins=("p", "n"),
            parameters=(("ron", self.r_on_ohm), ("roff", self.r_off_ohm), ("von", self.v_on_V),
                        ("voff", self.v_off_V), ("kon", self.k_on_per_s), ("koff", self.k_off_per_s),
                        ("aon", self.alpha_on), ("aoff", self.alpha_off)),
            inputs=(("x0", "vx0", 0.0),),
            body=(
                "Vx0 xs 0 dc {x0}",
                "Rhold x xs 1e12",
                "Cx x 0 1",
                "Bx 0 x I = (time > 0) ? (kon*pow(max(V(p,n)/von-1,0),aon)*(1-V(x))"
                " - koff*pow(max(-V(p,n)/voff-1,0),aoff)*V(x)) : 0",
                "Bm p n I = V(p,n)/(roff+(ron-roff)*V(x))",
            ),
            comments=(
                f"VTEAM threshold memristor, preset {self.medium} (Kvatinsky et al. 2015), linear windows.",
                self.provenance,
                "Pins: p n. Positive V(p,n) above von drives x toward ON (x = 1, R = ron).",
            ),
            state_node="x",
        )


PRESETS = (VteamParams(),)
