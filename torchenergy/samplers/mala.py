"""Metropolis-adjusted Langevin algorithm (MALA).

Proposal (the Langevin move, α = 2ε in the ``(α/2)∇E`` convention)::

    x' = x − ε ∇E(x) + sqrt(2ε) z,      q(x' | x) = N(x'; x − ε ∇E(x), 2ε I)

accepted with probability ``min(1, exp(−E(x') + E(x)) · q(x | x') / q(x' | x))``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from torchenergy._ops import row_sum
from torchenergy.energies import energy_and_grad
from torchenergy.samplers.base import BaseInfo
from torchenergy.samplers.driver import Sampler
from torchenergy.samplers.metropolis import metropolis_accept
from torchenergy.samplers.proposals import (
    GradState,
    chain_view,
    check_energy_fn,
    check_per_chain,
    check_step_size,
    finite_chains,
    init_grad_state,
    langevin_proposal,
    where_chains,
)
from torchenergy.types import EnergyFn, Generator, StepSize

__all__ = ["MALA", "mala_log_proposal"]


def mala_log_proposal(
    x_to: Tensor, x_from: Tensor, grad_from: Tensor, step_size: StepSize
) -> Tensor:
    """``log q(x_to | x_from)`` for the MALA proposal ``N(x_from − ε ∇E(x_from), 2ε I)``.

    Includes the normalising constant ``−(d/2) log(4πε)`` (d = prod(D)), so it equals the
    Gaussian log density exactly. Shapes: points and gradient (C, *D), ε float or (C,) -> (C,).

    Example:
        >>> lp = mala_log_proposal(torch.zeros(1, 1), torch.zeros(1, 1), torch.zeros(1, 1), 0.5)
        >>> round(lp.item(), 4)  # N(0; 0, 1) = -0.5 log(2π)
        -0.9189
    """
    d = x_from[0].numel()
    if isinstance(step_size, Tensor):
        eps = chain_view(step_size, x_from)
        diff = (x_to - x_from).addcmul_(eps, grad_from)
        eps_c = step_size.to(device=x_from.device, dtype=x_from.dtype)
        log_norm = -0.5 * d * torch.log(4.0 * math.pi * eps_c)
        scale: Tensor | float = 4.0 * eps_c
    else:
        diff = (x_to - x_from).add_(grad_from, alpha=step_size)
        log_norm = -0.5 * d * math.log(4.0 * math.pi * step_size)
        scale = 4.0 * step_size
    # squared norm per chain as a matrix-vector product (a sum over a short last dimension
    # is a slow scalar loop on CPU)
    sq = row_sum(diff.square().flatten(1)).div_(scale)
    return log_norm - sq


@dataclass(frozen=True, eq=False)
class MALA(Sampler):
    """Metropolis-adjusted Langevin: exact for ``exp(−E)`` at any step size ε.

    Update: propose ``x' = x − ε ∇E(x) + sqrt(2ε) z`` and accept per chain with the
    Metropolis–Hastings ratio of the asymmetric Gaussian proposal (see
    :func:`mala_log_proposal`). Exactly one energy-and-gradient evaluation per step: the State
    caches ``E`` and ``∇E`` at the current point, and the values at an accepted proposal become
    the new cache. Non-finite proposals are rejected and flagged ``nonfinite``.

    Shapes: State ``x`` (C, *D), ``energy`` (C,), ``grad`` (C, *D); Info fields (C,).

    Args:
        energy_fn: ``(C, *D) -> (C,)``.
        step_size: ε > 0, a float or a per-chain (C,) tensor.

    Example:
        >>> f = lambda x: 0.5 * (x ** 2).sum(-1)
        >>> s = MALA(f, 0.2)
        >>> state, info = s.step(s.init(torch.zeros(3, 2)), generator=torch.Generator().manual_seed(0))
        >>> info.accept_prob.shape
        torch.Size([3])

    Reference:
        Roberts & Tweedie (1996), Exponential convergence of Langevin distributions and their
        discrete approximations, Bernoulli 2(4).
    """

    energy_fn: EnergyFn
    step_size: StepSize

    def __post_init__(self) -> None:
        check_energy_fn(self.energy_fn)
        check_step_size("step_size", self.step_size)

    def init(self, x: Tensor) -> GradState:
        """Cache ``E(x)`` and ``∇E(x)`` for ``x`` (C, *D)."""
        state = init_grad_state(self.energy_fn, x)
        check_per_chain("step_size", self.step_size, state.x)
        return state

    def step(self, state: GradState, *, generator: Generator = None) -> tuple[GradState, BaseInfo]:
        """One MALA transition; one energy-and-gradient evaluation."""
        x, energy, grad = state
        x_new = langevin_proposal(x, grad, self.step_size, generator=generator)
        energy_new, grad_new = energy_and_grad(self.energy_fn, x_new)
        log_ratio = (
            energy
            - energy_new
            + mala_log_proposal(x, x_new, grad_new, self.step_size)
            - mala_log_proposal(x_new, x, grad, self.step_size)
        )
        finite = finite_chains(x_new, energy_new, grad_new)
        mh = metropolis_accept(log_ratio, finite, generator=generator)
        acc = mh.accepted
        new = GradState(
            where_chains(acc, x_new, x),
            torch.where(acc, energy_new, energy),
            where_chains(acc, grad_new, grad),
        )
        diverged = torch.zeros_like(acc)
        return new, BaseInfo(mh.accept_prob, acc, mh.nonfinite, diverged)
