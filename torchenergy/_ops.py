"""Tensor kernels shared by every layer (the package's lowest floor, beside ``_checks``).

Private to the package as a whole: each subpackage may import it; it imports nothing of the
package. Public names are re-exported where a user needs them.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["row_sum"]


def row_sum(t: Tensor) -> Tensor:
    """Sum over the last dimension, ``(..., D) -> (...)``, as a matrix-vector product.

    On CPU a reduction over a short last dimension (D = 2 with 10,000 chains) runs a scalar loop
    that is ~10x slower than the BLAS ``t @ ones(D)``; NaN and inf propagate the same way.

    Example:
        >>> row_sum(torch.ones(3, 2)).tolist()
        [2.0, 2.0, 2.0]
    """
    return t @ torch.ones(t.shape[-1], dtype=t.dtype, device=t.device)
