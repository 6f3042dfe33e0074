"""Two classes of 3×3 binary images and their noisy copies (the Eslami et al. 2024 task).

The paper classifies noisy 3×3 binary images into two classes but does not publish the patterns,
the noise model or the set sizes (docs/reference/eslami2024-msdc.md §1.4, §5). Our choices:

* **Class 0 = "X"** (both diagonals) and **class 1 = "+"** (middle row and column), one prototype per
  class, pixels in row-major order (index = 3·row + column)::

      X:  1 0 1      +:  0 1 0
          0 1 0          1 1 1
          1 0 1          0 1 0

  Why these two (our choice; the 3×3 binary-image format follows the memristor-classifier
  precedents the notes cite, Alibart et al. 2013 and Prezioso et al. 2015, not their patterns): they
  are the most separable symmetric pair on the grid — complementary except for the shared centre,
  Hamming distance 8 — so accuracy is limited by the pixel noise rather than by ambiguous
  prototypes, and an accuracy-vs-noise curve measures robustness. Why only one prototype per
  class: with 30 weights and no bias, variants (shifted or partial strokes) would mostly test
  capacity, which the paper does not study; its question is tolerance to input noise and device
  error.
* **Pixel noise**: every pixel is flipped (0 ↔ 1) independently with probability ``noise`` — the usual
  reading of "x % noise" for binary images. With p flips and 8 distinguishing pixels the Bayes
  (nearest-prototype) error is ≈ 0.3 % at p = 0.10 and ≈ 13 % at p = 0.30, so the paper's "up to 97 %"
  lies inside our range. Noise above 0.5 would invert the images, hence the [0, 0.5] range.
* **Sets**: ``n_per_class`` noisy copies of each prototype, class 0 first (no shuffling: trainers
  shuffle their mini-batches, evaluations do not care). All randomness comes from an explicit
  ``numpy.random.Generator``, so a seed fixes a data set.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ..validation import check_range

IMAGE_SHAPE = (3, 3)
N_PIXELS = 9
CLASS_NAMES = ("X", "+")

# (n_classes, 9) in {0, 1}, row-major pixels; read-only so no caller can corrupt the task.
PROTOTYPES = np.array([
    [1, 0, 1,
     0, 1, 0,
     1, 0, 1],   # class 0: "X"
    [0, 1, 0,
     1, 1, 1,
     0, 1, 0],   # class 1: "+"
], dtype=float)
PROTOTYPES.setflags(write=False)

# Test-noise levels of the accuracy sweeps (probability of flipping each pixel).
NOISE_LEVELS = (0.0, 0.05, 0.10, 0.15, 0.20, 0.25, 0.30)

MAX_NOISE = 0.5


def _check_rng(rng, path: str = "data.rng") -> None:
    if not isinstance(rng, np.random.Generator):
        raise ConfigError(path, type(rng).__name__,
                          "a numpy.random.Generator (numpy.random.default_rng(seed))")


def check_noise(noise, path: str = "data.noise") -> None:
    """Raise ConfigError unless ``noise`` is a flip probability in [0, 0.5]."""
    check_range(path, noise, 0.0, MAX_NOISE, True)


def add_pixel_noise(X, noise: float, rng: np.random.Generator) -> np.ndarray:
    """A copy of the binary images ``X`` (n, 9) with each pixel flipped with probability ``noise``."""
    check_noise(noise)
    _check_rng(rng)
    images = np.asarray(X, dtype=float)
    if images.ndim != 2 or images.shape[1] != N_PIXELS:
        raise ConfigError("data.X", f"shape {images.shape}", f"shape (n, {N_PIXELS})")
    if not np.all((images == 0.0) | (images == 1.0)):
        raise ConfigError("data.X", "non-binary values", "pixels in {0, 1}")
    flips = rng.random(images.shape) < noise
    return np.where(flips, 1.0 - images, images)


def make_dataset(n_per_class: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n_per_class`` noisy copies of each prototype.

    Returns X (n, 9) float in {0, 1} and y (n,) int class labels, n = 2·n_per_class, class 0 first.
    """
    if isinstance(n_per_class, bool) or not isinstance(n_per_class, (int, np.integer)) \
            or not 1 <= n_per_class <= 10_000_000:
        raise ConfigError("data.n_per_class", n_per_class, "an integer in [1, 10000000]")
    check_noise(noise)
    _check_rng(rng)
    labels = np.repeat(np.arange(len(PROTOTYPES)), int(n_per_class))
    return add_pixel_noise(PROTOTYPES[labels], noise, rng), labels


def nearest_prototype(X) -> tuple[np.ndarray, np.ndarray]:
    """Each image's class by the nearest prototype in Hamming distance (the Bayes decision under
    pixel-flip noise), and whether it is defined: an image equally far from both prototypes has
    no class. Over all 512 binary images, 372 have one (140 tie: as many X corners as + arms on)."""
    images = np.asarray(X, dtype=float)
    distances = np.abs(images[:, None, :] - PROTOTYPES[None, :, :]).sum(axis=2)
    labels = np.argmin(distances, axis=1)
    defined = distances.min(axis=1) < np.sort(distances, axis=1)[:, 1]
    return labels, defined
