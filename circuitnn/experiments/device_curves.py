"""Device curves per medium: a sinusoidal I–V sweep (hysteresis loop) and a SET/RESET pulse train,
each simulated in SPICE with the NumPy model beside it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..circuits import characterize
from ..circuits.program import ProgrammingCircuit
from .config import Config
from ..devices.base import simulate_waveform
from ..spice.engine import SpiceEngine
from ..spice.pulses import SpicePulseWriter


@dataclass(frozen=True)
class DeviceCurves:
    medium: str
    hysteresis: dict[str, np.ndarray]  # time_s, voltage_V, current_A, state, current_numpy_A, state_numpy
    pulses: dict[str, np.ndarray]      # pulse, amplitude_V, state_spice, state_numpy, energy_*_J


def device_curves(config: Config, engine: SpiceEngine) -> DeviceCurves:
    p = config.device.params()
    c = config.curves
    t, v = characterize.sine_sweep(c.sweep_amplitude_V, c.sweep_frequency_Hz, c.sweep_cycles,
                                   c.points_per_cycle)
    trace = characterize.simulate_trace(p, t, v, engine, x0=0.0)
    x_np, _, i_np = simulate_waveform(p, 0.0, trace.t_s, trace.v_device_V)
    hysteresis = {"time_s": trace.t_s, "voltage_V": trace.v_device_V, "current_A": trace.i_device_A,
                  "state": trace.x, "current_numpy_A": i_np, "state_numpy": x_np}

    circuit = ProgrammingCircuit(p, config.programming_path())
    pulses = [config.set_pulse()] * c.pulses + [config.reset_pulse()] * c.pulses
    results = SpicePulseWriter(circuit, engine).train(0.0, pulses)
    x_numpy, x = [], 0.0
    for pulse in pulses:
        corners = np.array([0.0, *pulse.breakpoints_s(), pulse.duration_s])
        x = float(simulate_waveform(p, x, corners, pulse.source_voltage_V(corners),
                                         circuit.path.r_series_ohm)[0][-1])
        x_numpy.append(x)
    pulse_table = {
        "pulse": np.arange(1, len(pulses) + 1),
        "amplitude_V": np.array([pl.amplitude_V for pl in pulses]),
        "state_spice": np.array([r.x_after for r in results]),
        "state_numpy": np.array(x_numpy),
        "conductance_S": p.conductance_S(np.array([r.x_after for r in results])),
        "energy_device_J": np.array([r.energy_device_J for r in results]),
        "energy_source_J": np.array([r.energy_source_J for r in results]),
    }
    return DeviceCurves(p.medium, hysteresis, pulse_table)
