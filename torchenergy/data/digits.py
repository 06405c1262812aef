"""The sklearn 8x8 handwritten digits (1,797 images), scaled to [0, 1]; offline, no download.

Reference: Alpaydin & Kaynak (1998), UCI "Optical Recognition of Handwritten Digits"
(``sklearn.datasets.load_digits``).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import TensorDataset

__all__ = ["DigitsDataset", "load_digits"]

_INSTALL = "pip install scikit-learn  (or: pip install 'torchenergy[data]')"


def load_digits(
    *, flatten: bool = False, dtype: torch.dtype | None = None
) -> tuple[Tensor, Tensor]:
    """Images and labels of the sklearn digits.

    Shapes: images (N, 1, 8, 8) (or (N, 64) with ``flatten=True``) with values in [0, 1]
    (the 0..16 grey levels divided by 16); labels (N,) long in 0..9; N = 1797.

    Raises:
        ImportError: when scikit-learn is not installed (the message names the install command).

    Example:
        >>> x, y = load_digits()
        >>> tuple(x.shape), float(x.max())
        ((1797, 1, 8, 8), 1.0)
    """
    try:
        from sklearn.datasets import load_digits as _sk_load_digits
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(f"the digits data set needs scikit-learn: {_INSTALL}") from err
    bunch = _sk_load_digits()
    x = torch.as_tensor(bunch.data, dtype=dtype or torch.get_default_dtype()) / 16.0
    y = torch.as_tensor(bunch.target, dtype=torch.long)
    if not flatten:
        x = x.reshape(-1, 1, 8, 8)
    return x, y


class DigitsDataset(TensorDataset):
    """The digits as a ``Dataset`` of ``(image (1, 8, 8), label)`` pairs (see :func:`load_digits`).

    Example:
        >>> ds = DigitsDataset()
        >>> len(ds), tuple(ds[0][0].shape)
        (1797, (1, 8, 8))
    """

    def __init__(self, *, flatten: bool = False, dtype: torch.dtype | None = None) -> None:
        x, y = load_digits(flatten=flatten, dtype=dtype)
        super().__init__(x, y)
