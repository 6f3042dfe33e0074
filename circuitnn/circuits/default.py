"""The default circuit: the two-layer 9-3-1 network of Eslami et al. (30 memristors, 4 neurons).

9 inputs (a 3×3 image) × 3 hidden neurons = 27 devices, 3 hidden × 1 output neuron = 3 devices:
the only way to count exactly 30 one-device weights and 4 neurons in two layers (the paper does not
give its wiring; docs/reference/eslami2024-msdc.md §1.4).

Neuron design rule (ours; the paper gives no circuit values): a device at either end of its window
is a weight of ±``w_full_scale`` in software units, so the feedback resistor is
``R_f = w_full_scale / (k · V_read · (G_on − G_off)/2)`` with activation gain k. The rails (±2.5 V)
only clip when k·z > 10, where the sigmoid is already saturated.
"""

from __future__ import annotations

import math

from ..devices.base import DeviceModel
from ..errors import ConfigError
from ..validation import check_range
from .crossbar import CrossbarSpec, LayerSpec, NeuronSpec

V_READ_V = 0.1              # ≤ 0.1 V keeps reads far below the 0.5–0.65 V switching thresholds
ACTIVATION_GAIN_PER_V = 4.0
W_FULL_SCALE = 4.0          # software weight of a device at the edge of its window


def feedback_resistance_ohm(device: DeviceModel, v_read_V: float = V_READ_V,
                            activation_gain_per_V: float = ACTIVATION_GAIN_PER_V,
                            w_full_scale: float = W_FULL_SCALE) -> float:
    """The design rule above, in Ω; each input checked (with the config's dotted path) before use."""
    check_range("circuit.v_read_V", v_read_V, 0.0, 0.3)
    check_range("circuit.neuron.activation_gain_per_V", activation_gain_per_V, 0.0, 1e3)
    check_range("circuit.neuron.w_full_scale", w_full_scale, 0.0, 1e3)
    half_window_S = 0.5 * (device.g_high_S - device.g_low_S)
    denominator = activation_gain_per_V * v_read_V * half_window_S
    r_f = w_full_scale / denominator if denominator > 0.0 else math.inf
    if not r_f <= 1e9:  # the product of small inputs underflows: name the value they make
        raise ConfigError("circuit.neuron.r_feedback_ohm", r_f, "(0, 1e+09]: the design rule gives "
                          "w_full_scale / (activation_gain_per_V * v_read_V * half the device window); "
                          "set r_feedback_ohm or raise those values")
    return r_f


def default_spec(device: DeviceModel, seed: int | None = 0, **overrides) -> CrossbarSpec:
    """The 9-3-1 crossbar for one medium, with every circuit value from the design rule above."""
    neuron = NeuronSpec(r_feedback_ohm=feedback_resistance_ohm(device),
                        activation="sigmoid", activation_gain_per_V=ACTIVATION_GAIN_PER_V)
    values = dict(
        name=f"default_{device.medium.lower()}",
        device=device,
        layers=(LayerSpec(9, 3, neuron), LayerSpec(3, 1, neuron)),
        weights="single",
        v_read_V=V_READ_V,
        r_driver_ohm=10.0,
        r_line_ohm=1.0,
        r_sense_ohm=10.0,
        r_switch_on_ohm=100.0,
        seed=seed,
    )
    values.update(overrides)
    return CrossbarSpec(**values)


# A "+" on the 3×3 grid: the input the example netlists are saved with.
EXAMPLE_INPUT = (0.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0)


def example_states(n_devices: int, seed: int | None = 0):
    """Seeded mid-window device states for example netlists (not a trained network)."""
    import numpy as np

    return np.random.default_rng(seed).uniform(0.2, 0.8, n_devices)
