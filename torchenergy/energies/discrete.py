"""Binary state spaces: the table of all binary vectors, and Bernoulli draws of binary units.

* :func:`binary_states`: rows ``start..stop-1`` of the table of all ``2^n`` binary vectors (or
  spins), the states that exact enumeration sums over; :func:`numbered_states`: any rows of it.
* :func:`sample_bernoulli`: ``x ~ Bernoulli(p)`` elementwise as ``u < p`` with ``u ~ U[0, 1)``
  from ``generator``: the one Bernoulli draw of the Gibbs kernels of RBMs, Boltzmann machines and
  the RBM annealing paths (same generator state ⇒ same draws).

Both are used by :mod:`torchenergy.models` and :mod:`torchenergy.estimate`; they live here, below
both, so that neither has to import the other's helpers.
"""

from __future__ import annotations

import torch
from torch import Tensor

from torchenergy._checks import check_positive_int
from torchenergy.types import Generator

__all__ = ["MAX_ENUMERATED_UNITS", "binary_states", "numbered_states", "sample_bernoulli"]

#: The most units :func:`binary_states` enumerates (``2^40`` states).
MAX_ENUMERATED_UNITS = 40


def binary_states(
    n: int,
    start: int = 0,
    stop: int | None = None,
    *,
    spin: bool = False,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> Tensor:
    """The binary vectors numbered ``start .. stop-1`` (bit ``i`` of the index is unit ``i``).

    Shapes: returns (stop - start, n). ``spin=True`` maps {0, 1} to {-1, +1}.

    Example:
        >>> binary_states(2).tolist()
        [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]
    """
    check_positive_int("n", n)
    if n > MAX_ENUMERATED_UNITS:
        raise ValueError(f"enumeration needs n <= {MAX_ENUMERATED_UNITS} units, got n={n}")
    stop = 2**n if stop is None else stop
    idx = torch.arange(start, stop, device=device, dtype=torch.long)
    return numbered_states(idx, n, spin=spin, dtype=dtype)


def numbered_states(
    index: Tensor, n: int, *, spin: bool = False, dtype: torch.dtype = torch.float64
) -> Tensor:
    """The binary vectors with the given numbers: bit ``i`` of ``index[r]`` is unit ``i`` of row ``r``.

    Shapes: ``index`` (R,) integer -> (R, n), on ``index``'s device. ``spin=True`` maps {0, 1}
    to {-1, +1}.

    Example:
        >>> numbered_states(torch.tensor([3, 4]), 3).tolist()
        [[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    """
    bits = (index[:, None] >> torch.arange(n, device=index.device)) & 1
    out = bits.to(dtype)
    return 2 * out - 1 if spin else out


def sample_bernoulli(p: Tensor, *, generator: Generator = None) -> Tensor:
    """``Bernoulli(p)`` draws as ``u < p``, 0/1 in ``p``'s dtype, any shape.

    ``u = torch.rand(p.shape, generator=generator)`` in ``p``'s dtype when that is float32 or
    float64, else in float32 (bf16/fp16 probabilities are compared in float32). Twice as fast as
    ``torch.bernoulli`` on CPU, and reproducible from ``generator``.

    Example:
        >>> sample_bernoulli(torch.tensor([0.0, 1.0])).tolist()
        [0.0, 1.0]
    """
    dt = p.dtype if p.dtype in (torch.float32, torch.float64) else torch.float32
    u = torch.rand(p.shape, generator=generator, dtype=dt, device=p.device)
    return (u < p).to(p.dtype)
