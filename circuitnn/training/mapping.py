"""Software weights ↔ device conductances and states, in a ``Crossbar``'s site order.

The circuit (``circuits/crossbar.py``) computes, for layer l with activation gain k, feedback R_f
and read voltage V_read, ``k·z_j = Σ_i x_i w_ij`` with

    single:        w_ij = c_l · (G_eff,ij − G_ref)          c_l = k · R_f · V_read  (weight per siemens)
    differential:  w_ij = c_l · (G_eff,ij+ − G_eff,ij−)

**Selection switch.** Every array device sits behind its selection switch (on-resistance
R_sw = ``spec.r_switch_on_ohm``), so the array sees the series conductance

    G_eff = 1 / (R_sw + 1/G_dev)        and the device target is   G_dev = 1 / (1/G_eff − R_sw).

The mapping compensates exactly for it, so the allowed weight range is set by the *effective*
window [G_eff(G_off), G_eff(G_on)], slightly narrower than the device window at the ON end. The
reference current (one resistor 1/G_ref per neuron, no switch) needs no compensation. Driver, line
and sense resistances are shared by many devices and depend on the other currents, so they are not
compensated here, nor is the op-amp's finite gain (a factor A/(1+A), 1e-5 at A = 1e5). Estimate:
the whole column current flows through R_sense (10 Ω by default), lifting the column by
I_col·R_sense — with all 9 rows on and devices near G_on, up to ≈ 4.3 mV for W, ≈ 1.8 mV for Cr
against V_read = 0.1 V, so device currents run a few % low (not the reference current, which
enters at the summing node); the SPICE inference measures the real effect.

**Schemes.**
* single: G_eff = G_ref + w / c_l, with G_ref = ``spec.reference_conductance_S`` (default: the
  middle of the device window, so the range is ±w_full_scale minus the switch loss at the top).
* differential (our choice): split around the middle of the *effective* window,
  G_eff± = G_mid,eff ± w / (2 c_l), G_mid,eff = (G_eff(G_on) + G_eff(G_off))/2. The pair moves
  symmetrically, the range is symmetric, ±c_l·(G_eff(G_on) − G_eff(G_off)) (twice the single
  scheme's), and a zero weight puts both devices mid-window, where either can be tuned both ways.
  ``spec.g_ref_S`` plays no part.

**Margin.** ``margin`` (a fraction of the device window G_on − G_off, in [0, 0.5)) keeps targets that
far from each end: [G_off + m·ΔG, G_on − m·ΔG], for program-and-verify tolerance headroom. A
weight whose target falls outside raises ConfigError naming the weight (layer, row, column, device)
and the allowed weight range. ``max_symmetric_weight`` gives the largest ``training.w_limit`` that
always fits.

Shapes: weights are a sequence of (n_inputs, n_outputs) arrays, one per layer; conductances and
states are (n_devices,) arrays indexed by ``site.index`` (the order of ``Crossbar.sites``). SI units.
"""

from __future__ import annotations

import numpy as np

from ..circuits.crossbar import Crossbar
from ..errors import ConfigError
from ..validation import check_range

# compare-media maps the same network onto the same circuit for both modes and the error sweep: the
# fit is deterministic in (circuit, margin, weights), so ``circuit_conductances`` solves it once
# (a cache, not state: every caller gets a fresh copy of the same numbers).
_SOLVED: dict[tuple, np.ndarray] = {}
_SOLVED_KEPT = 64


def weight_per_siemens(crossbar: Crossbar, layer: int) -> float:
    """c_l = k · R_f · V_read: software weight per siemens of effective conductance in layer ``layer``."""
    spec = crossbar.spec
    neuron = spec.layers[layer].neuron
    return neuron.activation_gain_per_V * neuron.r_feedback_ohm * spec.v_read_V


def effective_conductance_S(g_device_S, r_switch_ohm: float):
    """Conductance of a device in series with its selection switch: 1/(R_sw + 1/G_dev) (0 for 0)."""
    with np.errstate(divide="ignore"):
        return 1.0 / (r_switch_ohm + 1.0 / np.asarray(g_device_S, dtype=float))


def device_conductance_S(g_effective_S, r_switch_ohm: float):
    """The device conductance whose series combination with the switch is ``g_effective_S``."""
    g = np.asarray(g_effective_S, dtype=float)
    with np.errstate(divide="ignore"):
        return 1.0 / (1.0 / g - r_switch_ohm)


def _device_window_S(crossbar: Crossbar, margin: float) -> tuple[float, float]:
    check_range("mapping.margin", margin, 0.0, 0.4999, True)
    device = crossbar.spec.device
    span = device.g_high_S - device.g_low_S
    return device.g_low_S + margin * span, device.g_high_S - margin * span


def _effective_window_S(crossbar: Crossbar, margin: float) -> tuple[float, float]:
    low, high = _device_window_S(crossbar, margin)
    r_sw = crossbar.spec.r_switch_on_ohm
    return float(effective_conductance_S(low, r_sw)), float(effective_conductance_S(high, r_sw))


def _middle_effective_S(crossbar: Crossbar) -> float:
    return float(np.mean(_effective_window_S(crossbar, 0.0)))


def weight_range(crossbar: Crossbar, layer: int, margin: float = 0.0) -> tuple[float, float]:
    """(w_min, w_max): the weights of layer ``layer`` whose targets fit the (margined) window."""
    g_low, g_high = _effective_window_S(crossbar, margin)
    c = weight_per_siemens(crossbar, layer)
    if crossbar.spec.weights == "single":
        g_ref = crossbar.spec.reference_conductance_S
        return c * (g_low - g_ref), c * (g_high - g_ref)
    # G_mid ± w/(2c) inside [g_low, g_high] on both devices of the pair.
    half = 2 * c * min(_middle_effective_S(crossbar) - g_low, g_high - _middle_effective_S(crossbar))
    return -half, half


def max_symmetric_weight(crossbar: Crossbar, margin: float = 0.0) -> float:
    """The largest w_limit such that every weight in [−w_limit, w_limit] maps inside the window."""
    return min(min(-low, high) for low, high in
               (weight_range(crossbar, layer, margin) for layer in range(len(crossbar.spec.layers))))


def _validated_weights(weights, crossbar: Crossbar) -> list[np.ndarray]:
    layers = crossbar.spec.layers
    if len(weights) != len(layers):
        raise ConfigError("weights", f"{len(weights)} arrays", f"one per layer ({len(layers)})")
    arrays = []
    for index, (W, layer) in enumerate(zip(weights, layers)):
        W = np.asarray(W, dtype=float)
        if W.shape != (layer.n_inputs, layer.n_outputs):
            raise ConfigError(f"weights[{index}]", f"shape {W.shape}",
                              f"shape ({layer.n_inputs}, {layer.n_outputs})")
        if not np.all(np.isfinite(W)):
            raise ConfigError(f"weights[{index}]", "non-finite values", "finite weights")
        arrays.append(W)
    return arrays


def weights_to_conductances(weights, crossbar: Crossbar, margin: float = 0.0, strict: bool = True) -> np.ndarray:
    """Target device conductances (n_devices,) in S, site order, switch-compensated.

    Raises ConfigError naming the first weight whose target falls outside the device window
    (shrunk by ``margin``) and the allowed weight range of its layer; ``strict=False`` clips such
    targets to the window instead.
    """
    spec = crossbar.spec
    arrays = _validated_weights(weights, crossbar)
    g_low, g_high = _effective_window_S(crossbar, margin)
    # Weights computed from the window's own edges may land an ulp outside it: accept and clip those.
    slack = 1e-12 * (g_high - g_low)
    g_mid = _middle_effective_S(crossbar)
    g_effective = np.empty(crossbar.n_devices)
    for site in crossbar.sites:
        w = arrays[site.layer][site.row, site.column]
        c = weight_per_siemens(crossbar, site.layer)
        if spec.weights == "single":
            g = spec.reference_conductance_S + w / c
        else:
            g = g_mid + site.sign * w / (2 * c)
        if strict and not g_low - slack <= g <= g_high + slack:
            low, high = weight_range(crossbar, site.layer, margin)
            raise ConfigError(
                f"weights[{site.layer}][{site.row}, {site.column}]", float(w),
                f"[{low:.6g}, {high:.6g}] for layer {site.layer} (row {site.row}, column {site.column}, "
                f"device {site.instance}): its target conductance {g:.6g} S is outside the effective window "
                f"[{g_low:.6g}, {g_high:.6g}] S (device window, margin {margin:g}, "
                f"{spec.r_switch_on_ohm:g} Ω switch); lower training.w_limit or the margin")
        g_effective[site.index] = min(max(g, g_low), g_high)
    g_low_dev, g_high_dev = _device_window_S(crossbar, margin)
    return np.clip(device_conductance_S(g_effective, spec.r_switch_on_ohm), g_low_dev, g_high_dev)


def target_states(weights, crossbar: Crossbar, margin: float = 0.0) -> np.ndarray:
    """Target device states x in [0, 1] (n_devices,), site order, of ``weights_to_conductances``."""
    g = weights_to_conductances(weights, crossbar, margin)
    return np.clip(crossbar.spec.device.state_from_conductance(g), *crossbar.spec.device.state_bounds)


def conductances_to_weights(g_device_S, crossbar: Crossbar) -> tuple[np.ndarray, ...]:
    """The weights a chip holds when its devices have conductances ``g_device_S`` (n_devices,) in S.

    The inverse of ``weights_to_conductances`` (switch included); any conductances are accepted, so
    programmed, drifted or perturbed chips can be evaluated in software.
    """
    spec = crossbar.spec
    g = np.asarray(g_device_S, dtype=float)
    if g.shape != (crossbar.n_devices,):
        raise ConfigError("conductances", f"shape {g.shape}", f"shape ({crossbar.n_devices},)")
    if not np.all(np.isfinite(g) & (g > 0)):
        raise ConfigError("conductances", "non-positive or non-finite values", "conductances > 0 S")
    g_effective = effective_conductance_S(g, spec.r_switch_on_ohm)
    weights = [np.zeros((layer.n_inputs, layer.n_outputs)) for layer in spec.layers]
    for site in crossbar.sites:
        c = weight_per_siemens(crossbar, site.layer)
        if spec.weights == "single":
            g_ref = spec.reference_conductance_S
            weights[site.layer][site.row, site.column] = c * (g_effective[site.index] - g_ref)
        else:
            weights[site.layer][site.row, site.column] += site.sign * c * g_effective[site.index]
    return tuple(weights)


def states_to_weights(states, crossbar: Crossbar) -> tuple[np.ndarray, ...]:
    """The weights of a chip whose devices are at states ``states`` (n_devices,) in [0, 1]."""
    x = np.asarray(states, dtype=float)
    if x.shape != (crossbar.n_devices,):
        raise ConfigError("states", f"shape {x.shape}", f"shape ({crossbar.n_devices},)")
    return conductances_to_weights(crossbar.spec.device.conductance_S(x), crossbar)


# ---- circuit-aware mapping ----------------------------------------------------------------------------
def circuit_conductances(weights, crossbar: Crossbar, margin: float = 0.0) -> np.ndarray:
    """Device targets (n_devices,) in S that make the circuit compute ``weights`` exactly.

    ``weights_to_conductances`` compensates the selection switch only. Driver, line and sense
    resistance, the reference path (which joins at the summing node, after R_sense) and the op-amps'
    finite gain make the programmed circuit compute other weights: with one device per weight the
    column current is a small difference of large currents, so a few mV of IR drop move a weight a
    lot. Here each layer's targets are solved for through the circuit itself: the exact nodal model
    of the array (``surrogate/array.py``, equal to ngspice to ~1e-11) gives the op-amp outputs as
    u = v_in @ T(G); the fit asks −k·V_read·T(G) = W (the weights of the software network, whose
    pre-activation is Σ x_i W_ij with inputs x = v_in/V_read) with
    ``scipy.optimize.least_squares``, from the switch-compensated targets, inside the (margined)
    device window. Single weights: one unknown per weight, a square system. Differential weights:
    each pair keeps the naive mapping's sum, and its difference is solved for.

    A weight the window cannot hold leaves a residual instead of an error; ``mapping_fidelity``
    measures what the circuit then computes.
    """
    spec = crossbar.spec
    arrays = _validated_weights(weights, crossbar)
    key = (spec, float(margin), tuple((w.shape, w.tobytes()) for w in arrays))
    solved = _SOLVED.get(key)
    if solved is None:
        if len(_SOLVED) >= _SOLVED_KEPT:
            _SOLVED.clear()
        solved = _SOLVED[key] = _solve_circuit_conductances(arrays, crossbar, margin)
    return solved.copy()   # a fresh array each time: callers may change it


def _solve_circuit_conductances(arrays: list[np.ndarray], crossbar: Crossbar, margin: float) -> np.ndarray:
    from scipy.optimize import least_squares

    from ..surrogate.array import ArrayModel

    spec = crossbar.spec
    g = weights_to_conductances(arrays, crossbar, margin, strict=False)
    low, high = _device_window_S(crossbar, margin)
    model = ArrayModel(crossbar)
    for index, (layer, network) in enumerate(zip(spec.layers, model.layers)):
        block = network.device_slice
        scale = layer.neuron.activation_gain_per_V * spec.v_read_V
        naive = g[block].copy()
        if spec.weights == "differential":
            plus, minus = naive[0::2], naive[1::2]
            total = plus + minus
            span = np.minimum(total - 2 * low, 2 * high - total)

            def expand(d, total=total):
                return np.column_stack([(total + d) / 2, (total - d) / 2]).ravel()

            start, bounds = plus - minus, (-span, span)
        else:
            def expand(values):
                return values

            start, bounds = naive, (np.full(naive.shape, low), np.full(naive.shape, high))
        target = arrays[index]

        def residual(params, network_index=index, expand=expand, target=target):
            transfer, _ = model.layer_transfer(network_index, expand(params))
            return (-scale * transfer - target).ravel()

        solution = least_squares(residual, np.clip(start, *bounds), bounds=bounds,
                                 x_scale=np.full(start.shape, high - low), xtol=1e-14, ftol=1e-14, gtol=1e-14)
        g[block] = expand(solution.x)
    return g


def binary_inputs(n_inputs: int, limit: int = 4096, seed: int = 0) -> np.ndarray:
    """Every binary input vector (2^n rows, in counting order) up to ``limit``; beyond, ``limit``
    seeded random binary vectors."""
    if 2**n_inputs <= limit:
        codes = np.arange(2**n_inputs)
        return ((codes[:, None] >> np.arange(n_inputs)[::-1]) & 1).astype(float)
    return np.random.default_rng(seed).integers(0, 2, (limit, n_inputs)).astype(float)


def software_activations(weights, inputs) -> list[np.ndarray]:
    """Every layer's activations of the bias-free sigmoid network (fractions of full scale)."""
    from scipy.special import expit

    activations, h = [], np.asarray(inputs, dtype=float)
    for W in weights:
        h = expit(h @ np.asarray(W, dtype=float))
        activations.append(h)
    return activations


def fidelity(weights, layer_activations: list[np.ndarray], inputs) -> dict:
    """How closely a circuit's activations (per layer, fractions of full scale, for ``inputs``) follow
    the software network: max and RMS error per layer and overall, and class flips of the last layer
    (a different side of 0.5 for a one-output network, a different arg-max otherwise)."""
    expected = software_activations(weights, inputs)
    result, errors = {}, []
    for index, (ours, theirs) in enumerate(zip(layer_activations, expected)):
        error = np.abs(np.asarray(ours, dtype=float) - theirs)
        errors.append(error.ravel())
        result[f"layer{index + 1}_max_error"] = float(error.max())
        result[f"layer{index + 1}_rms_error"] = float(np.sqrt(np.mean(error**2)))
    everything = np.concatenate(errors)
    ours, theirs = np.asarray(layer_activations[-1]), expected[-1]
    if theirs.shape[1] == 1:
        flips = (ours[:, 0] > 0.5) != (theirs[:, 0] > 0.5)
    else:
        flips = np.argmax(ours, axis=1) != np.argmax(theirs, axis=1)
    result.update(max_error=float(everything.max()), rms_error=float(np.sqrt(np.mean(everything**2))),
                  class_flips=int(flips.sum()), inputs=int(len(inputs)))
    return result


def circuit_weights(g_device_S, crossbar: Crossbar) -> tuple[np.ndarray, ...]:
    """The weights the circuit computes when its devices have conductances ``g_device_S`` (site
    order, S), wires and all: −k·V_read·T per layer, T the layer's op-amp transfer (the inverse of
    ``circuit_conductances``; op-amp offsets, which no weight can express, are left out)."""
    from ..surrogate.array import ArrayModel

    spec = crossbar.spec
    g = np.asarray(g_device_S, dtype=float)
    if g.shape != (crossbar.n_devices,):
        raise ConfigError("conductances", f"shape {g.shape}", f"shape ({crossbar.n_devices},)")
    model = ArrayModel(crossbar)
    weights = []
    for index, (layer, network) in enumerate(zip(spec.layers, model.layers)):
        transfer, _ = model.layer_transfer(index, g[network.device_slice])
        weights.append(-layer.neuron.activation_gain_per_V * spec.v_read_V * transfer)
    return tuple(weights)
