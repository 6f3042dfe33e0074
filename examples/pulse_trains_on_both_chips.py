"""The same SET/RESET pulse train on one device, in ngspice (SpiceChip) and in NumPy (SurrogateChip),
for every registered device preset. Run: python examples/pulse_trains_on_both_chips.py"""

import numpy as np

from circuitnn import PulseSpec, SpiceChip, SurrogateChip, device_presets, load_config
from circuitnn.circuits.crossbar import Crossbar

for name in device_presets():
    config = load_config(medium_name=name)           # the preset's circuit, pulses and timing
    crossbar = Crossbar(config.crossbar_spec())
    states = np.full(crossbar.n_devices, 0.5)
    t = config.tuning
    train = ([PulseSpec(t.set_amplitude_V, t.pulse_width_s, t.edge_s)] * 5
             + [PulseSpec(t.reset_amplitude_V, t.reset_pulse_width_s or t.pulse_width_s, t.edge_s)] * 5)
    with SpiceChip(crossbar, states, config.programming, config.timing) as spice, \
            SurrogateChip(crossbar, states, config.programming, config.timing) as surrogate:
        x_spice = [spice.pulse_device(0, pulse).x_after for pulse in train]
        x_numpy = [surrogate.pulse_device(0, pulse).x_after for pulse in train]
        energy = spice.ledger.totals()["energy_total_J"]
    print(f"{name:8s} SPICE  " + " ".join(f"{x:.3f}" for x in x_spice))
    print(f"{'':8s} NumPy  " + " ".join(f"{x:.3f}" for x in x_numpy)
          + f"   max |diff| {np.max(np.abs(np.subtract(x_spice, x_numpy))):.1e}, energy {energy:.3g} J")
