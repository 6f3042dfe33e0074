"""Image-classification data for the large-network path: MNIST from IDX files, or scikit-learn's digits.

MNIST (LeCun, Cortes & Burges) is distributed as four IDX files. An IDX file is a big-endian header,
then the raw data (http://yann.lecun.com/exdb/mnist/, "FILE FORMATS FOR THE MNIST DATABASE"):

    bytes 0-3   magic number: 0x00000801 = 2049 (labels, 1 dimension) or 0x00000803 = 2051 (images,
                3 dimensions); byte 2 = 0x08 is the data type (unsigned byte), byte 3 the number of dims
    then        one 32-bit big-endian size per dimension
    then        prod(sizes) unsigned bytes, row-major

Files may be gzip-compressed (the usual ``*.gz`` download) or plain; the reader looks at the first two
bytes, not at the name. Every check fails with a ``ValueError`` that names the file.

No MNIST is bundled (the files are 11 MB and under CC BY-SA 3.0). When no MNIST folder is given, the
default data set is scikit-learn's bundled 8×8 handwritten digits (1797 images, UCI ML hand-written
digits, BSD-licensed with scikit-learn), which is small enough to train a network in seconds.

Shapes: images ``(n, height, width)`` float32 in [0, 1]; labels ``(n,)`` int64 in 0..9.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..validation import check_range

LABELS_MAGIC = 2049
IMAGES_MAGIC = 2051
_GZIP_MAGIC = b"\x1f\x8b"
# (images, labels) file names of the two MNIST splits, without the optional .gz.
_SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "t10k": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


# ---- IDX ---------------------------------------------------------------------------------------
def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode the (uncompressed) bytes of one IDX file into a uint8 array.

    Only the two MNIST kinds are accepted: magic 2049 (1-D labels) and 2051 (3-D images). ``name``
    appears in every error message.
    """
    if len(data) < 4:
        raise ValueError(f"{name}: {len(data)} bytes is too short for an IDX header (magic number)")
    magic = int.from_bytes(data[:4], "big")
    if magic not in (LABELS_MAGIC, IMAGES_MAGIC):
        raise ValueError(f"{name}: magic number {magic} (0x{magic:08x}) is not an MNIST IDX file; "
                         f"expected {LABELS_MAGIC} (labels) or {IMAGES_MAGIC} (images)")
    n_dims = data[3]
    header = 4 + 4 * n_dims
    if len(data) < header:
        raise ValueError(f"{name}: {len(data)} bytes is too short for a header of {n_dims} dimensions")
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(n_dims))
    expected = header + int(np.prod(shape, dtype=np.int64))
    if len(data) != expected:
        raise ValueError(f"{name}: size {len(data)} bytes does not match the header: dimensions {shape} "
                         f"need {expected} bytes (truncated or corrupt file)")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (gzip-compressed or plain) into a uint8 array shaped as its header says."""
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as error:
            raise ValueError(f"{path}: not a readable gzip file ({error})") from error
    return parse_idx(raw, str(path))


def _find(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def mnist_files(path_or_dir: str | Path, split: str = "auto") -> tuple[Path, Path]:
    """The (images, labels) IDX files for ``path_or_dir``.

    A folder: the ``split`` files in it ("train", "t10k", or "auto" = train if present, else t10k),
    gzip-compressed or not. An images file: its labels file is the same name with ``images-idx3``
    replaced by ``labels-idx1``.
    """
    path = Path(path_or_dir)
    if path.is_file():
        labels = path.with_name(path.name.replace("images-idx3", "labels-idx1"))
        if labels == path or not labels.is_file():
            raise ValueError(f"{path}: no labels file beside it (expected {labels.name})")
        return path, labels
    if not path.is_dir():
        raise ValueError(f"{path}: no such MNIST file or folder")
    if split not in ("auto", *_SPLITS):
        raise ConfigError("data.split", split, "one of auto, " + ", ".join(_SPLITS))
    for name in (("train", "t10k") if split == "auto" else (split,)):
        images, labels = (_find(path, stem) for stem in _SPLITS[name])
        if images is not None and labels is not None:
            return images, labels
    raise ValueError(f"{path}: no MNIST {split} images/labels IDX files in this folder "
                     f"(expected e.g. {_SPLITS['t10k'][0]}.gz and {_SPLITS['t10k'][1]}.gz)")


def load_mnist(path_or_dir: str | Path, split: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """MNIST images ``(n, 28, 28)`` float32 in [0, 1] and labels ``(n,)`` int64 (see ``mnist_files``)."""
    images_path, labels_path = mnist_files(path_or_dir, split)
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3:
        raise ValueError(f"{images_path}: {images.ndim}-D data, expected 3-D images (magic {IMAGES_MAGIC})")
    if labels.ndim != 1:
        raise ValueError(f"{labels_path}: {labels.ndim}-D data, expected 1-D labels (magic {LABELS_MAGIC})")
    if len(images) != len(labels):
        raise ValueError(f"{labels_path}: {len(labels)} labels for {len(images)} images "
                         f"in {images_path.name}")
    if labels.size and labels.max() > 9:
        raise ValueError(f"{labels_path}: label {int(labels.max())} outside 0..9")
    return images.astype(np.float32) / np.float32(255.0), labels.astype(np.int64)


# ---- the embedded default ------------------------------------------------------------------------------
def load_digits_default() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8×8 digits: images ``(1797, 8, 8)`` float32 in [0, 1], labels int64.

    The pixel values are counts 0..16 (of a 4×4 block of the original 32×32 bitmap), divided by 16.
    """
    from sklearn.datasets import load_digits  # local: only the default data set needs scikit-learn

    digits = load_digits()
    return (digits.images / 16.0).astype(np.float32), digits.target.astype(np.int64)


# ---- splitting ---------------------------------------------------------------------------------------
def split(X, y, train_fraction: float, seed: int):
    """Shuffle with ``seed`` and split into ``(X_train, y_train, X_test, y_test)``.

    ``round(train_fraction · n)`` examples go to training; both parts keep at least one example.
    """
    X, y = np.asarray(X), np.asarray(y)
    if len(X) != len(y):
        raise ConfigError("data.y", f"{len(y)} labels", f"one per example ({len(X)})")
    if len(X) < 2:
        raise ConfigError("data.X", f"{len(X)} examples", "at least 2 to split")
    check_range("data.train_fraction", train_fraction, 0.0, 1.0)
    n_train = min(max(round(train_fraction * len(X)), 1), len(X) - 1)
    order = np.random.default_rng(seed).permutation(len(X))
    train, test = order[:n_train], order[n_train:]
    return X[train], y[train], X[test], y[test]


def load_dataset(mnist_dir: str | Path | None, seed: int, train_fraction: float = 0.8,
                 max_examples: int | None = None):
    """``(X_train, y_train, X_test, y_test, name)`` from an MNIST folder/file, or the digits default.

    ``mnist_dir=None`` uses ``load_digits_default``. With MNIST the files found by ``mnist_files``
    (train split if present, else t10k) are shuffled and split with ``seed``; ``max_examples`` keeps
    only that many (after shuffling) before splitting. ``name`` is "mnist-train", "mnist-t10k" or
    "digits-8x8".
    """
    if mnist_dir is None:
        X, y = load_digits_default()
        name = "digits-8x8"
    else:
        images_path, _ = mnist_files(mnist_dir)
        X, y = load_mnist(images_path)
        name = "mnist-" + ("t10k" if images_path.name.startswith("t10k") else "train")
    if max_examples is not None:
        if isinstance(max_examples, bool) or not isinstance(max_examples, int) or max_examples < 2:
            raise ConfigError("data.max_examples", max_examples, "an integer ≥ 2, or None")
        keep = np.random.default_rng(seed).permutation(len(X))[:max_examples]
        X, y = X[keep], y[keep]
    return (*split(X, y, train_fraction, seed), name)
