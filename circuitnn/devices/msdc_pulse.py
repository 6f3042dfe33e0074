"""The M-SDC pulse response in closed form: a programming pulse through a series resistance, vectorised.

The circuit is the programming path's: generator ─ R_series (driver, switch, sense) ─ device.
The generator's waveform is ``PulseSpec``'s trapezoid: 0 V for one edge time, a linear rise over
one edge, the flat top ``width``, a linear fall over one edge, 0 V for one more edge. With phi = 1
the device voltage is the divider ``v = s / (1 + R G(x))`` of the source voltage s, and

    dx/dt = (1 − x) r_on(v) − x r_off(v)          (devices/msdc.py)

is linear in x at fixed v. The integrator:

* 0 V segments (delay, settle): exact (the closed form of ``msdc.state_after_constant_voltage``);
  no energy.
* Rise, flat top, fall: sub-steps of an exponential integrator. Over a sub-step with v linear in
  time the rate integrals have a closed form (∫ sigmoid = softplus, as in ``devices/fit.py``), so
  x₁ = x₀ e^{−B} + A (1 − e^{−B})/B exactly for a given v(t). The device voltage depends on x
  through the divider: a predictor takes v at the start state, a corrector takes v at both ends
  from the predicted end state (Heun). The coupling is weak (R·ΔG ≤ 5 % for the presets) and
  vanishes where the rates saturate (|v| well above threshold), so one sub-step per segment is
  usually exact to ~1e-6; ``substeps`` adds sub-steps where the rates are sensitive to the
  divider (amplitudes near threshold), from a bound on the change of ln(rate) per sub-step.
* Energies, ∫ v·i dt (device) and ∫ s·i dt (source), with i = s G/(1 + R G): on the flat top in
  closed form along the sub-step's exponential state trajectory (∫ 1/(a + b e^{−Bt}) dt and
  ∫ 1/(a + b e^{−Bt})² dt are elementary); on the edges exactly for s² and linearly interpolated
  for the conductance factor between the sub-step's ends.

Accuracy (measured over the presets, ±0.3–2 V, widths 0.5 µs–2 ms, edges 10–500 ns): against a
Radau reference at rtol 1e-11, |Δx| ≤ 6e-5 and energies ≤ 4e-4 relative. ngspice integrates the
same circuit with gear-2 at a maximum step of width/50 and takes energies by the trapezoidal rule
on its own time points; at that step its own error is up to ~7e-4 in x per pulse for Cr and
~2.5e-3 in x, ~1 % in energy for C (τ = 1 µs) on 1–5 µs pulses. With the maximum step divided by
20 ngspice agrees with this integrator to ≤ 5e-6 in x and ≤ 2e-4 in energy
(``tests/test_surrogate_chip.py``).
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING

import numpy as np
from scipy.special import expit

from .base import PulseResponse

if TYPE_CHECKING:
    from .msdc import MsdcParams

# Sub-steps per segment are chosen so that ln(rate) changes by at most this much within a sub-step
# through the divider's dependence on x; the Heun step's error then falls as its square.
MAX_LOG_RATE_CHANGE = 0.05
# On a ramp the energy takes the conductance factor as linear in time within a sub-step: keep the
# state's possible movement per sub-step (B_max · dt, B_max = 2/τ) below this.
MAX_RAMP_MOVEMENT = 0.2
MAX_SUBSTEPS = 256


class _ScalarMath:
    """The few non-arithmetic functions the integrator needs, for one device in plain floats.

    A single pulse (the protocol's ``pulse_device``) costs ~15–20 µs this way against ~0.25 ms
    through NumPy, whose per-call overhead dominates on one element.
    """

    exp = staticmethod(math.exp)

    @staticmethod
    def sigmoid(u):
        if u >= 0.0:
            return 1.0 / (1.0 + math.exp(-u))
        e = math.exp(u)
        return e / (1.0 + e)

    @staticmethod
    def softplus(u):
        return u + math.log1p(math.exp(-u)) if u > 0.0 else math.log1p(math.exp(u))

    @classmethod
    def mean_sigmoid(cls, u0, u1):
        """Mean of sigmoid over a straight line from u0 to u1: the softplus divided difference."""
        du = u1 - u0
        if abs(du) < 1e-6:
            return cls.sigmoid(0.5 * (u0 + u1))
        return (cls.softplus(u1) - cls.softplus(u0)) / du

    @staticmethod
    def relax(total):
        """(1 − e^{−B})/B, → 1 as B → 0."""
        return 1.0 - 0.5 * total if total < 1e-12 else -math.expm1(-total) / total

    @staticmethod
    def log1p_ratio(y):
        """log1p(y)/y, → 1 as y → 0."""
        return 1.0 - 0.5 * y if abs(y) < 1e-8 else math.log1p(y) / y

    @staticmethod
    def largest(values):
        return float(values)


class _ArrayMath:
    """The same functions on NumPy arrays (any number of devices). Each takes the short path when
    no element needs its limit form."""

    exp = staticmethod(np.exp)
    sigmoid = staticmethod(expit)

    @staticmethod
    def mean_sigmoid(u0, u1):
        du = u1 - u0
        flat = np.abs(du) < 1e-6
        if not flat.any():
            return (np.logaddexp(0.0, u1) - np.logaddexp(0.0, u0)) / du
        exact = (np.logaddexp(0.0, u1) - np.logaddexp(0.0, u0)) / np.where(flat, 1.0, du)
        return np.where(flat, expit(0.5 * (u0 + u1)), exact)

    @staticmethod
    def relax(total):
        tiny = total < 1e-12
        if not tiny.any():
            return -np.expm1(-total) / total
        return np.where(tiny, 1.0 - 0.5 * total, -np.expm1(-total) / np.where(tiny, 1.0, total))

    @staticmethod
    def log1p_ratio(y):
        small = np.abs(y) < 1e-8
        if not small.any():
            return np.log1p(y) / y
        return np.where(small, 1.0 - 0.5 * y, np.log1p(y) / np.where(small, 1.0, y))

    @staticmethod
    def largest(values):
        return float(np.max(values))


class _Rates:
    """The medium's rate constants as plain floats, and the rate integrals over a sub-step."""

    def __init__(self, p: MsdcParams, m):
        self.m = m
        self.vt, self.v_on, self.v_off, self.tau = p.thermal_voltage_V, p.v_on_V, p.v_off_V, p.tau_s
        on0, off0 = expit(-p.v_on_V / self.vt) / p.tau_s, expit(-p.v_off_V / self.vt) / p.tau_s
        self.total_0V = float(on0 + off0)            # relaxation rate at 0 V (1/s)
        self.x_eq_0V = float(on0 / (on0 + off0))

    def relax_0V(self, x, duration_s):
        """Exact state after ``duration_s`` at 0 V (the delay and settle segments)."""
        return self.x_eq_0V + (x - self.x_eq_0V) * self.m.exp(-self.total_0V * duration_s)

    def ramp(self, v0, v1, dt):
        """(∫ r_on dt, ∫ (r_on + r_off) dt) over dt with v linear from v0 to v1."""
        m, vt = self.m, self.vt
        scale = dt / self.tau
        on = scale * m.mean_sigmoid((v0 - self.v_on) / vt, (v1 - self.v_on) / vt)
        off = scale * m.mean_sigmoid(-(v0 + self.v_off) / vt, -(v1 + self.v_off) / vt)
        return on, on + off

    def constant(self, v, dt):
        """The same at constant v."""
        scale = dt / self.tau
        on = scale * self.m.sigmoid((v - self.v_on) / self.vt)
        return on, on + scale * self.m.sigmoid(-(v + self.v_off) / self.vt)

    def log_rate_slope(self, v):
        """|d ln(r_on + r_off)/dv| at v (1/V): each rate's log-slope weighted by its share."""
        s_on, s_off = self.m.sigmoid((v - self.v_on) / self.vt), self.m.sigmoid(-(v + self.v_off) / self.vt)
        # d ln sigmoid(u)/du = 1 − sigmoid(u).
        return (s_on * (1 - s_on) + s_off * (1 - s_off)) / ((s_on + s_off + 1e-300) * self.vt)


class _Path:
    """Divider quantities for devices with conductance window [g_off, g_on] behind R."""

    def __init__(self, g_on, g_off, r_series):
        self.g_off, self.dg, self.r = g_off, g_on - g_off, r_series

    def conductance(self, x):
        return self.g_off + self.dg * x

    def divider(self, x):
        """v_device / v_source = 1/(1 + R G(x))."""
        return 1.0 / (1.0 + self.r * (self.g_off + self.dg * x))


def _advance(m, x, on, total):
    """x₁ = x₀ e^{−B} + A (1 − e^{−B})/B for the integrals A = ∫ r_on, B = ∫ (r_on + r_off)."""
    return x * m.exp(-total) + on * m.relax(total)


def _heun_step(rates: _Rates, path: _Path, x, s0, s1, dt, ramp: bool):
    """One sub-step with the source linear from s0 to s1: (x₁, ∫r_on, ∫(r_on + r_off)).

    Predictor: the device voltage at both ends from the start state; corrector: the end voltage
    from the predicted end state. v(t) is taken linear in between, for which the integrals are exact.
    """
    m = rates.m
    c0 = path.divider(x)
    v0 = s0 * c0
    on, total = rates.ramp(v0, s1 * c0, dt) if ramp else rates.constant(v0, dt)
    x_pred = _advance(m, x, on, total)
    on, total = rates.ramp(v0, s1 * path.divider(x_pred), dt)
    return _advance(m, x, on, total), on, total


def _edge_energy(path: _Path, x0, x1, s0, s1, dt):
    """(device, source) ∫ s² h dt over a sub-step: s linear, h(x) = G/D², G/D linear between its ends."""
    d0, d1 = path.divider(x0), path.divider(x1)
    h0, h1 = path.conductance(x0) * d0, path.conductance(x1) * d1
    w0 = (3 * s0 * s0 + 2 * s0 * s1 + s1 * s1) * (dt / 12)
    w1 = (s0 * s0 + 2 * s0 * s1 + 3 * s1 * s1) * (dt / 12)
    return w0 * h0 * d0 + w1 * h1 * d1, w0 * h0 + w1 * h1


def _flat_energy(rates: _Rates, path: _Path, x0, on, total, s, dt):
    """(device, source) energies of a constant-source sub-step along x(t) = x_eq + (x₀ − x_eq) e^{−Bt/dt}.

    With D(t) = 1 + R G(t) = a + b u, u = e^{−Bt/dt}: the source power is s² G/D and the device
    power s² G/D². Writing G/D = G_eq/a + ΔG u/(a D) and G/D² = G_eq/a² + ΔG (a u/D² − R G_eq u/D)/a²
    leaves J = ∫ u/D dt and K = ∫ u/D² dt, both elementary and free of cancellation as R → 0.
    """
    m, r = rates.m, path.r
    x_eq = on / (total + 1e-300)
    g_eq = path.conductance(x_eq)
    delta = path.conductance(x0) - g_eq
    a = 1.0 + r * g_eq
    d0 = a + r * delta
    phi1 = dt * m.relax(total)                      # ∫ u dt
    d_end = a + r * delta * m.exp(-total)           # D at the end of the sub-step
    j = phi1 / d0 * m.log1p_ratio(-r * delta * (total / dt) * phi1 / d0)
    k = phi1 / (d_end * d0)
    s2 = s * s
    source = s2 * (g_eq / a * dt + delta / a * j)
    device = s2 * (g_eq * dt + delta * (a * k - r * g_eq * j)) / (a * a)
    return device, source


def substeps(rates: _Rates, path: _Path, amplitude, duration, ramp: bool) -> int:
    """Sub-steps for a segment of ``duration`` with source amplitude ``amplitude``.

    Bound: within the segment x moves by at most min(1, B_max · duration), B_max = 2/τ; the device
    voltage by |s| (c(0) − c(1)) over the whole x range (c = 1/(1 + R G)); ln(rate) by its slope
    times that: the slope at the lowest |v| of a flat top, the steepest (1/V_T) on a ramp, which
    passes through the threshold. Split until each sub-step's share is below MAX_LOG_RATE_CHANGE,
    and a ramp further until x can move at most MAX_RAMP_MOVEMENT per sub-step (edge energies).
    """
    m = rates.m
    s = abs(amplitude)
    c_low = path.divider(1.0)
    swing = s * abs(path.divider(0.0) - c_low)
    if ramp:
        slope = 1.0 / rates.vt
    else:
        v_low = s * c_low
        slope = rates.log_rate_slope(v_low) + rates.log_rate_slope(-v_low)
    moved = 2.0 / rates.tau * duration
    n = math.ceil(m.largest(slope * swing * (moved / (1.0 + moved))) / MAX_LOG_RATE_CHANGE)
    if ramp:
        n = max(n, math.ceil(m.largest(moved) / MAX_RAMP_MOVEMENT))
    return int(min(MAX_SUBSTEPS, max(1, n)))


@functools.lru_cache(maxsize=64)
def _rates(p: MsdcParams, m) -> _Rates:
    return _Rates(p, m)


def _pulse(m, p: MsdcParams, x, amp, width, edge, g_on, g_off, r):
    """The integrator for one pulse on every device given (floats with ``_ScalarMath``, arrays with
    ``_ArrayMath``): (x_after, device energy, source energy)."""
    rates, path = _rates(p, m), _Path(g_on, g_off, r)
    e_dev = e_src = 0.0
    x = rates.relax_0V(x, edge)                                      # delay: 0 V
    n_edge = substeps(rates, path, amp, edge, ramp=True)
    n_flat = substeps(rates, path, amp, width, ramp=False)
    for start, stop, n, duration in ((0.0, 1.0, n_edge, edge), (1.0, 1.0, n_flat, width),
                                     (1.0, 0.0, n_edge, edge)):
        dt = duration / n
        ramp = start != stop
        for step in range(n):
            s0 = amp * (start + (stop - start) * step / n)
            s1 = amp * (start + (stop - start) * (step + 1) / n)
            x1, on, total = _heun_step(rates, path, x, s0, s1, dt, ramp)
            if ramp:
                dev, src = _edge_energy(path, x, x1, s0, s1, dt)
            else:
                dev, src = _flat_energy(rates, path, x, on, total, amp, dt)
            e_dev = e_dev + dev
            e_src = e_src + src
            x = x1
    x = rates.relax_0V(x, edge)                                      # settle: 0 V
    return x, e_dev, e_src


def apply_pulse(p: MsdcParams, x0: float, amplitude_V: float, width_s: float, edge_s: float,
                r_series_ohm: float, g_on_S: float | None = None, g_off_S: float | None = None):
    """One pulse on one device, in plain floats: (x_after, energy_device_J, energy_source_J)."""
    g_on = p.g_on_S if g_on_S is None else float(g_on_S)
    g_off = p.g_off_S if g_off_S is None else float(g_off_S)
    x, e_dev, e_src = _pulse(_ScalarMath, p, float(x0), float(amplitude_V), float(width_s), float(edge_s),
                             g_on, g_off, float(r_series_ohm))
    return min(max(x, 0.0), 1.0), e_dev, e_src


def apply_pulses(p: MsdcParams, x0, amplitude_V, width_s, edge_s, r_series_ohm,
                 g_on_S=None, g_off_S=None) -> PulseResponse:
    """One trapezoidal pulse per device, all devices at once (arguments broadcast to shape (n,)).

    ``r_series_ohm`` is the path's resistance other than the device; ``g_on_S``/``g_off_S`` the
    devices' window (default: the medium's; arrays for device-to-device variation). The sub-step
    counts are the largest any device of the batch needs.
    """
    g_on = p.g_on_S if g_on_S is None else g_on_S
    g_off = p.g_off_S if g_off_S is None else g_off_S
    arrays = np.broadcast_arrays(*(np.atleast_1d(np.asarray(a, dtype=float))
                                   for a in (x0, amplitude_V, width_s, edge_s, g_on, g_off, r_series_ohm)))
    x, amp, width, edge, g_on, g_off, r = arrays
    x, e_dev, e_src = _pulse(_ArrayMath, p, x, amp, width, edge, g_on, g_off, r)
    return PulseResponse(np.clip(x, 0.0, 1.0), e_dev + np.zeros_like(x), e_src + np.zeros_like(x),
                         4 * edge + width)
