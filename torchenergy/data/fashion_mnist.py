"""Fashion-MNIST (Xiao, Rasul & Vollgraf 2017) from the Debian package ``dataset-fashion-mnist``.

The package installs the four gzipped IDX files under ``/usr/share/datasets/fashion-mnist``; the
environment variable ``TORCHENERGY_FASHION_MNIST`` may point to another folder holding them.
Nothing is downloaded. Images are returned as floats in [0, 1] (optionally binarised), shape
(N, 784) or (N, 1, 28, 28), with integer labels (N,).
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["FASHION_MNIST_CLASSES", "fashion_mnist_dir", "load_fashion_mnist", "read_idx"]

#: Class names of Fashion-MNIST, indexed by label 0-9.
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_DEFAULT_DIRS = ("/usr/share/datasets/fashion-mnist", "/usr/local/share/datasets/fashion-mnist")
_INSTALL = "sudo apt-get install dataset-fashion-mnist"


def fashion_mnist_dir() -> Path:
    """The folder holding the Fashion-MNIST IDX files.

    Raises:
        FileNotFoundError: naming ``apt-get install dataset-fashion-mnist`` when not installed.
    """
    candidates = [os.environ.get("TORCHENERGY_FASHION_MNIST", ""), *_DEFAULT_DIRS]
    for c in candidates:
        if c and all((Path(c) / f).is_file() for pair in _FILES.values() for f in pair):
            return Path(c)
    raise FileNotFoundError(
        "Fashion-MNIST is not installed: run `" + _INSTALL + "` (Debian/Ubuntu package "
        "dataset-fashion-mnist), or set TORCHENERGY_FASHION_MNIST to a folder with the four "
        f"gzipped IDX files {[f for p in _FILES.values() for f in p]}; looked in "
        f"{[c for c in candidates if c]}"
    )


def read_idx(path: str | Path) -> np.ndarray:
    """Read a (gzipped) IDX file into a numpy array of its stored dtype and shape."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path} is not an IDX file (bad magic number {data[:4]!r})")
    dtypes = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if data[2] not in dtypes:
        raise ValueError(f"{path}: unknown IDX type code {data[2]:#x}")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    arr = np.frombuffer(data, dtype=dtypes[data[2]], offset=4 + 4 * ndim)
    return arr.reshape(shape)


def load_fashion_mnist(
    split: str = "train",
    *,
    binarize: float | None = None,
    flatten: bool = True,
    limit: int | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor]:
    """Fashion-MNIST images and labels.

    Args:
        split: ``"train"`` (60,000) or ``"test"`` (10,000).
        binarize: threshold in (0, 1): pixels ``> binarize`` become 1, others 0 (None: keep [0, 1]).
        flatten: (N, 784) instead of (N, 1, 28, 28).
        limit: keep the first ``limit`` images.
        dtype: float dtype of the images.

    Returns:
        ``(images, labels)``: (N, 784) or (N, 1, 28, 28) floats, and (N,) int64 labels 0..9.

    Raises:
        FileNotFoundError: when the Debian package is missing (the message names the command).
    """
    if split not in _FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if binarize is not None and not 0.0 < binarize < 1.0:
        raise ValueError(f"binarize must be a threshold in (0, 1) or None, got {binarize!r}")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive int or None, got {limit!r}")
    root = fashion_mnist_dir()
    img_file, lab_file = _FILES[split]
    images = read_idx(root / img_file)[:limit]
    labels = read_idx(root / lab_file)[:limit]
    x = torch.from_numpy(images.astype(np.float32) / 255.0).to(dtype)
    if binarize is not None:
        x = (x > binarize).to(dtype)
    x = x.reshape(x.shape[0], -1) if flatten else x.reshape(x.shape[0], 1, 28, 28)
    return x, torch.from_numpy(labels.astype(np.int64))
