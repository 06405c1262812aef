"""Regularisers added to EBM losses: L2 on energy magnitudes and a gradient penalty.

* ``energy_l2(*energies) = sum_i mean(E_i^2)``: keeps energies near 0 so contrastive training
  cannot drift to huge magnitudes (Du & Mordatch 2019 add it with weight ~1).
* ``gradient_penalty(energy_fn, x) = mean ||grad_x E(x)||^2``: a smoothness penalty on the
  landscape (sum over all event dimensions), differentiable in the parameters.

Reference: Du & Mordatch (2019), "Implicit generation and modeling with energy-based models".
"""

from __future__ import annotations

from torch import Tensor

from torchenergy._checks import check_tensor
from torchenergy.energies import energy_and_grad
from torchenergy.losses._common import flat_sum
from torchenergy.types import EnergyFn

__all__ = ["energy_l2", "gradient_penalty"]


def energy_l2(*energies: Tensor) -> Tensor:
    """``sum_i mean(E_i^2)`` over the given energy vectors (each (C_i,)); a scalar.

    Example:
        >>> import torch
        >>> float(energy_l2(torch.tensor([1.0, 3.0]), torch.tensor([2.0])))
        9.0
    """
    if not energies:
        raise ValueError("energy_l2 needs at least one energy tensor (C,)")
    total = None
    for i, e in enumerate(energies):
        check_tensor(f"energies[{i}]", e, min_dim=1, floating=True)
        term = e.pow(2).mean()
        total = term if total is None else total + term
    return total


def gradient_penalty(energy_fn: EnergyFn, x: Tensor) -> Tensor:
    """``mean ||grad_x E(x)||^2`` (scalar), differentiable in the parameters. ``x`` (C, *D).

    Example:
        >>> import torch
        >>> float(gradient_penalty(lambda x: (x ** 2).sum(-1), torch.ones(3, 2)).detach())
        8.0
    """
    check_tensor("x", x, min_dim=2, floating=True)
    xg = x.detach().requires_grad_(True)
    _, grad = energy_and_grad(energy_fn, xg, create_graph=True)
    return flat_sum(grad.pow(2)).mean()
