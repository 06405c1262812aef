"""Data sets that work offline."""

from torchenergy.data.fashion_mnist import (
    FASHION_MNIST_CLASSES,
    fashion_mnist_dir,
    load_fashion_mnist,
    read_idx,
)
from torchenergy.data.mnist import load_mnist_5k, mnist_5k_path

__all__ = [
    "FASHION_MNIST_CLASSES",
    "fashion_mnist_dir",
    "load_fashion_mnist",
    "load_mnist_5k",
    "mnist_5k_path",
    "read_idx",
]
