"""Phase-change memory (PCM): the statistical inference model of Nandakumar et al., as used by aihwkit.

Equations (Nandakumar et al., ICECS 2019, fitted on about 1 M IBM PCM devices; aihwkit
``PCMLikeNoiseModel``; see docs/reference/dgc-drift-programming.md §4). With ĝ = g/g_max:

    programming  σ_prog(ĝ) = (c0 + c1 ĝ + c2 ĝ²) µS · g_max/25 µS
                 g_prog = max(g_T + σ_prog N(0,1), 0)
    drift        μ_ν = clip(−0.0155 ln ĝ + 0.0244, 0.049, 0.1)
                 σ_ν = clip(−0.0125 ln ĝ − 0.0059, 0.008, 0.045)      ν = |μ_ν + σ_ν N(0,1)|
                 g_drift(t) = g_prog ((t + t0)/t0)^(−ν)                t: time since end of programming
    read (1/f)   Q_s = min(0.0088 / max(ĝ_prog^0.65, 1e−3), 0.2)
                 σ_nG(t) = Q_s sqrt(ln((t + t0 + t_read)/(2 t_read)))
                 g(t) = g_drift + |g_drift| σ_nG N(0,1), ≥ 0

A weight is stored on one differential pair (§4.1), and global drift compensation (§4.6) rescales a
tile's outputs by one scalar: both are tile techniques, in ``networks/devices.py``. Everything here
is a pure function of a frozen ``PcmParams``; conductances are in siemens, times in seconds, and
every random draw comes from the caller's ``rng``.

Pulse response (OUR design: the references give no PCM pulse physics; see ``PcmPulseParams``).
A deterministic behavioural model of how a programming pulse moves the normalised state g:

    G(g)       = g_min + g (g_max − g_min)                 conductance at a low-field read
    s(u)       = 1/(1 + exp(−u))                           logistic threshold
    r_set(V)   = s((|V| − V_set)/V_w) · s(−(|V| − V_reset)/V_w) / τ_set      crystallisation rate
    r_reset(V) = s((|V| − V_reset)/V_w) / τ_reset                             melt-quench rate
    dg/dt      = (1 − g) r_set(V) − g r_reset(V)           V = device voltage; unipolar (|V|)
    I          = V · G(g) · f                              f = ((t_prog + t0)/t0)^(−ν) · k_read

The extra window s(−(|V| − V_reset)/V_w) on the SET rate is ours: crystals grow between the
crystallisation and the melting temperature, not in the melt, so a long RESET plateau ends near
g = 0 and only a slow falling edge (passing through the SET window) recrystallises. Driven through
a series resistance R_s the device sees V = V_source/(1 + R_s G f) (the I–V is linear at fixed g).

``PcmModel`` puts both behind the device-model contract (``devices/base.py``). Its SPICE form
(``models/pcm.lib``) holds g on a capacitor node exactly like the M-SDC model, so ``.op`` reads the
stored state, and multiplies the conductance by the drift factor of the statistical model with
t_prog and ν as alterable values. Noise is never simulated in SPICE: ν and read noise are sampled
here in NumPy and passed in as instance values (nu, k_read).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
from scipy.special import expit

from ..errors import ConfigError
from ..validation import check_range, is_real
from .base import LinearConductance, Retention, SpiceSubcircuit, TwoRateModel

# The polynomial coefficients were fitted with conductances in µS at g_max = 25 µS.
_FIT_G_MAX_S = 25e-6
_MICRO = 1e-6
_G_HAT_FLOOR = 1e-7           # keeps ln ĝ finite for devices at g_min = 0


@dataclass(frozen=True)
class PcmParams:
    """Parameters of the PCM statistical model. SI units in the names.

    ``prog_noise_coeffs`` are (c0, c1, c2) of σ_prog in µS as a polynomial of ĝ = g/g_max, as fitted
    at g_max = 25 µS; for another ``g_max_S`` σ_prog is multiplied by g_max_S/25 µS. The three
    ``*_scale`` factors multiply σ_prog, ν and the read-noise σ (1 = the published model, 0 = off).
    """

    g_max_S: float = 25e-6
    g_min_S: float = 0.0
    t0_s: float = 20.0
    t_read_s: float = 250e-9
    prog_noise_coeffs: tuple[float, float, float] = (0.26348, 1.9650, -1.1731)
    prog_noise_scale: float = 1.0
    drift_scale: float = 1.0
    read_noise_scale: float = 1.0
    provenance: str = ("Nandakumar et al., ICECS 2019 (about 1 M IBM PCM devices); equations and "
                       "defaults as in aihwkit PCMLikeNoiseModel; values from "
                       "docs/reference/dgc-drift-programming.md §4")

    def __post_init__(self) -> None:
        check_range("pcm.g_max_S", self.g_max_S, 0.0, 1e-2)
        if not (_is_real(self.g_min_S) and 0.0 <= self.g_min_S < self.g_max_S):
            raise ConfigError("pcm.g_min_S", self.g_min_S, f"[0, g_max_S = {self.g_max_S:g})")
        check_range("pcm.t0_s", self.t0_s, 0.0, math.inf)
        check_range("pcm.t_read_s", self.t_read_s, 0.0, math.inf)
        for name in ("prog_noise_scale", "drift_scale", "read_noise_scale"):
            check_range(f"pcm.{name}", getattr(self, name), 0.0, math.inf, True)
        coeffs = self.prog_noise_coeffs
        if not (isinstance(coeffs, tuple) and len(coeffs) == 3 and all(map(_is_real, coeffs))):
            raise ConfigError("pcm.prog_noise_coeffs", coeffs, "a tuple of three finite numbers (µS)")


@dataclass(frozen=True)
class PcmDeviceState:
    """What is fixed at programming time: conductance after programming noise (S) and drift exponent ν.

    Both arrays have the shape of the programmed target array.
    """

    g_prog_S: np.ndarray
    nu: np.ndarray


def _is_real(value) -> bool:
    return is_real(value)


def _check_time(t_s) -> np.ndarray:
    t = np.asarray(t_s, dtype=float)
    if not np.all(np.isfinite(t)) or np.any(t < 0):
        raise ConfigError("t_s", t_s, "[0, inf) seconds since the end of programming")
    return t


# ---- programming ---------------------------------------------------------------------------------
def prog_noise_std_S(p: PcmParams, g_target_S):
    """Standard deviation (S) of programming noise at target conductance(s) ``g_target_S`` (S), same shape."""
    g_hat = np.asarray(g_target_S, dtype=float) / p.g_max_S
    c0, c1, c2 = p.prog_noise_coeffs
    # The polynomial is positive on [0, 1]; the floor only matters for targets outside that range.
    sigma_uS = np.maximum(c0 + c1 * g_hat + c2 * g_hat**2, 0.0)
    return sigma_uS * _MICRO * (p.g_max_S / _FIT_G_MAX_S) * p.prog_noise_scale


def program(p: PcmParams, g_target_S, rng: np.random.Generator):
    """Programmed conductance (S): target plus Gaussian programming noise, clamped at 0 (same shape)."""
    g_target = np.asarray(g_target_S, dtype=float)
    noisy = g_target + prog_noise_std_S(p, g_target) * rng.standard_normal(g_target.shape)
    return np.maximum(noisy, 0.0)


# ---- drift ---------------------------------------------------------------------------------------
def _g_hat_floored(p: PcmParams, g_S) -> np.ndarray:
    return np.maximum(np.asarray(g_S, dtype=float) / p.g_max_S, _G_HAT_FLOOR)


def drift_nu_mean(p: PcmParams, g_S):
    """Mean μ_ν (dimensionless) of the drift exponent at conductance(s) ``g_S`` (S), same shape."""
    return np.clip(-0.0155 * np.log(_g_hat_floored(p, g_S)) + 0.0244, 0.049, 0.1)


def drift_nu_std(p: PcmParams, g_S):
    """Standard deviation σ_ν (dimensionless) of the drift exponent at ``g_S`` (S), same shape."""
    return np.clip(-0.0125 * np.log(_g_hat_floored(p, g_S)) - 0.0059, 0.008, 0.045)


def sample_drift_nu(p: PcmParams, g_target_S, rng: np.random.Generator):
    """One drift exponent ν ≥ 0 per device (same shape as ``g_target_S``, in S).

    aihwkit evaluates μ_ν, σ_ν at the target conductance, so ``conductance_at`` passes the target.
    The normal is folded (|·|), so at low ĝ the mean of ν is slightly above μ_ν.
    """
    g = np.asarray(g_target_S, dtype=float)
    nu = np.abs(drift_nu_mean(p, g) + drift_nu_std(p, g) * rng.standard_normal(g.shape))
    return nu * p.drift_scale


def drift(p: PcmParams, g_prog_S, nu, t_s):
    """Drifted conductance (S) ``t_s`` seconds after the end of programming; arrays broadcast.

    g·((t + t0)/t0)^(−ν): at t = 0 the device is as programmed.
    """
    t = _check_time(t_s)
    return np.asarray(g_prog_S, dtype=float) * ((t + p.t0_s) / p.t0_s) ** (-np.asarray(nu, dtype=float))


# ---- read noise ----------------------------------------------------------------------------------
def read_noise_q(p: PcmParams, g_prog_S):
    """1/f noise amplitude Q_s (dimensionless) at programmed conductance(s) ``g_prog_S`` (S), same shape."""
    g_hat = np.abs(np.asarray(g_prog_S, dtype=float)) / p.g_max_S
    return np.minimum(0.0088 / np.maximum(g_hat**0.65, 1e-3), 0.2)


def read_noise_std_relative(p: PcmParams, g_prog_S, t_s):
    """Relative read-noise σ (fraction of the drifted conductance) ``t_s`` s after programming.

    Q_s·sqrt(ln((t + t_read)/(2 t_read))) with t = t_s + t0: the 1/f spectrum integrated from
    1/t to the read bandwidth 1/(2 t_read). Includes ``read_noise_scale``; arrays broadcast.
    """
    t = _check_time(t_s) + p.t0_s
    factor = np.sqrt(np.log((t + p.t_read_s) / (2.0 * p.t_read_s)))
    return read_noise_q(p, g_prog_S) * factor * p.read_noise_scale


def read(p: PcmParams, g_prog_S, nu, t_s, rng: np.random.Generator):
    """Conductance (S) read ``t_s`` s after programming: drift plus 1/f read noise, clamped at 0.

    Read noise is drawn afresh on every call: the result is one snapshot, not a trajectory.
    """
    g_drift = drift(p, g_prog_S, nu, t_s)
    sigma = read_noise_std_relative(p, g_prog_S, t_s)
    noisy = g_drift + np.abs(g_drift) * sigma * rng.standard_normal(g_drift.shape)
    return np.maximum(noisy, 0.0)


def conductance_at(p: PcmParams, g_target_S, t_s, rng: np.random.Generator,
                   state: PcmDeviceState | None = None) -> tuple[np.ndarray, PcmDeviceState]:
    """Program ``g_target_S`` (S), draw ν, and read at ``t_s`` s; returns (g_S, state).

    Pass the returned ``state`` back in to read the same programmed devices at another time
    (only fresh read noise is drawn then).
    """
    if state is None:
        state = PcmDeviceState(g_prog_S=program(p, g_target_S, rng), nu=sample_drift_nu(p, g_target_S, rng))
    return read(p, state.g_prog_S, state.nu, t_s, rng), state


# ---- pulse response (behavioural, our design) -----------------------------------------------------
SUBCKT_NAME = "pcm"


@dataclass(frozen=True)
class PcmPulseParams:
    """Behavioural pulse response of one PCM cell. SI units in the names.

    These numbers are OUR choices, picked to sit in the ranges usually quoted for mushroom-type
    Ge2Sb2Te5 cells, not fitted to any device (the references give no PCM pulse physics):

    - ``g_max_S``, ``g_min_S``: read conductance of the fully crystalline (SET) and fully amorphous
      (RESET) cell. 25 µS and 0 S are the statistical model's defaults (``PcmParams``), so the state
      g equals its normalised conductance ĝ; a real RESET cell reads ~0.1–1 µS (1–10 MΩ): set
      ``g_min_S`` to model that.
    - ``v_set_V`` = 1.0 V: SET pulses of ~1 V heat the cell above crystallisation but below melting.
    - ``v_reset_V`` = 1.6 V: RESET needs more power to melt (pulses of ~1.5–2 V).
    - ``v_width_V`` = 25 mV: softness of both thresholds. Crystallisation is Arrhenius in temperature
      (∝ V²), so its rate rises by decades within ~0.1 V; 25 mV leaves a 0.2 V read ~14 decades below
      the SET rate and an unbiased cell crystallising at ~2e-11 /s (< 1 % of the window in 10 years).
    - ``tau_set_s`` = 200 ns: growth-limited crystallisation; a ~1 µs SET pulse crystallises fully
      and a 20–50 ns partial-SET pulse moves g by ~10–20 % of the way up (iterative programming).
    - ``tau_reset_s`` = 10 ns: the molten region forms within ns; a RESET pulse of tens of ns
      amorphises fully, a few-ns pulse only partially.
    - ``v_read_V`` = 0.2 V: read voltage, far below the SET threshold, so a read never disturbs.
    """

    g_max_S: float = 25e-6
    g_min_S: float = 0.0
    v_set_V: float = 1.0
    v_reset_V: float = 1.6
    v_width_V: float = 0.025
    tau_set_s: float = 200e-9
    tau_reset_s: float = 10e-9
    v_read_V: float = 0.2
    provenance: str = ("circuitnn design, not a fit: behavioural SET/RESET thresholds and time "
                       "constants in the usual GST ranges; conductance window = PcmParams defaults "
                       "(aihwkit, docs/reference/dgc-drift-programming.md section 4)")

    def __post_init__(self) -> None:
        check_range("pcm.g_max_S", self.g_max_S, 0.0, 1e-2)
        if not (_is_real(self.g_min_S) and 0.0 <= self.g_min_S < self.g_max_S):
            raise ConfigError("pcm.g_min_S", self.g_min_S, f"[0, g_max_S = {self.g_max_S:g})")
        check_range("pcm.v_set_V", self.v_set_V, 0.0, 10.0)
        if not (_is_real(self.v_reset_V) and self.v_set_V < self.v_reset_V <= 10.0):
            raise ConfigError("pcm.v_reset_V", self.v_reset_V,
                              f"(v_set_V = {self.v_set_V:g}, 10]: RESET must need more than SET")
        # Below 1 mV a threshold is a step that no transient time step resolves.
        check_range("pcm.v_width_V", self.v_width_V, 1e-3, 1.0, True)
        check_range("pcm.tau_set_s", self.tau_set_s, 1e-12, 1.0, True)
        check_range("pcm.tau_reset_s", self.tau_reset_s, 1e-12, 1.0, True)
        if not (_is_real(self.v_read_V) and 0.0 < self.v_read_V < self.v_set_V):
            raise ConfigError("pcm.v_read_V", self.v_read_V,
                              f"(0, v_set_V = {self.v_set_V:g}): a read must stay below the SET threshold")

    @property
    def r_set_ohm(self) -> float:
        """Read resistance of the fully SET (crystalline) cell."""
        return 1.0 / self.g_max_S

    @property
    def r_reset_ohm(self) -> float:
        """Read resistance of the fully RESET (amorphous) cell; infinite when ``g_min_S`` is 0."""
        return 1.0 / self.g_min_S if self.g_min_S > 0 else math.inf

    def replace(self, **changes) -> PcmPulseParams:
        """A copy with some fields changed (validated again)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return PcmPulseParams(**values)


def drift_factor(p: PcmParams, nu, t_s):
    """((t + t0)/t0)^(−ν): what drift multiplies the programmed conductance by ``t_s`` s later.

    Arrays broadcast; this is ``drift`` with g_prog = 1, the number SPICE multiplies G by.
    """
    return drift(p, 1.0, nu, t_s)


def conductance_S(pp: PcmPulseParams, g):
    """Read conductance G(g) = g_min + g (g_max − g_min) in S, as programmed (no drift)."""
    return pp.g_min_S + np.asarray(g, dtype=float) * (pp.g_max_S - pp.g_min_S)


def state_from_conductance(pp: PcmPulseParams, g_S):
    """The state g whose conductance is ``g_S`` (S): inverse of ``conductance_S``.

    A conductance from ``program`` (programming noise) may map slightly outside [0, 1]; the pulse
    equations stay bounded for such states and pull them back into [0, 1] when a pulse acts.
    """
    return (np.asarray(g_S, dtype=float) - pp.g_min_S) / (pp.g_max_S - pp.g_min_S)


def set_rate_per_s(pp: PcmPulseParams, v_V):
    """Crystallisation rate r_set (1/s) at device voltage ``v_V``: SET window, any polarity."""
    magnitude = np.abs(np.asarray(v_V, dtype=float))
    return (expit((magnitude - pp.v_set_V) / pp.v_width_V)
            * expit(-(magnitude - pp.v_reset_V) / pp.v_width_V) / pp.tau_set_s)


def reset_rate_per_s(pp: PcmPulseParams, v_V):
    """Melt-quench (amorphisation) rate r_reset (1/s) at device voltage ``v_V``, any polarity."""
    magnitude = np.abs(np.asarray(v_V, dtype=float))
    return expit((magnitude - pp.v_reset_V) / pp.v_width_V) / pp.tau_reset_s


def state_rate_per_s(pp: PcmPulseParams, g, v_V):
    """dg/dt (1/s) = (1 − g) r_set(V) − g r_reset(V); arrays broadcast."""
    g = np.asarray(g, dtype=float)
    return (1.0 - g) * set_rate_per_s(pp, v_V) - g * reset_rate_per_s(pp, v_V)


def current_A(pp: PcmPulseParams, g, v_V, conductance_factor=1.0):
    """Device current (A) from + to − at device voltage ``v_V``.

    ``conductance_factor`` multiplies G(g): the drift factor times the read-noise factor k_read.
    """
    return np.asarray(v_V, dtype=float) * conductance_S(pp, g) * conductance_factor


def device_voltage_V(pp: PcmPulseParams, g, v_source_V, r_series_ohm: float = 0.0,
                     conductance_factor=1.0):
    """Voltage across the device driven through ``r_series_ohm``: V_source/(1 + R_s G f) (exact)."""
    g_eff = conductance_S(pp, g) * conductance_factor
    return np.asarray(v_source_V, dtype=float) / (1.0 + r_series_ohm * g_eff)


def equilibrium_state(pp: PcmPulseParams, v_V):
    """The state a cell settles to when held at ``v_V``: r_set/(r_set + r_reset) (0 where both vanish)."""
    on, off = set_rate_per_s(pp, v_V), reset_rate_per_s(pp, v_V)
    total = on + off
    return np.divide(on, total, out=np.zeros_like(total), where=total > 0)


def state_after_constant_voltage(pp: PcmPulseParams, g0, v_V, duration_s):
    """Exact state after holding the device voltage at ``v_V`` for ``duration_s`` (arrays broadcast).

    At constant V, dg/dt = a (1 − g) − b g is linear in g: g(t) = g0 e^(−kt) + a (1 − e^(−kt))/k
    with k = a + b, written so that k → 0 (an unbiased cell) is exact too.
    """
    a, b = set_rate_per_s(pp, v_V), reset_rate_per_s(pp, v_V)
    k = a + b
    t = np.asarray(duration_s, dtype=float)
    kt = k * t
    # (1 − e^(−kt))/k, with its limit t where kt is tiny.
    safe_k = np.where(kt > 1e-12, k, 1.0)
    growth = np.where(kt > 1e-12, -np.expm1(-kt) / safe_k, t)
    return np.asarray(g0, dtype=float) * np.exp(-kt) + a * growth


def state_after_pulse(pp: PcmPulseParams, g0, amplitude_V: float, width_s: float, edge_s: float,
                      r_series_ohm: float = 0.0, conductance_factor=1.0, substeps: int = 400):
    """State after one trapezoidal source pulse (linear rise ``edge_s``, flat ``width_s``, linear fall).

    Vectorised over ``g0`` (any shape). Each segment is split into ``substeps`` pieces; on each piece
    the source voltage is taken at its midpoint and the device voltage at the current state, and the
    exact constant-voltage solution advances g (an exponential integrator: stable however stiff the
    RESET rate). A flat top without series resistance is one exact step.
    """
    if not (width_s >= 0 and edge_s >= 0 and substeps >= 1):
        raise ValueError("width_s and edge_s must be ≥ 0 s and substeps ≥ 1")
    g = np.array(g0, dtype=float)
    segments = ((0.0, amplitude_V, edge_s), (amplitude_V, amplitude_V, width_s), (amplitude_V, 0.0, edge_s))
    for v_start, v_end, duration in segments:
        if duration <= 0:
            continue
        pieces = 1 if (v_start == v_end and r_series_ohm == 0.0) else substeps
        dt = duration / pieces
        for piece in range(pieces):
            v_source = v_start + (v_end - v_start) * (piece + 0.5) / pieces
            v_device = device_voltage_V(pp, g, v_source, r_series_ohm, conductance_factor)
            g = state_after_constant_voltage(pp, g, v_device, dt)
    return g


def simulate_waveform(pp: PcmPulseParams, g0: float, t_s, v_source_V, r_series_ohm: float = 0.0,
                      conductance_factor: float = 1.0, rtol: float = 1e-8, atol: float = 1e-10):
    """Drive a cell from state ``g0`` with a piecewise-linear source through ``r_series_ohm``.

    ``t_s`` (increasing, s) and ``v_source_V`` give the source's corner points; the state is
    integrated with scipy's LSODA (the RESET rate makes it stiff) and returned at those times.
    Returns ``(g, v_device_V, i_A)``, each shaped like ``t_s``.
    """
    from scipy.integrate import solve_ivp

    t = np.asarray(t_s, dtype=float)
    v_source = np.asarray(v_source_V, dtype=float)
    if t.ndim != 1 or t.shape != v_source.shape or t.size < 2 or np.any(np.diff(t) <= 0):
        raise ValueError("t_s and v_source_V must be 1-D, equally long, and t_s strictly increasing")

    def rate(time, state):
        v_source_now = np.interp(time, t, v_source)
        v_dev = device_voltage_V(pp, state, v_source_now, r_series_ohm, conductance_factor)
        return state_rate_per_s(pp, state, v_dev)

    # Never step over a corner of the waveform: the shortest segment bounds the step.
    solution = solve_ivp(rate, (t[0], t[-1]), [float(g0)], method="LSODA", t_eval=t,
                         max_step=float(np.min(np.diff(t))), rtol=rtol, atol=atol)
    if not solution.success:
        raise RuntimeError(f"state integration failed: {solution.message}")
    # The dynamics never leave [min(g0, 0), max(g0, 1)]; the clip only removes solver overshoot.
    g = np.clip(solution.y[0], min(float(g0), 0.0), max(float(g0), 1.0))
    v_dev = device_voltage_V(pp, g, v_source, r_series_ohm, conductance_factor)
    return g, v_dev, current_A(pp, g, v_dev, conductance_factor)


# ---- the device model --------------------------------------------------------------------------------
@dataclass(frozen=True)
class PcmModel(LinearConductance, TwoRateModel):
    """A PCM cell on the chip: the behavioural pulse response (``PcmPulseParams``) and the statistical
    drift and read-noise model (``PcmParams``) in one parameter set, behind the device-model contract.

    State g in [0, 1]; read conductance G(g) = g_min + g (g_max − g_min). The cell ages: each pulse
    draws a drift exponent ν at the conductance it leaves (``sample_drift_nu``), and a read ``t`` s
    after that pulse sees G·((t + t0)/t0)^(−ν)·k_read, k_read = max(1 + σ_nG(t) N(0,1), 0) (the 1/f
    read noise; ``read_noise_std_relative``). Programming noise (``prog_noise_*``) is not drawn on
    the chip: there the write-verify loop and its reads set the programming error.
    """

    family = "pcm"
    # Defaults: those of the two parameter sets it joins (one source for every number).
    medium: str = "PCM"
    g_max_S: float = PcmPulseParams.g_max_S
    g_min_S: float = PcmPulseParams.g_min_S
    v_set_V: float = PcmPulseParams.v_set_V
    v_reset_V: float = PcmPulseParams.v_reset_V
    v_width_V: float = PcmPulseParams.v_width_V
    tau_set_s: float = PcmPulseParams.tau_set_s
    tau_reset_s: float = PcmPulseParams.tau_reset_s
    t0_s: float = PcmParams.t0_s
    t_read_s: float = PcmParams.t_read_s
    prog_noise_coeffs: tuple[float, float, float] = PcmParams.prog_noise_coeffs
    prog_noise_scale: float = PcmParams.prog_noise_scale
    drift_scale: float = PcmParams.drift_scale
    read_noise_scale: float = PcmParams.read_noise_scale
    provenance: str = ("pulse response: circuitnn design, not a fit (GST-like thresholds and time "
                       "constants); drift and read noise: Nandakumar et al., ICECS 2019, as in aihwkit "
                       "PCMLikeNoiseModel (docs/reference/dgc-drift-programming.md section 4)")
    retention: Retention = Retention()

    def __post_init__(self) -> None:
        self.pulse_params  # noqa: B018 - building both validates every field, with its name
        self.statistics  # noqa: B018

    @property
    def pulse_params(self) -> PcmPulseParams:
        return PcmPulseParams(g_max_S=self.g_max_S, g_min_S=self.g_min_S, v_set_V=self.v_set_V,
                              v_reset_V=self.v_reset_V, v_width_V=self.v_width_V, tau_set_s=self.tau_set_s,
                              tau_reset_s=self.tau_reset_s, v_read_V=min(0.2, 0.5 * self.v_set_V),
                              provenance=self.provenance)

    @property
    def statistics(self) -> PcmParams:
        return PcmParams(g_max_S=self.g_max_S, g_min_S=self.g_min_S, t0_s=self.t0_s, t_read_s=self.t_read_s,
                         prog_noise_coeffs=tuple(self.prog_noise_coeffs), prog_noise_scale=self.prog_noise_scale,
                         drift_scale=self.drift_scale, read_noise_scale=self.read_noise_scale)

    @property
    def rate_voltage_scale_V(self) -> float:
        return self.v_width_V

    # -- the contract ---------------------------------------------------------------------------------
    @property
    def g_low_S(self) -> float:
        return self.g_min_S

    @property
    def g_high_S(self) -> float:
        return self.g_max_S

    def current_A(self, x, v_V):
        return current_A(self.pulse_params, x, v_V)

    def rates_per_s(self, v_V):
        pp = self.pulse_params
        return set_rate_per_s(pp, v_V), reset_rate_per_s(pp, v_V)

    def max_time_step_s(self, width_s: float, edge_s: float) -> float:
        # The thresholds are a few tens of mV wide: an edge is cut into at least 20 steps.
        return min(width_s / 50.0, edge_s / 20.0)

    ages = True

    def draw_programming_memory(self, x_after, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {"nu": sample_drift_nu(self.statistics, self.conductance_S(x_after), rng)}

    def read_inputs(self, x, memory, since_s, rng):
        since = np.maximum(np.asarray(since_s, dtype=float), 0.0)
        nu = np.asarray(memory.get("nu", 0.0), dtype=float)
        k_read = np.ones(np.broadcast_shapes(np.shape(x), since.shape, nu.shape))
        if rng is not None and self.read_noise_scale > 0:
            sigma = self.read_noise_std_relative(x, since)
            k_read = np.maximum(1.0 + sigma * rng.standard_normal(k_read.shape), 0.0)
        return {"nu": nu + 0.0 * k_read, "t_prog": since + 0.0 * k_read, "k_read": k_read}

    def conductance_factor(self, inputs):
        return drift_factor(self.statistics, inputs["nu"], inputs["t_prog"]) * inputs["k_read"]

    def programmed_conductance_S(self, g_target_S, rng):
        """Target plus the fitted programming noise σ_prog(ĝ) (``program``), clamped at 0."""
        if self.prog_noise_scale == 0:
            return np.asarray(g_target_S, dtype=float)
        return program(self.statistics, g_target_S, rng)

    def read_noise_std_relative(self, x, since_s):
        return read_noise_std_relative(self.statistics, self.conductance_S(x), since_s)

    def spice_subcircuit(self) -> SpiceSubcircuit:
        """The ngspice subcircuit ``pcm`` (pins: p n) with the pulse response and drift above.

        Instance inputs: ``g0`` stored state, ``nu`` drift exponent, ``t_prog`` time since the end of
        programming (s), ``k_read`` read-noise factor (1 = noiseless), each the value of a DC source
        inside the instance, so it can be changed between runs without reloading (``alter
        v.<inst>.vg0 dc=…``, ``vnu``, ``vtp``, ``vkr``). The state is held like the M-SDC model's, so
        ``.op`` returns the *stored* state and a transient starts from g0 without ``uic``. The drift
        clock does not advance during a transient (µs against t0 = 20 s). Noise is not simulated in
        SPICE: it is sampled in NumPy and passed in as nu and k_read.
        """
        # Logistics written as divisions: x/(1+exp(-u)) = x·s(u). Names avoid ngspice keywords (gmin).
        above_set = "/(1+exp(-(abs(V(p,n))-vset)/vw))"
        above_reset = "/(1+exp(-(abs(V(p,n))-vreset)/vw))"
        below_reset = "/(1+exp((abs(V(p,n))-vreset)/vw))"
        return SpiceSubcircuit(
            name=self.family if self.medium.lower() == self.family else f"{self.family}_{self.medium.lower()}",
            pins=("p", "n"),
            parameters=(("glo", self.g_min_S), ("ghi", self.g_max_S), ("vset", self.v_set_V),
                        ("vreset", self.v_reset_V), ("vw", self.v_width_V), ("tauset", self.tau_set_s),
                        ("taureset", self.tau_reset_s), ("t0", self.t0_s)),
            inputs=(("g0", "vg0", 0.0), ("nu", "vnu", 0.0), ("t_prog", "vtp", 0.0), ("k_read", "vkr", 1.0)),
            body=(
                "Vg0 gs 0 dc {g0}",
                "Rhold g gs 1e12",
                "Cg g 0 1",
                "Vnu nuv 0 dc {nu}",
                "Vtp tpv 0 dc {t_prog}",
                "Vkr krv 0 dc {k_read}",
                f"Bg 0 g I = (time > 0) ? ((1-V(g)){above_set}{below_reset}/tauset"
                f" - V(g){above_reset}/taureset) : 0",
                "Bm p n I = V(p,n)*(glo+V(g)*(ghi-glo))*exp(-V(nuv)*ln(1+V(tpv)/t0))*V(krv)",
            ),
            comments=(
                f"PCM cell, preset {self.medium}: behavioural SET/RESET pulse response (circuitnn design) "
                "and power-law drift.",
                self.provenance,
                "Pins: p n (unipolar: either polarity programs). Internal node g holds the state in [0,1].",
                "G = (glo + g*(ghi-glo)) * ((t_prog+t0)/t0)^(-nu) * k_read; noise is sampled outside SPICE.",
            ),
            state_node="g",
        )


PRESET_ORDER = 10
PRESETS = (PcmModel(),)
