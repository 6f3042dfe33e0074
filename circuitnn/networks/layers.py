"""NumPy layers of the large networks: Dense, Conv2D (im2col), ReLU, max/avg pooling, Flatten.

Images are NHWC: (batch, height, width, channels). Every layer has ``forward(x)`` and
``backward(grad) -> grad of its input``; the two layers with weights (``Dense``, ``Conv2D``) reduce to
one matrix product ``inputs2d @ weight`` with ``weight`` of shape (n_in, n_out) — (k·k·C_in, C_out) for a
convolution, rows ordered (kernel row, kernel column, input channel) — plus a digital bias. That
product is what a crossbar computes, so both take two optional arguments in ``forward``:

* ``weight``: the weight to use instead of ``self.weight`` (noise injection draws one per mini-batch);
  the backward pass propagates through it and hands the gradient straight through to ``self.weight``;
* ``matmul``: a function inputs2d → outputs2d that replaces ``inputs2d @ weight`` (a tile model).

Loops run over kernel offsets (k² of them), never over weights or images.
"""

from __future__ import annotations

import numpy as np


class Dense:
    """y = x W + b with x (n, n_in), W (n_in, n_out), b (n_out,)."""

    has_weights = True

    def __init__(self, n_in: int, n_out: int, rng: np.random.Generator, gain: float = 2.0):
        # He initialisation (gain 2 for a following ReLU).
        self.weight = rng.normal(0.0, np.sqrt(gain / n_in), (n_in, n_out))
        self.bias = np.zeros(n_out)
        self.grad_weight = np.zeros_like(self.weight)
        self.grad_bias = np.zeros_like(self.bias)
        self._inputs = self._used = None

    def forward(self, x, weight=None, matmul=None):
        used = self.weight if weight is None else weight
        self._inputs, self._used = x, used
        return (x @ used if matmul is None else matmul(x)) + self.bias

    def backward(self, grad, need_input_grad: bool = True):
        self.grad_weight = self._inputs.T @ grad
        self.grad_bias = grad.sum(axis=0)
        return grad @ self._used.T if need_input_grad else None


def _im2col(x_padded: np.ndarray, k: int, out_h: int, out_w: int) -> np.ndarray:
    """Patches (n·out_h·out_w, k·k·C) of a padded NHWC batch, stride 1, rows ordered (i, j, c)."""
    n, _, _, c = x_padded.shape
    cols = np.empty((n, out_h, out_w, k, k, c), dtype=x_padded.dtype)
    for i in range(k):
        for j in range(k):
            cols[:, :, :, i, j, :] = x_padded[:, i:i + out_h, j:j + out_w, :]
    return cols.reshape(n * out_h * out_w, k * k * c)


class Conv2D:
    """Stride-1 convolution of NHWC images with ``channels_out`` k×k kernels and zero ``padding``."""

    has_weights = True

    def __init__(self, channels_in: int, channels_out: int, kernel_size: int, rng: np.random.Generator,
                 padding: int = 0):
        self.k, self.padding, self.channels_in = kernel_size, padding, channels_in
        fan_in = kernel_size * kernel_size * channels_in
        self.weight = rng.normal(0.0, np.sqrt(2.0 / fan_in), (fan_in, channels_out))
        self.bias = np.zeros(channels_out)
        self.grad_weight = np.zeros_like(self.weight)
        self.grad_bias = np.zeros_like(self.bias)
        self._cols = self._used = self._shape = None

    def output_shape(self, h: int, w: int) -> tuple[int, int, int]:
        return (h + 2 * self.padding - self.k + 1, w + 2 * self.padding - self.k + 1, self.weight.shape[1])

    def forward(self, x, weight=None, matmul=None):
        used = self.weight if weight is None else weight
        n, h, w, c = x.shape
        p = self.padding
        out_h, out_w, c_out = self.output_shape(h, w)
        cols = self.patches(x)
        self._cols, self._used, self._shape = cols, used, (x.shape, (n, h + 2 * p, w + 2 * p, c), out_h, out_w)
        out = cols @ used if matmul is None else matmul(cols)
        return out.reshape(n, out_h, out_w, c_out) + self.bias

    def patches(self, x) -> np.ndarray:
        """The im2col patches (n·out_h·out_w, k·k·C_in) of NHWC images ``x``: what the array's rows see."""
        n, h, w, _ = x.shape
        p = self.padding
        out_h, out_w, _ = self.output_shape(h, w)
        return _im2col(np.pad(x, ((0, 0), (p, p), (p, p), (0, 0))) if p else x, self.k, out_h, out_w)

    def backward(self, grad, need_input_grad: bool = True):
        grad2d = grad.reshape(-1, grad.shape[-1])
        self.grad_weight = self._cols.T @ grad2d
        self.grad_bias = grad2d.sum(axis=0)
        if not need_input_grad:
            return None
        return self.input_gradient(grad, self._used)

    def input_gradient(self, grad, weight, row_offset=None) -> np.ndarray:
        """Gradient of the latest forward pass's input for output gradient ``grad``, through ``weight``
        (k·k·C_in, C_out), which may differ from the forward weight (a transposed product with its own
        errors); ``row_offset`` (k·k·C_in,) is added to every patch row before the patches are summed."""
        in_shape, padded_shape, out_h, out_w = self._shape
        grad2d = grad.reshape(-1, grad.shape[-1])
        k, c = self.k, self.channels_in
        dcols = grad2d @ weight.T
        if row_offset is not None:
            dcols += row_offset
        dcols = dcols.reshape(in_shape[0], out_h, out_w, k, k, c)
        dx = np.zeros(padded_shape)
        for i in range(k):
            for j in range(k):
                dx[:, i:i + out_h, j:j + out_w, :] += dcols[:, :, :, i, j, :]
        p = self.padding
        return dx[:, p:p + in_shape[1], p:p + in_shape[2], :] if p else dx


class ReLU:
    has_weights = False

    def forward(self, x):
        self._positive = x > 0
        return np.where(self._positive, x, 0.0)

    def backward(self, grad, need_input_grad: bool = True):
        return np.where(self._positive, grad, 0.0)


class _Pool2D:
    """Non-overlapping size×size pooling of NHWC images; rows/columns past a multiple of size are dropped."""

    has_weights = False

    def __init__(self, size: int = 2):
        self.size = size

    def _windows(self, x):
        s = self.size
        n, h, w, c = x.shape
        self._shape, h2, w2 = x.shape, h // s, w // s
        # (n, h2, w2, c, s·s): the s·s values of every window on the last axis.
        return x[:, :h2 * s, :w2 * s, :].reshape(n, h2, s, w2, s, c).transpose(0, 1, 3, 5, 2, 4).reshape(
            n, h2, w2, c, s * s)

    def _scatter(self, window_grad):
        """(n, h2, w2, c, s·s) gradients of the windows → gradient of the input (zeros where dropped)."""
        s = self.size
        n, h2, w2, c, _ = window_grad.shape
        dx = np.zeros(self._shape)
        dx[:, :h2 * s, :w2 * s, :] = window_grad.reshape(n, h2, w2, c, s, s).transpose(
            0, 1, 4, 2, 5, 3).reshape(n, h2 * s, w2 * s, c)
        return dx


class MaxPool2D(_Pool2D):
    def forward(self, x):
        windows = self._windows(x)
        self._argmax = np.argmax(windows, axis=-1)  # ties: the gradient goes to the first maximum
        return np.take_along_axis(windows, self._argmax[..., None], axis=-1)[..., 0]

    def backward(self, grad, need_input_grad: bool = True):
        window_grad = np.zeros((*grad.shape, self.size * self.size))
        np.put_along_axis(window_grad, self._argmax[..., None], grad[..., None], axis=-1)
        return self._scatter(window_grad)


class AvgPool2D(_Pool2D):
    def forward(self, x):
        return self._windows(x).mean(axis=-1)

    def backward(self, grad, need_input_grad: bool = True):
        window_grad = np.broadcast_to(grad[..., None] / (self.size * self.size),
                                      (*grad.shape, self.size * self.size))
        return self._scatter(window_grad)


class Flatten:
    has_weights = False

    def forward(self, x):
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, grad, need_input_grad: bool = True):
        return grad.reshape(self._shape)


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of integer ``labels`` (n,) under softmax(``logits`` (n, classes)), and its gradient.
    """
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    log_p = shifted - log_norm
    n = len(labels)
    loss = float(-log_p[np.arange(n), labels].mean())
    grad = np.exp(log_p)
    grad[np.arange(n), labels] -= 1.0
    return loss, grad / n


class Network:
    """A feed-forward stack of layers on inputs of ``input_shape`` (per example, e.g. (784,) or (28, 28, 1)).

    ``forward(X, weights=None, matmuls=None)``: ``weights[i]`` / ``matmuls[i]`` (either list may hold
    None) replace the weight / the matrix product of the i-th layer with weights (see the module
    docstring). ``backward`` fills ``grad_weight`` / ``grad_bias`` of those layers.
    """

    def __init__(self, layers: list, input_shape: tuple[int, ...], name: str = "network"):
        self.layers = layers
        self.input_shape = tuple(input_shape)
        self.name = name
        self.weighted = [layer for layer in layers if layer.has_weights]

    @property
    def weights(self) -> list[np.ndarray]:
        """The weight matrix (n_in, n_out) of every layer with weights, in order."""
        return [layer.weight for layer in self.weighted]

    def parameters(self) -> list[np.ndarray]:
        return [p for layer in self.weighted for p in (layer.weight, layer.bias)]

    def gradients(self) -> list[np.ndarray]:
        return [g for layer in self.weighted for g in (layer.grad_weight, layer.grad_bias)]

    def n_weights(self) -> int:
        return int(sum(w.size for w in self.weights))

    def forward(self, X, weights=None, matmuls=None) -> np.ndarray:
        x = np.asarray(X, dtype=float).reshape(len(X), *self.input_shape)
        index = 0
        for layer in self.layers:
            if layer.has_weights:
                weight = None if weights is None else weights[index]
                matmul = None if matmuls is None else matmuls[index]
                x = layer.forward(x, weight, matmul)
                index += 1
            else:
                x = layer.forward(x)
        return x

    def backward(self, grad_logits: np.ndarray) -> None:
        grad = grad_logits
        first = self.layers[0]
        for layer in reversed(self.layers):
            grad = layer.backward(grad, need_input_grad=layer is not first)

    def predict(self, X, batch_size: int = 1000, matmuls=None) -> np.ndarray:
        """Class labels (n,) int, computed in batches of ``batch_size``."""
        return np.concatenate([np.argmax(self.forward(X[i:i + batch_size], matmuls=matmuls), axis=1)
                               for i in range(0, len(X), batch_size)]) if len(X) else np.zeros(0, int)
