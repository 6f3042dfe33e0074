"""Knowm M-SDC memristor: the mean metastable-switch (MMSS) model with generalized diode terms.

Equations (Nugent & Molter, PLoS ONE 9(2) e85175, 2014; Molter & Nugent, arXiv 1608.04659, 2016;
Knowm's public model code, see docs/reference/eslami2024-msdc.md §2.1):

    state x in [0, 1]: fraction of metastable switches in the ON (low-resistance) state
    V_T = k T / q
    r_on(V)  = (1/tau) * sigmoid( (V - V_on)  / V_T)     OFF -> ON rate
    r_off(V) = (1/tau) * sigmoid(-(V + V_off) / V_T)     ON -> OFF rate
    dx/dt    = (1 - x) r_on(V) - x r_off(V)              self-bounding, no window function
    G(x)     = x / R_on + (1 - x) / R_off
    I(x, V)  = phi V G(x) + (1 - phi) [a_f (exp(b_f V) - 1) - a_r (exp(-b_r V) - 1)]

The diode terms carry a "-1" so that I(0) = 0 (a pinched loop) for any a_f, a_r; Knowm's Java code
omits it, which is the same model whenever a_f = a_r.

Everything here is a pure NumPy function of a frozen ``MsdcParams``, which implements the device-model
contract (``devices/base.py``) with them; ``spice_subcircuit`` gives the same equations as an ngspice
subcircuit (``models/msdc.lib``), and the contract tests keep the two in agreement. The closed-form
pulse response is in ``msdc_pulse.py``. The W, Cr and C parameter sets are in ``media.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from ..errors import ConfigError
from ..validation import check_range
from .base import LinearConductance, PulseResponse, Retention, SpiceSubcircuit, TwoRateModel

BOLTZMANN_OVER_CHARGE_V_PER_K = 8.617333262e-5


@dataclass(frozen=True)
class MsdcParams(LinearConductance, TwoRateModel):
    """Parameters of one M-SDC medium. SI units in the names; ``provenance`` says where each came from.

    ``retention`` is what the preset claims about its unbiased state (the contract tests check it).
    """

    family = "msdc"

    medium: str
    r_on_ohm: float
    r_off_ohm: float
    v_on_V: float
    v_off_V: float
    tau_s: float
    temperature_K: float = 300.0
    phi: float = 1.0
    alpha_f_A: float = 0.0
    beta_f_per_V: float = 0.0
    alpha_r_A: float = 0.0
    beta_r_per_V: float = 0.0
    i_max_A: float = 1e-3
    provenance: str = ""
    retention: Retention = Retention()

    def __post_init__(self) -> None:
        for name, low, high, closed_low in _RANGES:
            check_range(f"device.{name}", getattr(self, name), low, high, closed_low)
        if self.r_off_ohm <= self.r_on_ohm:
            raise ConfigError("device.r_off_ohm", self.r_off_ohm,
                              f"greater than r_on_ohm ({self.r_on_ohm:g})")

    @property
    def thermal_voltage_V(self) -> float:
        return BOLTZMANN_OVER_CHARGE_V_PER_K * self.temperature_K

    @property
    def g_on_S(self) -> float:
        return 1.0 / self.r_on_ohm

    @property
    def g_off_S(self) -> float:
        return 1.0 / self.r_off_ohm

    # -- the device-model contract (devices/base.py) ---------------------------------------------------
    @property
    def g_low_S(self) -> float:
        return self.g_off_S

    @property
    def g_high_S(self) -> float:
        return self.g_on_S

    def current_A(self, x, v_V):
        return current_A(self, x, v_V)

    @property
    def linear_at_fixed_state(self) -> bool:
        return self.phi >= 1.0

    def device_voltage_V(self, x, v_source_V, r_series_ohm, g_low_S=None, g_high_S=None,
                         conductance_factor=1.0):
        if g_low_S is None and g_high_S is None and np.all(np.asarray(conductance_factor) == 1.0):
            return device_voltage_V(self, x, v_source_V, r_series_ohm)
        return super().device_voltage_V(x, v_source_V, r_series_ohm, g_low_S, g_high_S, conductance_factor)

    def state_rate_per_s(self, x, v_V):
        return state_rate_per_s(self, x, v_V)

    def rates_per_s(self, v_V):
        """(r_on, r_off) at device voltage ``v_V``: the two-rate form of the state equation (the
        state rate, constant-voltage solution and pulse response below are its closed forms)."""
        return rate_on_per_s(self, v_V), rate_off_per_s(self, v_V)

    def state_after_constant_voltage(self, x0, v_V, duration_s):
        return state_after_constant_voltage(self, x0, v_V, duration_s)

    def pulse_response(self, x0, amplitude_V, width_s, edge_s, r_series_ohm, g_low_S=None,
                       g_high_S=None, conductance_factor=1.0) -> PulseResponse:
        """Closed-form sub-steps (``msdc_pulse.py``); plain floats for one device (a few µs)."""
        from . import msdc_pulse

        if self.phi < 1.0:
            raise ConfigError("device.phi", self.phi, "1.0 for the closed-form pulse response (diode "
                              "terms need SPICE or simulate_waveform)")
        g_on = self.g_on_S if g_high_S is None else g_high_S
        g_off = self.g_off_S if g_low_S is None else g_low_S
        if not np.all(np.asarray(conductance_factor) == 1.0):
            g_on, g_off = g_on * conductance_factor, g_off * conductance_factor
        arguments = (x0, amplitude_V, width_s, edge_s, r_series_ohm, g_on, g_off)
        if all(np.ndim(a) == 0 for a in arguments):
            x, e_dev, e_src = msdc_pulse.apply_pulse(self, float(x0), float(amplitude_V), float(width_s),
                                                     float(edge_s), float(r_series_ohm), float(g_on),
                                                     float(g_off))
            return PulseResponse(x, e_dev, e_src, 4 * float(edge_s) + float(width_s))
        return msdc_pulse.apply_pulses(self, x0, amplitude_V, width_s, edge_s, r_series_ohm, g_on, g_off)

    def spice_subcircuit(self) -> SpiceSubcircuit:
        return spice_subcircuit(self)


# (field, low, high, low end included?)  Ranges are wide physical sanity limits, not fits.
_RANGES = (
    ("r_on_ohm", 0.0, 1e9, False),
    ("r_off_ohm", 0.0, 1e12, False),
    ("v_on_V", 0.0, 10.0, False),
    ("v_off_V", 0.0, 10.0, False),
    ("tau_s", 1e-12, 1e3, False),
    ("temperature_K", 1.0, 1000.0, False),
    ("phi", 0.0, 1.0, True),
    ("alpha_f_A", 0.0, 1.0, True),
    ("beta_f_per_V", 0.0, 100.0, True),
    ("alpha_r_A", 0.0, 1.0, True),
    ("beta_r_per_V", 0.0, 100.0, True),
    ("i_max_A", 0.0, 10.0, False),
)

# Fields that can be fitted to measurements and that the SPICE subcircuit exposes as parameters.
MODEL_FIELDS = ("r_on_ohm", "r_off_ohm", "v_on_V", "v_off_V", "tau_s", "temperature_K", "phi",
                "alpha_f_A", "beta_f_per_V", "alpha_r_A", "beta_r_per_V")


# ---- pure physics ------------------------------------------------------------------------------
def rate_on_per_s(p: MsdcParams, v_V):
    """OFF→ON transition rate (1/s) at device voltage ``v_V``."""
    return expit((np.asarray(v_V) - p.v_on_V) / p.thermal_voltage_V) / p.tau_s


def rate_off_per_s(p: MsdcParams, v_V):
    """ON→OFF transition rate (1/s) at device voltage ``v_V``."""
    return expit(-(np.asarray(v_V) + p.v_off_V) / p.thermal_voltage_V) / p.tau_s


def state_rate_per_s(p: MsdcParams, x, v_V):
    """dx/dt (1/s) for state ``x`` at device voltage ``v_V`` (arrays broadcast)."""
    return (1.0 - x) * rate_on_per_s(p, v_V) - x * rate_off_per_s(p, v_V)


def conductance_S(p: MsdcParams, x):
    """Memristive conductance G(x) in S."""
    return np.asarray(x) * p.g_on_S + (1.0 - np.asarray(x)) * p.g_off_S


def state_from_conductance(p: MsdcParams, g_S):
    """The state x whose memristive conductance is ``g_S`` (inverse of ``conductance_S``)."""
    return (np.asarray(g_S) - p.g_off_S) / (p.g_on_S - p.g_off_S)


def current_A(p: MsdcParams, x, v_V):
    """Device current (A) flowing from the + to the − terminal."""
    v = np.asarray(v_V, dtype=float)
    diode = 0.0
    if p.phi < 1.0:
        diode = p.alpha_f_A * np.expm1(p.beta_f_per_V * v) - p.alpha_r_A * np.expm1(-p.beta_r_per_V * v)
    return p.phi * v * conductance_S(p, x) + (1.0 - p.phi) * diode


def differential_conductance_S(p: MsdcParams, x, v_V):
    """dI/dV at fixed state, used to solve the device voltage behind a series resistance."""
    v = np.asarray(v_V, dtype=float)
    diode = 0.0
    if p.phi < 1.0:
        diode = (p.alpha_f_A * p.beta_f_per_V * np.exp(p.beta_f_per_V * v)
                 + p.alpha_r_A * p.beta_r_per_V * np.exp(-p.beta_r_per_V * v))
    return p.phi * conductance_S(p, x) + (1.0 - p.phi) * diode


def equilibrium_state(p: MsdcParams, v_V):
    """The state a device settles to when held at ``v_V`` forever."""
    on, off = rate_on_per_s(p, v_V), rate_off_per_s(p, v_V)
    return on / (on + off)


def state_after_constant_voltage(p: MsdcParams, x0, v_V, duration_s):
    """Exact state after holding the device voltage at ``v_V`` for ``duration_s``.

    dx/dt is linear in x at constant V, so x(t) = x_eq + (x0 - x_eq) exp(-(r_on + r_off) t).
    """
    on, off = rate_on_per_s(p, v_V), rate_off_per_s(p, v_V)
    total = on + off
    x_eq = on / total
    return x_eq + (np.asarray(x0) - x_eq) * np.exp(-total * np.asarray(duration_s))


def zero_bias_relaxation_rate_per_s(p: MsdcParams) -> float:
    """Rate (1/s) at which an unbiased device forgets its state: the retention figure of merit."""
    return float(rate_on_per_s(p, 0.0) + rate_off_per_s(p, 0.0))


def device_voltage_V(p: MsdcParams, x, v_source_V, r_series_ohm: float, iterations: int = 30):
    """Voltage across the device when a source drives it through ``r_series_ohm`` (vectorised).

    Solves v + R_s I(x, v) = v_source. Closed form for the pure memristive path (phi = 1); with diode
    terms, Newton's method on a monotone function, started from the memristive solution.
    """
    v_source = np.asarray(v_source_V, dtype=float)
    linear = v_source / (1.0 + r_series_ohm * p.phi * conductance_S(p, x))
    if p.phi >= 1.0 or r_series_ohm == 0.0:
        return linear
    v = linear
    for _ in range(iterations):
        residual = v + r_series_ohm * current_A(p, x, v) - v_source
        v = v - residual / (1.0 + r_series_ohm * differential_conductance_S(p, x, v))
    return v


# ---- the SPICE form ------------------------------------------------------------------------------
def subckt_name(p: MsdcParams) -> str:
    """ngspice subcircuit name of a medium, e.g. ``msdc_cr``."""
    return f"msdc_{p.medium.lower()}"


def spice_subcircuit(p: MsdcParams) -> SpiceSubcircuit:
    """The ngspice subcircuit of this medium (pins: p n; instance parameter x0 = stored state).

    The state is the voltage of internal node ``x`` on a 1 F capacitor, charged by a B-source with
    dx/dt. A DC source at x0 behind 1 TΩ holds x while the state equation is gated off at time 0, so
    an operating point returns the *stored* state (without the gate, ``.op`` solves dx/dt = 0 and
    silently returns the equilibrium state) and a transient starts from x0 without ``uic``.
    """
    parameters = (("ron", p.r_on_ohm), ("roff", p.r_off_ohm), ("von", p.v_on_V), ("voff", p.v_off_V),
                  ("tau", p.tau_s), ("vt", p.thermal_voltage_V))
    if p.phi < 1.0:
        parameters += (("phi", p.phi), ("af", p.alpha_f_A), ("bf", p.beta_f_per_V), ("ar", p.alpha_r_A),
                       ("br", p.beta_r_per_V))
        current = ("Bm p n I = phi*V(p,n)*(V(x)/ron + (1-V(x))/roff)"
                   " + (1-phi)*(af*(exp(bf*V(p,n))-1) - ar*(exp(-br*V(p,n))-1))")
    else:
        # Without the diode path (phi = 1, as ``current_A`` computes it): two exponentials and their
        # derivatives fewer per device and Newton iteration, ~20 % of an array's operating point.
        # phi and the diode parameters are then not in the parameter list (ngspice ignores an
        # instance parameter the subcircuit does not declare); the comment says so.
        current = "Bm p n I = V(p,n)*(V(x)/ron + (1-V(x))/roff)"
    return SpiceSubcircuit(
        name=subckt_name(p),
        pins=("p", "n"),
        parameters=parameters,
        inputs=(("x0", "vx0", 0.0),),
        body=(
            "Vx0 xs 0 dc {x0}",
            "Rhold x xs 1e12",
            "Cx x 0 1",
            "Bx 0 x I = (time > 0) ? ((1-V(x))/(1+exp(-(V(p,n)-von)/vt))"
            " - V(x)/(1+exp((V(p,n)+voff)/vt)))/tau : 0",
            current,
        ),
        comments=(
            f"M-SDC memristor, medium {p.medium}: mean metastable-switch model (Knowm), generalized form.",
            p.provenance,
            "Pins: p (top electrode) n (bottom electrode). Positive V(p,n) drives x toward ON.",
            "Internal node x holds the state in [0,1]. Set the stored state with x0 (or alter v.<inst>.vx0).",
        ) + (() if p.phi < 1.0 else
             ("phi = 1: no diode path, so no phi/af/bf/ar/br parameters (a preset with phi < 1 writes them).",)),
        state_node="x",
    )


# ---- integration under a driven waveform -------------------------------------------------------------
def simulate_waveform(p: MsdcParams, x0: float, t_s, v_source_V, r_series_ohm: float = 0.0,
                      rtol: float = 1e-8, atol: float = 1e-10):
    """Drive a device from state ``x0`` with a piecewise-linear source through ``r_series_ohm``:
    ``(x, v_device_V, i_A)`` at the waveform's times (``base.simulate_waveform``; diode terms
    included, the device voltage solved by ``device_voltage_V``)."""
    from .base import simulate_waveform as simulate

    return simulate(p, x0, t_s, v_source_V, r_series_ohm, rtol, atol)
