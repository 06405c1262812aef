"""Data sets that work offline: 2-D toy densities, sklearn digits, Fashion-MNIST, MNIST-5k."""

from torchenergy.data.digits import DigitsDataset, load_digits
from torchenergy.data.fashion_mnist import (
    FASHION_MNIST_CLASSES,
    fashion_mnist_dir,
    load_fashion_mnist,
    read_idx,
)
from torchenergy.data.mnist import load_mnist_5k, mnist_5k_path
from torchenergy.data.toy import TOY_DENSITIES, ToyDataset, sample_toy

__all__ = [
    "FASHION_MNIST_CLASSES",
    "TOY_DENSITIES",
    "DigitsDataset",
    "ToyDataset",
    "fashion_mnist_dir",
    "load_digits",
    "load_fashion_mnist",
    "load_mnist_5k",
    "mnist_5k_path",
    "read_idx",
    "sample_toy",
]
