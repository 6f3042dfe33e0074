"""PCM statistical model against the reference tables (docs/reference/dgc-drift-programming.md §4.5)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.stats import foldnorm

from circuitnn.devices import pcm
from circuitnn.networks.devices import (
    apply_drift_compensation,
    conductance_pair_to_weights,
    drift_compensation_alpha,
    drift_compensation_readout,
    weights_to_conductance_pair,
)
from circuitnn.errors import ConfigError

P = pcm.PcmParams()
G_MAX = P.g_max_S
DAY_S = 86400.0

# ĝ, σ_prog (µS at g_max = 25 µS), μ_ν, σ_ν, Q_s  — §4.5, printed to 4 decimals
REFERENCE_TABLE = [
    (0.001, 0.2654, 0.1000, 0.0450, 0.2000),
    (0.01, 0.2830, 0.0958, 0.0450, 0.1756),
    (0.05, 0.3588, 0.0708, 0.0315, 0.0617),
    (0.10, 0.4482, 0.0601, 0.0229, 0.0393),
    (0.20, 0.6096, 0.0493, 0.0142, 0.0251),
    (0.25, 0.6814, 0.0490, 0.0114, 0.0217),
    (0.50, 0.9527, 0.0490, 0.0080, 0.0138),
    (0.75, 1.0774, 0.0490, 0.0080, 0.0106),
    (0.8375, 1.0863, 0.0490, 0.0080, 0.0099),
    (1.00, 1.0554, 0.0490, 0.0080, 0.0088),
]

# t_inf (s), read-noise factor, drift factor at ν = 0.049, at ν = 0.1 — §4.5 time factors
# (1 month = 30 days, 1 year = 365 days: the choices that reproduce the printed digits)
TIME_TABLE = [
    (0.0, 4.184, 1.000, 1.000),
    (1.0, 4.190, 0.998, 0.995),
    (60.0, 4.346, 0.934, 0.871),
    (3600.0, 4.765, 0.775, 0.595),
    (DAY_S, 5.087, 0.664, 0.433),
    (30 * DAY_S, 5.411, 0.562, 0.308),
    (365 * DAY_S, 5.637, 0.497, 0.240),
    (3650 * DAY_S, 5.838, 0.444, 0.191),
]


def _round(x, places):
    return float(np.round(float(x), places))


# ---- deterministic tables ------------------------------------------------------------------------
@pytest.mark.parametrize("g_hat, sigma_uS, nu_mean, nu_std, q_s", REFERENCE_TABLE)
def test_reference_table_to_four_decimals(g_hat, sigma_uS, nu_mean, nu_std, q_s):
    g = g_hat * G_MAX
    assert _round(pcm.prog_noise_std_S(P, g) / 1e-6, 4) == sigma_uS
    assert _round(pcm.drift_nu_mean(P, g), 4) == nu_mean
    assert _round(pcm.drift_nu_std(P, g), 4) == nu_std
    assert _round(pcm.read_noise_q(P, g), 4) == q_s


def test_functions_are_vectorised_over_the_table():
    g = np.array([row[0] for row in REFERENCE_TABLE]).reshape(2, 5) * G_MAX
    expected = np.array([row[1:] for row in REFERENCE_TABLE]).reshape(2, 5, 4)
    got = np.stack([pcm.prog_noise_std_S(P, g) / 1e-6, pcm.drift_nu_mean(P, g),
                    pcm.drift_nu_std(P, g), pcm.read_noise_q(P, g)], axis=-1)
    assert got.shape == (2, 5, 4)
    np.testing.assert_allclose(got, expected, atol=5e-5)


@pytest.mark.parametrize("t_s, read_factor, drift_049, drift_01", TIME_TABLE)
def test_time_factor_table_to_three_decimals(t_s, read_factor, drift_049, drift_01):
    g = 0.5 * G_MAX
    factor = pcm.read_noise_std_relative(P, g, t_s) / pcm.read_noise_q(P, g)
    assert _round(factor, 3) == read_factor
    assert _round(pcm.drift(P, 1.0, 0.049, t_s), 3) == drift_049
    assert _round(pcm.drift(P, 1.0, 0.1, t_s), 3) == drift_01


def test_relative_read_noise_consequences():
    # §4.5: about 3.7 % at ĝ = 1 and about 16 % at ĝ = 0.1, right after programming
    assert pcm.read_noise_std_relative(P, G_MAX, 0.0) == pytest.approx(0.0088 * 4.1838, rel=1e-4)
    assert pcm.read_noise_std_relative(P, 0.1 * G_MAX, 0.0) == pytest.approx(0.16, abs=0.005)


def test_crossovers():
    g = lambda g_hat: g_hat * G_MAX  # noqa: E731
    # μ_ν saturates at 0.1 below ĝ = 0.0076 and at 0.049 above ĝ = 0.2045
    assert pcm.drift_nu_mean(P, g(0.0076)) == 0.1 and pcm.drift_nu_mean(P, g(0.0077)) < 0.1
    assert pcm.drift_nu_mean(P, g(0.2045)) > 0.049 and pcm.drift_nu_mean(P, g(0.2046)) == 0.049
    # σ_ν saturates at 0.045 below ĝ = 0.0170 and at 0.008 above ĝ = 0.3289
    assert pcm.drift_nu_std(P, g(0.0170)) == 0.045 and pcm.drift_nu_std(P, g(0.0171)) < 0.045
    assert pcm.drift_nu_std(P, g(0.3289)) > 0.008 and pcm.drift_nu_std(P, g(0.3290)) == 0.008
    # Q_s saturates at 0.2 below ĝ = 0.0082
    assert pcm.read_noise_q(P, g(0.0081)) == 0.2 and pcm.read_noise_q(P, g(0.0082)) < 0.2
    # σ_prog peaks at ĝ = 0.8375
    grid = np.linspace(0.0, 1.0, 100_001)
    assert grid[np.argmax(pcm.prog_noise_std_S(P, grid * G_MAX))] == pytest.approx(0.8375, abs=1e-4)


def test_device_at_g_min_uses_floored_g_hat():
    zero = np.zeros(3)
    np.testing.assert_array_equal(pcm.drift_nu_mean(P, zero), 0.1)
    np.testing.assert_array_equal(pcm.drift_nu_std(P, zero), 0.045)
    np.testing.assert_array_equal(pcm.read_noise_q(P, zero), 0.2)


def test_prog_noise_rescales_with_g_max():
    big = pcm.PcmParams(g_max_S=50e-6)
    g_hat = np.linspace(0.0, 1.0, 11)
    ratio = pcm.prog_noise_std_S(big, g_hat * big.g_max_S) / pcm.prog_noise_std_S(P, g_hat * G_MAX)
    np.testing.assert_allclose(ratio, 2.0, rtol=1e-12)
    assert pcm.prog_noise_std_S(big, big.g_max_S) == pytest.approx(2 * 1.0554e-6, abs=1e-10)


def test_noise_scales_switch_terms_off():
    quiet = pcm.PcmParams(prog_noise_scale=0.0, drift_scale=0.0, read_noise_scale=0.0)
    rng = np.random.default_rng(0)
    g = np.linspace(0.0, G_MAX, 7)
    np.testing.assert_array_equal(pcm.program(quiet, g, rng), g)
    np.testing.assert_array_equal(pcm.sample_drift_nu(quiet, g, rng), 0.0)
    np.testing.assert_array_equal(pcm.read(quiet, g, 0.1, DAY_S, rng), pcm.drift(quiet, g, 0.1, DAY_S))


# ---- Monte Carlo ---------------------------------------------------------------------------------
def test_folded_nu_at_low_conductance():
    rng = np.random.default_rng(1)
    nu = pcm.sample_drift_nu(P, np.full(1_000_000, 0.001 * G_MAX), rng)
    assert nu.min() >= 0.0
    assert nu.mean() == pytest.approx(0.1005, abs=0.001)
    assert nu.std() == pytest.approx(0.0441, abs=0.001)
    # Tighter: the exact folded-normal moments (mean 0.10041, std 0.04407; the printed 0.1005 is
    # itself a Monte-Carlo number). Standard errors at 10^6 samples are about 4e-5 and 3e-5.
    assert nu.mean() == pytest.approx(foldnorm.mean(0.1 / 0.045, scale=0.045), abs=2e-4)
    assert nu.std() == pytest.approx(foldnorm.std(0.1 / 0.045, scale=0.045), abs=2e-4)


def test_nu_unfolded_at_high_conductance():
    rng = np.random.default_rng(2)
    nu = pcm.sample_drift_nu(P, np.full(1_000_000, 0.5 * G_MAX), rng)
    assert nu.mean() == pytest.approx(0.049, abs=2e-5)
    assert nu.std() == pytest.approx(0.008, rel=0.01)


@pytest.mark.parametrize("g_hat", [0.1, 0.5, 1.0])
def test_programming_noise_std_matches_sigma_prog(g_hat):
    rng = np.random.default_rng(3)
    target = g_hat * G_MAX
    g = pcm.program(P, np.full(1_000_000, target), rng)
    sigma = pcm.prog_noise_std_S(P, target)
    assert g.std() == pytest.approx(sigma, rel=0.01)
    assert g.mean() == pytest.approx(target, abs=3 * sigma / 1000)


def test_programming_clamps_at_zero():
    rng = np.random.default_rng(4)
    g = pcm.program(P, np.zeros(1_000_000), rng)
    sigma = pcm.prog_noise_std_S(P, 0.0)
    assert g.min() == 0.0
    assert np.mean(g == 0.0) == pytest.approx(0.5, abs=0.002)
    # half-normal mean σ/sqrt(2π): the clamp keeps the positive half unchanged
    assert g.mean() == pytest.approx(sigma / np.sqrt(2 * np.pi), rel=0.01)


def test_read_noise_std_matches_analytic_and_clamps():
    rng = np.random.default_rng(5)
    g_prog = np.full(1_000_000, 0.5 * G_MAX)
    g = pcm.read(P, g_prog, 0.049, DAY_S, rng)
    g_drift = pcm.drift(P, g_prog[0], 0.049, DAY_S)
    sigma = pcm.read_noise_std_relative(P, g_prog[0], DAY_S) * g_drift
    assert g.mean() == pytest.approx(g_drift, rel=1e-3)
    assert g.std() == pytest.approx(sigma, rel=0.01)
    # at low ĝ the relative noise is about 100 %, so the clamp bites
    low = pcm.read(P, np.full(100_000, 0.001 * G_MAX), 0.0, 0.0, rng)
    assert low.min() == 0.0 and np.mean(low == 0.0) > 0.1


def test_drift_leaves_device_unchanged_at_t0_and_rejects_negative_time():
    g = np.array([1e-6, 10e-6])
    np.testing.assert_array_equal(pcm.drift(P, g, np.array([0.1, 0.2]), 0.0), g)
    with pytest.raises(ConfigError, match="t_s"):
        pcm.drift(P, g, 0.1, -1.0)


def test_conductance_at_reuses_state():
    rng = np.random.default_rng(6)
    quiet_read = pcm.PcmParams(read_noise_scale=0.0)
    target = np.linspace(0.0, G_MAX, 5)
    g0, state = pcm.conductance_at(quiet_read, target, 0.0, rng)
    g1, same = pcm.conductance_at(quiet_read, target, DAY_S, rng, state=state)
    assert same is state and state.g_prog_S.shape == state.nu.shape == (5,)
    np.testing.assert_array_equal(g0, state.g_prog_S)
    np.testing.assert_allclose(g1, state.g_prog_S * (1 + DAY_S / 20.0) ** -state.nu, rtol=1e-12)


# ---- weight mapping and global drift compensation ------------------------------------------------
def test_weight_mapping_round_trip():
    w = np.array([[-0.5, 0.0, 0.25], [1.0, -2.0, 0.1]])
    g_plus, g_minus, scale = weights_to_conductance_pair(P.g_min_S, P.g_max_S, w)
    assert scale == pytest.approx(G_MAX / 2.0)
    assert g_minus[1, 1] == pytest.approx(G_MAX) and g_plus[1, 0] == pytest.approx(G_MAX / 2)
    assert np.all(np.minimum(g_plus, g_minus) == 0.0)  # one device of each pair at g_min
    np.testing.assert_allclose(conductance_pair_to_weights(g_plus, g_minus, scale), w, rtol=1e-12)

    offset = pcm.PcmParams(g_min_S=1e-6)
    gp, gm, s = weights_to_conductance_pair(offset.g_min_S, offset.g_max_S, w, w_max=4.0)
    assert s == pytest.approx(24e-6 / 4.0)
    assert np.all(np.minimum(gp, gm) == pytest.approx(1e-6))
    np.testing.assert_allclose(conductance_pair_to_weights(gp, gm, s), w, rtol=1e-12)
    with pytest.raises(ConfigError, match="w_max"):
        weights_to_conductance_pair(P.g_min_S, P.g_max_S, w, w_max=0.0)


def _drifted_tile(seed, t_s, size=256):
    rng = np.random.default_rng(seed)
    w = np.clip(rng.normal(0.0, 1.0 / 3.0, (size, size)), -1.0, 1.0)
    g_plus, g_minus, scale = weights_to_conductance_pair(P.g_min_S, P.g_max_S, w)
    _, plus = pcm.conductance_at(P, g_plus, 0.0, rng)
    _, minus = pcm.conductance_at(P, g_minus, 0.0, rng)
    gp_t, _ = pcm.conductance_at(P, g_plus, t_s, rng, state=plus)
    gm_t, _ = pcm.conductance_at(P, g_minus, t_s, rng, state=minus)
    return plus.g_prog_S, minus.g_prog_S, gp_t, gm_t, scale


def _relative_bias(w, w_ref):
    # least-squares gain of w against the reference, minus 1: a global scale error of the tile
    return float(np.sum(w * w_ref) / np.sum(w_ref * w_ref) - 1.0)


def test_gdc_removes_drift_bias_after_one_day():
    gp_ref, gm_ref, gp_t, gm_t, scale = _drifted_tile(seed=7, t_s=DAY_S)
    alpha = drift_compensation_alpha(gp_ref, gm_ref, gp_t, gm_t, scale)
    w_ref = conductance_pair_to_weights(gp_ref, gm_ref, scale)
    w_t = conductance_pair_to_weights(gp_t, gm_t, scale)
    w_comp = apply_drift_compensation(w_t, alpha)

    # large weights dominate mean|W| and have ν ≈ 0.049, whose 1-day factor is 0.664
    assert alpha == pytest.approx(1 / 0.664, rel=0.03)
    assert _relative_bias(w_t, w_ref) < -0.30           # measured -0.334
    assert abs(_relative_bias(w_comp, w_ref)) < 0.02    # measured +0.005
    assert np.mean(np.abs(w_comp)) == pytest.approx(np.mean(np.abs(w_ref)), rel=1e-12)


def test_gdc_is_one_without_drift_and_floors_the_readout():
    gp_ref, gm_ref, _, _, scale = _drifted_tile(seed=8, t_s=0.0, size=32)
    assert drift_compensation_alpha(gp_ref, gm_ref, gp_ref, gm_ref, scale) == 1.0
    zeros = np.zeros((4, 4))
    assert drift_compensation_readout(zeros, zeros, 1e-6) == 1e-4
    # the read-out equals mean|out| for one-hot inputs through y = x @ W
    w = conductance_pair_to_weights(gp_ref, gm_ref, scale)
    assert drift_compensation_readout(gp_ref, gm_ref, scale) == pytest.approx(
        np.mean(np.abs(np.eye(32) @ w)), rel=1e-12)


# ---- parameter validation ------------------------------------------------------------------------
@pytest.mark.parametrize("field, value", [
    ("g_max_S", 0.0), ("g_max_S", -1e-6), ("g_max_S", 2e-2), ("g_max_S", float("nan")),
    ("g_min_S", -1e-9), ("g_min_S", 25e-6), ("t0_s", 0.0), ("t_read_s", -1e-9),
    ("prog_noise_scale", -0.1), ("drift_scale", -1.0), ("read_noise_scale", float("inf")),
    ("prog_noise_coeffs", (0.26, 1.96)),
])
def test_invalid_parameters_name_the_field(field, value):
    with pytest.raises(ConfigError, match=rf"pcm\.{field}") as info:
        pcm.PcmParams(**{field: value})
    assert info.value.path == f"pcm.{field}"


def test_params_are_frozen_and_cite_their_source():
    with pytest.raises(dataclasses.FrozenInstanceError):
        P.g_max_S = 1e-6  # type: ignore[misc]
    assert "Nandakumar" in P.provenance and "aihwkit" in P.provenance
    assert pcm.PcmParams(g_max_S=1e-2, g_min_S=0.0, drift_scale=0.0).g_max_S == 1e-2
