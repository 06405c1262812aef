"""Score matching without the normalising constant: exact (Hyvärinen) and sliced.

With ``score s(x) = -grad_x E(x)``, Hyvärinen's objective is

    J(theta) = E_data[ 1/2 ||grad E(x)||^2 - tr(grad^2 E(x)) ],

equal (up to a constant free of theta) to ``1/2 E||s_theta - s_data||^2``. The exact form needs the
Hessian trace (one extra backward pass per event dimension: small D only). Sliced score matching
replaces the trace by random projections ``v ~ N(0, I)``:

    J_v = 1/2 (v . grad E)^2 - v^T (grad^2 E) v           (plain)
    J_v = 1/2 ||grad E||^2   - v^T (grad^2 E) v           (variance-reduced, default)

both unbiased for J. All sums run over every non-batch dimension, so (C, 1, 2, 2) images give the
same value as the flattened (C, 4) data.

References: Hyvärinen (2005), "Estimation of non-normalized statistical models by score matching";
Song, Garg, Shi & Ermon (2019), "Sliced score matching".
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from torchenergy._checks import check_positive_int, check_tensor
from torchenergy.energies import energy_and_grad
from torchenergy.losses._common import check_phase_finite, flat_sum
from torchenergy.types import EnergyFn, Generator

__all__ = ["ScoreMatchingOutput", "score_matching", "sliced_score_matching"]


class ScoreMatchingOutput(NamedTuple):
    """Result of the score-matching losses.

    Attributes:
        loss: scalar, differentiable in the parameters (mean of ``per_sample``).
        per_sample: per-example objective (C,), detached (its std gives the Monte Carlo error).
        pos_energy: data energies (C,), detached.
        grad_norm: ``||grad_x E||`` per example (C,), detached.
    """

    loss: Tensor
    per_sample: Tensor
    pos_energy: Tensor
    grad_norm: Tensor


def _prepare(x: Tensor) -> Tensor:
    check_tensor("x", x, min_dim=2, floating=True)
    return x.detach().requires_grad_(True)


def _grad_of(total: Tensor, xg: Tensor) -> Tensor:
    """``d total / d xg`` with the graph kept; zero when ``total`` does not depend on ``xg``
    (an energy whose gradient is free of x, such as the affine ``E(x) = x·w``, has a zero
    Hessian)."""
    if not total.requires_grad:
        return torch.zeros_like(xg)
    (g,) = torch.autograd.grad(total, xg, create_graph=True, allow_unused=True)
    return torch.zeros_like(xg) if g is None else g


def score_matching(energy_fn: EnergyFn, x: Tensor) -> ScoreMatchingOutput:
    """Exact Hyvärinen score matching ``mean(1/2 ||grad E||^2 - tr(grad^2 E))``.

    Shapes: ``x`` (C, *D); the Hessian trace costs one backward pass per element of D, so use it
    for small D (use :func:`sliced_score_matching` otherwise).

    Args:
        energy_fn: energy ``(C, *D) -> (C,)``.
        x: data (C, *D).

    Returns:
        :class:`ScoreMatchingOutput`.

    Example:
        >>> import torch
        >>> out = score_matching(lambda x: 0.5 * (x ** 2).sum(-1), torch.zeros(3, 2))
        >>> float(out.loss.detach())  # 1/2 * 0 - tr(I_2)
        -2.0
    """
    xg = _prepare(x)
    energy, grad = energy_and_grad(energy_fn, xg, create_graph=True)
    check_phase_finite(energy, "positive")
    gflat = grad.reshape(grad.shape[0], -1)
    trace = torch.zeros_like(energy)
    for i in range(gflat.shape[1]):
        hcol = _grad_of(gflat[:, i].sum(), xg)
        trace = trace + hcol.reshape(hcol.shape[0], -1)[:, i]
    per = 0.5 * gflat.pow(2).sum(-1) - trace
    return ScoreMatchingOutput(
        per.mean(), per.detach(), energy.detach(), gflat.detach().norm(dim=-1)
    )


def sliced_score_matching(
    energy_fn: EnergyFn,
    x: Tensor,
    *,
    n_projections: int = 1,
    variance_reduction: bool = True,
    generator: Generator = None,
) -> ScoreMatchingOutput:
    """Sliced score matching with Gaussian projections ``v ~ N(0, I)``.

    Shapes: ``x`` (C, *D); each example is paired with ``n_projections`` directions of shape D
    (the energy is evaluated on a (n_projections * C, *D) batch). ``per_sample`` averages over
    the projections of each example.

    Args:
        energy_fn: energy ``(C, *D) -> (C,)``.
        x: data (C, *D).
        n_projections: number of random directions per example (>= 1).
        variance_reduction: use ``1/2 ||grad E||^2`` (exact) instead of ``1/2 (v . grad E)^2``.
        generator: random stream for the projections.

    Returns:
        :class:`ScoreMatchingOutput`.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> out = sliced_score_matching(lambda x: 0.5 * (x ** 2).sum(-1), torch.zeros(3, 2), generator=g)
        >>> out.per_sample.shape
        torch.Size([3])
    """
    check_positive_int("n_projections", n_projections)
    check_tensor("x", x, min_dim=2, floating=True)
    c = x.shape[0]
    xr = x.detach().repeat(n_projections, *([1] * (x.dim() - 1)))
    xg = xr.requires_grad_(True)
    v = torch.randn(xr.shape, generator=generator, device=x.device, dtype=x.dtype)
    energy, grad = energy_and_grad(energy_fn, xg, create_graph=True)
    check_phase_finite(energy, "positive")
    gv = flat_sum(grad * v)
    hv = _grad_of(gv.sum(), xg)
    vhv = flat_sum(hv * v)
    if variance_reduction:
        first = 0.5 * flat_sum(grad.pow(2))
    else:
        first = 0.5 * gv.pow(2)
    per = (first - vhv).reshape(n_projections, c).mean(0)
    gnorm = grad.detach()[:c].reshape(c, -1).norm(dim=-1)
    return ScoreMatchingOutput(per.mean(), per.detach(), energy.detach()[:c], gnorm)
