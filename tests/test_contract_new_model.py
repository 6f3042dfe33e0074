"""A device model added without touching the package: it passes the whole contract suite.

A throwaway linear-drift memristor (the Strukov et al. 2008 picture with linear windows: the state
moves at a rate proportional to the voltage, toward ON for positive V), written here in full —
parameters, physics, SPICE subcircuit — and given to the contract suite. Nothing outside this file
knows it exists; it is not even registered (registration is what puts a model of the package in
``test_device_contract.py`` and in the presets).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from circuitnn.devices.base import Retention, SpiceSubcircuit, TwoRateModel, presets
from device_contract import DeviceContract, Programming


@dataclass(frozen=True)
class LinearDrift(TwoRateModel):
    """dx/dt = k·max(V, 0)(1 − x) − k·max(−V, 0) x;  G = G_off + x (G_on − G_off)."""

    family = "lineardrift"
    rate_voltage_scale_V = 0.05

    medium: str = "LinearDrift"
    g_on_S: float = 1e-3
    g_off_S: float = 1e-5
    k_per_V_s: float = 5e3
    provenance: str = "a test model, not a device"
    retention: Retention = Retention()   # nothing moves at 0 V

    @property
    def g_low_S(self) -> float:
        return self.g_off_S

    @property
    def g_high_S(self) -> float:
        return self.g_on_S

    def conductance_S(self, x, g_low_S=None, g_high_S=None):
        low = self.g_off_S if g_low_S is None else g_low_S
        high = self.g_on_S if g_high_S is None else g_high_S
        return low + (high - low) * np.asarray(x, dtype=float)

    def state_from_conductance(self, g_S, g_low_S=None, g_high_S=None):
        low = self.g_off_S if g_low_S is None else g_low_S
        high = self.g_on_S if g_high_S is None else g_high_S
        return (np.asarray(g_S, dtype=float) - low) / (high - low)

    def current_A(self, x, v_V):
        return np.asarray(v_V, dtype=float) * self.conductance_S(x)

    def rates_per_s(self, v_V):
        v = np.asarray(v_V, dtype=float)
        return self.k_per_V_s * np.maximum(v, 0.0), self.k_per_V_s * np.maximum(-v, 0.0)

    def spice_subcircuit(self) -> SpiceSubcircuit:
        return SpiceSubcircuit(
            name="lineardrift", pins=("p", "n"),
            parameters=(("gon", self.g_on_S), ("goff", self.g_off_S), ("k", self.k_per_V_s)),
            inputs=(("x0", "vx0", 0.0),),
            body=("Vx0 xs 0 dc {x0}", "Rhold x xs 1e12", "Cx x 0 1",
                  "Bx 0 x I = (time > 0) ? k*(max(V(p,n),0)*(1-V(x)) - max(-V(p,n),0)*V(x)) : 0",
                  "Bm p n I = V(p,n)*(goff + (gon-goff)*V(x))"),
            comments=("linear-drift test model", self.provenance),
            state_node="x")


class TestLinearDriftModel(DeviceContract):
    @pytest.fixture
    def model(self):
        return LinearDrift()

    @pytest.fixture
    def programming(self, model):
        # No preset file: the test says how to program it. Reads must stay tiny (no threshold).
        return Programming(set_amplitude_V=1.0, reset_amplitude_V=-1.0, width_s=10e-6, reset_width_s=10e-6,
                           edge_s=100e-9, v_read_V=min(0.1, model.max_read_voltage_V()))


def test_the_new_model_stays_out_of_the_registry():
    assert "LinearDrift" not in presets()
