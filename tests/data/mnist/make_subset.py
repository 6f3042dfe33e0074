"""Write the first N images and labels of MNIST's t10k files as gzip IDX files, byte for byte
reproducible (gzip level 9, no time stamp), to the folder of this script.

    python tests/data/mnist/make_subset.py /path/to/full/mnist [N]   # N defaults to 1000
"""

import gzip
import sys
from pathlib import Path


def idx_header(magic: int, shape: tuple[int, ...]) -> bytes:
    return magic.to_bytes(4, "big") + b"".join(size.to_bytes(4, "big") for size in shape)


def main(source: Path, n: int) -> None:
    images = gzip.decompress((source / "t10k-images-idx3-ubyte.gz").read_bytes())
    labels = gzip.decompress((source / "t10k-labels-idx1-ubyte.gz").read_bytes())
    header_images, header_labels = 16, 8  # magic + dimensions (3 for images, 1 for labels)
    out = Path(__file__).resolve().parent
    for name, data in (
        ("t10k-images-idx3-ubyte.gz", idx_header(2051, (n, 28, 28)) + images[header_images:header_images + n * 784]),
        ("t10k-labels-idx1-ubyte.gz", idx_header(2049, (n,)) + labels[header_labels:header_labels + n]),
    ):
        (out / name).write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
        print(out / name)


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 1000)
