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

import torch
from torch import Tensor

from torchenergy._checks import check_positive
from torchenergy.energies.base import energy_and_grad
from torchenergy.samplers._common import (
    GradState,
    chain_view,
    check_energy_fn,
    check_per_chain,
    check_step_size,
    finite_chains,
    init_grad_state,
    sqrt_of,
    where_chains,
)
from torchenergy.samplers.base import BaseInfo, Sampler, unadjusted_info
from torchenergy.types import EnergyFn, Generator, StepSize

__all__ = ["Langevin", "check_clamp", "clip_grad_per_chain", "langevin_proposal"]


def clip_grad_per_chain(grad: Tensor, max_norm: float) -> Tensor:
    """Rescale each chain's gradient (C, *D) so its Euclidean norm is at most ``max_norm``."""
    norm = grad.flatten(1).norm(dim=1)
    factor = torch.clamp(max_norm / (norm + 1e-12), max=1.0)
    return grad * factor.reshape(-1, *([1] * (grad.dim() - 1)))


def check_clamp(clamp: Any) -> None:
    """Validate a ``(low, high)`` box: numbers or tensors broadcastable to the event shape."""
    if clamp is None:
        return
    if not isinstance(clamp, (tuple, list)) or len(clamp) != 2:
        raise ValueError(f"clamp must be a (low, high) pair, got {clamp!r}")
    lo, hi = clamp
    for name, v in (("clamp low", lo), ("clamp high", hi)):
        if isinstance(v, bool) or not isinstance(v, (int, float, Tensor)):
            raise TypeError(f"{name} must be a number or a tensor, got {v!r}")
    if not bool(torch.all(torch.as_tensor(lo) < torch.as_tensor(hi))):
        raise ValueError(f"clamp must satisfy low < high, got low={lo!r}, high={hi!r}")


def _clamp(x: Tensor, clamp: Any) -> Tensor:
    lo, hi = clamp
    if isinstance(lo, Tensor):
        lo = lo.to(device=x.device, dtype=x.dtype)
    if isinstance(hi, Tensor):
        hi = hi.to(device=x.device, dtype=x.dtype)
    return torch.clamp(x, min=lo, max=hi)


def langevin_proposal(
    x: Tensor,
    grad: Tensor,
    step_size: StepSize,
    noise_scale: StepSize = 1.0,
    *,
    grad_clip: float | None = None,
    clamp: Any = None,
    generator: Generator = None,
) -> Tensor:
    """One Langevin move ``x − ε·g + sqrt(2ε)·s·z`` (then clamped to the box when given).

    Shapes: ``x``, ``grad`` (C, *D); ``step_size`` ε and ``noise_scale`` s float, () or (C,).
    ``grad`` is clipped per chain to norm ``grad_clip`` first when given.
    """
    eps = chain_view(step_size, x)
    if grad_clip is not None:
        grad = clip_grad_per_chain(grad, grad_clip)
    noise = sqrt_of(2.0 * eps) * chain_view(noise_scale, x)
    z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    if isinstance(eps, Tensor):
        x_new = x - eps * grad
    else:
        x_new = torch.add(x, grad, alpha=-eps)
    # x_new is a fresh tensor here: update it in place (one allocation fewer per step)
    x_new = x_new.addcmul_(noise, z) if isinstance(noise, Tensor) else x_new.add_(z, alpha=noise)
    if clamp is not None:
        x_new = _clamp(x_new, clamp)
    return x_new


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
        check_energy_fn(self.energy_fn)
        check_step_size("step_size", self.step_size)
        check_step_size("noise_scale", self.noise_scale, allow_zero=True)
        if self.grad_clip is not None:
            check_positive("grad_clip", self.grad_clip)
        check_clamp(self.clamp)

    def init(self, x: Tensor) -> GradState:
        """Cache ``E(x)`` and ``∇E(x)`` for ``x`` (C, *D)."""
        state = init_grad_state(self.energy_fn, x)
        check_per_chain("step_size", self.step_size, state.x)
        check_per_chain("noise_scale", self.noise_scale, state.x)
        return state

    def step(self, state: GradState, *, generator: Generator = None) -> tuple[GradState, BaseInfo]:
        """One ULA move; one energy-and-gradient evaluation."""
        x_new = self._propose(state, generator)
        energy, grad = energy_and_grad(self.energy_fn, x_new)  # checked: per chain, exact
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
        x = state.x
        if self._plain:  # float ε and s, no clipping, no box: the move in three kernels
            z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x_new = torch.add(x, state.grad, alpha=-self.step_size)
            x_new.add_(z, alpha=self._noise)
        else:
            x_new = langevin_proposal(
                x,
                state.grad,
                self.step_size,
                self.noise_scale,
                grad_clip=self.grad_clip,
                clamp=self.clamp,
                generator=generator,
            )
        return x_new

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
        x, grad = state.x, state.grad
        eps, noise = float(self.step_size), self._noise
        guards: list[Tensor] = []
        kept_x: list[Tensor] = []
        want = iter(keep)
        nxt = next(want, None)
        for i in range(n):
            z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x = torch.add(x, grad, alpha=-eps)
            x.add_(z, alpha=noise)
            grad, guard = fast(x)
            guards.append(guard)
            if i == nxt:
                kept_x.append(x)
                nxt = next(want, None)
        energy = self._eval_unchecked(x)[0]
        kept = [(xi, energy if xi is x else self._eval_unchecked(xi)[0]) for xi in kept_x]
        check = torch.stack(guards).sum() + x.sum() + grad.sum() + energy.sum()
        if grad.requires_grad:
            grad = grad.detach()
        return GradState(x, energy, grad), check, kept

    @cached_property
    def _grad_unchecked(self) -> Any:
        """The energy's ``grad_unchecked`` for :meth:`run_block` when the move is plain, else
        None."""
        if not self._plain:
            return None
        return getattr(self.energy_fn, "grad_unchecked", None)

    @cached_property
    def _energy_unchecked(self) -> Any:
        """The energy's ``energy_and_grad_unchecked`` (a bound method), or None."""
        return getattr(self.energy_fn, "energy_and_grad_unchecked", None)

    def _eval_unchecked(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(E, ∇E)`` at ``x`` for :meth:`step_unchecked`: the energy's own
        ``energy_and_grad_unchecked`` when it has one (a closed form that may let a non-finite
        value spread between chains, which the driver's block check catches; ``x`` is the
        kernel's own, validated at ``init``), else :func:`energy_and_grad`."""
        fast = self._energy_unchecked
        if fast is None:
            return energy_and_grad(self.energy_fn, x)
        energy, grad = fast(x)
        if energy.requires_grad or grad.requires_grad:  # parameters with requires_grad
            return energy.detach(), grad.detach()
        return energy, grad

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


def hold_nonfinite(state: GradState, new: GradState) -> tuple[GradState, BaseInfo]:
    """Take ``new`` for the chains whose energy and gradient are finite; the others keep
    ``state`` and are flagged ``diverged`` (used by every unadjusted kernel)."""
    ok = finite_chains(new.energy, new.grad)  # a non-finite x gives a non-finite E or ∇E
    held = GradState(
        where_chains(ok, new.x, state.x),
        torch.where(ok, new.energy, state.energy),
        where_chains(ok, new.grad, state.grad),
    )
    return held, unadjusted_info(~ok)


def hold_if_nonfinite(
    energy_fn: EnergyFn, state: GradState, x_new: Tensor
) -> tuple[GradState, BaseInfo]:
    """Evaluate ``E, ∇E`` at ``x_new``, then :func:`hold_nonfinite`."""
    energy, grad = energy_and_grad(energy_fn, x_new)
    return hold_nonfinite(state, GradState(x_new, energy, grad))
