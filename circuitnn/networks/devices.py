"""Device-effect models of one crossbar tile: weights → a differential conductance pair → what a read sees.

Every tile device implements the same small protocol (``TileDevice``):

* ``program(w, rng) -> state``: write a weight block (rows, cols) onto one differential pair per weight,
  drawing everything that is fixed at programming time (programming error, device-to-device
  variation, stuck devices, drift exponents).
* ``readout(state, rng) -> TileReadout``: what the tile looks like when it is used, ``time`` seconds
  after programming (retention / drift, a read-noise snapshot, drift compensation).
* ``training_noise_var(w_normalised, out)``: for training, where the tile holds (already
  noise-injected) weights through the ideal mapping, the per-read noise variance of every pair in
  normalised units ((g_hi − g_lo)² = 1), written into ``out``; ``has_read_noise`` says whether there is
  any. No static effect is drawn, so it is cheap enough to run on every mini-batch.

A ``TileReadout`` is device-independent; ``tiles.py`` turns it into an analog matrix-vector product
with DAC/ADC quantisation. The effect parameters are frozen dataclasses (``MsdcEffects``,
``PcmEffects``) validated as ``effects.<field>``; ``ideal()`` gives every effect off.

Mapping (both devices): one differential pair per weight, one device of each pair at the bottom of the
window, as in aihwkit's single-pair converter (docs/reference/dgc-drift-programming.md §4.1):

    scale = (g_hi − g_lo)/w_max      w_max = max|W| of the tile
    G+ = g_lo + scale·max(w, 0)      G− = g_lo + scale·max(−w, 0)      w = (G+ − G−)/scale

For a memristor tile (g_lo, g_hi) = the medium's conductance window (``DeviceModel.g_low_S``,
``g_high_S``; 1/R_off, 1/R_on for M-SDC). This differs on purpose from the mid-window
split of ``training/mapping.py`` (a scheme for on-chip tuning in both directions): for inference the
idle device sits at the low end, where its programming error, read noise and retention loss are
smallest in absolute terms. For PCM (g_lo, g_hi) = (g_min, g_max); ``weights_to_conductance_pair``
does the same mapping.

Randomness: each effect draws from its own child of the caller's generator (``Generator.spawn``), so
switching one effect off leaves the draws of the others unchanged, and a seed fixes every draw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Protocol

import numpy as np

from ..devices.base import DeviceModel
from ..devices.base import preset as device_preset
from ..errors import ConfigError
from ..validation import check_range


@dataclass(frozen=True)
class TileReadout:
    """One tile as its inputs see it. Arrays are (rows, cols); conductances in S.

    ``g_diff_S`` = G+ − G− of every pair; ``read_noise_var_S2`` the variance of the per-read noise of
    G+ − G− (independent per matrix-vector product), or None; ``g_span_S`` the conductance difference of
    a full-scale weight (normalises the ADC); ``w_max`` the weight of a full-scale difference; ``alpha``
    the digital factor applied to the tile's outputs (drift compensation; 1 = none); ``g_pair_S`` the
    two conductances of every pair (2, rows, cols), from which a tile with wires is solved.
    """

    g_diff_S: np.ndarray
    read_noise_var_S2: np.ndarray | None
    g_span_S: float
    w_max: float
    alpha: float = 1.0
    g_pair_S: np.ndarray | None = None  # (2, rows, cols): G+ and G−, for reading through wires


class TileDevice(Protocol):
    """A device-effect model of a tile (see the module docstring), an adapter over a ``DeviceModel``
    (``model``): the same model the chips and the tile's crossbar netlist use."""

    name: str
    effects: MsdcEffects | PcmEffects
    model: DeviceModel

    def program(self, w: np.ndarray, rng: np.random.Generator): ...

    def readout(self, state, rng: np.random.Generator) -> TileReadout: ...

    @property
    def has_read_noise(self) -> bool: ...

    def training_noise_var(self, w_normalised: np.ndarray, out: np.ndarray) -> np.ndarray: ...


# ---- weights on differential pairs, and global drift compensation ---------------------------------------
_GDC_READOUT_FLOOR = 1e-4     # weight units; stops α blowing up on an all-zero tile


def weights_to_conductance_pair(g_low_S: float, g_high_S: float, w, w_max: float | None = None):
    """Map weights (any shape) to one differential pair per weight, one device of each at ``g_low_S``.

    Returns ``(g_plus_S, g_minus_S, scale_S_per_unit)``: two arrays shaped like ``w`` and the scale
    (g_high − g_low)/w_max in S per weight unit. ``w_max`` defaults to max|w| of the tile; weights
    beyond it are clipped to the window.
    """
    w = np.asarray(w, dtype=float)
    if w_max is None:
        w_max = _tile_w_max(w)
    else:
        check_range("tiles.w_max", w_max, 0.0, math.inf)
    span = g_high_S - g_low_S
    scale = span / w_max
    g_plus = g_low_S + np.minimum(scale * np.maximum(w, 0.0), span)
    g_minus = g_low_S + np.minimum(scale * np.maximum(-w, 0.0), span)
    return g_plus, g_minus, scale


def conductance_pair_to_weights(g_plus_S, g_minus_S, scale_S_per_unit):
    """Weights (shape of the pair arrays) read back from a differential pair: (g+ − g−)/scale."""
    return (np.asarray(g_plus_S, dtype=float) - np.asarray(g_minus_S, dtype=float)) / scale_S_per_unit


def drift_compensation_readout(g_plus_S, g_minus_S, scale_S_per_unit) -> float:
    """Global drift compensation's read-out statistic of one tile (weight units): mean|out|, floored.

    The reference (docs/reference/dgc-drift-programming.md §4.6) describes two read-outs (one
    all-ones vector with max|out|, or the identity with mean|out|); we follow the current aihwkit
    code: one-hot inputs and mean|out|. One-hot inputs read each weight alone, so mean|out| = mean|W|.
    """
    w = conductance_pair_to_weights(g_plus_S, g_minus_S, scale_S_per_unit)
    return max(float(np.mean(np.abs(w))), _GDC_READOUT_FLOOR)


def drift_compensation_alpha(g_plus_ref_S, g_minus_ref_S, g_plus_t_S, g_minus_t_S,
                             scale_S_per_unit) -> float:
    """Global drift compensation factor α = readout(reference) / readout(now) for one tile: the
    reference read right after programming, the other at the time of inference."""
    reference = drift_compensation_readout(g_plus_ref_S, g_minus_ref_S, scale_S_per_unit)
    current = drift_compensation_readout(g_plus_t_S, g_minus_t_S, scale_S_per_unit)
    return reference / current


def apply_drift_compensation(outputs, alpha: float):
    """Tile outputs (or read-back weights), any shape, multiplied by the tile's GDC factor α."""
    return alpha * np.asarray(outputs, dtype=float)


# ---- shared validation -------------------------------------------------------------------------------
def _check_bits(path: str, value) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 2 <= value <= 24):
        raise ConfigError(path, value, "an integer number of bits in [2, 24], or None (no quantisation)")


def _check_fraction(path: str, value) -> None:
    check_range(path, value, 0.0, 1.0, True)


def _check_converters(effects) -> None:
    _check_bits("effects.dac_bits", effects.dac_bits)
    _check_bits("effects.adc_bits", effects.adc_bits)
    check_range("effects.adc_bound", effects.adc_bound, 0.0, 1e6)
    if not isinstance(effects.drift_compensation, bool):
        raise ConfigError("effects.drift_compensation", effects.drift_compensation, "true or false")


def _tile_w_max(w: np.ndarray) -> float:
    w_max = float(np.max(np.abs(w))) if w.size else 0.0
    # An all-zero tile maps to the bottom of the window whatever the scale; 1 keeps the scale finite.
    return w_max if w_max > 0 else 1.0


def _spawn(rng: np.random.Generator, names: tuple[str, ...]) -> dict[str, np.random.Generator]:
    if not isinstance(rng, np.random.Generator):
        raise ConfigError("effects.rng", type(rng).__name__, "a numpy.random.Generator")
    return dict(zip(names, rng.spawn(len(names))))


# ---- M-SDC ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MsdcEffects:
    """Non-idealities of a memristor tile. Fractions are relative standard deviations unless named otherwise.

    * ``medium``: the device preset (``circuitnn.devices``): W, Cr, C (M-SDC), or any other registered
      memristor (VTEAM, AgChalc, ...).
    * ``programming_error``: Gaussian error of each programmed conductance, relative to its target. The
      default 5 % is the write-verify tolerance of the Eslami et al. 2024 reproduction.
    * ``read_noise``: Gaussian noise of each device's conductance on every read (every matrix-vector
      product), relative to its conductance. 1 % is our choice (no published M-SDC figure).
    * ``window_variation``: device-to-device spread of the window: R_on and R_off of every device are
      multiplied by independent lognormal factors exp(σ N(0,1)). The verify loop aims for the state of
      a *nominal* device, so a device with another window realises a different conductance. 5 %: ours.
    * ``stuck_on_fraction`` / ``stuck_off_fraction``: devices that never leave x = 1 (G = 1/R_on) or
      x = 0 (G = 1/R_off), whatever they are programmed to. 0.1 % each: ours.
    * ``retention_s``: time between programming and use; every state relaxes at zero bias as the
      model says (``state_after_constant_voltage(x, 0 V, t)``; for M-SDC all toward the same
      equilibrium, so the weights shrink by exp(−k t): k = 4.6e-5 /s for Cr, about 15 % in one hour).
    * ``drift_compensation``: rescale each tile's output by the global drift-compensation factor
      (``drift_compensation_alpha``, read-out of the tile now vs right after programming). Off by
      default so that retention shows; on, it cancels the (uniform) M-SDC retention loss almost exactly.
    * ``dac_bits`` / ``adc_bits`` / ``adc_bound``: input DAC and output ADC of the tile (see tiles.py);
      ``None`` bits = no quantisation. 8/8 bits and a bound of 10 (normalised units) follow the aihwkit
      example configuration (docs/reference/dgc-drift-programming.md §3).
    """

    medium: str = "Cr"
    programming_error: float = 0.05
    read_noise: float = 0.01
    window_variation: float = 0.05
    stuck_on_fraction: float = 0.001
    stuck_off_fraction: float = 0.001
    retention_s: float = 3600.0
    drift_compensation: bool = False
    dac_bits: int | None = 8
    adc_bits: int | None = 8
    adc_bound: float = 10.0

    def __post_init__(self) -> None:
        device_preset(self.medium)  # raises ConfigError device.medium
        for name in ("programming_error", "read_noise", "window_variation"):
            check_range(f"effects.{name}", getattr(self, name), 0.0, 1.0, True)
        _check_fraction("effects.stuck_on_fraction", self.stuck_on_fraction)
        _check_fraction("effects.stuck_off_fraction", self.stuck_off_fraction)
        if self.stuck_on_fraction + self.stuck_off_fraction > 1.0:
            raise ConfigError("effects.stuck_off_fraction", self.stuck_off_fraction,
                              f"[0, {1.0 - self.stuck_on_fraction:g}] (stuck fractions add up to ≤ 1)")
        check_range("effects.retention_s", self.retention_s, 0.0, math.inf, True)
        _check_converters(self)

    @classmethod
    def ideal(cls, medium: str = "Cr") -> MsdcEffects:
        """Every effect off: the tile computes the float product (to rounding)."""
        return cls(medium=medium, programming_error=0.0, read_noise=0.0, window_variation=0.0,
                   stuck_on_fraction=0.0, stuck_off_fraction=0.0, retention_s=0.0,
                   drift_compensation=False, dac_bits=None, adc_bits=None)


@dataclass(frozen=True)
class MsdcTileState:
    """A programmed M-SDC tile. Axis 0 of every array is the pair member (0 = G+, 1 = G−).

    ``x`` (2, rows, cols) states after programming; ``g_high_S``/``g_low_S`` each device's window (arrays
    of that shape, or the nominal scalars); ``stuck`` int8 codes (+1 stuck on, −1 stuck off, 0 free).
    """

    x: np.ndarray
    g_high_S: np.ndarray | float
    g_low_S: np.ndarray | float
    stuck: np.ndarray | None
    scale_S_per_unit: float
    w_max: float


class MsdcTileDevice:
    """Memristor tiles: the device model of one preset (M-SDC by default; any registered memristor)."""

    name = "msdc"

    def __init__(self, effects: MsdcEffects = MsdcEffects()):
        self.effects = effects
        self.model = device_preset(effects.medium)

    @property
    def g_span_S(self) -> float:
        return self.model.g_high_S - self.model.g_low_S

    def target_pair(self, w: np.ndarray) -> tuple[np.ndarray, float, float]:
        """Targets (2, rows, cols) in S of the pairs of ``w``, the scale (S per weight unit) and w_max."""
        w_max = _tile_w_max(w)
        g_plus, g_minus, scale = weights_to_conductance_pair(self.model.g_low_S, self.model.g_high_S, w, w_max)
        return np.stack([g_plus, g_minus]), scale, w_max

    def program(self, w: np.ndarray, rng: np.random.Generator) -> MsdcTileState:
        e, p = self.effects, self.model
        w = np.asarray(w, dtype=float)
        streams = _spawn(rng, ("programming", "window", "stuck"))
        target, scale, w_max = self.target_pair(w)
        if e.programming_error > 0:
            error = streams["programming"].standard_normal(target.shape)
            target = target * (1.0 + e.programming_error * error)
        # The verify loop stops at the state of a nominal device; states cannot leave their range.
        x = np.clip(p.state_from_conductance(target), *p.state_bounds)
        g_on, g_off = p.g_high_S, p.g_low_S
        if e.window_variation > 0:
            draws = streams["window"].standard_normal((2, *x.shape))
            # R × exp(σN) ⇒ G × exp(−σN); the sign does not matter for a symmetric N.
            g_on = g_on * np.exp(e.window_variation * draws[0])
            g_off = g_off * np.exp(e.window_variation * draws[1])
            g_off = np.minimum(g_off, g_on)  # a window never inverts
        stuck = None
        if e.stuck_on_fraction > 0 or e.stuck_off_fraction > 0:
            u = streams["stuck"].random(x.shape)
            stuck = np.where(u < e.stuck_on_fraction, 1,
                             np.where(u < e.stuck_on_fraction + e.stuck_off_fraction, -1, 0)).astype(np.int8)
        return MsdcTileState(x, g_on, g_off, stuck, scale, w_max)

    def _conductances(self, state: MsdcTileState, time_s: float) -> np.ndarray:
        x = state.x
        low, high = self.model.state_bounds
        if time_s > 0:
            x = self.model.state_after_constant_voltage(x, 0.0, time_s)
        if state.stuck is not None:
            x = np.where(state.stuck > 0, high, np.where(state.stuck < 0, low, x))
        return self.model.conductance_S(x, state.g_low_S, state.g_high_S)

    def readout(self, state: MsdcTileState, rng: np.random.Generator | None = None) -> TileReadout:
        """The tile ``effects.retention_s`` after programming (no randomness: read noise is per read)."""
        e = self.effects
        g = self._conductances(state, e.retention_s)
        alpha = 1.0
        if e.drift_compensation:
            reference = self._conductances(state, 0.0)
            alpha = drift_compensation_alpha(reference[0], reference[1], g[0], g[1], state.scale_S_per_unit)
        return TileReadout(g[0] - g[1], self._read_noise_var(g[0], g[1]), self.g_span_S, state.w_max, alpha,
                           g_pair_S=g)

    def _read_noise_var(self, g_plus, g_minus):
        sigma = self.effects.read_noise
        return None if sigma == 0 else sigma**2 * (g_plus**2 + g_minus**2)

    @property
    def has_read_noise(self) -> bool:
        return self.effects.read_noise > 0

    def training_noise_var(self, w_normalised: np.ndarray, out: np.ndarray) -> np.ndarray:
        """σ²(G+² + G−²)/(g_hi − g_lo)²: one device at g_lo, the other at g_lo + (g_hi − g_lo)|ŵ|."""
        base = self.model.g_low_S / self.g_span_S
        np.abs(w_normalised, out=out)
        out += base
        np.square(out, out=out)
        out += base**2
        out *= self.effects.read_noise**2
        return out


# ---- PCM --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PcmEffects:
    """Non-idealities of a PCM tile: the statistical model of the PCM device (Nandakumar et al. 2019).

    * ``medium``: the preset (``PCM``); any ageing model with the same scale fields works.
    * ``programming_noise_scale`` / ``drift_scale`` / ``read_noise_scale``: multiply σ_prog, ν and the
      1/f read-noise σ of the published model (1 = as published, 0 = off).
    * ``time_s``: time since the end of programming at which the tile is read (drift and read noise
      grow with it); default one hour.
    * ``drift_compensation``: global drift compensation (§4.6): every tile's output × α =
      read-out right after programming / read-out now (``drift_compensation_alpha``).
    * ``g_max_S``: top of the window (25 µS as fitted); g_min = 0.
    * ``dac_bits`` / ``adc_bits`` / ``adc_bound``: as for M-SDC.

    Read noise is the model's snapshot: one draw per evaluation, shared by every input.
    """

    medium: str = "PCM"
    programming_noise_scale: float = 1.0
    drift_scale: float = 1.0
    read_noise_scale: float = 1.0
    time_s: float = 3600.0
    drift_compensation: bool = True
    g_max_S: float = 25e-6
    dac_bits: int | None = 8
    adc_bits: int | None = 8
    adc_bound: float = 10.0

    def __post_init__(self) -> None:
        for name in ("programming_noise_scale", "drift_scale", "read_noise_scale"):
            check_range(f"effects.{name}", getattr(self, name), 0.0, 100.0, True)
        check_range("effects.time_s", self.time_s, 0.0, math.inf, True)
        check_range("effects.g_max_S", self.g_max_S, 0.0, 1e-2)
        _check_converters(self)
        self.model()  # raises ConfigError device.medium, or a field the model rejects

    @classmethod
    def ideal(cls) -> PcmEffects:
        """Every effect off: the tile computes the float product (to rounding)."""
        return cls(programming_noise_scale=0.0, drift_scale=0.0, read_noise_scale=0.0, time_s=0.0,
                   drift_compensation=False, dac_bits=None, adc_bits=None)

    def model(self) -> DeviceModel:
        """The preset's device model with these scales and window."""
        return device_preset(self.medium).replace(
            g_max_S=self.g_max_S, prog_noise_scale=self.programming_noise_scale, drift_scale=self.drift_scale,
            read_noise_scale=self.read_noise_scale)


@dataclass(frozen=True)
class PcmTileState:
    """A programmed PCM tile: ``g_prog_S`` (2, rows, cols), axis 0 = (G+, G−), and what the model drew
    at programming (``memory``: the drift exponents ν), arrays of that shape."""

    g_prog_S: np.ndarray
    memory: dict
    scale_S_per_unit: float
    w_max: float

    @property
    def nu(self) -> np.ndarray:
        return self.memory["nu"]


class PcmTileDevice:
    """PCM tiles: an adapter over the (ageing) device model: its programming statistics, the values
    it draws at programming (drift exponents) and what a read at ``effects.time_s`` sees."""

    name = "pcm"

    def __init__(self, effects: PcmEffects = PcmEffects()):
        self.effects = effects
        self.model = effects.model()

    @property
    def g_span_S(self) -> float:
        return self.model.g_high_S - self.model.g_low_S

    def program(self, w: np.ndarray, rng: np.random.Generator) -> PcmTileState:
        model = self.model
        w = np.asarray(w, dtype=float)
        streams = _spawn(rng, ("programming", "drift"))
        w_max = _tile_w_max(w)
        g_plus, g_minus, scale = weights_to_conductance_pair(model.g_low_S, model.g_high_S, w, w_max)
        target = np.stack([g_plus, g_minus])
        g_prog = model.programmed_conductance_S(target, streams["programming"])
        memory = model.draw_programming_memory(model.state_from_conductance(target), streams["drift"])
        return PcmTileState(g_prog, memory, scale, w_max)

    def readout(self, state: PcmTileState, rng: np.random.Generator) -> TileReadout:
        """The tile ``effects.time_s`` after programming: drift plus one read-noise snapshot, then GDC."""
        model, e = self.model, self.effects
        noise = _spawn(rng, ("read",))["read"] if self.has_read_noise else None
        inputs = model.read_inputs(model.state_from_conductance(state.g_prog_S), state.memory, e.time_s, noise)
        g = state.g_prog_S * model.conductance_factor(inputs)
        alpha = 1.0
        if e.drift_compensation:
            alpha = drift_compensation_alpha(state.g_prog_S[0], state.g_prog_S[1], g[0], g[1],
                                             state.scale_S_per_unit)
        return TileReadout(g[0] - g[1], None, self.g_span_S, state.w_max, alpha, g_pair_S=g)

    @property
    def has_read_noise(self) -> bool:
        return self.effects.read_noise_scale > 0

    def training_noise_var(self, w_normalised: np.ndarray, out: np.ndarray) -> np.ndarray:
        """The model's read noise right after programming (t = 0), taken as independent per read.

        The active device of a pair is at g_low + |ŵ| (g_high − g_low); the idle one at g_low = 0 has none.
        """
        model = self.model
        g_active = np.abs(w_normalised) * self.g_span_S + model.g_low_S
        sigma_relative = model.read_noise_std_relative(model.state_from_conductance(g_active), 0.0)
        np.multiply(sigma_relative, g_active * (1.0 / self.g_span_S), out=out)
        np.square(out, out=out)
        return out


# ---- choosing a device -----------------------------------------------------------------------------
DEVICES = {"msdc": (MsdcTileDevice, MsdcEffects), "pcm": (PcmTileDevice, PcmEffects)}


def tile_device(device: str, effects=None) -> MsdcTileDevice | PcmTileDevice:
    """The tile-device model ``device`` ("msdc" | "pcm") with ``effects``.

    ``effects``: None (the device's defaults), "ideal" / "none" (every effect off), a dict of fields
    to change from the defaults, or an ``MsdcEffects`` / ``PcmEffects`` instance of the right kind.
    """
    if device not in DEVICES:
        raise ConfigError("evaluation.device", device, "one of " + ", ".join(DEVICES))
    model, effects_type = DEVICES[device]
    if effects is None:
        effects = effects_type()
    elif isinstance(effects, str):
        if effects not in ("ideal", "none"):
            raise ConfigError("evaluation.effects", effects, "ideal, none, a dict or an effects dataclass")
        effects = effects_type.ideal()
    elif isinstance(effects, dict):
        known = {f.name for f in fields(effects_type)}
        unknown = sorted(set(effects) - known)
        if unknown:
            raise ConfigError(f"effects.{unknown[0]}", effects[unknown[0]],
                              f"a field of {effects_type.__name__}: " + ", ".join(sorted(known)))
        effects = replace(effects_type(), **effects)
    elif not isinstance(effects, effects_type):
        raise ConfigError("evaluation.effects", type(effects).__name__,
                          f"{effects_type.__name__} for {device}")
    return model(effects)

