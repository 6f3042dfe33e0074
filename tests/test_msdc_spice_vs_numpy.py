"""The SPICE subcircuit and the NumPy model are the same model: pulse trains agree to 0.01 in x."""

import numpy as np
import pytest

from circuitnn.circuits.program import ProgrammingCircuit, PulseSpec
from circuitnn.devices import msdc
from circuitnn.devices.media import MEDIA
from circuitnn.spice.pulses import SpicePulseWriter


def _numpy_pulse(p, x, pulse, r_series):
    t = np.array([0.0, *pulse.breakpoints_s(), pulse.duration_s])
    return float(msdc.simulate_waveform(p, x, t, pulse.source_voltage_V(t), r_series)[0][-1])


@pytest.mark.parametrize("name", list(MEDIA))
def test_twenty_set_and_twenty_reset_pulses_agree(engine, name):
    p = MEDIA[name]
    circuit = ProgrammingCircuit(p)
    writer = SpicePulseWriter(circuit, engine)
    pulses = [PulseSpec(1.0, 10e-6)] * 20 + [PulseSpec(-1.0, 10e-6)] * 20
    for x0 in (0.0, 0.35, 0.9):
        spice = [r.x_after for r in writer.train(x0, pulses)]
        numpy_x, x = [], x0
        for pulse in pulses:
            x = _numpy_pulse(p, x, pulse, circuit.path.r_series_ohm)
            numpy_x.append(x)
        assert np.max(np.abs(np.array(spice) - numpy_x)) <= 0.01
        # And the train really moves the device: SET raises x, RESET lowers it.
        assert spice[19] > x0 or x0 > 0.99
        assert spice[-1] < spice[19]


def test_pulse_energy_is_integrated_from_the_waveforms(engine):
    p = MEDIA["W"]
    circuit = ProgrammingCircuit(p)
    writer = SpicePulseWriter(circuit, engine)
    pulse = PulseSpec(1.0, 10e-6)
    result = writer.apply(0.5, pulse)
    # Closed-form bound: during the flat top the device conductance lies between G(x_before) and
    # G(x_after); the series divider sets the current.
    r_s = circuit.path.r_series_ohm
    g = msdc.conductance_S(p, np.array([result.x_before, result.x_after]))
    power_bounds = [1.0 / (r_s + 1 / gi) ** 2 / gi for gi in g]  # I^2 / G = device power
    low, high = min(power_bounds) * pulse.width_s, max(power_bounds) * (pulse.width_s + 2 * pulse.edge_s)
    assert low * 0.99 <= result.energy_device_J <= high * 1.01
    # The source delivers the device energy plus the driver, switch and sense losses.
    assert result.energy_source_J > result.energy_device_J
    assert result.peak_current_A <= p.i_max_A
