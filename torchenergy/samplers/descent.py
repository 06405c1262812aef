"""Mode seeking with the sampler interface: gradient descent and Nesterov momentum on ``E``.

Deterministic kernels (``generator`` is accepted and ignored), useful to find low-energy points
or as a zero-temperature limit of Langevin. Each step costs one energy-and-gradient evaluation;
a step that produces a non-finite value holds the chain and sets ``Info.diverged``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch
from torch import Tensor

from torchenergy.energies import energy_and_grad
from torchenergy.samplers.base import BaseInfo, unadjusted_info
from torchenergy.samplers.driver import Sampler
from torchenergy.samplers.proposals import (
    GradState,
    chain_view,
    check_gradient_kernel,
    finite_chains,
    hold_nonfinite,
    init_grad_state,
    select_state,
)
from torchenergy.types import EnergyFn, Generator, StepSize

__all__ = ["GradientDescent", "Nesterov", "NesterovState"]


@dataclass(frozen=True, eq=False)
class GradientDescent(Sampler):
    """Gradient descent on the energy: ``x' = x − ε ∇E(x)`` (Langevin without noise).

    Shapes: State ``x`` (C, *D), ``energy`` (C,), ``grad`` (C, *D); Info fields (C,).

    Args:
        energy_fn: ``(C, *D) -> (C,)``.
        step_size: ε > 0, a float or a per-chain (C,) tensor.

    Example:
        >>> f = lambda x: 0.5 * (x ** 2).sum(-1)
        >>> GradientDescent(f, 0.5).sample(torch.ones(2, 2), 30).abs().max() < 1e-6
        tensor(True)

    Reference:
        Cauchy (1847), Méthode générale pour la résolution des systèmes d'équations simultanées.
    """

    adjusted: ClassVar[bool] = False
    finite_fields: ClassVar[tuple[str, ...]] = ("energy", "grad")
    energy_fn: EnergyFn
    step_size: StepSize

    def __post_init__(self) -> None:
        check_gradient_kernel(self.energy_fn, step_size=self.step_size)

    def init(self, x: Tensor) -> GradState:
        """Cache ``E(x)`` and ``∇E(x)`` for ``x`` (C, *D)."""
        return init_grad_state(self.energy_fn, x, step_size=self.step_size)

    def step(self, state: GradState, *, generator: Generator = None) -> tuple[GradState, BaseInfo]:
        """One descent step; one energy-and-gradient evaluation (``generator`` unused)."""
        return hold_nonfinite(state, self.step_unchecked(state))

    def step_unchecked(self, state: GradState, *, generator: Generator = None) -> GradState:
        """:meth:`step` without the hold of non-finite chains (see ``Langevin.step_unchecked``)."""
        eps = chain_view(self.step_size, state.x)
        if isinstance(eps, Tensor):
            x_new = state.x - eps * state.grad
        else:
            x_new = torch.add(state.x, state.grad, alpha=-eps)
        energy, grad = energy_and_grad(self.energy_fn, x_new)
        return GradState(x_new, energy, grad)


class NesterovState(NamedTuple):
    """State of :class:`Nesterov`.

    Attributes:
        x: the look-ahead point θ = x + μ v at which the gradient is taken, (C, *D).
        velocity: v, (C, *D).
        energy: ``E(θ)``, (C,).
        grad: ``∇E(θ)``, (C, *D).
    """

    x: Tensor
    velocity: Tensor
    energy: Tensor
    grad: Tensor


@dataclass(frozen=True, eq=False)
class Nesterov(Sampler):
    """Nesterov accelerated gradient descent on the energy, one gradient per step.

    Update (Sutskever et al.'s form ``v' = μ v − ε ∇E(y + μ v)``, ``y' = y + v'``), written on
    the look-ahead point θ = y + μ v so that the gradient is taken at the State's point and
    cached (Bengio et al. 2013)::

        v' = μ v − ε ∇E(θ);   θ' = θ + μ v' − ε ∇E(θ)

    This is the same iteration as ``torch.optim.SGD(lr=ε, momentum=μ, nesterov=True)``. The
    velocity starts at zero; at a minimum v → 0 and θ coincides with y.

    Shapes: State ``x`` (C, *D), ``velocity`` (C, *D), ``energy`` (C,), ``grad`` (C, *D).

    Args:
        energy_fn: ``(C, *D) -> (C,)``.
        step_size: ε > 0, a float or a per-chain (C,) tensor.
        momentum: μ in [0, 1).

    Example:
        >>> f = lambda x: 0.5 * (x ** 2).sum(-1)
        >>> Nesterov(f, 0.1).sample(torch.ones(2, 2), 200).abs().max() < 1e-6
        tensor(True)

    Reference:
        Nesterov (1983), A method for solving the convex programming problem with convergence
        rate O(1/k²); Sutskever, Martens, Dahl & Hinton (2013), On the importance of
        initialization and momentum in deep learning, ICML; Bengio, Boulanger-Lewandowski &
        Pascanu (2013), Advances in optimizing recurrent networks, ICASSP.
    """

    adjusted: ClassVar[bool] = False
    finite_fields: ClassVar[tuple[str, ...]] = ("x", "velocity", "energy", "grad")
    energy_fn: EnergyFn
    step_size: StepSize
    momentum: float = 0.9

    def __post_init__(self) -> None:
        check_gradient_kernel(self.energy_fn, step_size=self.step_size)
        mu = self.momentum
        if isinstance(mu, bool) or not isinstance(mu, (int, float)) or not 0.0 <= mu < 1.0:
            raise ValueError(f"momentum must be a float in [0, 1), got {mu!r}")

    def init(self, x: Tensor) -> NesterovState:
        """Zero velocity; cache ``E`` and ``∇E`` at ``x`` (C, *D)."""
        s = init_grad_state(self.energy_fn, x, step_size=self.step_size)
        return NesterovState(s.x, torch.zeros_like(s.x), s.energy, s.grad)

    def step(
        self, state: NesterovState, *, generator: Generator = None
    ) -> tuple[NesterovState, BaseInfo]:
        """One Nesterov step; one energy-and-gradient evaluation (``generator`` unused)."""
        new = self.step_unchecked(state)
        ok = finite_chains(new.x, new.energy, new.grad, new.velocity)
        return select_state(ok, new, state), unadjusted_info(~ok)

    def step_unchecked(self, state: NesterovState, *, generator: Generator = None) -> NesterovState:
        """:meth:`step` without the hold of non-finite chains (see ``Langevin.step_unchecked``)."""
        x, v, _, grad = state
        eps = chain_view(self.step_size, x)
        step = eps * grad
        v_new = self.momentum * v - step
        x_new = x + self.momentum * v_new - step
        e_new, g_new = energy_and_grad(self.energy_fn, x_new)
        return NesterovState(x_new, v_new, e_new, g_new)
