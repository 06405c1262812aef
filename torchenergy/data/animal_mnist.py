"""Animal-MNIST: 10,000 animal silhouettes at 28×28 (10 classes), an OOD set for Fashion-MNIST.

The PyPI package ``animal-mnist`` ships two gzipped pickles of numpy arrays under
``animal_mnist/data/Animal_MNIST/``. They are found through the installed package's location
(``importlib``) without importing the package (its loader imports tensorflow), and read with a
restricted unpickler that only rebuilds numpy arrays (no other object can be created, so a
tampered file cannot run code). Install with ``pip install --no-deps animal-mnist==0.4``.
"""

from __future__ import annotations

import gzip
import importlib.util
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["animal_mnist_dir", "load_animal_mnist"]

_INSTALL = "pip install --no-deps animal-mnist==0.4"
_FILES = ("animal_data_version_3.gz", "animal_label_version_3.gz")
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


def animal_mnist_dir() -> Path:
    """Folder of the two Animal-MNIST files inside the installed ``animal_mnist`` package.

    Raises:
        FileNotFoundError: naming the install command when the package or a file is missing.
    """
    spec = importlib.util.find_spec("animal_mnist")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"Animal-MNIST needs the animal-mnist package: run `{_INSTALL}`")
    for loc in spec.submodule_search_locations:
        d = Path(loc) / "data" / "Animal_MNIST"
        if all((d / f).is_file() for f in _FILES):
            return d
    raise FileNotFoundError(
        f"animal-mnist is installed but its data files are missing: run `{_INSTALL}`"
    )


class _NumpyOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            if module == "numpy.core.multiarray" and int(np.__version__.split(".")[0]) >= 2:
                module = "numpy._core.multiarray"  # numpy 2 renamed it (the old name warns)
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"Animal-MNIST file holds a disallowed object {module}.{name}")


def _read(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        arr = _NumpyOnly(f).load()
    if not isinstance(arr, np.ndarray):
        raise ValueError(f"{path} does not hold a numpy array (got {type(arr).__name__})")
    return arr


def load_animal_mnist(
    *, flatten: bool = True, limit: int | None = None, dtype: torch.dtype = torch.float32
) -> tuple[Tensor, Tensor]:
    """Animal-MNIST images in [0, 1] and labels.

    Args:
        flatten: (N, 784) instead of (N, 1, 28, 28).
        limit: keep the first ``limit`` images.
        dtype: float dtype of the images.

    Returns:
        ``(images, labels)``: (10000, 784) or (10000, 1, 28, 28), and (10000,) int64.

    Raises:
        FileNotFoundError: when the package is missing (the message names the command).
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive int or None, got {limit!r}")
    root = animal_mnist_dir()
    images = _read(root / _FILES[0])[:limit]
    labels = _read(root / _FILES[1])[:limit]
    if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != images.shape[:1]:
        raise ValueError(f"unexpected Animal-MNIST shapes {images.shape} and {labels.shape}")
    x = torch.from_numpy(images.astype(np.float32) / 255.0).to(dtype)
    x = x.reshape(x.shape[0], -1) if flatten else x.reshape(x.shape[0], 1, 28, 28)
    return x, torch.from_numpy(labels.astype(np.int64))
