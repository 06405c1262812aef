"""Hamiltonian Monte Carlo with a diagonal or dense mass matrix and per-chain Metropolis correction.

Transition: draw ``p ~ N(0, M)``; run ``L`` leapfrog steps of size ε on
``H(x, p) = E(x) + 0.5 · pᵀ M⁻¹ p``; accept the end point with probability
``min(1, exp(H(x, p) − H(x', p')))`` per chain.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from torchenergy._checks import check_positive_int
from torchenergy.samplers.base import BaseInfo
from torchenergy.samplers.driver import Sampler
from torchenergy.samplers.integrators import kinetic_energy, leapfrog, sample_momentum
from torchenergy.samplers.mass import InverseMass, check_inverse_mass, check_inverse_mass_shape
from torchenergy.samplers.metropolis import metropolis_accept
from torchenergy.samplers.proposals import (
    GradState,
    accept_select,
    check_gradient_kernel,
    init_grad_state,
)
from torchenergy.types import EnergyFn, Generator, StepSize

__all__ = ["HMC"]


@dataclass(frozen=True, eq=False)
class HMC(Sampler):
    """Hamiltonian Monte Carlo: exact for ``exp(−E)``; any event shape D.

    Update: ``p ~ N(0, M)``; ``(x', p') = leapfrog^L(x, p)`` with step ε (the force is carried
    between steps, see :func:`torchenergy.samplers.leapfrog`); accept per chain with
    ``min(1, exp(E(x) + K(p) − E(x') − K(p')))``, ``K(p) = 0.5 · sum p² M⁻¹`` (dense:
    ``0.5 · pᵀ M⁻¹ p``, momenta drawn by Cholesky). With the
    State's cached gradient a transition costs exactly ``L`` energy-and-gradient evaluations.
    A trajectory that meets a non-finite energy is rejected and flagged ``nonfinite``.

    Step-size jitter: with ``jitter = j > 0`` each chain uses ``ε · (1 + j·(2u − 1))``,
    ``u ~ U(0, 1)`` drawn per transition from ``generator`` (breaks periodic trajectories;
    still exact since the draw does not depend on the state).

    Shapes: State ``x`` (C, *D), ``energy`` (C,), ``grad`` (C, *D); Info fields (C,).

    Args:
        energy_fn: ``(C, *D) -> (C,)``.
        step_size: ε > 0, a float or a per-chain (C,) tensor.
        n_leapfrog: L >= 1 leapfrog steps per transition.
        inverse_mass: ``M⁻¹``: None (identity); diagonal (positive): a float, a tensor of
            event shape D, or a per-chain tensor (C, *D); or dense: a
            :class:`~torchenergy.samplers.DenseMass` (d, d), d = prod(D).
        jitter: j in [0, 1), relative uniform step-size jitter.

    Example:
        >>> f = lambda x: 0.5 * (x ** 2).sum(-1)
        >>> g = torch.Generator().manual_seed(0)
        >>> HMC(f, 0.3, 5).sample(torch.zeros(4, 3), 10, generator=g).shape
        torch.Size([4, 3])

    Reference:
        Duane, Kennedy, Pendleton & Roweth (1987), Hybrid Monte Carlo, Phys. Lett. B 195;
        Neal (2011), MCMC using Hamiltonian dynamics, Handbook of MCMC, ch. 5.
    """

    energy_fn: EnergyFn
    step_size: StepSize
    n_leapfrog: int = 10
    inverse_mass: InverseMass = None
    jitter: float = 0.0

    def __post_init__(self) -> None:
        check_gradient_kernel(self.energy_fn, step_size=self.step_size)
        check_positive_int("n_leapfrog", self.n_leapfrog)
        check_inverse_mass(self.inverse_mass)
        if (
            isinstance(self.jitter, bool)
            or not isinstance(self.jitter, (int, float))
            or not 0.0 <= self.jitter < 1.0
        ):
            raise ValueError(f"jitter must be a float in [0, 1), got {self.jitter!r}")

    def init(self, x: Tensor) -> GradState:
        """Cache ``E(x)`` and ``∇E(x)`` for ``x`` (C, *D); check the mass and step shapes."""
        state = init_grad_state(self.energy_fn, x, step_size=self.step_size)
        check_inverse_mass_shape(self.inverse_mass, state.x)
        return state

    def step(self, state: GradState, *, generator: Generator = None) -> tuple[GradState, BaseInfo]:
        """One HMC transition: L gradient evaluations."""
        x, energy, grad = state
        eps = self.step_size
        if self.jitter > 0:
            u = torch.rand(x.shape[0], generator=generator, device=x.device, dtype=x.dtype)
            base = eps.to(device=x.device, dtype=x.dtype) if isinstance(eps, Tensor) else eps
            eps = base * (1.0 + self.jitter * (2.0 * u - 1.0))
        p0 = sample_momentum(x, self.inverse_mass, generator=generator)
        out = leapfrog(self.energy_fn, x, p0, grad, eps, self.n_leapfrog, self.inverse_mass)
        log_ratio = (
            energy
            + kinetic_energy(p0, self.inverse_mass)
            - out.energy
            - kinetic_energy(out.p, self.inverse_mass)
        )
        mh = metropolis_accept(log_ratio, out.finite, generator=generator)
        return accept_select(mh, GradState(out.x, out.energy, out.grad), state)
