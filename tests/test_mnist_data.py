"""The IDX reader on real MNIST files (the first 1000 t10k images, shipped in tests/data/mnist) and on
malformed bytes; the digits default; splitting."""

import gzip
from pathlib import Path

import numpy as np
import pytest

from circuitnn.data.mnist import (
    IMAGES_MAGIC, LABELS_MAGIC, load_dataset, load_digits_default, load_mnist, mnist_files, parse_idx,
    read_idx, split,
)
from circuitnn.errors import ConfigError

MNIST_DIR = Path(__file__).resolve().parent / "data" / "mnist"
IMAGES = MNIST_DIR / "t10k-images-idx3-ubyte.gz"
LABELS = MNIST_DIR / "t10k-labels-idx1-ubyte.gz"


@pytest.fixture(scope="module")
def mnist():
    assert IMAGES.is_file() and LABELS.is_file(), f"the MNIST subset is expected in {MNIST_DIR}"
    return load_mnist(MNIST_DIR)


def _idx(magic: int, shape: tuple[int, ...], payload: bytes) -> bytes:
    return (magic.to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in shape) + payload)


# ---- the real files -----------------------------------------------------------------------------------
def test_t10k_images_and_labels(mnist):
    images, labels = mnist
    assert images.shape == (1000, 28, 28) and images.dtype == np.float32
    assert images.min() == 0.0 and images.max() == 1.0
    assert labels.shape == (1000,) and labels.dtype == np.int64
    assert set(np.unique(labels)) == set(range(10))
    assert labels[0] == 7  # the well-known first test digit
    assert labels[:5].tolist() == [7, 2, 1, 0, 4]
    # Every class is well represented (the first 1000 of t10k hold 85..126 per class).
    assert np.bincount(labels).min() >= 80


def test_raw_idx_is_uint8_with_header_shape():
    raw_images, raw_labels = read_idx(IMAGES), read_idx(LABELS)
    assert raw_images.dtype == np.uint8 and raw_images.shape == (1000, 28, 28)
    assert raw_labels.dtype == np.uint8 and raw_labels.shape == (1000,)
    # Digits are drawn in the middle: the border pixels are mostly blank.
    assert raw_images[:, 0, :].mean() < 1 and raw_images[:, 14, :].mean() > 20


def test_plain_and_gzip_files_read_the_same(tmp_path):
    plain = tmp_path / "t10k-labels-idx1-ubyte"
    plain.write_bytes(gzip.decompress(LABELS.read_bytes()))
    np.testing.assert_array_equal(read_idx(plain), read_idx(LABELS))


def test_images_file_finds_its_labels(mnist):
    assert mnist_files(IMAGES) == (IMAGES, LABELS)
    _, y = load_mnist(IMAGES)
    np.testing.assert_array_equal(y, mnist[1])


# ---- malformed bytes -------------------------------------------------------------------------------------
@pytest.mark.parametrize("data, message", [
    (b"\x00\x00", "too short"),
    (_idx(2050, (3,), b"\x01\x02\x03"), "magic number 2050"),
    (_idx(0x12345678, (3,), b"\x01\x02\x03"), "magic number"),
    (_idx(LABELS_MAGIC, (5,), b"\x01\x02\x03"), "truncated"),
    (_idx(LABELS_MAGIC, (2,), b"\x01\x02\x03"), "does not match"),
    (_idx(IMAGES_MAGIC, (2, 2, 2), b"\x00" * 7), "does not match"),
    (IMAGES_MAGIC.to_bytes(4, "big") + b"\x00\x00", "too short"),
])
def test_malformed_bytes_fail_naming_the_file(tmp_path, data, message):
    path = tmp_path / "broken-idx"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_malformed_gzip_fails_naming_the_file(tmp_path):
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(_idx(IMAGES_MAGIC, (1, 2, 2), b"\x00" * 4))[:-6])
    with pytest.raises(ValueError, match="gzip") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_valid_small_idx_round_trip():
    payload = bytes(range(12))
    array = parse_idx(_idx(IMAGES_MAGIC, (3, 2, 2), payload), "mem")
    assert array.shape == (3, 2, 2) and array.dtype == np.uint8
    assert array.ravel().tolist() == list(range(12))


def test_count_mismatch_and_missing_files(tmp_path):
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(_idx(IMAGES_MAGIC, (2, 2, 2), b"\x00" * 8))
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(_idx(LABELS_MAGIC, (3,), b"\x01\x02\x03"))
    with pytest.raises(ValueError, match="3 labels for 2 images"):
        load_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(_idx(LABELS_MAGIC, (2,), b"\x01\x0c"))
    with pytest.raises(ValueError, match="label 12"):
        load_mnist(tmp_path)
    with pytest.raises(ValueError, match="no such MNIST file or folder"):
        load_mnist(tmp_path / "elsewhere")
    with pytest.raises(ValueError, match="no MNIST train"):
        load_mnist(tmp_path, split="train")
    with pytest.raises(ConfigError, match="data.split"):
        load_mnist(tmp_path, split="validation")


# ---- the digits default and splitting ------------------------------------------------------------------
def test_digits_default():
    X, y = load_digits_default()
    assert X.shape == (1797, 8, 8) and X.dtype == np.float32
    assert X.min() == 0.0 and X.max() == 1.0
    assert y.shape == (1797,) and set(np.unique(y)) == set(range(10))


def test_split_is_seeded_disjoint_and_complete():
    X = np.arange(100).reshape(100, 1)
    y = np.arange(100) % 10
    a = split(X, y, 0.8, seed=3)
    b = split(X, y, 0.8, seed=3)
    c = split(X, y, 0.8, seed=4)
    for first, again in zip(a, b):
        np.testing.assert_array_equal(first, again)
    assert not np.array_equal(a[0], c[0])
    assert len(a[0]) == 80 and len(a[2]) == 20
    assert sorted(np.concatenate([a[0], a[2]]).ravel().tolist()) == list(range(100))
    np.testing.assert_array_equal(a[1], a[0].ravel() % 10)
    with pytest.raises(ConfigError, match="data.train_fraction"):
        split(X, y, 1.5, 0)


def test_load_dataset_default_and_mnist():
    X_train, y_train, X_test, y_test, name = load_dataset(None, seed=0)
    assert name == "digits-8x8" and len(X_train) + len(X_test) == 1797
    X_train, y_train, X_test, y_test, name = load_dataset(MNIST_DIR, seed=0)
    assert name == "mnist-t10k"
    assert X_train.shape == (800, 28, 28) and X_test.shape == (200, 28, 28)
    assert y_train.shape == (800,) and y_test.shape == (200,)
    small = load_dataset(MNIST_DIR, seed=0, max_examples=500)
    assert len(small[0]) == 400 and len(small[2]) == 100


def test_the_tests_need_nothing_outside_the_repository():
    """A fresh clone runs the whole suite: no test reads data beside the repository (../shared)."""
    tests = Path(__file__).resolve().parent
    beside = ("/".join(["shared", "data"]), "parents" + "[2]")  # spelled apart: this file is scanned too
    for path in tests.rglob("*.py"):
        text = path.read_text()
        assert not any(needle in text for needle in beside), path
