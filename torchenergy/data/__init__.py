"""Data sets that work offline: 2-D toy densities and the sklearn digits."""

from torchenergy.data.digits import DigitsDataset, load_digits
from torchenergy.data.toy import TOY_DENSITIES, ToyDataset, sample_toy

__all__ = ["TOY_DENSITIES", "DigitsDataset", "ToyDataset", "load_digits", "sample_toy"]
