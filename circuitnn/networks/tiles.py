"""Crossbar tiles: a layer's weight matrix split over tiles, each an analog matrix-vector product.

A weight matrix W (n_in, n_out) is cut into a grid of tiles of at most ``TileConfig.rows`` ×
``TileConfig.cols`` (256 × 256 by default). Each tile is programmed by a tile device (``devices.py``)
and computes, for a batch of inputs x (n, rows):

    DAC       a = max|x| per input vector (one DAC range per vector and tile row-block, like aihwkit's
              abs-max noise management), x̂ = x/a ∈ [−1, 1], rounded to 2^(b−1) − 1 levels per side
    crossbar  I/V_read = x̂ · (G+ − G−)                          Kirchhoff: column currents of the pairs
              + sqrt(x̂² · Var[G+ − G−]) · N(0,1)                 per-read noise, independent per product
    ADC       u = I/(V_read (g_hi − g_lo)) ∈ normalised units (x̂ · W/w_max), clipped to ±adc_bound and
              rounded to 2^(b−1) − 1 levels per side
    digital   y = u · a · w_max · α                             back to weight units, α = drift compensation

The per-read noise term is the exact distribution of Σ_i x̂_i (G_i + ε_i σ_i) for independent Gaussian
ε_i per device and per product, drawn with one extra matrix product instead of one noise value per
device and input. Partial sums of the row-blocks of a column are added digitally, after each tile's
ADC. With every effect off the result is x·W to rounding (the tests check 1e-9 relative).

The read voltage cancels between DAC and ADC and is not modelled (reads are linear in V at the 0.1 V
read level of both devices). With resistances in ``TileConfig`` (line, driver, sense, switch), an
evaluation reads each programmed tile through its solved circuit instead (``tile_circuit.py``):
G+ − G− becomes the effective difference the inputs see through the wires.
Loops run over tiles (a handful per layer), never over weights.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..errors import ConfigError
from ..validation import check_range
from .devices import MsdcTileDevice, PcmTileDevice, TileReadout
from .tile_circuit import effective_difference_S, wire_gain_map


@dataclass(frozen=True)
class TileConfig:
    """The tile (crossbar): largest size and the resistances its reads go through; fields validated as
    ``tile.<field>``.

    Resistances at zero (the default) make a tile an exact product; any of them set makes every
    evaluation read the tiles through the solved circuit (``tile_circuit.py``): ``r_line_ohm`` per
    crosspoint segment of rows and columns, ``r_driver_ohm`` per row driver, ``r_sense_ohm`` per
    column, ``r_switch_on_ohm`` per 1T1R selection transistor. The on-chip presets use 10/1/10/100 Ω.
    """

    rows: int = 256
    cols: int = 256
    r_line_ohm: float = 0.0
    r_driver_ohm: float = 0.0
    r_sense_ohm: float = 0.0
    r_switch_on_ohm: float = 0.0

    def __post_init__(self) -> None:
        for name in ("r_line_ohm", "r_driver_ohm", "r_sense_ohm", "r_switch_on_ohm"):
            check_range(f"tile.{name}", getattr(self, name), 0.0, 1e6, True)
        # The circuit solve's crossbar spec takes layers of up to 1024 lines.
        high = 1024 if self.has_parasitics else 65536
        for name in ("rows", "cols"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
                raise ConfigError(f"tile.{name}", value, f"an integer in [1, {high}]")

    @property
    def has_parasitics(self) -> bool:
        return any(getattr(self, name) > 0 for name in ("r_line_ohm", "r_driver_ohm", "r_sense_ohm",
                                                        "r_switch_on_ohm"))


def wire_maps(shape: tuple[int, int], tile: TileConfig, model, reference_fraction: float = 0.1) -> list:
    """One ``WireGainMap`` per tile of an (n_in, n_out) matrix (tiles of one shape share theirs)."""
    return [wire_gain_map(r.stop - r.start, c.stop - c.start, tile, model, reference_fraction)
            for r, c in tile_slices(*shape, tile)]


def tile_slices(n_rows: int, n_cols: int, tile: TileConfig) -> list[tuple[slice, slice]]:
    """The (row slice, column slice) of every tile of an (n_rows, n_cols) matrix, row-block major."""
    return [(slice(r, min(r + tile.rows, n_rows)), slice(c, min(c + tile.cols, n_cols)))
            for r in range(0, n_rows, tile.rows) for c in range(0, n_cols, tile.cols)]


def dac(x: np.ndarray, bits: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (n, rows) → (x̂ in [−1, 1], per-vector range a (n, 1)); x = x̂·a up to quantisation."""
    a = np.maximum(x.max(axis=1, keepdims=True), -x.min(axis=1, keepdims=True))  # max|x|, no |x| temporary
    a[a == 0] = 1.0  # an all-zero input vector: any range gives zero current
    if bits is None:
        return x / a, a
    levels = 2 ** (bits - 1) - 1
    x_hat = x * (levels / a)
    np.rint(x_hat, out=x_hat)
    x_hat *= 1.0 / levels
    return x_hat, a


def adc(u: np.ndarray, bits: int | None, bound: float, in_place: bool = False) -> np.ndarray:
    """Normalised outputs clipped to ±``bound`` and rounded to 2^(bits−1) − 1 levels per side.

    ``in_place``: overwrite ``u`` (a fresh product nobody else holds) instead of allocating."""
    if bits is None:
        return u
    levels = 2 ** (bits - 1) - 1
    step = bound / levels
    q = u if in_place else u.copy()
    q *= 1.0 / step
    np.rint(q, out=q)
    np.clip(q, -levels, levels, out=q)
    q *= step
    return q


class AnalogMatrix:
    """A weight matrix as read from its tiles: computes ``x @ W`` the way the crossbars do.

    Holds, for the whole matrix, the pair differences in normalised units (G+ − G−)/(g_hi − g_lo) —
    W/w_max of each tile when ideal — and their per-read noise variances (float32: they only set the
    spread of the noise), plus one output factor w_max·α per tile. Built by ``from_readouts``
    (evaluation: one ``TileReadout`` per tile) or ``for_training`` (noise-injected training weights,
    rebuilt every mini-batch in reused buffers).
    """

    def __init__(self, shape: tuple[int, int], tile: TileConfig, effects, with_noise: bool):
        self.shape = tuple(shape)
        self.slices = tile_slices(*self.shape, tile)
        self.dac_bits, self.adc_bits, self.adc_bound = effects.dac_bits, effects.adc_bits, effects.adc_bound
        self.weights_normalised = np.empty(self.shape)
        # float32: only the spread of the noise comes from it, and its product costs half as much.
        self.noise_var_normalised = np.empty(self.shape, dtype=np.float32) if with_noise else None
        self.output_factor = np.ones(len(self.slices))

    @classmethod
    def from_readouts(cls, shape, tile: TileConfig, readouts: list[TileReadout], effects) -> AnalogMatrix:
        with_noise = any(r.read_noise_var_S2 is not None for r in readouts)
        matrix = cls(shape, tile, effects, with_noise)
        for k, ((rows, cols), readout) in enumerate(zip(matrix.slices, readouts)):
            inverse_span = 1.0 / readout.g_span_S
            np.multiply(readout.g_diff_S, inverse_span, out=matrix.weights_normalised[rows, cols])
            if with_noise:
                var = 0.0 if readout.read_noise_var_S2 is None else readout.read_noise_var_S2
                np.multiply(var, inverse_span**2, out=matrix.noise_var_normalised[rows, cols])
            matrix.output_factor[k] = readout.w_max * readout.alpha
        return matrix

    @classmethod
    def for_training(cls, weight: np.ndarray, device: MsdcTileDevice | PcmTileDevice,
                     tile: TileConfig | None = None, reuse: AnalogMatrix | None = None,
                     wires: list | None = None) -> AnalogMatrix:
        """Tiles holding ``weight`` exactly (ideal mapping), with the device's per-read noise and converters.

        For hardware-aware training: the weights are already noise-injected, and no static effect
        (window variation, stuck devices, drift) is drawn, so building it costs a few array passes.
        ``reuse``: an earlier result for a matrix of the same shape, whose buffers are overwritten
        (fresh multi-MB temporaries every mini-batch cost more in page faults than the arithmetic).
        ``wires``: one ``tile_circuit.WireGainMap`` per tile (``wire_maps``): the tiles then hold the
        weights as their wires let the inputs see them (linearised), the per-read noise still that of
        the programmed pairs.
        """
        weight = np.asarray(weight, dtype=float)
        tile = TileConfig() if tile is None else tile
        with_noise = device.has_read_noise
        matrix = reuse
        if (matrix is None or matrix.shape != weight.shape
                or (matrix.noise_var_normalised is not None) != with_noise
                or matrix.slices != tile_slices(*weight.shape, tile)):
            matrix = cls(weight.shape, tile, device.effects, with_noise)
        for k, (rows, cols) in enumerate(matrix.slices):
            block = weight[rows, cols]
            w_max = max(float(block.max()), -float(block.min())) if block.size else 0.0  # no |·| temporary
            w_max = w_max if w_max > 0 else 1.0
            w_norm = matrix.weights_normalised[rows, cols]
            np.multiply(block, 1.0 / w_max, out=w_norm)
            if with_noise:
                device.training_noise_var(w_norm, matrix.noise_var_normalised[rows, cols])
            if wires is not None:
                wires[k].apply(w_norm, out=w_norm)
            matrix.output_factor[k] = w_max
        return matrix

    def effective_weights(self) -> np.ndarray:
        """The (n_in, n_out) weights the tiles hold, after drift compensation (no read noise, no ADC)."""
        w = np.empty(self.shape)
        for (rows, cols), factor in zip(self.slices, self.output_factor):
            w[rows, cols] = self.weights_normalised[rows, cols] * factor
        return w

    def matmul(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """Outputs (n, n_out) for inputs ``x`` (n, n_in); ``rng`` draws the per-read noise (if any).

        ``rng``: a ``numpy.random.Generator``, or anything with its ``standard_normal(shape, dtype)``
        (training passes a ``GaussianPool``).
        """
        x = np.asarray(x, dtype=float)
        if x.ndim != 2 or x.shape[1] != self.shape[0]:
            raise ConfigError("tiles.x", f"shape {x.shape}", f"(n, {self.shape[0]})")
        var_all = self.noise_var_normalised
        if var_all is not None and rng is None:
            raise ConfigError("tiles.rng", None, "a numpy.random.Generator: the tiles have read noise")
        out = np.empty((x.shape[0], self.shape[1]))
        converted: dict[int, tuple] = {}
        for (rows, cols), factor in zip(self.slices, self.output_factor):
            if rows.start not in converted:  # every tile of a row-block sees the same DAC outputs
                x_hat, a = dac(x[:, rows], self.dac_bits)
                x_hat_sq = None if var_all is None else np.square(x_hat, dtype=np.float32)
                converted[rows.start] = (x_hat, a, x_hat_sq)
            x_hat, a, x_hat_sq = converted[rows.start]
            u = x_hat @ self.weights_normalised[rows, cols]
            if var_all is not None:
                spread = x_hat_sq @ var_all[rows, cols]
                np.sqrt(spread, out=spread)
                spread *= rng.standard_normal(u.shape, dtype=np.float32)
                u += spread
            u = adc(u, self.adc_bits, self.adc_bound, in_place=True)
            scale = a * factor
            if rows.start == 0:  # the first row-block of these columns: no partial sum yet
                np.multiply(u, scale, out=out[:, cols])
            else:
                u *= scale
                out[:, cols] += u
        return out


class ProgrammedMatrix:
    """A weight matrix programmed onto tiles of one device: the states fixed at programming time."""

    def __init__(self, weight: np.ndarray, device: MsdcTileDevice | PcmTileDevice,
                 tile: TileConfig, rng: np.random.Generator):
        weight = np.asarray(weight, dtype=float)
        if weight.ndim != 2:
            raise ConfigError("tiles.weight", f"shape {weight.shape}", "a 2-D (n_in, n_out) matrix")
        self.shape, self.device, self.tile = weight.shape, device, tile
        self.slices = tile_slices(*weight.shape, tile)
        # One child generator per tile: a tile's draws do not depend on how many tiles came before.
        self.states = [device.program(weight[rows, cols], child)
                       for (rows, cols), child in zip(self.slices, rng.spawn(len(self.slices)))]

    @property
    def n_tiles(self) -> int:
        return len(self.slices)

    def read(self, rng: np.random.Generator) -> AnalogMatrix:
        """The tiles as they are at the device's evaluation time (one read-noise snapshot for PCM)."""
        readouts = [self.device.readout(state, child)
                    for state, child in zip(self.states, rng.spawn(len(self.states)))]
        if self.tile.has_parasitics:
            readouts = [replace(r, g_diff_S=effective_difference_S(r.g_pair_S, self.tile, self.device.model))
                        for r in readouts]
        return AnalogMatrix.from_readouts(self.shape, self.tile, readouts, self.device.effects)


def program_weights(weights, device: MsdcTileDevice | PcmTileDevice, tile: TileConfig,
                    rng: np.random.Generator) -> list[ProgrammedMatrix]:
    """Program every matrix of ``weights`` (a sequence of (n_in, n_out) arrays) onto its own tiles."""
    return [ProgrammedMatrix(w, device, tile, child) for w, child in zip(weights, rng.spawn(len(weights)))]
