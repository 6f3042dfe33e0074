"""Verify reads and fixed-state pulses through the programming path, for linear devices, in closed form.

The circuit is ``circuits/program.py``'s: generator ─ R_series (driver, switch, sense) ─ device. At a
fixed state a linear device is a conductance G, so an operating point is the divider and a pulse on a
device that cannot move (a stuck device) has elementary energies. Plain arithmetic: floats (one
device) and arrays (many) both work. The pulse response of a moving device is the device model's
(``DeviceModel.pulse_response``).
"""

from __future__ import annotations

import numpy as np


def read_dc(g_S, v_read_V: float, r_series_ohm):
    """The operating point of the path held at ``v_read_V``: (current A, device voltage V)."""
    divider = 1.0 / (1.0 + r_series_ohm * g_S)
    return v_read_V * g_S * divider, v_read_V * divider


def fixed_state_energies(g_S, amplitude_V, width_s, edge_s, r_series_ohm):
    """(device, source) energies (J) of a pulse on a device held at conductance ``g_S``.

    ∫ s² dt over the trapezoid is A² (width + 2·edge/3); the divider is constant.
    """
    g = np.asarray(g_S, dtype=float)
    d = 1.0 / (1.0 + np.asarray(r_series_ohm) * g)
    square = np.asarray(amplitude_V) ** 2 * (np.asarray(width_s) + 2.0 * np.asarray(edge_s) / 3.0)
    return square * g * d * d, square * g * d
