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
tile's outputs by one scalar. Everything is a pure function of a frozen ``PcmParams``; conductances
are in siemens, times in seconds, and every random draw comes from the caller's ``rng``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..validation import check_range

# The polynomial coefficients were fitted with conductances in µS at g_max = 25 µS.
_FIT_G_MAX_S = 25e-6
_MICRO = 1e-6
_G_HAT_FLOOR = 1e-7           # keeps ln ĝ finite for devices at g_min = 0
_GDC_READOUT_FLOOR = 1e-4     # weight units; stops α blowing up on an all-zero tile


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
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


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


# ---- weights on a differential pair ---------------------------------------------------------------
def weights_to_conductance_pair(p: PcmParams, w, w_max: float | None = None):
    """Map weights (any shape) to one differential pair per weight.

    Returns ``(g_plus_S, g_minus_S, scale_S_per_unit)``: two arrays shaped like ``w`` and the scale
    (g_max − g_min)/w_max in S per weight unit. ``w_max`` defaults to max|w| of the tile.
    """
    w = np.asarray(w, dtype=float)
    if w_max is None:
        w_max = float(np.max(np.abs(w))) if w.size else 0.0
        # An all-zero tile maps to g_min whatever the scale; 1.0 just keeps the scale finite.
        w_max = w_max if w_max > 0 else 1.0
    else:
        check_range("pcm.w_max", w_max, 0.0, math.inf)
    scale = (p.g_max_S - p.g_min_S) / w_max
    g_plus = np.clip(scale * w, 0.0, p.g_max_S) + p.g_min_S
    g_minus = np.clip(-scale * w, 0.0, p.g_max_S) + p.g_min_S
    return g_plus, g_minus, scale


def conductance_pair_to_weights(g_plus_S, g_minus_S, scale_S_per_unit):
    """Weights (shape of the pair arrays) read back from a differential pair: (g+ − g−)/scale."""
    return (np.asarray(g_plus_S, dtype=float) - np.asarray(g_minus_S, dtype=float)) / scale_S_per_unit


# ---- global drift compensation ---------------------------------------------------------------------
def drift_compensation_readout(g_plus_S, g_minus_S, scale_S_per_unit) -> float:
    """GDC read-out statistic of one tile (weight units): mean|out| floored at 1e-4.

    The reference describes two read-outs (one all-ones vector with max|out|, or the identity with
    mean|out|); we follow the current aihwkit code: the read-out inputs are the one-hot rows of the
    identity and the statistic is mean|out|. One-hot inputs read each weight alone, so the outputs are
    exactly the weights and mean|out| = mean|W|; no matrix product is needed.
    """
    w = conductance_pair_to_weights(g_plus_S, g_minus_S, scale_S_per_unit)
    return max(float(np.mean(np.abs(w))), _GDC_READOUT_FLOOR)


def drift_compensation_alpha(g_plus_ref_S, g_minus_ref_S, g_plus_t_S, g_minus_t_S,
                             scale_S_per_unit) -> float:
    """Global drift compensation factor α = readout(reference) / readout(now) for one tile.

    The reference pair is read right after programming (programming noise only); the other pair
    after drift (and read noise) at the time of inference. Arrays are shaped like the weights.
    """
    reference = drift_compensation_readout(g_plus_ref_S, g_minus_ref_S, scale_S_per_unit)
    current = drift_compensation_readout(g_plus_t_S, g_minus_t_S, scale_S_per_unit)
    return reference / current


def apply_drift_compensation(outputs, alpha: float):
    """Tile outputs (or read-back weights), any shape, multiplied by the tile's GDC factor α."""
    return alpha * np.asarray(outputs, dtype=float)
