"""Unadjusted Langevin algorithm (ULA).

Update rule (the library's one convention)::

    x' = x − ε ∇E(x) + sqrt(2ε) · s · z,    z ~ N(0, I)

with step size ε and noise scale s (s = 1 targets ``exp(−E)`` as ε → 0). Papers that write
``x − (α/2)∇E + sqrt(α) z`` use the same rule with α = 2ε.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

from torch import Tensor

from torchenergy.energies import energy_and_grad
from torchenergy.energies.protocols import ClosedFormGrad, GradUnchecked, UncheckedEnergy
from torchenergy.samplers._blocks import langevin_grad_block
from torchenergy.samplers.base import BaseInfo
from torchenergy.samplers.driver import Sampler
from torchenergy.samplers.proposals import (
    GradState,
    all_finite_eager,
    check_langevin_config,
    hold_nonfinite,
    init_grad_state,
    langevin_move,
    langevin_proposal,
    moved_info,
)
from torchenergy.types import EnergyFn, Generator, StepSize

__all__ = ["Langevin", "langevin_proposal"]


@dataclass(frozen=True, eq=False)
class Langevin(Sampler):
    """Unadjusted Langevin dynamics (ULA), one energy-and-gradient evaluation per step.

    Update: ``x' = x − ε ∇E(x) + sqrt(2ε) · noise_scale · z`` (α = 2ε in the ``(α/2)∇E``
    convention). Optional per-chain gradient clipping (norm ``grad_clip``) before the move and
    clamping to the box ``clamp = (low, high)`` after it. The State caches ``E`` and ``∇E`` of
    the current point. A proposal whose point, energy or gradient is not finite is not taken:
    the chain is held and ``Info.diverged`` is set (the driver raises :class:`DivergenceError`).

    For a Gaussian target of variance σ² ULA is biased: its stationary variance is
    ``σ² / (1 − ε / (2σ²))``; use :class:`MALA` to remove the bias.

    Shapes: State ``x`` (C, *D), ``energy`` (C,), ``grad`` (C, *D); Info fields (C,).

    Args:
        energy_fn: ``(C, *D) -> (C,)``.
        step_size: ε > 0, a float or a per-chain (C,) tensor.
        noise_scale: s >= 0 (float or (C,)); s < 1 samples a sharpened density.
        grad_clip: clip each chain's gradient to this Euclidean norm (None: no clipping).
        clamp: ``(low, high)`` box (numbers or tensors broadcastable to D) or None.

    Example:
        >>> import torch
        >>> f = lambda x: 0.5 * (x ** 2).sum(-1)
        >>> g = torch.Generator().manual_seed(0)
        >>> Langevin(f, 0.1).sample(torch.zeros(5, 2), 20, generator=g).shape
        torch.Size([5, 2])

    Reference:
        Roberts & Tweedie (1996), Exponential convergence of Langevin distributions and their
        discrete approximations, Bernoulli 2(4).
    """

    adjusted: ClassVar[bool] = False
    energy_fn: EnergyFn
    step_size: StepSize
    noise_scale: StepSize = 1.0
    grad_clip: float | None = None
    clamp: Any = None

    def __post_init__(self) -> None:
        check_langevin_config(
            self.energy_fn, self.step_size, self.noise_scale, self.grad_clip, self.clamp
        )

    def init(self, x: Tensor) -> GradState:
        """Cache ``E(x)`` and ``∇E(x)`` for ``x`` (C, *D)."""
        return init_grad_state(
            self.energy_fn, x, step_size=self.step_size, noise_scale=self.noise_scale
        )

    def step(self, state: GradState, *, generator: Generator = None) -> tuple[GradState, BaseInfo]:
        """One ULA move; one energy-and-gradient evaluation."""
        x_new = self._propose(state, generator)
        fast = self._energy_unchecked
        if fast is not None:
            # the unchecked closed form equals the checked one bit for bit when all of it is
            # finite (UncheckedEnergy's invariant), so one all-finite test replaces both the
            # energy's check and the per-chain hold; otherwise the exact path below decides
            energy, grad = _detached(*fast(x_new))
            if all_finite_eager(energy, grad):
                return GradState(x_new, energy, grad), moved_info(energy)
        energy, grad = self._eval(x_new)  # checked: per chain, exact
        return hold_nonfinite(state, GradState(x_new, energy, grad))

    def step_unchecked(self, state: GradState, *, generator: Generator = None) -> GradState:
        """The move of :meth:`step` without holding chains whose energy or gradient is not
        finite (they come back non-finite, and an energy's unchecked evaluation may spread a
        non-finite value to other chains). The driver uses it between its block checks of
        ``finite_fields``; call :meth:`step` unless you check finiteness yourself."""
        x_new = self._propose(state, generator)
        energy, grad = self._eval_unchecked(x_new)
        return GradState(x_new, energy, grad)

    def _propose(self, state: GradState, generator: Generator) -> Tensor:
        """The Langevin move from ``state`` (C, *D)."""
        if self._plain:  # float ε and s, no clipping, no box: the move in three kernels
            return langevin_move(
                state.x, state.grad, self.step_size, self._noise, generator=generator
            )
        return langevin_proposal(
            state.x,
            state.grad,
            self.step_size,
            self.noise_scale,
            grad_clip=self.grad_clip,
            clamp=self.clamp,
            generator=generator,
        )

    def run_block(
        self, state: GradState, n: int, *, generator: Generator = None, keep: Sequence[int] = ()
    ) -> tuple[GradState, Tensor, list[tuple[Tensor, Tensor]]] | None:
        """``n`` unchecked moves for the driver's block mode, gradient only; None to decline.

        Taken for the plain move (see :meth:`step_unchecked`) on an energy with
        ``grad_unchecked(x) -> (grad, guard)`` (GaussianEnergy, HarmonicEnergy): each step
        evaluates the gradient and a 0-dim guard whose finiteness certifies that the energy,
        gradient and x of every chain are finite, not the energy itself. The energy is
        evaluated for the block's last state and for the steps in ``keep`` (traced ones). The
        moves, draws and gradients are those of ``n`` calls of :meth:`step_unchecked`, bit for
        bit, so the states (and the driver's replay of a failed block with :meth:`step`) are
        the same as stepping.

        Returns:
            ``(state, check, kept)``: the last state, a 0-dim tensor finite only if every step
            was, and ``(x, energy)`` for each step in ``keep``.
        """
        fast = self._grad_unchecked
        if fast is None:
            return None
        return langevin_grad_block(
            state,
            n,
            fast,
            self._energy_only,
            float(self.step_size),
            self._noise,
            generator=generator,
            keep=keep,
        )

    def _energy_only(self, x: Tensor) -> Tensor:
        """``E(x)`` (C,) by the unchecked evaluation (block ends and traced steps)."""
        return self._eval_unchecked(x)[0]

    @cached_property
    def _grad_unchecked(self) -> Any:
        """The energy's ``grad_unchecked`` for :meth:`run_block` when the move is plain, else
        None."""
        if not self._plain or not isinstance(self.energy_fn, GradUnchecked):
            return None
        return self.energy_fn.grad_unchecked

    @cached_property
    def _closed_form(self) -> Any:
        """The energy's own ``energy_and_grad`` (a bound method) when it has one, else None."""
        if isinstance(self.energy_fn, ClosedFormGrad):
            return self.energy_fn.energy_and_grad
        return None

    def _eval(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(E, ∇E)`` at the kernel's own proposal ``x`` (its shape and dtype were validated at
        ``init`` by :func:`energy_and_grad`): the energy's closed form called directly (no
        per-step boundary checks), else :func:`energy_and_grad`."""
        closed = self._closed_form
        if closed is None:
            return energy_and_grad(self.energy_fn, x)
        return _detached(*closed(x))

    @cached_property
    def _energy_unchecked(self) -> Any:
        """The energy's ``energy_and_grad_unchecked`` (a bound method), or None."""
        if isinstance(self.energy_fn, UncheckedEnergy):
            return self.energy_fn.energy_and_grad_unchecked
        return None

    def _eval_unchecked(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(E, ∇E)`` at ``x`` for :meth:`step_unchecked`: the energy's own
        ``energy_and_grad_unchecked`` when it has one (a closed form that may let a non-finite
        value spread between chains, which the driver's block check catches; ``x`` is the
        kernel's own, validated at ``init``), else :func:`energy_and_grad`."""
        fast = self._energy_unchecked
        if fast is None:
            return energy_and_grad(self.energy_fn, x)
        return _detached(*fast(x))

    @property
    def finite_fields(self) -> tuple[str, ...]:
        """State fields the driver checks for finiteness after every step of a block.

        Without a box a non-finite gradient makes the next ``x`` non-finite, and a non-finite
        ``x`` stays so (``x − ε·g + noise`` keeps a NaN or inf; gradient clipping turns an
        infinite gradient into NaN), so ``x`` and ``∇E`` need checking only at the block's end
        (:attr:`finite_fields_at_end`); a clamp can bring an infinite point back into the box,
        so with one the gradient is checked after every step."""
        return ("energy",) if self.clamp is None else ("energy", "grad")

    @property
    def finite_fields_at_end(self) -> tuple[str, ...]:
        """State fields the driver checks once, on the last state of a block."""
        return ("x", "grad") if self.clamp is None else ()

    @cached_property
    def _plain(self) -> bool:
        """Float step size and noise scale, no gradient clipping, no box."""
        return (
            not isinstance(self.step_size, Tensor)
            and not isinstance(self.noise_scale, Tensor)
            and self.grad_clip is None
            and self.clamp is None
        )

    @cached_property
    def _noise(self) -> float:
        """``sqrt(2ε) · s`` for a float ε and s (see :attr:`_plain`)."""
        return math.sqrt(2.0 * float(self.step_size)) * float(self.noise_scale)


def _detached(energy: Tensor, grad: Tensor) -> tuple[Tensor, Tensor]:
    """``(E, ∇E)`` detached when an energy's parameters require grad (no copy otherwise)."""
    if energy.requires_grad or grad.requires_grad:
        return energy.detach(), grad.detach()
    return energy, grad
