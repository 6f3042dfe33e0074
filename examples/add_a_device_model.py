"""A new device model in a script: a threshold-free linear-drift memristor, written against the
device-model contract, registered, and simulated on both chips without touching circuitnn.

Adding it to circuitnn itself is the same class in one new file of circuitnn/devices/ with a
``PRESETS = (...)`` tuple, plus a preset file circuitnn/presets/<name>.toml for the CLI.
Run: python examples/add_a_device_model.py"""

from dataclasses import dataclass

import numpy as np

from circuitnn import (LinearConductance, PulseSpec, Retention, SpiceChip, SpiceSubcircuit, SurrogateChip,
                       TwoRateModel, default_spec, preset, register)
from circuitnn.circuits.crossbar import Crossbar


@dataclass(frozen=True)
class LinearDrift(LinearConductance, TwoRateModel):
    """dx/dt = k·max(V, 0)(1 − x) − k·max(−V, 0)·x, G = G_off + x (G_on − G_off) (``LinearConductance``
    gives conductance ↔ state from the window ends)."""

    family = "lineardrift"
    medium: str = "LinearDrift"
    g_on_S: float = 1e-3
    g_off_S: float = 1e-5
    k_per_V_s: float = 5e3
    provenance: str = "example model"
    retention: Retention = Retention()

    g_low_S = property(lambda self: self.g_off_S)
    g_high_S = property(lambda self: self.g_on_S)

    def current_A(self, x, v_V):
        return np.asarray(v_V, dtype=float) * self.conductance_S(x)

    def rates_per_s(self, v_V):
        v = np.asarray(v_V, dtype=float)
        return self.k_per_V_s * np.maximum(v, 0.0), self.k_per_V_s * np.maximum(-v, 0.0)

    def spice_subcircuit(self):
        return SpiceSubcircuit(
            name="lineardrift", pins=("p", "n"),
            parameters=(("gon", self.g_on_S), ("goff", self.g_off_S), ("k", self.k_per_V_s)),
            inputs=(("x0", "vx0", 0.0),),
            body=("Vx0 xs 0 dc {x0}", "Rhold x xs 1e12", "Cx x 0 1",
                  "Bx 0 x I = (time > 0) ? k*(max(V(p,n),0)*(1-V(x)) - max(-V(p,n),0)*V(x)) : 0",
                  "Bm p n I = V(p,n)*(goff + (gon-goff)*V(x))"),
            comments=("linear-drift example model",), state_node="x")


register(LinearDrift())
model = preset("LinearDrift")
# No threshold: a read disturbs unless it is tiny. The model says how tiny.
crossbar = Crossbar(default_spec(model, v_read_V=model.max_read_voltage_V()))
pulses = [PulseSpec(1.0, 10e-6)] * 4 + [PulseSpec(-1.0, 10e-6)] * 4
with SpiceChip(crossbar, np.full(30, 0.5)) as spice, SurrogateChip(crossbar, np.full(30, 0.5)) as surrogate:
    for pulse in pulses:
        a, b = spice.pulse_device(0, pulse).x_after, surrogate.pulse_device(0, pulse).x_after
        print(f"{pulse.amplitude_V:+.1f} V: SPICE x = {a:.4f}, NumPy x = {b:.4f}")
