"""The hooks an energy may offer beyond ``__call__``, declared with their invariants.

Every energy is a callable ``(C, *D) -> (C,)``. The hooks below are optional accelerators: each
has a reference path that gives the same answer (the tests hold every implementation to it),
and a kernel that finds no hook takes the reference path.

* :class:`ClosedFormGrad` ``energy_and_grad(x) -> (E, ∇E)``: reference
  :func:`~torchenergy.energies.autograd.autograd_energy_and_grad`; equal to round-off (tested
  to 1e-12 in float64 for the analytic energies and ``MLPEnergy``).
* :class:`UncheckedEnergy` ``energy_and_grad_unchecked(x) -> (E, ∇E)``: the values of
  ``energy_and_grad`` for every finite chain, bit for bit; where a chain is not finite the
  result may be non-finite for other chains too (the caller checks finiteness itself, as the
  sampler driver's block check does). Used only by ``step_unchecked`` paths.
* :class:`GradUnchecked` ``grad_unchecked(x) -> (∇E, guard)``: ``∇E`` bit for bit that of
  ``energy_and_grad``, and a 0-dim ``guard`` whose finiteness certifies that ``E``, ``∇E`` and
  ``x`` are finite for every chain (no energy is computed). Used by Langevin's gradient-only
  blocks.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from torch import Tensor

__all__ = ["ClosedFormGrad", "GradUnchecked", "UncheckedEnergy"]


@runtime_checkable
class ClosedFormGrad(Protocol):
    """An energy with its own ``energy_and_grad(x)``: shapes (C, *D) -> (C,), (C, *D)."""

    def __call__(self, x: Tensor) -> Tensor: ...

    def energy_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]: ...


@runtime_checkable
class UncheckedEnergy(Protocol):
    """An energy whose ``energy_and_grad_unchecked(x)`` skips per-chain finiteness work."""

    def energy_and_grad_unchecked(self, x: Tensor) -> tuple[Tensor, Tensor]: ...


@runtime_checkable
class GradUnchecked(Protocol):
    """An energy whose ``grad_unchecked(x) -> (grad (C, *D), guard ())`` skips the energy."""

    def grad_unchecked(self, x: Tensor) -> tuple[Tensor, Tensor]: ...
