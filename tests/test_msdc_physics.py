"""M-SDC physics checked against closed-form results, for every medium (one contract, all media)."""

import numpy as np
import pytest

from circuitnn.devices import msdc
from circuitnn.devices.base import preset
from circuitnn.devices.media import MEDIA
from circuitnn.errors import ConfigError

ALL = list(MEDIA.values())


@pytest.mark.parametrize("p", ALL, ids=lambda p: p.medium)
def test_state_rate_matches_closed_form_exponential(p):
    # At constant V, dx/dt is linear in x: the closed form is exact, so a fine Euler must match it.
    x, v, duration = 0.2, 0.8, 3 * p.tau_s
    steps = 200_000
    dt = duration / steps
    xi = x
    for _ in range(0, steps, 1000):  # vectorised chunks keep the test fast
        for _ in range(1000):
            xi += dt * float(msdc.state_rate_per_s(p, xi, v))
    assert xi == pytest.approx(float(msdc.state_after_constant_voltage(p, x, v, duration)), abs=1e-4)


@pytest.mark.parametrize("p", ALL, ids=lambda p: p.medium)
def test_saturated_pulse_step_is_set_by_width(p):
    # Far above threshold the rate saturates at 1/tau: Δx = (1 − x)(1 − exp(−t_w/τ)).
    x0, width = 0.3, 0.5 * p.tau_s
    x1 = float(msdc.state_after_constant_voltage(p, x0, 3.0, width))
    assert x1 == pytest.approx(x0 + (1 - x0) * (1 - np.exp(-width / p.tau_s)), rel=1e-6)
    x2 = float(msdc.state_after_constant_voltage(p, x0, -3.0, width))
    assert x2 == pytest.approx(x0 * np.exp(-width / p.tau_s), rel=1e-6)


@pytest.mark.parametrize("p", ALL, ids=lambda p: p.medium)
def test_retention_over_a_training_run(p):
    # Zero-bias drift must stay below 1 % of the state range over 100 s, from any state.
    for x0 in (0.0, 0.5, 1.0):
        x = float(msdc.state_after_constant_voltage(p, x0, 0.0, 100.0))
        assert abs(x - x0) < 0.01


@pytest.mark.parametrize("p", ALL, ids=lambda p: p.medium)
def test_read_does_not_disturb(p):
    # A 0.1 V read held for a whole millisecond moves the state by far less than 1e-4.
    for x0 in (0.0, 1.0):
        assert abs(float(msdc.state_after_constant_voltage(p, x0, 0.1, 1e-3)) - x0) < 1e-4


@pytest.mark.parametrize("p", ALL, ids=lambda p: p.medium)
def test_set_current_within_datasheet_limit(p):
    assert float(msdc.current_A(p, 1.0, 1.0)) <= p.i_max_A


def test_media_ordered_as_vendor_documents():
    w, cr, c = preset("W"), preset("Cr"), preset("c")
    # W: analog, incremental (smallest step per pulse); C: binary (largest step, lowest power).
    width = 10e-6
    steps = [1 - np.exp(-width / p.tau_s) for p in (w, cr, c)]
    assert steps[0] < steps[1] < steps[2]
    assert w.g_on_S > cr.g_on_S > c.g_on_S
    assert (w.r_off_ohm / w.r_on_ohm) < (cr.r_off_ohm / cr.r_on_ohm) < (c.r_off_ohm / c.r_on_ohm)


def test_conductance_and_inverse():
    p = preset("Cr")
    x = np.linspace(0, 1, 11)
    g = msdc.conductance_S(p, x)
    assert g[0] == pytest.approx(1 / p.r_off_ohm) and g[-1] == pytest.approx(1 / p.r_on_ohm)
    np.testing.assert_allclose(msdc.state_from_conductance(p, g), x, atol=1e-12)


def test_generalized_diode_terms_pass_through_origin_and_series_solve():
    p = preset("W").replace(phi=0.7, alpha_f_A=1e-6, beta_f_per_V=4.0, alpha_r_A=2e-6, beta_r_per_V=3.0)
    assert float(msdc.current_A(p, 0.4, 0.0)) == 0.0
    v_dev = msdc.device_voltage_V(p, 0.4, 1.0, 1000.0)
    # The solved device voltage satisfies the divider equation.
    assert float(v_dev + 1000.0 * msdc.current_A(p, 0.4, v_dev)) == pytest.approx(1.0, abs=1e-12)


def test_hysteresis_loop_is_pinched_at_origin():
    p = preset("Cr")
    t = np.linspace(0, 2 / 100.0, 801)
    v = np.sin(2 * np.pi * 100.0 * t)
    x, v_dev, i = msdc.simulate_waveform(p, 0.0, t, v)
    zero = np.abs(v) < 1e-9
    assert np.all(np.abs(i[zero]) < 1e-12)
    # The loop is open: at +0.5 V the current on the way up (device still OFF) is well below the
    # current on the way down (device switched ON at the peak).
    period = 1 / 100.0
    up, down = np.argmin(np.abs(t - period / 12)), np.argmin(np.abs(t - 5 * period / 12))
    assert v[up] == pytest.approx(v[down], abs=0.01)
    assert i[down] > 5 * i[up]


@pytest.mark.parametrize("field,value", [("r_on_ohm", -1.0), ("tau_s", 0.0), ("phi", 1.5),
                                         ("v_on_V", float("nan")), ("r_off_ohm", 100.0)])
def test_invalid_parameters_name_the_field(field, value):
    with pytest.raises(ConfigError, match=rf"device\.{field}"):
        preset("W").replace(**{field: value})


def test_unknown_medium():
    with pytest.raises(ConfigError, match="device.medium.*W, Cr, C"):
        preset("Ag")
