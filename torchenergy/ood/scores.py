"""Out-of-distribution scores: higher means "more in-distribution", for every score here.

| score | formula | needs |
|---|---|---|
| :func:`max_softmax_score` | ``max_y softmax(f(x))_y`` (Hendrycks & Gimpel 2017) | logits (C, K) |
| :func:`energy_score` | ``T · logsumexp(f(x) / T)`` = ``−E(x)`` at T = 1 (Liu et al. 2020) | logits |
| :func:`gradient_norm_score` | ``−‖∇x E(x)‖₂`` (JEM's "approximate mass", Grathwohl et al. 2020) | an energy |
| :func:`energy_as_score` | ``−E(x)`` for any energy ``(C, *D) -> (C,)`` | an energy |

References: D. Hendrycks and K. Gimpel, *A Baseline for Detecting Misclassified and
Out-of-Distribution Examples*, ICLR 2017; W. Liu et al., *Energy-based Out-of-distribution
Detection*, NeurIPS 2020; W. Grathwohl et al., ICLR 2020.
"""

from __future__ import annotations

import torch
from torch import Tensor

from torchenergy._checks import check_positive, check_positive_int, check_tensor
from torchenergy.energies import energy_and_grad
from torchenergy.types import EnergyFn

__all__ = ["energy_as_score", "energy_score", "gradient_norm_score", "max_softmax_score"]


def _check_logits(logits: Tensor) -> None:
    check_tensor("logits", logits, floating=True)
    if logits.dim() != 2:
        raise ValueError(f"logits must have shape (C, K), got {tuple(logits.shape)}")


def max_softmax_score(logits: Tensor) -> Tensor:
    """Maximum softmax probability, shape (C, K) -> (C,).

    Example:
        >>> max_softmax_score(torch.tensor([[0.0, 0.0], [10.0, 0.0]])).tolist()[0]
        0.5
    """
    _check_logits(logits)
    return torch.softmax(logits, dim=-1).amax(dim=-1)


def energy_score(logits: Tensor, temperature: float = 1.0) -> Tensor:
    """Negative free energy ``T · logsumexp(f / T)``, shape (C, K) -> (C,).

    Example:
        >>> float(energy_score(torch.zeros(1, 4)))  # log 4
        1.3862943649291992
    """
    _check_logits(logits)
    check_positive("temperature", temperature)
    return temperature * torch.logsumexp(logits / temperature, dim=-1)


def _batched(x: Tensor, batch_size: int | None) -> list[Tensor]:
    if batch_size is None:
        return [x]
    check_positive_int("batch_size", batch_size)
    return list(x.split(batch_size))


def gradient_norm_score(energy_fn: EnergyFn, x: Tensor, *, batch_size: int | None = None) -> Tensor:
    """``−‖∇x E(x)‖₂`` per input, shape (C, *D) -> (C,). Points of high mass have flat energy.

    Example:
        >>> gradient_norm_score(lambda x: 0.5 * (x ** 2).sum(-1), torch.tensor([[3.0, 4.0]]))
        tensor([-5.])
    """
    check_tensor("x", x, min_dim=1, floating=True)
    out = [energy_and_grad(energy_fn, c)[1].flatten(1).norm(dim=1) for c in _batched(x, batch_size)]
    return -torch.cat(out)


def energy_as_score(energy_fn: EnergyFn, x: Tensor, *, batch_size: int | None = None) -> Tensor:
    """``−E(x)``, shape (C, *D) -> (C,), without building a graph.

    Example:
        >>> energy_as_score(lambda x: x.sum(-1), torch.ones(2, 3)).tolist()
        [-3.0, -3.0]
    """
    check_tensor("x", x, min_dim=1, floating=True)
    with torch.no_grad():
        return -torch.cat([energy_fn(c) for c in _batched(x, batch_size)])
