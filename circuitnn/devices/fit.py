"""Fitting M-SDC (mean metastable-switch) parameters to a measured I–V trace.

The model is the one in ``msdc``; the optimiser is ``scipy.optimize.least_squares`` on the current
residual, with positive quantities fitted as logarithms (so a step is a relative change and a
resistance can never turn negative) inside physical-sanity bounds. The device's state at the first
sample is unknown in a measurement, so it is fitted too (in [0, 1]) unless given.

Weighting. Each residual is divided by |i_measured| + 1e-3 · (the trace's RMS current) by default
("relative"), or by the RMS current alone ("scale"). With a 100x on/off window (the C medium) the
OFF-state current is ~1 % of the trace's scale, so a uniform weight lets the noisy ON-state samples
decide R_off: with 2 % proportional noise on the SPICE traces of tests/test_fit.py (20 seeds),
R_off came out up to 12 % off for C (5 % for Cr) under "scale" and within 0.6 % under "relative".
The floor keeps samples near the loop's pinch point (i ≈ 0) from dominating.

Fast state integration. ``msdc.simulate_waveform`` (LSODA, a Python callback per step) takes
~0.3–1 s for a 1 000-point trace, too slow for the few hundred model evaluations of a fit. When the
device voltage is known at every sample (no series resistance), the state equation
``dx/dt = r_on(V) − (r_on(V) + r_off(V)) x`` is linear in x, and over a segment where V is linear
in t the rate integrals have a closed form (∫ sigmoid = softplus):

    A = ∫ r_on dt,   B = ∫ (r_on + r_off) dt,   x₁ = x₀ e^{−B} + (A/B)(1 − e^{−B}).

The step is exact whenever r_on/(r_on + r_off) is constant over the segment; for this model that
ratio is a step function of V (≈0 below (V_on − V_off)/2, ≈1 above) and only changes where both
rates are ~e^{−(V_on+V_off)/2V_T} ≈ 0, so the scheme agrees with LSODA to ~1e-9 in x even with
segments longer than τ (tests/test_fit.py checks it). The whole recurrence is one vectorised
cumulative sum. With a series resistance the device voltage depends on x, so a scalar loop with a
predictor–corrector step (Heun) on the same closed form is used instead.

File I/O (``load_trace_csv``, ``write_fit_report``) sits at the end of this module, apart from the
pure functions, because the CLI's ``circuitnn fit`` imports them from here.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
from scipy.optimize import least_squares
from scipy.special import expit

from ..errors import CircuitnnError, ConfigError
from ..validation import check_range, read_bounded_text
from . import msdc
from .msdc import MODEL_FIELDS, MsdcParams

DEFAULT_FIT_FIELDS = ("r_on_ohm", "r_off_ohm", "v_on_V", "v_off_V", "tau_s")
STATE = "x0"  # name of the fitted initial state in FitResult.values
MIN_TRACE_POINTS = 10


class TraceError(CircuitnnError, ValueError):
    """A measured trace cannot be used: names the file, row and column to correct."""


class FitError(CircuitnnError, RuntimeError):
    """The fit could not produce a valid parameter set; says what to change."""


# ---- fast state integration ------------------------------------------------------------------
class _Model(NamedTuple):
    """The model's numbers as plain floats, so trial points need not pass MsdcParams' checks."""

    r_on_ohm: float
    r_off_ohm: float
    v_on_V: float
    v_off_V: float
    tau_s: float
    thermal_voltage_V: float
    phi: float
    alpha_f_A: float
    beta_f_per_V: float
    alpha_r_A: float
    beta_r_per_V: float

    @classmethod
    def of(cls, p: MsdcParams, **changes) -> _Model:
        values = {f: getattr(p, f) for f in MODEL_FIELDS if f != "temperature_K"}
        temperature_K = changes.pop("temperature_K", p.temperature_K)
        values.update(changes)
        return cls(thermal_voltage_V=msdc.BOLTZMANN_OVER_CHARGE_V_PER_K * temperature_K, **values)


def _mean_sigmoid(u0, u1):
    """Mean of sigmoid(u) over a straight line from u0 to u1: the softplus divided difference."""
    du = u1 - u0
    flat = np.abs(du) < 1e-6
    exact = (np.logaddexp(0.0, u1) - np.logaddexp(0.0, u0)) / np.where(flat, 1.0, du)
    return np.where(flat, expit(0.5 * (u0 + u1)), exact)


def _step_coefficients(m: _Model, v0, v1, dt):
    """x₁ = decay·x₀ + gain over segments (v0 → v1 linear in time over dt); arrays broadcast."""
    vt = m.thermal_voltage_V
    on = dt / m.tau_s * _mean_sigmoid((v0 - m.v_on_V) / vt, (v1 - m.v_on_V) / vt)
    off = dt / m.tau_s * _mean_sigmoid(-(v0 + m.v_off_V) / vt, -(v1 + m.v_off_V) / vt)
    total = on + off
    # (1 − e^{−B})/B → 1 as B → 0 (far below both thresholds the rates underflow).
    tiny = total < 1e-12
    relax = np.where(tiny, 1.0 - 0.5 * total, -np.expm1(-total) / np.where(tiny, 1.0, total))
    return total, on * relax


def _integrate_voltage_driven(m: _Model, x0: float, t, v) -> np.ndarray:
    """State at every sample when the device voltage ``v`` is known (piecewise linear in t)."""
    total, gain = _step_coefficients(m, v[:-1], v[1:], np.diff(t))
    # x_n = e^{−L_n} (x_0 + Σ_{k<n} gain_k e^{L_{k+1}}), L = cumulative Σ total. Every term is
    # positive (no cancellation); the sum restarts whenever L has grown by 500 so e^{L} stays finite.
    depth = np.concatenate([[0.0], np.cumsum(total)])
    x = np.empty_like(depth)
    x[0] = x0
    start, n = 0, depth.size
    while start < n - 1:
        end = min(int(np.searchsorted(depth, depth[start] + 500.0, side="right")) - 1, n - 1)
        if end <= start + 1:  # one step relaxes by more than e^{-500}: apply it directly
            x[start + 1] = x[start] * math.exp(-total[start]) + gain[start]
            start += 1
            continue
        rel = depth[start + 1:end + 1] - depth[start]
        x[start + 1:end + 1] = np.exp(-rel) * (x[start] + np.cumsum(gain[start:end] * np.exp(rel)))
        start = end
    return np.clip(x, 0.0, 1.0)


def _device_current(m: _Model, x, v):
    memristive = m.phi * v * (x / m.r_on_ohm + (1.0 - x) / m.r_off_ohm)
    if m.phi >= 1.0:
        return memristive
    diode = m.alpha_f_A * np.expm1(m.beta_f_per_V * v) - m.alpha_r_A * np.expm1(-m.beta_r_per_V * v)
    return memristive + (1.0 - m.phi) * diode


def _device_voltage(m: _Model, x: float, v_source: float, r_series_ohm: float) -> float:
    """Scalar solve of v + R_s I(x, v) = v_source (closed form for phi = 1, else Newton)."""
    g = x / m.r_on_ohm + (1.0 - x) / m.r_off_ohm
    v = v_source / (1.0 + r_series_ohm * m.phi * g)
    if m.phi >= 1.0:
        return v
    for _ in range(30):
        # Clamped exponents: a wild trial point must give a large number, not an OverflowError.
        ef = math.exp(min(m.beta_f_per_V * v, 700.0))
        er = math.exp(min(-m.beta_r_per_V * v, 700.0))
        i = m.phi * v * g + (1.0 - m.phi) * (m.alpha_f_A * (ef - 1.0) - m.alpha_r_A * (er - 1.0))
        di = m.phi * g + (1.0 - m.phi) * (m.alpha_f_A * m.beta_f_per_V * ef
                                          + m.alpha_r_A * m.beta_r_per_V * er)
        delta = (v + r_series_ohm * i - v_source) / (1.0 + r_series_ohm * di)
        v -= delta
        if abs(delta) < 1e-15 + 1e-12 * abs(v):
            break
    return v


def _softplus(u: float) -> float:
    return u + math.log1p(math.exp(-u)) if u > 0.0 else math.log1p(math.exp(u))


def _sigmoid(u: float) -> float:
    if u >= 0.0:
        return 1.0 / (1.0 + math.exp(-u))
    e = math.exp(u)
    return e / (1.0 + e)


def _mean_sigmoid_scalar(u0: float, u1: float) -> float:
    du = u1 - u0
    if abs(du) < 1e-6:
        return _sigmoid(0.5 * (u0 + u1))
    return (_softplus(u1) - _softplus(u0)) / du


def _step_scalar(m: _Model, x: float, v0: float, v1: float, dt: float) -> float:
    """The closed-form update of ``_step_coefficients`` for one segment, in plain floats."""
    vt = m.thermal_voltage_V
    on = dt / m.tau_s * _mean_sigmoid_scalar((v0 - m.v_on_V) / vt, (v1 - m.v_on_V) / vt)
    off = dt / m.tau_s * _mean_sigmoid_scalar(-(v0 + m.v_off_V) / vt, -(v1 + m.v_off_V) / vt)
    total = on + off
    relax = 1.0 - 0.5 * total if total < 1e-12 else -math.expm1(-total) / total
    return min(max(x * math.exp(-total) + on * relax, 0.0), 1.0)


# With a series resistance the explicit treatment of the x → V coupling limits the step: the error
# falls as (step/tau)^2 and is ~1e-4 in x at tau/50, about what ngspice reaches at reltol=1e-5
# (tests/test_fit.py checks it against LSODA).
SERIES_STEPS_PER_TAU = 50
MAX_SERIES_SUBSTEPS = 64


def series_substeps(t_s, tau_s: float) -> np.ndarray:
    """Steps per sample interval that keep every series-resistance step below tau/50 (int array)."""
    steps = np.ceil(np.diff(np.asarray(t_s, dtype=float)) * SERIES_STEPS_PER_TAU / tau_s)
    return np.clip(steps, 1, MAX_SERIES_SUBSTEPS).astype(int)


def _integrate_series(m: _Model, x0: float, t, v_source, r_series_ohm: float, substeps: int):
    """State and device voltage behind a series resistance: Heun steps on the closed-form update.

    The device voltage now depends on x, so the recurrence is no longer linear: a scalar loop in
    plain floats (~3 µs per step; NumPy on scalars would be ~10x slower), ``substeps`` steps per
    sample interval (an int array) with the source linear in between.
    """
    n = t.size
    times, sources = t.tolist(), v_source.tolist()
    x = [0.0] * n
    v_dev = [0.0] * n
    x[0] = xk = float(x0)
    v_dev[0] = vk = _device_voltage(m, xk, sources[0], r_series_ohm)
    for k, steps in enumerate(substeps.tolist()):
        dt, start, rise = (times[k + 1] - times[k]) / steps, sources[k], sources[k + 1] - sources[k]
        for fraction in [(j + 1) / steps for j in range(steps)]:
            source = start + fraction * rise
            # Predictor: the step's end voltage as if x stayed at x_k; corrector: at the predicted x.
            x_pred = _step_scalar(m, xk, vk, _device_voltage(m, xk, source, r_series_ohm), dt)
            xk = _step_scalar(m, xk, vk, _device_voltage(m, x_pred, source, r_series_ohm), dt)
            vk = _device_voltage(m, xk, source, r_series_ohm)
        x[k + 1], v_dev[k + 1] = xk, vk
    return np.array(x), np.array(v_dev)


def _simulate(m: _Model, x0: float, t, v, r_series_ohm: float, substeps=None):
    if r_series_ohm > 0.0:
        x, v_dev = _integrate_series(m, x0, t, v, r_series_ohm, substeps)
    else:
        x, v_dev = _integrate_voltage_driven(m, x0, t, v), v
    return x, v_dev, _device_current(m, x, v_dev)


def simulate_waveform_fast(p: MsdcParams, x0: float, t_s, v_V, r_series_ohm: float = 0.0):
    """``msdc.simulate_waveform`` for sampled traces, ~100× faster: ``(x, v_device_V, i_A)``.

    ``v_V`` is the voltage applied to the device (through ``r_series_ohm`` if given), linear
    between samples at times ``t_s`` (s, strictly increasing). Closed-form step per segment; see the
    module docstring for why it is accurate at any sampling.
    """
    t, v = _as_trace(t_s, v_V)
    return _simulate(_Model.of(p), float(x0), t, v, float(r_series_ohm), series_substeps(t, p.tau_s))


# ---- the fit -------------------------------------------------------------------------------------------
# How each field is fitted: ("log" | "linear", lower, upper). The "log" fields are positive and
# span decades. Lower/upper are sanity limits; resistances and tau are also kept within a factor
# of WINDOW of the starting value, which a start from a preset of the right medium always satisfies.
_FIELD_BOUNDS = {
    "r_on_ohm": ("log", 1e-2, 1e9),
    "r_off_ohm": ("log", 1e-2, 1e12),
    "v_on_V": ("log", 1e-3, 10.0),
    "v_off_V": ("log", 1e-3, 10.0),
    "tau_s": ("log", 1e-12, 1e3),
    "temperature_K": ("log", 1.0, 1000.0),
    "phi": ("linear", 0.0, 1.0),
    "alpha_f_A": ("log", 1e-18, 1.0),
    "beta_f_per_V": ("linear", 0.0, 100.0),
    "alpha_r_A": ("log", 1e-18, 1.0),
    "beta_r_per_V": ("linear", 0.0, 100.0),
}
WINDOW = 1e3
_WINDOWED = ("r_on_ohm", "r_off_ohm", "tau_s")


@dataclass(frozen=True)
class FitResult:
    """What ``fit_msdc`` found. Arrays are shaped like the trace; errors are fractions (0.02 = 2 %).

    ``values``/``initial_values``/``relative_standard_errors`` are keyed by field name plus ``x0``
    (the state at the first sample). A relative standard error is NaN where it is not computable:
    a parameter at a bound, a singular Jacobian, or too few points.
    """

    params: MsdcParams
    x0: float
    relative_rms_error: float
    values: dict[str, float]
    initial_values: dict[str, float]
    relative_standard_errors: dict[str, float]
    fit_fields: tuple[str, ...]
    x0_fitted: bool
    success: bool
    status: int
    message: str
    n_evaluations: int
    source: str
    r_series_ohm: float
    loss: str
    weighting: str
    t_s: np.ndarray = field(repr=False)
    v_V: np.ndarray = field(repr=False)
    i_measured_A: np.ndarray = field(repr=False)
    i_fitted_A: np.ndarray = field(repr=False)
    x_fitted: np.ndarray = field(repr=False)

    def summary(self) -> dict:
        """The scalar results as a JSON-ready dict (no arrays)."""
        return {
            "medium": self.params.medium,
            "source": self.source,
            "points": int(self.t_s.size),
            "r_series_ohm": self.r_series_ohm,
            "fit_fields": list(self.fit_fields),
            "x0_fitted": self.x0_fitted,
            "loss": self.loss,
            "weighting": self.weighting,
            "relative_rms_error": self.relative_rms_error,
            "values": self.values,
            "initial_values": self.initial_values,
            "relative_standard_errors": {k: (None if math.isnan(e) else e)
                                         for k, e in self.relative_standard_errors.items()},
            "optimizer": {"success": self.success, "status": self.status, "message": self.message,
                          "evaluations": self.n_evaluations},
            "provenance": self.params.provenance,
        }


def initial_state_estimate(p: MsdcParams, v_V, i_A) -> float:
    """The state that explains the trace's first, sub-threshold samples with ``p``'s resistances.

    Uses the samples before |v| first exceeds half the lower threshold (the device cannot have
    moved yet); the conductance is Σ i v / Σ v² (a fit through the origin). 0.5 if there are none.
    """
    v, i = np.asarray(v_V, float), np.asarray(i_A, float)
    limit = 0.5 * min(p.v_on_V, p.v_off_V)
    above = np.flatnonzero(np.abs(v) > limit)
    quiet = slice(0, above[0] if above.size else v.size)
    vv = float(np.sum(v[quiet] ** 2))
    if vv <= 0.0:
        return 0.5
    g = float(np.sum(i[quiet] * v[quiet])) / vv
    return float(np.clip(msdc.state_from_conductance(p, g), 0.0, 1.0))


def fit_msdc(t_s, v_V, i_A, initial: MsdcParams, fit_fields=DEFAULT_FIT_FIELDS,
             x0: float | None = None, r_series_ohm: float = 0.0, loss: str = "linear",
             loss_scale: float = 1.0, weighting: str = "relative", current_floor: float = 1e-3,
             source: str = "trace", bounds: dict | None = None,
             max_evaluations: int | None = None) -> FitResult:
    """Fit ``fit_fields`` of ``initial`` (and the starting state) to a measured I–V trace.

    ``t_s`` (s, strictly increasing), ``v_V`` (V applied to the device, through ``r_series_ohm``
    if it is not 0) and ``i_A`` (A, from p to n) are equally long 1-D arrays; between samples the
    voltage is taken as linear. ``initial`` supplies the starting values and every field not fitted.
    ``x0`` is the state at the first sample: fitted in [0, 1] when None, held otherwise.
    ``weighting``: "relative" divides each residual by |i| + ``current_floor`` · RMS(i) (for noise
    that grows with the current, and for wide on/off windows), "scale" by RMS(i) alone (see the
    module docstring). ``loss``/``loss_scale`` are passed to least_squares ('linear', or 'soft_l1',
    'huber', 'cauchy' against outliers; the scale is in units of the weighted residual, i.e. a
    fraction of the current). ``bounds`` overrides the sanity bounds of a field in its own units:
    ``{"tau_s": (1e-6, 1e-2)}``. ``source`` names the trace (a file name) in the provenance.
    ``relative_rms_error`` is always RMS(i_fit − i) / RMS(i), whatever the weighting.
    """
    if not isinstance(initial, MsdcParams):  # a PCM or VTEAM model has none of the fitted fields
        from .base import presets

        msdc_media = [name for name, model in presets().items() if isinstance(model, MsdcParams)]
        raise ConfigError("device.medium", getattr(initial, "medium", type(initial).__name__),
                          "an M-SDC medium, the model the fit adjusts: " + ", ".join(msdc_media))
    t, v = _as_trace(t_s, v_V)
    i = np.asarray(i_A, dtype=float)
    if i.shape != t.shape or not np.all(np.isfinite(i)):
        raise ConfigError("fit.i_A", f"shape {i.shape}", f"finite values shaped like t_s {t.shape}")
    if t.size < MIN_TRACE_POINTS:
        raise ConfigError("fit.t_s", t.size, f"at least {MIN_TRACE_POINTS} samples")
    fit_fields = tuple(fit_fields)
    for name in fit_fields:
        if name not in _FIELD_BOUNDS:
            raise ConfigError("fit.fit_fields", name, "model fields: " + ", ".join(_FIELD_BOUNDS))
    if len(set(fit_fields)) != len(fit_fields):
        raise ConfigError("fit.fit_fields", list(fit_fields), "each field at most once")
    if x0 is not None and not 0.0 <= float(x0) <= 1.0:
        raise ConfigError("fit.x0", x0, "[0, 1] or None (fitted)")
    check_range("fit.r_series_ohm", r_series_ohm, 0.0, 1e9, True)  # the range of a device's own resistance
    scale = float(np.sqrt(np.mean(i ** 2)))
    if scale <= 0.0:
        raise TraceError(f"{source}: the measured current is zero everywhere; nothing to fit")

    if weighting == "scale":
        weight = np.full(t.size, 1.0 / scale)
    elif weighting == "relative":
        if not 0.0 < current_floor <= 1.0:
            raise ConfigError("fit.current_floor", current_floor, "(0, 1] (a fraction of RMS current)")
        weight = 1.0 / (np.abs(i) + current_floor * scale)
    else:
        raise ConfigError("fit.weighting", weighting, "'scale' or 'relative'")

    for name in bounds or {}:
        if name not in fit_fields:
            raise ConfigError(f"fit.bounds.{name}", bounds[name], "bounds only for fitted fields: "
                              + ", ".join(fit_fields))
    kinds, lower, upper, start = [], [], [], []
    for name in fit_fields:
        kind, low, high = _FIELD_BOUNDS[name]
        value = float(getattr(initial, name))
        if name in _WINDOWED:
            low, high = max(low, value / WINDOW), min(high, value * WINDOW)
        if bounds and name in bounds:
            low, high = (float(b) for b in bounds[name])
        if not (math.isfinite(low) and math.isfinite(high) and low < high) or (kind == "log" and low <= 0):
            positive = ", lower > 0 (fitted as a logarithm)" if kind == "log" else ""
            raise ConfigError(f"fit.bounds.{name}", (low, high),
                              f"finite (lower, upper) with lower < upper{positive}")
        if kind == "log":
            value = max(value, low)  # a zero diode prefactor starts at the floor of its range
            low, high, value = math.log(low), math.log(high), math.log(value)
        kinds.append(kind)
        lower.append(low)
        upper.append(high)
        start.append(min(max(value, low), high))
    x0_fitted = x0 is None
    x_start = initial_state_estimate(initial, _device_side_voltage(v, i, r_series_ohm), i) \
        if x0_fitted else float(x0)
    if x0_fitted:
        lower.append(0.0)
        upper.append(1.0)
        start.append(x_start)
        kinds.append("linear")

    def unpack(theta):
        changes = {name: (math.exp(value) if kind == "log" else float(value))
                   for name, kind, value in zip(fit_fields, kinds, theta)}
        state = float(theta[-1]) if x0_fitted else float(x0)
        return changes, state

    def residuals(theta, substeps):
        changes, state = unpack(theta)
        _, _, current = _simulate(_Model.of(initial, **changes), state, t, v, r_series_ohm, substeps)
        return (current - i) * weight

    # The series-resistance integrator's step is fixed for the duration of a solve (a step that
    # followed each trial tau would make the model jump between finite-difference points); if the
    # fitted tau needs finer steps than the starting one, solve again from there with them.
    substeps = series_substeps(t, initial.tau_s) if r_series_ohm > 0.0 else None
    theta = np.array(start)
    evaluations = 0
    while True:
        solution = least_squares(residuals, theta, bounds=(lower, upper), method="trf",
                                 x_scale="jac", loss=loss, f_scale=loss_scale, xtol=1e-12,
                                 ftol=1e-12, gtol=1e-12, max_nfev=max_evaluations,
                                 args=(substeps,))
        evaluations += solution.nfev
        theta = solution.x
        if r_series_ohm <= 0.0:
            break
        needed = series_substeps(t, unpack(theta)[0].get("tau_s", initial.tau_s))
        if np.all(needed <= substeps):
            break
        substeps = needed
    changes, state = unpack(solution.x)
    model = _Model.of(initial, **changes)
    x_fit, _, i_fit = _simulate(model, state, t, v, r_series_ohm, substeps)
    rel_rms = float(np.sqrt(np.mean((i_fit - i) ** 2)) / scale)

    names = list(fit_fields) + ([STATE] if x0_fitted else [])
    values = {**changes, **({STATE: state} if x0_fitted else {})}
    start_changes, start_state = unpack(np.array(start))
    initial_values = {**start_changes, **({STATE: start_state} if x0_fitted else {})}
    errors = _relative_standard_errors(solution, names, kinds, values)

    text = (f"fitted by circuitnn.devices.fit to {source} ({t.size} points, {t[-1] - t[0]:.4g} s"
            f"{f', series {r_series_ohm:g} ohm' if r_series_ohm else ''}): "
            + ", ".join(f"{k}={values[k]:.6g}" for k in names)
            + f"; relative rms current error {rel_rms:.3g}; started from medium {initial.medium} "
            f"({initial.provenance.split(';')[0] or 'no provenance'})")
    try:
        params = initial.replace(**changes, provenance=text)
    except ConfigError as exc:
        raise FitError(f"the fit to {source} ended at an invalid parameter set ({exc}); the trace "
                       "may not constrain it: sweep to amplitudes beyond both thresholds, start from "
                       "closer values, or fit fewer fields") from None
    return FitResult(
        params=params, x0=state, relative_rms_error=rel_rms, values=values,
        initial_values=initial_values, relative_standard_errors=errors, fit_fields=fit_fields,
        x0_fitted=x0_fitted, success=bool(solution.success), status=int(solution.status),
        message=str(solution.message), n_evaluations=int(evaluations), source=source,
        r_series_ohm=float(r_series_ohm), loss=loss, weighting=weighting, t_s=t, v_V=v, i_measured_A=i,
        i_fitted_A=i_fit, x_fitted=x_fit,
    )


def _device_side_voltage(v, i, r_series_ohm):
    """The device voltage implied by the measurement (for the starting-state estimate only)."""
    return v - r_series_ohm * i


def _relative_standard_errors(solution, names, kinds, values) -> dict[str, float]:
    """σ(p)/|p| from the Gauss–Newton covariance s² (JᵀJ)⁻¹, s² = Σr²/(m − n).

    For a log-fitted field σ(ln p) is already relative. Parameters at a bound are held out (their
    error is NaN) and the rest are computed on the free ones; a singular JᵀJ gives NaN everywhere.
    """
    nan = {name: float("nan") for name in names}
    jac = np.asarray(solution.jac, dtype=float)
    m, n = jac.shape
    free = np.flatnonzero(solution.active_mask == 0)
    if m <= n or free.size == 0:
        return nan
    sub = jac[:, free]
    _, singular, vt = np.linalg.svd(sub, full_matrices=False)
    if singular[0] <= 0.0 or singular[-1] <= singular[0] * 1e-10:
        return nan
    s2 = 2.0 * float(solution.cost) / (m - n)
    covariance = (vt.T / singular ** 2) @ vt * s2
    errors = dict(nan)
    for position, index in enumerate(free):
        sigma = float(np.sqrt(covariance[position, position]))
        name = names[index]
        if kinds[index] == "log":
            errors[name] = sigma
        elif values[name] != 0.0:
            errors[name] = sigma / abs(values[name])
    return errors


def _as_trace(t_s, v_V) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(t_s, dtype=float)
    v = np.asarray(v_V, dtype=float)
    if t.ndim != 1 or t.shape != v.shape or t.size < 2:
        raise ConfigError("trace", f"t_s {t.shape}, v_V {v.shape}", "1-D arrays of equal length >= 2")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(v))):
        raise ConfigError("trace", "non-finite value", "finite times and voltages")
    if np.any(np.diff(t) <= 0):
        raise ConfigError("trace.t_s", "not increasing", "strictly increasing times")
    return t, v


# ---- files: the measured trace in, the report out ---------------------------------------------------
_COLUMN_ALIASES = {
    "time_s": ("time_s", "time", "t"),
    "voltage_V": ("voltage_v", "voltage", "v"),
    "current_A": ("current_a", "current", "i"),
}


MAX_TRACE_BYTES = 2**28  # 256 MiB: millions of rows, far more than a fit uses


def load_trace_csv(path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(t_s, v_V, i_A)`` from a CSV file with a header row naming the three columns.

    Accepted names (case-insensitive): time_s/time/t, voltage_V/voltage/v, current_A/current/i;
    other columns are ignored, blank lines and lines starting with '#' skipped, and ',', ';' or tab
    separate fields. Raises ``TraceError`` naming the file, the row (line number in the file) and
    the column for a missing column, a value that is not a finite number, a time not greater than
    the one before it, or fewer than 10 data rows.
    """
    path = Path(path)
    text = read_bounded_text(  # bounded: `fit /dev/zero` must not fill the memory
        path, MAX_TRACE_BYTES, "utf-8-sig",
        unreadable=lambda reason: TraceError(f"{path}: cannot read the trace ({reason})"),
        too_large=lambda: TraceError(f"{path}: larger than {MAX_TRACE_BYTES // 2**20} MiB; keep every n-th row "
                                     "(a fit needs a few thousand samples per sweep)"),
        not_text=lambda byte: TraceError(f"{path}: not UTF-8 text (byte {byte}); save the trace as UTF-8 CSV"))
    lines = [(number, line) for number, line in enumerate(text.splitlines(), start=1)
             if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise TraceError(f"{path}: the file is empty; expected a header row time_s,voltage_V,current_A")
    header_row, header_line = lines[0]
    delimiter = max(",;\t", key=header_line.count)
    header = [cell.strip() for cell in next(csv.reader([header_line], delimiter=delimiter))]
    lowered = [cell.lower() for cell in header]
    columns = {}
    for canonical, aliases in _COLUMN_ALIASES.items():
        found = [index for index, cell in enumerate(lowered) if cell in aliases]
        if not found:
            raise TraceError(f"{path}, row {header_row}: no {canonical} column (accepted names: "
                             f"{', '.join(aliases)}); the header has {header}")
        if len(found) > 1:
            raise TraceError(f"{path}, row {header_row}: columns {[header[k] for k in found]} all name "
                             f"{canonical}; keep one")
        columns[canonical] = found[0]
    data = np.empty((len(lines) - 1, 3))
    previous_time_text, previous_row = "", header_row
    for position, (row, line) in enumerate(lines[1:]):
        cells = next(csv.reader([line], delimiter=delimiter))
        for slot, (canonical, index) in enumerate(columns.items()):
            label = header[index]
            if index >= len(cells) or not cells[index].strip():
                raise TraceError(f"{path}, row {row}, column {label}: missing value")
            try:
                value = float(cells[index])
            except ValueError:
                raise TraceError(f"{path}, row {row}, column {label}: {cells[index].strip()!r} is not "
                                 "a number") from None
            if not math.isfinite(value):
                raise TraceError(f"{path}, row {row}, column {label}: {cells[index].strip()!r} is not "
                                 "a finite number")
            data[position, slot] = value
        time_text = cells[columns["time_s"]].strip()
        if position and data[position, 0] <= data[position - 1, 0]:
            raise TraceError(f"{path}, row {row}, column {header[columns['time_s']]}: time {time_text} "
                             f"is not greater than {previous_time_text} (row {previous_row}); times "
                             "must increase strictly")
        previous_time_text, previous_row = time_text, row
    if data.shape[0] < MIN_TRACE_POINTS:
        raise TraceError(f"{path}: {data.shape[0]} data rows; a fit needs at least {MIN_TRACE_POINTS}")
    return data[:, 0].copy(), data[:, 1].copy(), data[:, 2].copy()


def write_fit_report(result: FitResult, directory) -> list[Path]:
    """Write a fit's results into ``directory``; returns the paths written.

    * ``fit_<medium>.toml``: the fitted values as a circuitnn config (``--config`` takes it);
    * ``fit_<medium>.json``: every scalar result (values, errors, optimiser status, provenance);
    * ``fit_<medium>.csv``: the trace with the fitted current and state beside the measured current;
    * ``fit_<medium>_iv.png``: measured vs fitted I–V loop and current vs time.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"fit_{result.params.medium.lower()}"
    written = []

    toml_path = directory / f"{stem}.toml"
    toml_path.write_text(fit_config_text(result))
    written.append(toml_path)

    json_path = directory / f"{stem}.json"
    json_path.write_text(json.dumps(result.summary(), indent=2) + "\n")
    written.append(json_path)

    csv_path = directory / f"{stem}.csv"
    table = np.column_stack([result.t_s, result.v_V, result.i_measured_A, result.i_fitted_A,
                             result.x_fitted])
    np.savetxt(csv_path, table, delimiter=",", fmt="%.12g", comments="",
               header="time_s,voltage_V,current_A,fitted_current_A,fitted_state")
    written.append(csv_path)

    png_path = directory / f"{stem}_iv.png"
    _plot_fit(result, png_path)
    written.append(png_path)
    return written


def fit_config_text(result: FitResult) -> str:
    """A circuitnn TOML config holding the fitted values as overrides of the medium's preset."""
    def flat(text: str) -> str:
        return " ".join(str(text).split())

    p = result.params
    lines = [
        f"# Fitted M-SDC parameters, medium {p.medium}: pass this file with --config.",
        f"# {flat(p.provenance)}",
        (f"# relative rms current error {result.relative_rms_error:.4g}; state at the first sample "
         f"x0 = {result.x0:.6g}; optimiser: {flat(result.message)}"),
        "",
        f'preset = "{p.medium}"',
        "",
        "[device]",
        f'medium = "{p.medium}"',
        "[device.overrides]",
    ]
    for name in result.fit_fields:
        error = result.relative_standard_errors.get(name, float("nan"))
        note = "" if math.isnan(error) else f"  # relative standard error {error:.2g}"
        lines.append(f"{name} = {float(getattr(p, name))!r}{note}")
    return "\n".join(lines) + "\n"


def _plot_fit(result: FitResult, path: Path) -> None:
    _fit_figure(result).savefig(path)


def _fit_figure(result: FitResult):
    # The object API with an explicit Agg canvas: no pyplot, no global backend switch, no display.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(10, 4.8), dpi=120, layout="constrained")
    FigureCanvasAgg(figure)
    loop, trace = figure.subplots(1, 2)
    scale, unit = current_unit(result.i_measured_A)
    time_scale, t_unit = time_unit(result.t_s)
    for ax, x in ((loop, result.v_V), (trace, result.t_s * time_scale)):
        # The measurement on top: where the fit is good it lies on the line and would vanish under it.
        ax.plot(x, result.i_fitted_A * scale, "-", lw=1.6, color="tab:red", alpha=0.8, zorder=2, label="fitted")
        ax.plot(x, result.i_measured_A * scale, ".", ms=3, color="0.15", zorder=3, label="measured")
        ax.set_ylabel(f"current ({unit})")
        # Few enough ticks that labels such as -0.75 keep apart at this width.
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
        ax.grid(alpha=0.3)
    loop.set_xlabel("device voltage (V)" if not result.r_series_ohm else
                    f"applied voltage (V), through {result.r_series_ohm:g} Ω")
    loop.set_title("current vs voltage (I–V loop)")
    trace.set_xlabel(f"time ({t_unit})")
    trace.set_title("current vs time")
    handles, labels = loop.get_legend_handles_labels()
    # Below the panels: an I–V loop and a sine fill their axes, so no corner inside is reliably empty.
    figure.legend(handles[::-1], labels[::-1], loc="outside lower center", ncols=2)
    values = [f"{k} = {v:.4g}" for k, v in result.values.items()]
    figure.suptitle(f"{result.params.medium}: M-SDC fit, relative rms current error "
                    f"{100 * result.relative_rms_error:.2f} %\n"
                    + "\n".join(", ".join(values[k:k + 4]) for k in range(0, len(values), 4)), fontsize=10)
    return figure


def current_unit(i):
    """(scale, unit) for plotting currents ``i`` (A): the largest of nA, µA, mA, A that keeps the
    peak under 1000 of it."""
    peak = float(np.max(np.abs(i))) if np.size(i) else 0.0
    for scale, unit in ((1e9, "nA"), (1e6, "µA"), (1e3, "mA")):
        if peak * scale < 1e3:
            return scale, unit
    return 1.0, "A"


def time_unit(t):
    """(scale, unit) for plotting times ``t`` (s): the largest of ns, µs, ms, s that keeps the span
    under 10 000 of it."""
    span = float(t[-1] - t[0]) if np.size(t) else 0.0
    for scale, unit in ((1e9, "ns"), (1e6, "µs"), (1e3, "ms")):
        if span * scale < 1e4:
            return scale, unit
    return 1.0, "s"
