"""Annealed Langevin dynamics (simulated annealing with Langevin moves).

At step t the chain takes one Langevin step on the tempered energy ``E / T_t`` with step size
``ε · T_t``, i.e. the discretised annealing diffusion ``dx = −∇E dt + sqrt(2 T_t) dW``::

    x' = x − ε ∇E(x) + sqrt(2 ε T_t) · s · z

With ``T`` held fixed it samples (approximately, as ULA) ``p(x)^(1/T)``; lowering ``T_t``
towards 0 concentrates the chains on low-energy points and ends in gradient descent. The drift
keeps the step ε at every temperature, so a step that is stable for ``E`` stays stable as
``T_t → 0`` (the other scaling, ``x − (ε/T_t)∇E + sqrt(2ε) z``, blows up at low temperature).
α = 2ε in the ``(α/2)∇E`` convention.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor

from torchenergy._checks import check_positive, check_positive_int
from torchenergy.energies import energy_and_grad
from torchenergy.samplers.base import BaseInfo
from torchenergy.samplers.driver import Sampler
from torchenergy.samplers.proposals import (
    GradState,
    check_langevin_config,
    hold_nonfinite,
    init_grad_state,
    langevin_proposal,
)
from torchenergy.types import EnergyFn, Generator, StepSize

__all__ = ["AnnealedLangevin", "AnnealedState", "geometric_schedule"]

Schedule = Callable[[Tensor], Any] | Tensor


class AnnealedState(NamedTuple):
    """State of :class:`AnnealedLangevin`.

    Attributes:
        x: current points (C, *D).
        energy: untempered ``E(x)``, (C,).
        grad: untempered ``∇E(x)``, (C, *D).
        step: the step count t per chain, (C,) long (selects ``T_t``).
    """

    x: Tensor
    energy: Tensor
    grad: Tensor
    step: Tensor


def geometric_schedule(t_start: float, t_end: float, n_steps: int) -> Tensor:
    """Temperatures decaying geometrically from ``t_start`` to ``t_end`` over ``n_steps``, (T,).

    Example:
        >>> geometric_schedule(10.0, 0.1, 3).tolist()
        [10.0, 1.0, 0.10000000149011612]
    """
    check_positive("t_start", t_start)
    check_positive("t_end", t_end)
    check_positive_int("n_steps", n_steps)
    if n_steps == 1:
        return torch.tensor([float(t_end)])
    return torch.logspace(math.log10(t_start), math.log10(t_end), n_steps)


@dataclass(frozen=True, eq=False)
class AnnealedLangevin(Sampler):
    """Langevin dynamics on ``E / T_t`` with a temperature schedule (simulated annealing).

    Update: ``x' = x − ε ∇E(x) + sqrt(2 ε T_t) · noise_scale · z`` (one Langevin step on
    ``E / T_t`` with step size ``ε T_t``; see the module docstring for why), with ``t`` the step
    count kept in the State. The schedule is either a 1-D tensor of temperatures (step t uses entry
    ``min(t, len − 1)``, so the last temperature is held afterwards) or a callable receiving the
    step counts as a (C,) tensor of ``x``'s dtype and returning positive temperatures (a float or
    a tensor of shape () or (C,)); write it with tensor operations, e.g.
    ``lambda t: 0.05 + 5.0 * 0.97 ** t``. One energy-and-gradient evaluation per step; a
    non-finite move holds the chain and sets ``Info.diverged``.

    Shapes: State ``x`` (C, *D), ``energy`` (C,), ``grad`` (C, *D), ``step`` (C,).

    Args:
        energy_fn: ``(C, *D) -> (C,)``.
        step_size: ε > 0, a float or a per-chain (C,) tensor.
        schedule: temperatures (T,) or a callable ``t -> T_t``.
        noise_scale: s >= 0, float or (C,).
        grad_clip: clip each chain's gradient of ``E`` to this norm (None: no clipping).
        clamp: ``(low, high)`` box or None.

    Example:
        >>> f = lambda x: 0.5 * ((x - 1.0) ** 2).sum(-1)
        >>> s = AnnealedLangevin(f, 0.1, geometric_schedule(1.0, 1e-6, 200))
        >>> x = s.sample(torch.zeros(3, 2), 300, generator=torch.Generator().manual_seed(0))
        >>> bool(((x - 1.0).abs() < 0.01).all())
        True

    Reference:
        Kirkpatrick, Gelatt & Vecchi (1983), Optimization by simulated annealing, Science 220;
        Geman & Hwang (1986), Diffusions for global optimization, SIAM J. Control Optim. 24.
    """

    adjusted: ClassVar[bool] = False
    finite_fields: ClassVar[tuple[str, ...]] = ("energy", "grad")
    energy_fn: EnergyFn
    step_size: StepSize
    schedule: Schedule
    noise_scale: StepSize = 1.0
    grad_clip: float | None = None
    clamp: Any = None

    def __post_init__(self) -> None:
        check_langevin_config(
            self.energy_fn, self.step_size, self.noise_scale, self.grad_clip, self.clamp
        )
        sched = self.schedule
        if isinstance(sched, Tensor):
            if sched.dim() != 1 or sched.numel() == 0 or not sched.is_floating_point():
                raise ValueError(
                    "schedule must be a non-empty 1-D floating tensor of temperatures (T,), got "
                    f"shape {tuple(sched.shape)} dtype {sched.dtype}"
                )
            check_positive("schedule temperatures", sched)
        elif not callable(sched):
            raise TypeError(
                f"schedule must be a tensor of temperatures or a callable t -> T, got {sched!r}"
            )

    def temperature(self, step: Tensor, like: Tensor) -> Tensor:
        """``T_t`` for step counts ``step`` (C,), as a tensor of ``like``'s dtype/device."""
        sched = self.schedule
        if isinstance(sched, Tensor):
            temps = sched.to(device=like.device, dtype=like.dtype)
            return temps[step.clamp(max=temps.shape[0] - 1)]
        return torch.as_tensor(sched(step.to(like.dtype)), device=like.device, dtype=like.dtype)

    def init(self, x: Tensor) -> AnnealedState:
        """Cache ``E`` and ``∇E`` at ``x`` (C, *D); step counts start at 0."""
        s = init_grad_state(
            self.energy_fn, x, step_size=self.step_size, noise_scale=self.noise_scale
        )
        step = torch.zeros(s.x.shape[0], dtype=torch.long, device=s.x.device)
        t0 = self.temperature(step, s.x)
        if t0.dim() > 1 or (t0.dim() == 1 and t0.shape[0] != s.x.shape[0]):
            raise ValueError(
                f"schedule(t) must return a float or a tensor of shape () or (C,) = "
                f"({s.x.shape[0]},), got shape {tuple(t0.shape)}"
            )
        check_positive("schedule(0)", t0)
        return AnnealedState(s.x, s.energy, s.grad, step)

    def step(
        self, state: AnnealedState, *, generator: Generator = None
    ) -> tuple[AnnealedState, BaseInfo]:
        """One Langevin step at temperature ``T_t``; one energy-and-gradient evaluation."""
        new = self.step_unchecked(state, generator=generator)
        held, info = hold_nonfinite(
            GradState(state.x, state.energy, state.grad), GradState(new.x, new.energy, new.grad)
        )
        return AnnealedState(held.x, held.energy, held.grad, new.step), info

    def step_unchecked(self, state: AnnealedState, *, generator: Generator = None) -> AnnealedState:
        """:meth:`step` without the hold of non-finite chains (see ``Langevin.step_unchecked``)."""
        x, _, grad, t = state
        temp = self.temperature(t, x)
        ns = self.noise_scale
        if isinstance(ns, Tensor):
            ns = ns.to(device=x.device, dtype=x.dtype)
        x_new = langevin_proposal(
            x,
            grad,
            self.step_size,
            ns * temp.sqrt(),
            grad_clip=self.grad_clip,
            clamp=self.clamp,
            generator=generator,
        )
        e_new, g_new = energy_and_grad(self.energy_fn, x_new)
        return AnnealedState(x_new, e_new, g_new, t + 1)
