"""Optional non-idealities of the surrogate chip. All off by default; all seeded.

Each effect is a pure function of its inputs and an explicit ``numpy.random.Generator``; the chip
owns the generators (one for the per-device draws made once at construction, one for the noise
drawn per operation), so a chip built with the same seed repeats itself exactly.

* **Read noise**: a relative Gaussian error on each verify read's conductance (what the controller
  computes from its ADC), and on each column current during inference (a noise current in
  parallel with the column, injected at the summing node).
* **Programming noise**: a Gaussian error in state units on the state after each pulse, clipped
  to [0, 1] (cycle-to-cycle variation of a write).
* **Device-to-device variation**: fixed per-device log-normal factors on the two ends of the
  conductance window (R_on and R_off of a memristor; median 1, ``sigma`` of the logarithm), sampled
  once; the device's window moves with them.
* **Stuck devices**: a fraction of the devices, sampled once, stuck at x = 1 (with probability
  ``stuck_on_fraction``) or x = 0; pulses, rests and ``load_states`` leave them there.
* **Quantisation**: a signed DAC of ``input_bits`` on the input voltages (levels k·V_read/(2^(b−1) − 1),
  so 0 and ±V_read are exact) and an ADC of ``output_bits`` on the TIA outputs within ±V_rail
  (same convention); the quantised TIA output feeds the activation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..validation import check_range


@dataclass(frozen=True)
class DeviceEffects:
    read_noise_sigma: float = 0.0          # relative, on each verify read's conductance
    column_noise_sigma: float = 0.0        # relative, on each column current during inference
    programming_noise_sigma: float = 0.0   # absolute, in state units, after each pulse
    r_on_variation_sigma: float = 0.0      # log-normal sigma of the per-device R_on factor
    r_off_variation_sigma: float = 0.0     # log-normal sigma of the per-device R_off factor
    stuck_fraction: float = 0.0            # fraction of devices stuck (sampled once)
    stuck_on_fraction: float = 0.5         # of those, the fraction stuck at x = 1 (others at x = 0)
    input_bits: int | None = None          # DAC resolution on the input voltages; None: ideal
    output_bits: int | None = None         # ADC resolution on the TIA outputs; None: ideal

    def __post_init__(self) -> None:
        for name in ("read_noise_sigma", "column_noise_sigma", "programming_noise_sigma",
                     "r_on_variation_sigma", "r_off_variation_sigma"):
            check_range(f"effects.{name}", getattr(self, name), 0.0, 1.0, True)
        check_range("effects.stuck_fraction", self.stuck_fraction, 0.0, 1.0, True)
        check_range("effects.stuck_on_fraction", self.stuck_on_fraction, 0.0, 1.0, True)
        for name in ("input_bits", "output_bits"):
            bits = getattr(self, name)
            if bits is not None and (isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 32):
                raise ConfigError(f"effects.{name}", bits, "None (ideal) or an integer in [2, 32]")

    @property
    def any(self) -> bool:
        """Whether any effect is switched on."""
        return self != DeviceEffects()


@dataclass(frozen=True)
class DeviceDraws:
    """The per-device draws made once: conductance windows and stuck devices. Shapes (n,)."""

    g_high_S: np.ndarray
    g_low_S: np.ndarray
    stuck: np.ndarray          # bool
    stuck_state: np.ndarray    # the state a stuck device holds (0 or 1; meaningless where not stuck)

    def apply_stuck(self, states: np.ndarray) -> np.ndarray:
        return np.where(self.stuck, self.stuck_state, states)


def sample_devices(effects: DeviceEffects, g_high_S: float, g_low_S: float, n: int,
                   rng: np.random.Generator) -> DeviceDraws:
    """Draw every device's window factors and whether (and where) it is stuck.

    The high end of the window (R_on of a memristor) and the low end (R_off) are divided by
    independent log-normal factors. All four draws are always made, so switching one effect on does
    not change another's draws.
    """
    on_factor = np.exp(effects.r_on_variation_sigma * rng.standard_normal(n))
    off_factor = np.exp(effects.r_off_variation_sigma * rng.standard_normal(n))
    stuck = rng.random(n) < effects.stuck_fraction
    stuck_state = (rng.random(n) < effects.stuck_on_fraction).astype(float)
    return DeviceDraws(g_high_S / on_factor, g_low_S / off_factor, stuck, stuck_state)


def noisy_read(effects: DeviceEffects, conductance_S, rng: np.random.Generator):
    """A verify read's conductance with relative Gaussian read noise."""
    if effects.read_noise_sigma == 0.0:
        return conductance_S
    g = np.asarray(conductance_S, dtype=float)
    return g * (1.0 + effects.read_noise_sigma * rng.standard_normal(g.shape))


def column_noise_A(effects: DeviceEffects, column_currents_A, rng: np.random.Generator) -> np.ndarray:
    """Extra currents (same shape) for relative Gaussian noise on the column currents."""
    i = np.asarray(column_currents_A, dtype=float)
    return effects.column_noise_sigma * i * rng.standard_normal(i.shape)


def programmed_state(effects: DeviceEffects, x_after, rng: np.random.Generator):
    """The state after a pulse with programming noise (state units), clipped to [0, 1]."""
    if effects.programming_noise_sigma == 0.0:
        return x_after
    x = np.asarray(x_after, dtype=float)
    return np.clip(x + effects.programming_noise_sigma * rng.standard_normal(x.shape), 0.0, 1.0)


def quantize(values, full_scale: float, bits: int | None):
    """A signed converter of ``bits`` over ±``full_scale``: levels k·full_scale/(2^(bits−1) − 1).

    Values beyond full scale saturate. ``bits=None`` returns the values unchanged.
    """
    if bits is None:
        return values
    levels = 2 ** (bits - 1) - 1
    step = full_scale / levels
    return np.clip(np.round(np.asarray(values, dtype=float) / step), -levels, levels) * step
