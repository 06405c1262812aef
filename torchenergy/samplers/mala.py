"""Metropolis-adjusted Langevin algorithm (MALA), optionally preconditioned.

Proposal (the Langevin move, α = 2ε in the ``(α/2)∇E`` convention), with a preconditioner
``A = M⁻¹`` (identity by default; diagonal or dense, see :mod:`torchenergy.samplers.mass`)::

    x' = x − ε A ∇E(x) + sqrt(2ε) A^{1/2} z,      q(x' | x) = N(x'; x − ε A ∇E(x), 2ε A)

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
from torchenergy.samplers.mass import (
    DenseMass,
    InverseMass,
    check_inverse_mass,
    check_inverse_mass_shape,
    inverse_mass_apply,
)
from torchenergy.samplers.metropolis import metropolis_accept
from torchenergy.samplers.proposals import (
    GradState,
    accept_select,
    chain_view,
    check_gradient_kernel,
    finite_chains,
    init_grad_state,
    langevin_proposal,
)
from torchenergy.types import EnergyFn, Generator, StepSize

__all__ = ["MALA", "mala_log_proposal", "preconditioned_langevin_proposal"]


def mala_log_proposal(
    x_to: Tensor,
    x_from: Tensor,
    grad_from: Tensor,
    step_size: StepSize,
    inverse_mass: InverseMass = None,
) -> Tensor:
    """``log q(x_to | x_from)`` for the MALA proposal ``N(x_from − ε A ∇E(x_from), 2ε A)``.

    ``A = M⁻¹`` is the preconditioner (None: identity). Includes the normalising constant
    ``−(d/2) log(4πε) − (1/2) log det A`` (d = prod(D)), so it equals the Gaussian log density
    exactly. Shapes: points and gradient (C, *D), ε float or (C,) -> (C,).

    Example:
        >>> lp = mala_log_proposal(torch.zeros(1, 1), torch.zeros(1, 1), torch.zeros(1, 1), 0.5)
        >>> round(lp.item(), 4)  # N(0; 0, 1) = -0.5 log(2π)
        -0.9189
    """
    if inverse_mass is not None:
        return _preconditioned_log_proposal(x_to, x_from, grad_from, step_size, inverse_mass)
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


def _preconditioned_log_proposal(
    x_to: Tensor, x_from: Tensor, grad_from: Tensor, step_size: StepSize, m: float | Tensor
) -> Tensor:
    d = x_from[0].numel()
    eps = chain_view(step_size, x_from)
    diff = x_to - x_from + eps * inverse_mass_apply(grad_from, m)
    if isinstance(m, DenseMass):
        sq = row_sum(m.whiten(diff).square())
        log_det: Tensor | float = m.log_det().to(device=x_from.device, dtype=x_from.dtype)
    elif isinstance(m, Tensor):
        a = m.to(device=x_from.device, dtype=x_from.dtype)
        sq = row_sum((diff.square() / a).flatten(1))
        log_det = row_sum(a.log().flatten(1)) if a.shape == x_from.shape else a.log().sum()
    else:
        sq = row_sum(diff.square().flatten(1)) / m
        log_det = d * math.log(m)
    if isinstance(step_size, Tensor):
        eps_c = step_size.to(device=x_from.device, dtype=x_from.dtype)
        log_norm = -0.5 * d * torch.log(4.0 * math.pi * eps_c)
    else:
        eps_c = step_size
        log_norm = -0.5 * d * math.log(4.0 * math.pi * step_size)
    return log_norm - 0.5 * log_det - sq / (4.0 * eps_c)


def preconditioned_langevin_proposal(
    x: Tensor, grad: Tensor, step_size: StepSize, m: InverseMass, *, generator: Generator = None
) -> Tensor:
    """``x − ε A ∇E(x) + sqrt(2ε) A^{1/2} z`` with ``A = M⁻¹`` (None: the plain Langevin move).

    Shapes: ``x``, ``grad`` (C, *D), ε float or (C,) -> (C, *D).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.zeros(4, 2)
        >>> preconditioned_langevin_proposal(x, x, 0.1, torch.tensor([1.0, 4.0]), generator=g).shape
        torch.Size([4, 2])
    """
    if m is None:
        return langevin_proposal(x, grad, step_size, generator=generator)
    z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    if isinstance(m, DenseMass):
        noise = m.noise(z)
    elif isinstance(m, Tensor):
        noise = z * m.to(device=x.device, dtype=x.dtype).sqrt()
    else:
        noise = z * math.sqrt(m)
    eps = chain_view(step_size, x)
    two_eps = 2.0 * eps
    root = two_eps.sqrt() if isinstance(two_eps, Tensor) else math.sqrt(two_eps)
    return x - eps * inverse_mass_apply(grad, m) + root * noise


@dataclass(frozen=True, eq=False)
class MALA(Sampler):
    """Metropolis-adjusted Langevin: exact for ``exp(−E)`` at any step size ε.

    Update: propose ``x' = x − ε ∇E(x) + sqrt(2ε) z`` and accept per chain with the
    Metropolis–Hastings ratio of the asymmetric Gaussian proposal (see
    :func:`mala_log_proposal`). Exactly one energy-and-gradient evaluation per step: the State
    caches ``E`` and ``∇E`` at the current point, and the values at an accepted proposal become
    the new cache. Non-finite proposals are rejected and flagged ``nonfinite``.

    With a preconditioner ``inverse_mass = A`` the move is ``x' = x − ε A ∇E(x) +
    sqrt(2ε) A^{1/2} z`` and the ratio uses the exact density of ``N(x − ε A ∇E, 2ε A)``
    (a good ``A`` is the target covariance; a dense ``A`` costs two (d, d) products per step).

    Shapes: State ``x`` (C, *D), ``energy`` (C,), ``grad`` (C, *D); Info fields (C,).

    Args:
        energy_fn: ``(C, *D) -> (C,)``.
        step_size: ε > 0, a float or a per-chain (C,) tensor.
        inverse_mass: preconditioner ``A = M⁻¹``: None (identity), diagonal (a positive float,
            a tensor of shape D or (C, *D)) or a :class:`~torchenergy.samplers.DenseMass`.

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
    inverse_mass: InverseMass = None

    def __post_init__(self) -> None:
        check_gradient_kernel(self.energy_fn, step_size=self.step_size)
        check_inverse_mass(self.inverse_mass)

    def init(self, x: Tensor) -> GradState:
        """Cache ``E(x)`` and ``∇E(x)`` for ``x`` (C, *D)."""
        state = init_grad_state(self.energy_fn, x, step_size=self.step_size)
        check_inverse_mass_shape(self.inverse_mass, state.x)
        return state

    def step(self, state: GradState, *, generator: Generator = None) -> tuple[GradState, BaseInfo]:
        """One MALA transition; one energy-and-gradient evaluation."""
        x, energy, grad = state
        m = self.inverse_mass
        if m is None:
            x_new = langevin_proposal(x, grad, self.step_size, generator=generator)
        else:
            x_new = preconditioned_langevin_proposal(
                x, grad, self.step_size, m, generator=generator
            )
        energy_new, grad_new = energy_and_grad(self.energy_fn, x_new)
        log_ratio = (
            energy
            - energy_new
            + mala_log_proposal(x, x_new, grad_new, self.step_size, m)
            - mala_log_proposal(x_new, x, grad, self.step_size, m)
        )
        finite = finite_chains(x_new, energy_new, grad_new)
        mh = metropolis_accept(log_ratio, finite, generator=generator)
        return accept_select(mh, GradState(x_new, energy_new, grad_new), state)
