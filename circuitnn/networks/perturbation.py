"""Gradients measured on the chip by perturbation: DGC (one weight at a time), SPSA, parallel perturbation.

All three change weights (or neuron inputs) of a ``ChipNetwork`` a little, measure the cost through
the chip's own forward path, and so see every variation of that path: nothing is taken from a model.
Each returns ``(grad_weight, grad_bias)`` of one layer (or of several, SPSA) in the nominal
coordinates the controller updates, and adds the chip evaluations it stands for to
``chip.counter.forward`` (one per sample per perturbed cost measurement).

**DGC** (Kim et al. 2021, docs/reference/dgc-drift-programming.md §1.3): every weight w_ij (and every
bias) in turn is moved by δ, realised through its device (``effective_weight(w + δ) − effective_weight(w)``:
the active device's gain, and a pair crossing zero changes device), the mini-batch cost is measured,
and g = (C(w + δ) − C(w))/δ (one-sided, N + 1 cost measurements per step) or
(C(w + δ) − C(w − δ))/(2δ) (central, 2N). δ = ``perturbation`` × the layer's weight range.

* Dense layers, exactly and fast: moving w_ij changes only neuron j's column output, by Δ·x_i for every
  sample. So the perturbed cost of every (i, j) at once is the old forward pass with one column
  changed: for the output layer one output changes; for a hidden layer the next layer's column
  outputs change by the rank-one term Δy_j · W_eff[j, :], and the rest of the network runs on those
  (vectorised over i, j and the samples, in chunks). ``tests/test_network_learning.py`` checks it
  against re-running the chip per weight.
* Convolution layers (a kernel weight is shared by every position, so one weight changes a whole
  feature map): re-evaluation of the network from the perturbed layer on, P perturbed copies at a
  time as one batch. The perturbed feature map is computed exactly as the unperturbed one plus the
  realised change times the weight's patch column (the array is linear in its weights), which costs
  one column instead of a whole convolution per copy; everything after it (neurons, pooling, the
  later layers) is run again on every copy.

**SPSA** (simultaneous perturbation, Spall 1992; Alspector et al. 1993): every weight of the chosen
layers moves at once by δ·Δ_w, Δ_w = ±1 at random; g_w = (C(w + δΔ) − C(w))/δ · Δ_w (one-sided) or
(C(w + δΔ) − C(w − δΔ))/(2δ) · Δ_w: 2 cost measurements per draw whatever the number of weights,
unbiased in expectation (to O(δ²)), with a variance that grows with the number of weights.

**Parallel perturbation** (beyond the paper; dense layers): the output layer's neurons are all
perturbed at once (their bias inputs moved by δ) and each output's own cost term ½(y_k − t_k)² is
read separately — valid because the cost is separable — giving ∂C_n/∂s_nk for every output k of every
sample n from one measurement. A hidden neuron cannot be separated that way (it reaches every
output), so the hidden layers are perturbed one neuron at a time (its bias input moved by δ), giving
∂C_n/∂s_nj per sample (node perturbation, Flower & Jabri 1993). In both cases the weight gradient is
Σ_n ∂C_n/∂s_nj · x_ni / B with x the layer's inputs the chip produced (read like BP reads them); it is
the gradient with respect to the weights the array computes with, so the device gains are not in it
(a positive rescaling per weight, still a descent direction). Cost measurements per step: 1 for the
output layer, one per neuron of each hidden layer (×2 central), against one per weight for DGC.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .chip_network import ChipNetwork, ChipTrace, cost_terms, sample_costs
from .layers import Conv2D, Dense

DIFFERENCES = ("one_sided", "central")
# Elements of the largest temporary of a vectorised perturbation sweep (float64: 8 bytes each).
CHUNK_ELEMENTS = 2_000_000


def _check_difference(difference: str) -> None:
    if difference not in DIFFERENCES:
        raise ConfigError("learning.difference", difference, "one of " + ", ".join(DIFFERENCES))


# ---- dense layers: one perturbed column at a time, exactly --------------------------------------------
def dense_perturbed_costs(chip: ChipNetwork, trace: ChipTrace, k: int, row_inputs: np.ndarray,
                          changes: np.ndarray) -> np.ndarray:
    """Per-sample costs (B, R, n_out) when the effective weight of row r, column j of dense layer ``k``
    alone is changed by ``changes[r, j]``, for rows whose inputs are ``row_inputs`` (B, R).

    A bias is a row whose inputs are all one. No forward pass is run: each perturbed cost comes from
    ``trace`` with one column changed (see the module docstring).
    """
    layer = chip.layers[k]
    if not isinstance(layer, Dense):
        raise ConfigError("learning.methods", type(layer).__name__, "a Dense layer for the per-weight evaluation")
    B, R = row_inputs.shape
    n_out = changes.shape[1]
    s, y_k, t = trace.pre[k], trace.post[k], trace.targets
    last = k == len(chip.layers) - 1
    out = np.empty((B, R, n_out))
    if last:
        base = trace.sample_costs()[:, None, None] - cost_terms(trace.outputs, t)[:, None, :]
        width = n_out
    else:
        if chip.positions[k + 1] != chip.positions[k] + 2 or not isinstance(chip.layers[k + 1], Dense):
            raise ConfigError("learning.methods", "dgc", "a dense layer followed (after its ReLU) by a dense layer")
        w_next = chip.circuits[k + 1].effective_weight(chip.layers[k + 1].weight)
        s_next = trace.pre[k + 1]
        width = n_out * max(w_next.shape[1], chip.n_classes)
    chunk = max(1, CHUNK_ELEMENTS // max(1, B * width))
    for r0 in range(0, R, chunk):
        rows = slice(r0, min(R, r0 + chunk))
        s_new = s[:, None, :] + row_inputs[:, rows, None] * changes[None, rows, :]   # (B, r, n_out)
        y_new = chip.neuron(k, s_new)
        if last:
            out[:, rows, :] = base + cost_terms(y_new, t[:, None, :])
            continue
        dy = y_new - y_k[:, None, :]
        s_next_new = s_next[:, None, None, :] + dy[..., None] * w_next[None, None, :, :]  # (B, r, n_out, n_next)
        outputs = chip.outputs_from(k + 1, s_next_new)
        out[:, rows, :] = sample_costs(outputs, t[:, None, None, :])
    return out


def _dense_dgc(chip: ChipNetwork, trace: ChipTrace, k: int, delta: float, central: bool):
    layer = chip.layers[k]
    circuits = chip.circuits[k]
    x = trace.inputs[k]
    B = len(x)
    n_in, n_out = layer.weight.shape
    rows = np.concatenate([x, np.ones((B, 1))], axis=1)
    base = circuits.effective_weight(layer.weight)
    signs = (1.0, -1.0) if central else (1.0,)
    costs = []
    for sign in signs:
        changes = np.vstack([circuits.effective_weight(layer.weight + sign * delta) - base,
                             np.full((1, n_out), sign * delta)])
        measured = np.full((n_in + 1, n_out), trace.cost())
        # A row whose input is zero on every sample cannot change the cost: its perturbed cost is the
        # baseline exactly (MNIST's border pixels), so only the other rows are computed.
        active = np.flatnonzero(np.any(rows != 0, axis=0))
        measured[active] = dense_perturbed_costs(chip, trace, k, rows[:, active], changes[active]).mean(axis=0)
        costs.append(measured)
    grad = (costs[0] - costs[1]) / (2 * delta) if central else (costs[0] - trace.cost()) / delta
    chip.counter.forward += B * (n_in + 1) * n_out * len(signs)
    return grad[:-1], grad[-1]


# ---- convolution layers: true re-evaluation --------------------------------------------------------
def _conv_dgc(chip: ChipNetwork, trace: ChipTrace, k: int, delta: float, central: bool):
    layer = chip.layers[k]
    circuits = chip.circuits[k]
    x = trace.inputs[k]
    B = len(x)
    cols = layer.patches(x)                                  # (B·positions, rows)
    n_rows, n_out = layer.weight.shape
    out_shape = trace.pre[k].shape                           # (B, h, w, C)
    base = circuits.effective_weight(layer.weight)
    n_perturb = (n_rows + 1) * n_out                          # every kernel weight, then every bias
    chunk = max(1, CHUNK_ELEMENTS // max(1, cols.shape[0] * n_out))
    signs = (1.0, -1.0) if central else (1.0,)
    costs = []
    for sign in signs:
        realised = circuits.effective_weight(layer.weight + sign * delta) - base
        measured = np.empty(n_perturb)
        for p0 in range(0, n_perturb, chunk):
            ids = np.arange(p0, min(n_perturb, p0 + chunk))
            r, j = ids // n_out, ids % n_out
            # The perturbed kernel's feature map, for every image: the array is linear in its weights,
            # so it is the unperturbed map plus the realised change times that weight's patch column.
            s = np.broadcast_to(trace.pre[k], (len(ids), *out_shape)).copy()
            change = np.where(r < n_rows, realised[np.minimum(r, n_rows - 1), j], sign * delta)
            column = np.where((r < n_rows)[None, :], cols[:, np.minimum(r, n_rows - 1)], 1.0)   # (B·pos, P)
            s[np.arange(len(ids)), ..., j] += (column * change).T.reshape(len(ids), *out_shape[:-1])
            outputs = chip.outputs_from(k, s.reshape(len(ids) * B, *out_shape[1:]))
            per_sample = sample_costs(outputs.reshape(len(ids), B, -1), trace.targets[None])
            measured[ids] = per_sample.mean(axis=1)
        costs.append(measured.reshape(n_rows + 1, n_out))
    grad = (costs[0] - costs[1]) / (2 * delta) if central else (costs[0] - trace.cost()) / delta
    chip.counter.forward += B * n_perturb * len(signs)
    return grad[:-1], grad[-1]


def dgc_gradient(chip: ChipNetwork, trace: ChipTrace, k: int, delta: float, difference: str = "central"):
    """DGC gradient (grad_weight, grad_bias) of weighted layer ``k`` on the mini-batch of ``trace``
    (a forward pass of the current weights with targets), perturbation ``delta`` in weight units."""
    _check_difference(difference)
    if delta <= 0:
        raise ConfigError("learning.perturbation", delta, "(0, ∞)")
    layer = chip.layers[k]
    central = difference == "central"
    if isinstance(layer, Conv2D):
        return _conv_dgc(chip, trace, k, delta, central)
    return _dense_dgc(chip, trace, k, delta, central)


# ---- SPSA -------------------------------------------------------------------------------------------
def spsa_gradients(chip: ChipNetwork, trace: ChipTrace, X, labels, layers: list[int], deltas: list[float],
                   rng: np.random.Generator, difference: str = "central", draws: int = 1) -> dict:
    """SPSA gradients {k: (grad_weight, grad_bias)} of ``layers`` (perturbations ``deltas`` in weight
    units), averaged over ``draws`` random-sign perturbations; each draw is 1 (one-sided, with the
    baseline of ``trace``) or 2 (central) measurements of the mini-batch ``X``, ``labels``."""
    _check_difference(difference)
    network = chip.network
    grads = {k: [np.zeros_like(chip.layers[k].weight), np.zeros_like(chip.layers[k].bias)] for k in layers}
    for _ in range(draws):
        signs = {k: (rng.choice((-1.0, 1.0), chip.layers[k].weight.shape),
                     rng.choice((-1.0, 1.0), chip.layers[k].bias.shape)) for k in layers}

        def measured(direction: float) -> float:
            weights, biases = list(network.weights), [None] * len(chip.layers)
            for k, delta in zip(layers, deltas):
                weights[k] = chip.layers[k].weight + direction * delta * signs[k][0]
                biases[k] = chip.layers[k].bias + direction * delta * signs[k][1]
            return chip.forward(X, labels, weights, biases).cost()

        plus = measured(1.0)
        difference_cost = plus - measured(-1.0) if difference == "central" else plus - trace.cost()
        scale = 2.0 if difference == "central" else 1.0
        for k, delta in zip(layers, deltas):
            grads[k][0] += difference_cost / (scale * delta) * signs[k][0] / draws
            grads[k][1] += difference_cost / (scale * delta) * signs[k][1] / draws
    return {k: tuple(g) for k, g in grads.items()}


# ---- parallel (per-output / per-neuron) perturbation ------------------------------------------------
def parallel_gradient(chip: ChipNetwork, trace: ChipTrace, k: int, delta: float, difference: str = "central"):
    """Parallel-perturbation gradient (grad_weight, grad_bias) of dense layer ``k``: per-sample
    ∂C_n/∂s_nj from perturbing neuron inputs (all output neurons at once, each output's cost term read
    separately; hidden neurons one at a time), times the layer's inputs."""
    _check_difference(difference)
    layer = chip.layers[k]
    if not isinstance(layer, Dense):
        raise ConfigError("learning.methods", "parallel", "dense layers only (use dgc or spsa for convolutions)")
    x = trace.inputs[k]
    B, n_out = len(x), layer.weight.shape[1]
    ones = np.ones((B, 1))
    central = difference == "central"
    plus = dense_perturbed_costs(chip, trace, k, ones, np.full((1, n_out), delta))[:, 0, :]
    if central:
        minus = dense_perturbed_costs(chip, trace, k, ones, np.full((1, n_out), -delta))[:, 0, :]
        node = (plus - minus) / (2 * delta)
    else:
        node = (plus - trace.sample_costs()[:, None]) / delta            # (B, n_out): ∂C_n/∂s_nj
    last = k == len(chip.layers) - 1
    chip.counter.forward += B * (1 if last else n_out) * (2 if central else 1)
    return x.T @ node / B, node.mean(axis=0)
