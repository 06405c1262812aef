"""Random-walk Metropolis: the gradient-free reference kernel.

Proposal ``x' = x + ε S z``, ``z ~ N(0, I)``, with ``S Sᵀ = M⁻¹`` (identity, diagonal or dense,
see :mod:`torchenergy.samplers.mass`): a symmetric Gaussian, so the acceptance probability is
``min(1, exp(E(x) − E(x')))``. One energy evaluation per step, no gradient.

Reference:
    Metropolis et al. (1953), Equation of state calculations by fast computing machines;
    Roberts, Gelman & Gilks (1997), Weak convergence and optimal scaling of random walk
    Metropolis algorithms (acceptance ≈ 0.234 in high dimension).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from torchenergy._checks import check_energy_shape
from torchenergy.samplers.base import BaseInfo
from torchenergy.samplers.driver import Sampler
from torchenergy.samplers.mass import (
    DenseMass,
    InverseMass,
    check_inverse_mass,
    check_inverse_mass_shape,
)
from torchenergy.samplers.metropolis import metropolis_accept
from torchenergy.samplers.proposals import (
    accept_select,
    chain_view,
    check_gradient_kernel,
    check_init_x,
    check_per_chain,
)
from torchenergy.types import EnergyFn, Generator, StepSize

__all__ = ["RWMState", "RandomWalkMetropolis", "random_walk_proposal"]


class RWMState(NamedTuple):
    """State of :class:`RandomWalkMetropolis`.

    Attributes:
        x: current points, (C, *D).
        energy: ``E(x)``, (C,), cached (one evaluation per step).
    """

    x: Tensor
    energy: Tensor


def _energy(energy_fn: EnergyFn, x: Tensor) -> Tensor:
    with torch.no_grad():
        e = energy_fn(x)
    check_energy_shape(e, x)
    return e.detach()


def random_walk_proposal(
    x: Tensor, step_size: StepSize, inverse_mass: InverseMass = None, *, generator: Generator = None
) -> Tensor:
    """``x + ε S z`` with ``S Sᵀ = M⁻¹`` (None: identity); shapes (C, *D), ε float or (C,).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> random_walk_proposal(torch.zeros(5, 3), 0.1, generator=g).shape
        torch.Size([5, 3])
    """
    z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    m = inverse_mass
    if isinstance(m, DenseMass):
        z = m.noise(z)
    elif isinstance(m, Tensor):
        z = z * m.to(device=x.device, dtype=x.dtype).sqrt()
    elif m is not None:
        z = z * math.sqrt(m)
    return (
        torch.addcmul(x, chain_view(step_size, x), z)
        if isinstance(step_size, Tensor)
        else (torch.add(x, z, alpha=step_size))
    )


@dataclass(frozen=True, eq=False)
class RandomWalkMetropolis(Sampler):
    """Random-walk Metropolis with a scalar, diagonal or dense Gaussian proposal; exact.

    Update: ``x' = x + ε S z`` (``S Sᵀ = M⁻¹``, the proposal covariance is ``ε² M⁻¹``); accept
    per chain with ``min(1, exp(E(x) − E(x')))``. Non-finite proposals are rejected and
    flagged ``nonfinite``. A good ``M⁻¹`` is the target covariance, with
    ``ε ≈ 2.38 / sqrt(d)``.

    Shapes: State ``x`` (C, *D), ``energy`` (C,); Info fields (C,).

    Args:
        energy_fn: ``(C, *D) -> (C,)`` (evaluated without gradients).
        step_size: ε > 0, a float or a per-chain (C,) tensor.
        inverse_mass: proposal shape ``M⁻¹``: None (identity), diagonal (a positive float, a
            tensor of shape D or (C, *D)) or a :class:`~torchenergy.samplers.DenseMass`.

    Example:
        >>> f = lambda x: 0.5 * (x ** 2).sum(-1)
        >>> g = torch.Generator().manual_seed(0)
        >>> RandomWalkMetropolis(f, 0.5).sample(torch.zeros(4, 2), 10, generator=g).shape
        torch.Size([4, 2])

    Reference:
        Metropolis et al. (1953); Roberts, Gelman & Gilks (1997), Ann. Appl. Probab. 7(1).
    """

    energy_fn: EnergyFn
    step_size: StepSize
    inverse_mass: InverseMass = None

    def __post_init__(self) -> None:
        check_gradient_kernel(self.energy_fn, step_size=self.step_size)
        check_inverse_mass(self.inverse_mass)

    def init(self, x: Tensor) -> RWMState:
        """Evaluate and cache ``E(x)`` for ``x`` (C, *D); refuse a non-finite start."""
        check_init_x(x)
        x = x.detach()
        check_per_chain("step_size", self.step_size, x)
        check_inverse_mass_shape(self.inverse_mass, x)
        energy = _energy(self.energy_fn, x)
        bad = ~torch.isfinite(energy)
        if bool(bad.any()):
            idx = torch.nonzero(bad).flatten()[:8].tolist()
            raise ValueError(
                f"RandomWalkMetropolis needs a finite energy at the start; chains {idx} have "
                "E(x) not finite (move the start into the support of exp(-E))"
            )
        return RWMState(x, energy)

    def step(self, state: RWMState, *, generator: Generator = None) -> tuple[RWMState, BaseInfo]:
        """One transition: one energy evaluation."""
        x, energy = state
        x_new = random_walk_proposal(x, self.step_size, self.inverse_mass, generator=generator)
        energy_new = _energy(self.energy_fn, x_new)
        finite = torch.isfinite(energy_new) & torch.isfinite(x_new.flatten(1).sum(1))
        mh = metropolis_accept(energy - energy_new, finite, generator=generator)
        return accept_select(mh, RWMState(x_new, energy_new), state)
