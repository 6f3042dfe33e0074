"""Circuit variation of one network chip: what fabrication fixes, drawn once per chip instance.

Models of docs/reference/dgc-drift-programming.md §1.4 (our reconstruction [R]; the DGC paper names
the two classes of variation but not their form or size):

* **Synaptic conductance variation.** Every weight is a differential device pair, w = G+ − G− in
  weight units, with one device of each pair at the bottom of its window (taken as zero conductance,
  as for PCM). Each device has its own static gain: the conductance it realises is its target times
  (1 + σ_G N(0, 1)), clipped at zero (a conductance is never negative). So the weight the crossbar
  computes with is ``w_eff = k+ · max(w, 0) − k− · max(−w, 0)``; a pulse or a perturbation of the
  weight moves the active device and is realised with that device's gain.
* **Neuron-circuit variation.** The neuron that follows column j computes y_j = a_j · f(b_j · s_j + c_j)
  with a_j, b_j ~ 1 + σ N(0, 1) (output-stage and input-stage gain) and c_j ~ σ_c N(0, 1) (offset, in
  units of the pre-activation s; for a ReLU it shifts the threshold). f = ReLU for hidden neurons,
  the identity for the output neurons (whose y is what the cost circuit reads). Convolution layers
  share one neuron circuit per output channel (the circuit of the column that holds the kernel).
* **Backward-path variation (back-propagation only).** BP needs circuits DGC does not: a derivative
  circuit per neuron that computes f'(s) and error amplifiers that carry the error back through the
  transposed weights. They are designed for the *nominal* neuron and are drawn separately from the
  forward circuits: the derivative circuit gives d_j = a'_j · f'(b'_j · s_j + c'_j) (a', b' ~ 1 + σ'N,
  c' ~ σ'_c N); the error amplifier at input i of a layer gives e_i = g_i · (Σ_j W_ij δ_j) + o_i with
  g_i ~ 1 + σ'N and o_i ~ σ_o N. ``backward_weights`` says which conductances the transposed product
  sees: "separate_array" (our default: a second array programmed to the same targets, with its own
  device gains, as when the forward array cannot be read row-wise) or "same_devices" (the forward
  devices read transposed).

Every draw comes from the caller's generator, split per concern with ``Generator.spawn``, so turning
one kind of variation off leaves the draws of the others unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..validation import check_choice, check_range

BACKWARD_WEIGHTS = ("separate_array", "same_devices")


@dataclass(frozen=True)
class CircuitVariation:
    """Variation levels of one chip; relative σ unless named an offset. Validated as ``variation.<field>``.

    ``conductance_sigma``: device gain σ_G (the study sweeps 0-30 %). ``neuron_gain_sigma`` /
    ``neuron_offset_sigma``: σ of a, b and of c in the forward neurons. ``backward_gain_sigma`` /
    ``backward_offset_sigma``: σ of a', b', g and of c' in the derivative and error circuits of BP.
    ``error_offset_sigma``: σ_o of the error amplifiers' output offset, in units of the output error
    (y − t; |y − t| ≤ 1 for a correct one-hot cost), 0 by default because its size relative to the
    small hidden-layer errors depends on a full scale the paper does not give.
    """

    conductance_sigma: float = 0.0
    neuron_gain_sigma: float = 0.0
    neuron_offset_sigma: float = 0.0
    backward_gain_sigma: float = 0.0
    backward_offset_sigma: float = 0.0
    error_offset_sigma: float = 0.0
    backward_weights: str = "separate_array"

    def __post_init__(self) -> None:
        for name in ("conductance_sigma", "neuron_gain_sigma", "neuron_offset_sigma", "backward_gain_sigma",
                     "backward_offset_sigma", "error_offset_sigma"):
            check_range(f"variation.{name}", getattr(self, name), 0.0, 1.0, True)
        check_choice("variation.backward_weights", self.backward_weights, BACKWARD_WEIGHTS)

    @classmethod
    def neurons(cls, sigma: float, offset_sigma: float | None = None, **changes) -> CircuitVariation:
        """Forward and backward neuron circuits at the same level (separate draws): gain σ and offset σ_c
        (default equal to σ)."""
        offset = sigma if offset_sigma is None else offset_sigma
        return cls(neuron_gain_sigma=sigma, neuron_offset_sigma=offset, backward_gain_sigma=sigma,
                   backward_offset_sigma=offset, **changes)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class LayerCircuits:
    """The drawn circuits of one weighted layer with n_in inputs (rows) and n_out neurons (columns).

    ``gain_plus`` / ``gain_minus`` (n_in, n_out): device gains of the forward pairs;
    ``backward_gain_plus`` / ``backward_gain_minus``: of the array the backward product reads.
    ``a``, ``b``, ``c`` (n_out,): the forward neurons. ``d_gain``, ``d_input_gain``, ``d_offset``
    (n_out,): the derivative circuits. ``error_gain``, ``error_offset`` (n_in,): the error amplifiers
    at this layer's inputs (rows of the transposed product).
    """

    gain_plus: np.ndarray
    gain_minus: np.ndarray
    backward_gain_plus: np.ndarray
    backward_gain_minus: np.ndarray
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray
    d_gain: np.ndarray
    d_input_gain: np.ndarray
    d_offset: np.ndarray
    error_gain: np.ndarray
    error_offset: np.ndarray

    def effective_weight(self, w: np.ndarray, backward: bool = False) -> np.ndarray:
        """The weight the (forward, or backward) array computes with for nominal weights ``w``."""
        plus, minus = ((self.backward_gain_plus, self.backward_gain_minus) if backward
                       else (self.gain_plus, self.gain_minus))
        return plus * np.maximum(w, 0.0) - minus * np.maximum(-w, 0.0)


def _gains(rng: np.random.Generator, sigma: float, shape) -> np.ndarray:
    if sigma == 0:
        return np.ones(shape)
    return np.maximum(1.0 + sigma * rng.standard_normal(shape), 0.0)


def _offsets(rng: np.random.Generator, sigma: float, shape) -> np.ndarray:
    return np.zeros(shape) if sigma == 0 else sigma * rng.standard_normal(shape)


def draw_layer_circuits(n_in: int, n_out: int, variation: CircuitVariation,
                        rng: np.random.Generator) -> LayerCircuits:
    """One layer's circuits; each quantity from its own child generator of ``rng``."""
    (devices, backward_devices, neuron_a, neuron_b, neuron_c, deriv_a, deriv_b, deriv_c, err_g,
     err_o) = rng.spawn(10)
    v = variation
    gain_plus = _gains(devices, v.conductance_sigma, (n_in, n_out))
    gain_minus = _gains(devices, v.conductance_sigma, (n_in, n_out))
    if v.backward_weights == "same_devices":
        backward_plus, backward_minus = gain_plus, gain_minus
    else:
        backward_plus = _gains(backward_devices, v.conductance_sigma, (n_in, n_out))
        backward_minus = _gains(backward_devices, v.conductance_sigma, (n_in, n_out))
    return LayerCircuits(
        gain_plus, gain_minus, backward_plus, backward_minus,
        a=_gains(neuron_a, v.neuron_gain_sigma, n_out), b=_gains(neuron_b, v.neuron_gain_sigma, n_out),
        c=_offsets(neuron_c, v.neuron_offset_sigma, n_out),
        d_gain=_gains(deriv_a, v.backward_gain_sigma, n_out),
        d_input_gain=_gains(deriv_b, v.backward_gain_sigma, n_out),
        d_offset=_offsets(deriv_c, v.backward_offset_sigma, n_out),
        error_gain=_gains(err_g, v.backward_gain_sigma, n_in),
        error_offset=_offsets(err_o, v.error_offset_sigma, n_in))


def draw_chip_circuits(shapes: list[tuple[int, int]], variation: CircuitVariation,
                       rng: np.random.Generator) -> list[LayerCircuits]:
    """The circuits of every weighted layer (weight shapes (n_in, n_out)) of one chip instance."""
    return [draw_layer_circuits(n_in, n_out, variation, child)
            for (n_in, n_out), child in zip(shapes, rng.spawn(len(shapes)))]
