"""Drift regularization on PCM tiles: a penalty on the output variance that drift will cause.

The claim (IBM drift-regularization patent, docs/reference/dgc-drift-programming.md §2.2):
loss2 = loss1 + λ·R, with R positively related to the variance of the outputs under drift. Every
layer with weights computes y = x W (a crossbar tile, one differential pair per weight, the idle
device at g_min = 0, §4.1); its active device has ĝ = |w|/w_max and drifts as ((t + t0)/t0)^(−ν),
ν ~ |N(μ_ν(ĝ), σ_ν(ĝ))| (§4.3). Global drift compensation (GDC, §4.6) multiplies a tile's outputs by
α = mean|W| / mean|W(t)|. Write L = ln((t + t0)/t0). Two forms of R per layer, summed over layers:

* ``analytic`` (first order in (ν − ν̄)L, §2.3):
      R = L² [ Σ_j mean_b Σ_i σ_ν(ĝ_ij)² (w_ij x_bi)²  +  Σ_j mean_b (Σ_i (μ_ν(ĝ_ij) − ν̄) w_ij x_bi)² ]
  The first sum is the variance of the outputs over ν; the second the systematic error that GDC
  cannot remove because ν depends on conductance. With GDC, ν̄ = Σ|w| μ_ν / Σ|w| (what the mean|W|
  read-out of GDC cancels to first order); without, ν̄ = 0. Its gradient is exact (weights and
  inputs; tests/test_drift_regularizer.py checks it against finite differences).
* ``montecarlo``: K drift draws per mini-batch (ν per device from the model, t log-uniform over
  [``time_min_s``, ``time_max_s``]; GDC α per draw), R = mean_k mean_b Σ_j (x (α_k W∘f_k − W))_bj²:
  the mean squared drift error of the outputs (variance over draws plus the systematic part), the
  quantity the analytic form approximates. The sampled factors α_k f_k are treated as constants in
  the gradient (straight-through, as multiplicative-noise training does). Only ``mc_examples``
  examples of each mini-batch and ``mc_outputs`` output columns per layer enter it (unbiased
  estimates of the batch mean and of the sum over outputs): the K draws cost K products and K
  exponentials per device, and the subsets keep an epoch within a few times plain training.

Where the sources are silent (our choices, config values): w_max is the layer's max|W| and is held
constant in the gradient (a max is not differentiable; the tiles use it per tile, the penalty per
layer); ν̄ and α per layer, not per tile; for convolutions x is the im2col patch row and the mean runs
over images and output positions (so R is per output position); the regularizer sees the clean
weights and the inputs of the (possibly noise-injected) forward pass.

``train_drift_regularized`` is the trainer (Adam or SGD, multiplicative weight noise as a companion
option); ``accuracy_over_time`` evaluates a network programmed once per draw and read at several
times, with and without GDC.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from ..devices.pcm import PcmParams
from ..errors import ConfigError
from ..validation import check_choice, check_range
from .devices import PcmEffects, PcmTileDevice
from .layers import Conv2D, Network, softmax_cross_entropy
from .tiles import TileConfig, program_weights
from .train import (
    DEFAULT_TILE, Adam, GaussianPool, NetworkTrainingConfig, SgdMomentum, TrainingHistory, WeightNoise, _bind,
    _check_data,
)

FORMS = ("analytic", "montecarlo", "montecarlo_outputs", "none")
HOUR_S, DAY_S = 3600.0, 86400.0
MONTH_S, YEAR_S = 30 * DAY_S, 365 * DAY_S
# The evaluation grid of the accuracy-over-time study: right after programming, 1 s, 1 h, 1 day,
# 1 month, 1 year, 10 years.
EVALUATION_TIMES_S = (0.0, 1.0, HOUR_S, DAY_S, MONTH_S, YEAR_S, 10 * YEAR_S)

# μ_ν(ĝ) = clip(a_μ ln ĝ + b_μ, 0.049, 0.1), σ_ν(ĝ) = clip(a_σ ln ĝ + b_σ, 0.008, 0.045) (§4.3);
# the same numbers as devices/pcm.py, here with their derivatives.
_MU = (-0.0155, 0.0244, 0.049, 0.1)
_SIGMA = (-0.0125, -0.0059, 0.008, 0.045)
_G_HAT_FLOOR = 1e-7


@dataclass(frozen=True)
class DriftRegularizerConfig:
    """The drift regularizer; fields validated as ``regularizer.<field>``.

    * ``form``: "analytic" | "montecarlo" | "none".
    * ``strength``: λ (R is in squared output units, per output position for convolutions).
    * ``time_s``: the analytic form's evaluation time (sets L); default one month.
    * ``draws``: K drift draws per mini-batch (Monte-Carlo form).
    * ``time_min_s`` / ``time_max_s``: Monte-Carlo times are log-uniform in this range (1 h – 1 year:
      the deployment horizon of the accuracy study; §2.4 suggests sampling t this way).
    * ``mc_examples``: examples of each mini-batch in the Monte-Carlo estimate (None = all).
    * ``mc_outputs``: output columns per layer in the Monte-Carlo estimate (None = all): a random
      subset, its sum scaled by n_out/m (unbiased); GDC's α is then estimated from that subset's
      devices (thousands of them: α's error is far below the spread of the draws). Why: the draws
      cost K exponentials per device, which with all 784×256 devices outweigh the products.
    * ``drift_compensation``: the penalty assumes GDC (ν̄ = weighted mean μ_ν, α per draw) or not.
    * ``systematic``: include the systematic (μ_ν) term of the analytic form.
    * ``drift_scale``: multiplies ν as ``PcmEffects.drift_scale`` does (1 = the published model).
    * ``normalize``: divide each layer's R by its signal S = Σ_j Var_b[y_bj], the spread of its
      outputs over the mini-batch (exact gradient of the quotient), so R is a noise-to-signal ratio.
      Why: the plain R falls when a layer's weights or inputs shrink, and with digital biases and
      softmax the optimiser takes that cheap route (smaller logits) instead of moving weights to
      low-σ_ν conductances; the ratio is invariant to a layer's scale. The spread over examples, not
      the mean square: a mean square can be inflated by a common-mode output that the bias cancels,
      which makes drift worse, not better (we saw exactly that).
    * ``window_fraction``: the fraction of the device window a full-scale weight uses (ĝ = fraction ×
      |w|/w_max), as ``WindowedPcmTileDevice`` programs it; 1 = the whole window.
    """

    form: str = "analytic"
    strength: float = 1.0
    time_s: float = MONTH_S
    draws: int = 8
    time_min_s: float = HOUR_S
    time_max_s: float = YEAR_S
    mc_examples: int | None = 16
    mc_outputs: int | None = 32
    drift_compensation: bool = True
    systematic: bool = True
    drift_scale: float = 1.0
    normalize: bool = True
    window_fraction: float = 1.0

    def __post_init__(self) -> None:
        check_choice("regularizer.form", self.form, FORMS)
        check_range("regularizer.strength", self.strength, 0.0, 1e9, True)
        check_range("regularizer.time_s", self.time_s, 0.0, 1e12)
        if isinstance(self.draws, bool) or not isinstance(self.draws, int) or not 2 <= self.draws <= 1024:
            raise ConfigError("regularizer.draws", self.draws, "an integer in [2, 1024]")
        check_range("regularizer.time_min_s", self.time_min_s, 0.0, 1e12)
        if not (isinstance(self.time_max_s, (int, float)) and self.time_min_s <= self.time_max_s <= 1e12):
            raise ConfigError("regularizer.time_max_s", self.time_max_s, f"[time_min_s = {self.time_min_s:g}, 1e12]")
        if self.mc_examples is not None and (isinstance(self.mc_examples, bool) or not isinstance(
                self.mc_examples, int) or self.mc_examples < 1):
            raise ConfigError("regularizer.mc_examples", self.mc_examples, "an integer ≥ 1, or None (all)")
        if self.mc_outputs is not None and (isinstance(self.mc_outputs, bool) or not isinstance(
                self.mc_outputs, int) or self.mc_outputs < 1):
            raise ConfigError("regularizer.mc_outputs", self.mc_outputs, "an integer ≥ 1, or None (all)")
        for name in ("drift_compensation", "systematic"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"regularizer.{name}", getattr(self, name), "true or false")
        check_range("regularizer.drift_scale", self.drift_scale, 0.0, 100.0, True)
        if not isinstance(self.normalize, bool):
            raise ConfigError("regularizer.normalize", self.normalize, "true or false")
        check_range("regularizer.window_fraction", self.window_fraction, 0.0, 1.0)


def log_time_factor(t_s, t0_s: float = PcmParams.t0_s):
    """L = ln((t + t0)/t0): the exponent drift multiplies ν by, t in s since programming."""
    return np.log1p(np.asarray(t_s, dtype=float) / t0_s)


def _clipped_log(g_hat, slope: float, offset: float, low: float, high: float):
    """clip(slope·ln ĝ + offset, low, high) and its derivative with respect to ĝ (0 where clipped)."""
    g = np.maximum(g_hat, _G_HAT_FLOOR)
    raw = slope * np.log(g) + offset
    inside = (raw > low) & (raw < high) & (g_hat > _G_HAT_FLOOR)
    return np.clip(raw, low, high), np.where(inside, slope / g, 0.0)


def nu_statistics(g_hat):
    """(μ_ν, dμ_ν/dĝ, σ_ν, dσ_ν/dĝ) at normalised conductances ``g_hat`` (any shape), §4.3."""
    mu, dmu = _clipped_log(g_hat, *_MU)
    sigma, dsigma = _clipped_log(g_hat, *_SIGMA)
    return mu, dmu, sigma, dsigma


@dataclass(frozen=True)
class Penalty:
    """A layer's penalty ``value`` and its gradients: ``grad_weight`` (n_in, n_out) and ``grad_inputs``
    (rows, n_in) for the rows it was computed on (``rows``: their indices, None = all)."""

    value: float
    grad_weight: np.ndarray
    grad_inputs: np.ndarray | None
    rows: np.ndarray | None = None


def analytic_penalty(weight, inputs, w_max: float, time_s: float, compensated: bool = True,
                     systematic: bool = True, drift_scale: float = 1.0, t0_s: float = PcmParams.t0_s) -> Penalty:
    """The analytic drift penalty of one layer (module docstring) and its exact gradient.

    ``weight`` (n_in, n_out), ``inputs`` (B, n_in); ``w_max`` the weight of a full-scale device (held
    constant); ``time_s`` since programming. ν scaled by ``drift_scale`` scales μ_ν and σ_ν alike.
    """
    W = np.asarray(weight, dtype=float)
    X = np.asarray(inputs, dtype=float)
    B = len(X)
    L2 = float(log_time_factor(time_s, t0_s)) ** 2 * drift_scale**2
    A = np.abs(W)
    sign = np.sign(W)
    g_hat = A / w_max
    mu, dmu, sigma, dsigma = nu_statistics(g_hat)
    # variance term: Σ_ij σ² W² q_i, q_i = mean_b x_bi²
    q = np.einsum("bi,bi->i", X, X) / B
    s2w2 = sigma**2 * W**2
    value = float(q @ s2w2.sum(axis=1))
    # d(σ²W²)/dW = 2W(σ² + σ σ' ĝ)
    grad_w = 2.0 * W * (sigma**2 + sigma * dsigma * g_hat) * q[:, None]
    grad_x = (2.0 / B) * X * s2w2.sum(axis=1)[None, :]
    if systematic:
        total = A.sum()
        nu_bar = float((A * mu).sum() / total) if (compensated and total > 0) else 0.0
        D = (mu - nu_bar) * W
        Y = X @ D
        value += float(np.einsum("bj,bj->", Y, Y)) / B
        dD = (2.0 / B) * (X.T @ Y)                          # dT/dD
        dD_dW = mu + dmu * g_hat                              # direct part of dD_ij/dW_ij
        grad_w += dD * (dD_dW - nu_bar)
        if compensated and total > 0:
            # ν̄ = Σ A μ / Σ A: dν̄/dW_ij = sign(W_ij)(μ + μ' ĝ − ν̄)_ij / Σ A; dT/dν̄ = −Σ dD ∘ W
            grad_w += -float((dD * W).sum()) * sign * (dD_dW - nu_bar) / total
        grad_x += (2.0 / B) * (Y @ D.T)
    return Penalty(L2 * value, L2 * grad_w, L2 * grad_x)


def drift_factors(weight, w_max: float, times_s, normals, compensated: bool = True,
                  drift_scale: float = 1.0, t0_s: float = PcmParams.t0_s):
    """α_k f_k (K, n_in, n_out): each device's drift factor times the tile's GDC factor, per draw.

    ``normals`` (K, n_in, n_out) standard normals give ν = |μ_ν + σ_ν N| ``drift_scale``; ``times_s``
    (K,) the read time of each draw. GDC: α = Σ|W| / Σ|W| f (the mean|W| read-out, §4.6).
    """
    A = np.abs(np.asarray(weight, dtype=float))
    mu, _, sigma, _ = nu_statistics(A / w_max)
    nu = np.abs(mu + sigma * normals) * drift_scale
    L = log_time_factor(np.asarray(times_s, dtype=float), t0_s).reshape(-1, 1, 1)
    f = np.exp(-nu * L)
    if compensated:
        total = A.sum()
        alpha = total / np.maximum(np.einsum("ij,kij->k", A, f), 1e-300) if total > 0 else np.ones(len(f))
        f *= alpha.reshape(-1, 1, 1)
    return f


def montecarlo_penalty(weight, inputs, factors) -> Penalty:
    """The Monte-Carlo drift penalty of one layer, mean_k mean_b Σ_j (x (W∘(F_k − 1)))²_bj, for drawn
    factors ``factors`` = α_k f_k (K, n_in, n_out) held constant in the gradient.

    The K products run as one: x (B, n_in) @ [W∘E_1 | … | W∘E_K] (n_in, K·n_out).
    """
    W = np.asarray(weight, dtype=float)
    X = np.asarray(inputs, dtype=float)
    K, n_in, n_out = factors.shape
    B = len(X)
    E = factors - 1.0
    WE = (W[None] * E).transpose(1, 0, 2).reshape(n_in, K * n_out)   # (n_in, K·n_out)
    dY = X @ WE                                                        # (B, K·n_out)
    scale = 1.0 / (K * B)
    value = float(np.einsum("bm,bm->", dY, dY)) * scale
    G = (2.0 * scale) * dY
    grad_we = (X.T @ G).reshape(n_in, K, n_out).transpose(1, 0, 2)    # dR/d(W∘E_k)
    grad_w = np.einsum("kij,kij->ij", grad_we, E)
    grad_x = G @ WE.T
    return Penalty(value, grad_w, grad_x)


def montecarlo_penalty_fast(weight, inputs, w_max: float, times_s, normals, compensated: bool = True,
                           drift_scale: float = 1.0, t0_s: float = PcmParams.t0_s,
                           reparameterized: bool = True) -> Penalty:
    """The Monte-Carlo penalty for draws ``normals`` (n_in, K, n_out) float32 (K draws laid out so the
    K products need no transposed copy), in float32: what training calls.

    ``reparameterized`` (default): the gradient is that of R for these fixed normals, through
    ν = |μ_ν(ĝ) + σ_ν(ĝ) z| (ĝ = |w|/w_max, w_max constant) and through GDC's α_k: the pathwise
    gradient, exact for the drawn sample (tests check it against finite differences). This is what
    lets R move weights to conductances that drift less alike; with the factors held constant
    (``False``: ``montecarlo_penalty(weight, inputs, drift_factors(...))``) the relative penalty has
    no such lever.
    """
    W = np.asarray(weight, dtype=float)
    n_in, K, n_out = normals.shape
    A = np.abs(W)
    g_hat = A / w_max
    mu, dmu, sigma, dsigma = nu_statistics(g_hat)
    z = normals
    raw = z * sigma.astype(np.float32)[:, None, :]
    raw += mu.astype(np.float32)[:, None, :]                          # μ + σ z
    L = (log_time_factor(np.asarray(times_s, dtype=float), t0_s) * drift_scale).astype(np.float32)
    f = np.abs(raw)
    f *= -L[None, :, None]
    np.exp(f, out=f)                                                  # f_k = exp(−ν L_k)
    alpha = np.ones(K, np.float32)
    total = float(A.sum())
    A32 = A.astype(np.float32)
    if compensated and total > 0:
        readout = np.einsum("ikj,ij->k", f, A32)
        alpha = (total / np.maximum(readout, 1e-30)).astype(np.float32)
    E = f * alpha[None, :, None]
    E -= 1.0                                                          # α_k f_k − 1
    W32 = W.astype(np.float32)
    WE = E * W32[:, None, :]
    WE2 = WE.reshape(n_in, K * n_out)
    X = np.asarray(inputs, dtype=np.float32)
    B = len(X)
    dY = X @ WE2
    scale = 1.0 / (K * B)
    value = float(np.einsum("bm,bm->", dY, dY, dtype=np.float64)) * scale
    dY *= 2.0 * scale
    G = (X.T @ dY).reshape(n_in, K, n_out)                            # dR/d(W∘E_k)
    grad_x = (dY @ WE2.T).astype(float)
    grad_w = (G * E).sum(axis=1, dtype=np.float64)                    # E held constant
    if reparameterized:
        # df/dW = −L f dν/dW, dν/dW = sign(μ + σz)(μ' + σ' z) sign(W)/w_max (times drift_scale, in L)
        dnu = z * dsigma.astype(np.float32)[:, None, :]
        dnu += dmu.astype(np.float32)[:, None, :]
        dnu *= np.sign(raw)
        dnu *= (np.sign(W) / w_max).astype(np.float32)[:, None, :]
        df = dnu
        df *= f
        df *= -L[None, :, None]
        GW = G * W32[:, None, :]                                      # dR/dE_k
        grad_w += (GW * df * alpha[None, :, None]).sum(axis=1, dtype=np.float64)
        if compensated and total > 0:
            # α_k = ΣA/Σ(A f_k): dα_k/dW = sign(W)/D_k − ΣA (sign(W) f_k + A df_k)/D_k², D_k = Σ A f_k
            c = np.einsum("ikj,ikj->k", GW, f, dtype=np.float64)       # dR/dα_k
            D = readout.astype(np.float64)
            sign = np.sign(W)
            d_af = f * sign.astype(np.float32)[:, None, :] + A32[:, None, :] * df
            weights_k = (c * total / D**2).astype(np.float32)
            grad_w += sign * float((c / D).sum())
            grad_w -= np.einsum("ikj,k->ij", d_af, weights_k, dtype=np.float64)
    return Penalty(value, grad_w, grad_x)


def montecarlo_moments(weight, inputs, factors) -> tuple[np.ndarray, np.ndarray]:
    """Per example and output (B, n_out): the variance over draws of x (W∘F_k), and the mean squared
    deviation from x W (variance plus the squared systematic error)."""
    X = np.asarray(inputs, dtype=float)
    W = np.asarray(weight, dtype=float)
    outputs = np.einsum("bi,kij->kbj", X, W[None] * factors)
    ideal = X @ W
    return outputs.var(axis=0), ((outputs - ideal[None]) ** 2).mean(axis=0)


def analytic_moments(weight, inputs, w_max: float, time_s: float, compensated: bool = True,
                     drift_scale: float = 1.0, t0_s: float = PcmParams.t0_s) -> tuple[np.ndarray, np.ndarray]:
    """Per example and output (B, n_out): the analytic variance L² Σ_i σ_ν² (w x)² and the
    systematic error L² (Σ_i (μ_ν − ν̄) w x)² (the two terms of the analytic penalty)."""
    W = np.asarray(weight, dtype=float)
    X = np.asarray(inputs, dtype=float)
    L2 = float(log_time_factor(time_s, t0_s)) ** 2 * drift_scale**2
    A = np.abs(W)
    mu, _, sigma, _ = nu_statistics(A / w_max)
    nu_bar = float((A * mu).sum() / A.sum()) if compensated and A.sum() > 0 else 0.0
    return L2 * (X**2 @ (sigma * W) ** 2), L2 * (X @ ((mu - nu_bar) * W)) ** 2


class WindowedPcmTileDevice(PcmTileDevice):
    """PCM tiles whose full-scale weight uses only ``window_fraction`` of the device window:
    G_active = g_min + fraction·(g_max − g_min)·|w|/w_max (idle device at g_min).

    A smaller window means lower conductances (less read power) and, in the PCM model, larger and
    more variable drift (μ_ν up to 0.1, σ_ν up to 0.045 below ĝ ≈ 0.02) and more read noise: the
    setting where drift costs accuracy. Reads normalise by the used span, so an ideal tile still
    computes x·W.
    """

    def __init__(self, effects: PcmEffects = PcmEffects(), window_fraction: float = 1.0):
        check_range("tiles.window_fraction", window_fraction, 0.0, 1.0)
        super().__init__(effects)
        self.window_fraction = float(window_fraction)

    @property
    def g_span_S(self) -> float:
        return (self.model.g_high_S - self.model.g_low_S) * self.window_fraction

    def program(self, w, rng):
        from .devices import PcmTileState, _spawn, _tile_w_max, weights_to_conductance_pair

        model = self.model
        w = np.asarray(w, dtype=float)
        streams = _spawn(rng, ("programming", "drift"))
        w_max = _tile_w_max(w)
        g_plus, g_minus, scale = weights_to_conductance_pair(model.g_low_S, model.g_low_S + self.g_span_S, w, w_max)
        target = np.stack([g_plus, g_minus])
        g_prog = model.programmed_conductance_S(target, streams["programming"])
        memory = model.draw_programming_memory(model.state_from_conductance(target), streams["drift"])
        return PcmTileState(g_prog, memory, scale, w_max)


def network_output_penalty(network: Network, X, config: DriftRegularizerConfig, source,
                           t0_s: float = PcmParams.t0_s) -> tuple[float, list[np.ndarray]]:
    """Monte-Carlo variance of the network's outputs (logits) over K drift draws, relative to their
    spread over the examples, and its gradient with respect to every weight matrix.

    R = mean_b Σ_j Var_k[z_kbj] / Σ_j Var_b[z̄_bj], z_k the logits with every layer's weights drifted
    (W∘α_k f_k, ν per device, t log-uniform); the denominator is held constant. The gradient
    backpropagates through each drifted pass (dR/dW = Σ_k dR/dW̃_k ∘ α_k f_k). Call it after the
    mini-batch's own backward pass: it runs its own passes, which overwrite the layers' caches.
    """
    c = config
    weights = network.weights
    factors = []
    for W in weights:
        w_max = max(float(np.max(np.abs(W))), 1e-12) / c.window_fraction
        normals = source.standard_normal((c.draws, *W.shape), dtype=np.float32)
        times = _log_uniform_times(source, c.draws, c.time_min_s, c.time_max_s)
        factors.append(drift_factors(W, w_max, times, normals, c.drift_compensation, c.drift_scale, t0_s))
    drifted = [[W * f[k] for W, f in zip(weights, factors)] for k in range(c.draws)]
    logits = np.stack([network.forward(X, used) for used in drifted])            # (K, B, n_out)
    K, B = logits.shape[:2]
    mean = logits.mean(axis=0)
    signal = max(float(((mean - mean.mean(axis=0)) ** 2).sum() / B), 1e-12)
    deviation = logits - mean
    value = float((deviation**2).sum() / (K * B)) / signal
    grads = [np.zeros_like(W) for W in weights]
    for k in range(c.draws):
        network.forward(X, drifted[k])
        network.backward((2.0 / (K * B * signal)) * deviation[k])
        for g, layer, f in zip(grads, network.weighted, factors):
            g += layer.grad_weight * f[k]
    return value, grads


# ---- training -----------------------------------------------------------------------------------------
def _layer_inputs(layer) -> np.ndarray:
    """The 2-D inputs the layer's last forward multiplied by its weight (im2col rows for a conv)."""
    return layer._cols if isinstance(layer, Conv2D) else layer._inputs


def _cols_to_image_grad(layer: Conv2D, dcols: np.ndarray) -> np.ndarray:
    """Gradient of a conv layer's input image from a gradient of its im2col rows (the adjoint of im2col)."""
    in_shape, padded_shape, out_h, out_w = layer._shape
    k, c = layer.k, layer.channels_in
    d = dcols.reshape(in_shape[0], out_h, out_w, k, k, c)
    dx = np.zeros(padded_shape)
    for i in range(k):
        for j in range(k):
            dx[:, i:i + out_h, j:j + out_w, :] += d[:, :, :, i, j, :]
    p = layer.padding
    return dx[:, p:p + in_shape[1], p:p + in_shape[2], :] if p else dx


class DriftRegularizer:
    """Computes λ·R for a network after its forward pass, and adds its gradient during the backward pass.

    ``penalties(network, rng_or_pool)`` → list of ``Penalty`` (one per layer with weights), after
    ``network.forward``; ``backward(network, grad_logits, penalties)`` replaces ``network.backward``.
    """

    def __init__(self, config: DriftRegularizerConfig, t0_s: float = PcmParams.t0_s):
        self.config, self.t0_s = config, t0_s

    def penalties(self, network: Network, source: np.random.Generator | GaussianPool) -> list[Penalty]:
        c = self.config
        result = []
        for layer in network.weighted:
            W = layer.weight
            # the weight of a full-window device: the layer's max|W| over the fraction of the window it uses
            w_max = max(float(np.max(np.abs(W))), 1e-12) / c.window_fraction
            X = _layer_inputs(layer)
            rows = None
            if c.form != "analytic" and c.mc_examples is not None and c.mc_examples < len(X):
                rows = _choose_rows(source, len(X), c.mc_examples)
            # The signal is estimated on the rows the penalty sees (all of them for the analytic form).
            X_signal = X if rows is None else X[rows]
            signal = None
            if c.normalize:
                outputs = X_signal @ W
                outputs -= outputs.mean(axis=0)
                signal = max(float(np.einsum("bj,bj->", outputs, outputs)) / len(X_signal), 1e-12)
            if c.form == "analytic":
                p = analytic_penalty(W, X, w_max, c.time_s, c.drift_compensation, c.systematic, c.drift_scale,
                                     self.t0_s)
            else:
                X = X_signal
                n_out = W.shape[1]
                columns = None
                if c.mc_outputs is not None and c.mc_outputs < n_out:
                    columns = _choose_rows(source, n_out, c.mc_outputs)
                used = W if columns is None else W[:, columns]
                normals = source.standard_normal((W.shape[0], c.draws, used.shape[1]), dtype=np.float32)
                times = _log_uniform_times(source, c.draws, c.time_min_s, c.time_max_s)
                p = montecarlo_penalty_fast(used, X, w_max, times, normals, c.drift_compensation,
                                            c.drift_scale, self.t0_s)
                if columns is not None:
                    # Σ_j over a random subset of m columns, times n_out/m: unbiased for the full sum.
                    factor = n_out / len(columns)
                    grad_w = np.zeros_like(W)
                    grad_w[:, columns] = factor * p.grad_weight
                    p = Penalty(factor * p.value, grad_w, factor * p.grad_inputs)
                p = replace(p, rows=rows)
            if signal is not None:
                p = replace(_relative(p, X_signal, W, outputs, signal), rows=rows)
            result.append(p)
        return result

    def backward(self, network: Network, grad_logits: np.ndarray, penalties: list[Penalty]) -> None:
        """``network.backward`` plus λ·dR: into every weight gradient, and into the gradient that flows
        out of every layer's input (so earlier layers see how their outputs change R)."""
        strength = self.config.strength
        grad = grad_logits
        first = network.layers[0]
        index = len(network.weighted)
        for layer in reversed(network.layers):
            grad = layer.backward(grad, need_input_grad=layer is not first)
            if not layer.has_weights:
                continue
            index -= 1
            p = penalties[index]
            layer.grad_weight = layer.grad_weight + strength * p.grad_weight
            if grad is None or p.grad_inputs is None:
                continue
            d_inputs = p.grad_inputs
            if p.rows is not None:
                full = np.zeros(_layer_inputs(layer).shape)
                full[p.rows] = d_inputs
                d_inputs = full
            if isinstance(layer, Conv2D):
                grad = grad + strength * _cols_to_image_grad(layer, d_inputs)
            else:
                # The regularizer's mean is over the rows it saw; the loss's over the mini-batch: both
                # are already normalised, so they add.
                grad = grad + strength * d_inputs.reshape(grad.shape)


def _relative(p: Penalty, X, W, outputs, signal: float) -> Penalty:
    """R/S with S = Σ_j mean_b (y_bj − ȳ_j)² (y = X W; ``outputs`` holds y − ȳ) and its exact gradient
    (quotient rule): d(R/S) = dR/S − (R/S²) dS, dS/dW = (2/B) Xᵀ (y − ȳ), dS/dX = (2/B) (y − ȳ) Wᵀ."""
    B = len(X)
    ratio = p.value / signal
    grad_w = p.grad_weight / signal - ratio / signal * (2.0 / B) * (X.T @ outputs)
    grad_x = p.grad_inputs / signal - ratio / signal * (2.0 / B) * (outputs @ W.T)
    return Penalty(ratio, grad_w, grad_x)


def _choose_rows(source, n: int, k: int) -> np.ndarray:
    rng = source.rng if isinstance(source, GaussianPool) else source
    return np.sort(rng.choice(n, size=k, replace=False))


def _log_uniform_times(source, k: int, low_s: float, high_s: float) -> np.ndarray:
    rng = source.rng if isinstance(source, GaussianPool) else source
    return np.exp(rng.uniform(math.log(low_s), math.log(high_s), size=k))


def regularized_loss(network: Network, X, y, regularizer: DriftRegularizer,
                     rng: np.random.Generator) -> tuple[float, float]:
    """(loss1, λ·R) of ``network`` on one batch, from a clean forward pass (for checks and reports)."""
    logits = network.forward(X)
    loss, _ = softmax_cross_entropy(logits, y)
    return loss, regularizer.config.strength * sum(p.value for p in regularizer.penalties(network, rng))


@dataclass(frozen=True)
class DriftTrainingHistory(TrainingHistory):
    """``TrainingHistory`` plus the mean λ·R per epoch (``penalty``)."""

    penalty: np.ndarray | None = None


def train_drift_regularized(network: Network, X, y, config: NetworkTrainingConfig = NetworkTrainingConfig(),
                            regularizer: DriftRegularizerConfig = DriftRegularizerConfig(),
                            rng: np.random.Generator | None = None,
                            on_epoch: Callable[[int, float, float, float], None] | None = None
                            ) -> DriftTrainingHistory:
    """Train ``network`` in place with loss2 = cross-entropy + λ·R (``regularizer``); with
    ``config.weight_noise`` > 0 the forward pass also injects multiplicative weight noise (MNT).

    Same optimizers, seeding and batch order as ``train``; ``form="none"`` is plain (or MNT) training.
    """
    X, y = _check_data(network, X, y)
    rng = np.random.default_rng(config.seed) if rng is None else rng
    optimizer = (Adam(config.learning_rate) if config.optimizer == "adam"
                 else SgdMomentum(config.learning_rate, config.momentum))
    params = network.parameters()
    shapes = [w.shape for w in network.weights]
    # Drift draws come from a pool (the GaussianPool trade-off of ``train``): K·|W| normals per
    # mini-batch would cost more than the products.
    pool = GaussianPool(rng, max(int(np.prod(s)) for s in shapes) * regularizer.draws)
    noise = None if config.weight_noise == 0 else WeightNoise(
        config.weight_noise, pool if config.noise_sampling == "pool" else rng, shapes)
    reg = DriftRegularizer(regularizer)
    active = regularizer.form != "none" and regularizer.strength > 0
    losses, accuracies, times, penalties_out = (np.empty(config.epochs) for _ in range(4))
    for epoch in range(config.epochs):
        start = time.perf_counter()
        order = rng.permutation(len(X))
        pool.refill()
        total_loss, total_penalty, correct = 0.0, 0.0, 0
        for first in range(0, len(X), config.batch_size):
            rows = order[first:first + config.batch_size]
            weights = None if noise is None else noise.apply(network.weights)
            logits = network.forward(X[rows], weights)
            loss, grad = softmax_cross_entropy(logits, y[rows])
            if active and regularizer.form == "montecarlo_outputs":
                network.backward(grad)
                gradients = [g.copy() for g in network.gradients()]
                mc_rows = rows if regularizer.mc_examples is None else rows[:regularizer.mc_examples]
                value, extra = network_output_penalty(network, X[mc_rows], regularizer, pool)
                for i, g in enumerate(extra):
                    gradients[2 * i] += regularizer.strength * g
                total_penalty += regularizer.strength * value * len(rows)
                optimizer.step(params, gradients)
            else:
                if active:
                    layer_penalties = reg.penalties(network, pool)
                    reg.backward(network, grad, layer_penalties)
                    total_penalty += regularizer.strength * sum(p.value for p in layer_penalties) * len(rows)
                else:
                    network.backward(grad)
                optimizer.step(params, network.gradients())
            if config.weight_limit is not None:
                for w in network.weights:
                    np.clip(w, -config.weight_limit, config.weight_limit, out=w)
            total_loss += loss * len(rows)
            correct += int(np.sum(np.argmax(logits, axis=1) == y[rows]))
        losses[epoch], accuracies[epoch] = total_loss / len(X), correct / len(X)
        penalties_out[epoch] = total_penalty / len(X)
        times[epoch] = time.perf_counter() - start
        if on_epoch is not None:
            on_epoch(epoch, float(losses[epoch]), float(accuracies[epoch]), float(times[epoch]))
    return DriftTrainingHistory(losses, accuracies, times, config, "pcm", penalty=penalties_out)


# ---- accuracy over time ---------------------------------------------------------------------------------
def accuracy_over_time(network: Network, X, y, times_s=EVALUATION_TIMES_S, effects: PcmEffects = PcmEffects(),
                       compensation=(False, True), draws: int = 25, seed: int = 0, tile: TileConfig = DEFAULT_TILE,
                       batch_size: int = 1000, weights=None, window_fraction: float = 1.0) -> np.ndarray:
    """Accuracies (len(compensation), draws, len(times_s)) of ``network`` on PCM tiles.

    Each draw programs every weight once (programming noise, ν) and reads the same devices at every
    time of ``times_s`` (s since programming; fresh read noise per read), with GDC off and on as
    ``compensation`` lists: paired comparisons, as a deployed chip would be. ``effects`` gives the
    scales and converters (its ``time_s`` and ``drift_compensation`` are replaced). ``weights``:
    programmed instead of ``network.weights`` (e.g. a programming strategy's read-back), else None.
    ``window_fraction``: the part of the device window a full-scale weight uses (``WindowedPcmTileDevice``).
    """
    if isinstance(draws, bool) or not isinstance(draws, int) or not 1 <= draws <= 100000:
        raise ConfigError("evaluation.draws", draws, "an integer in [1, 100000]")
    times = [float(t) for t in times_s]
    for t in times:
        check_range("evaluation.times_s", t, 0.0, 1e12, True)
    X = np.asarray(X)
    y = np.asarray(y)
    used = network.weights if weights is None else weights
    result = np.empty((len(compensation), draws, len(times)))
    devices = {(gdc, t): WindowedPcmTileDevice(replace(effects, time_s=t, drift_compensation=bool(gdc)),
                                               window_fraction)
               for gdc in compensation for t in times}
    for d, child in enumerate(np.random.SeedSequence(seed).spawn(draws)):
        programming, reading = child.spawn(2)
        programmed = program_weights(used, devices[(compensation[0], 0.0 if 0.0 in times else times[0])], tile,
                                     np.random.default_rng(programming))
        # The same read-noise draws with GDC off and on: the two columns differ by compensation only.
        read_seeds = reading.spawn(len(times))
        for c, gdc in enumerate(compensation):
            for k, t in enumerate(times):
                read_rng, noise_rng = np.random.default_rng(read_seeds[k]).spawn(2)
                analog = []
                for matrix in programmed:
                    matrix.device = devices[(gdc, t)]  # same programmed states, read at another time
                    analog.append(matrix.read(read_rng))
                predicted = network.predict(X, batch_size, matmuls=[_bind(a, noise_rng) for a in analog])
                result[c, d, k] = float(np.mean(predicted == y))
    return result
