"""The energy base class and its algebra: products of experts, scaling, tempering, constraints.

An energy maps ``(C, *D) -> (C,)``. :class:`Energy` subclasses compose like the densities they
define: ``SumEnergy(e1, e2)`` is ``E1 + E2`` (``p ∝ p1 · p2``); ``ScaledEnergy(e, c)`` is
``c · E``; ``TemperedEnergy(e, T)`` is ``E / T``; ``PenaltyConstraint`` adds a soft penalty and
``HardConstraint`` gives ``+inf`` energy outside a feasible set (Metropolis samplers reject it;
gradients there are set to zero so that unadjusted samplers do not produce NaN). Closed-form
gradients of the parts are used when they exist. The operators and the classes they build live
in this one file, so the algebra has no import cycle.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from torchenergy._checks import check_energy_shape, check_positive
from torchenergy.energies.autograd import autograd_energy_and_grad, energy_and_grad, grad_energy
from torchenergy.types import EnergyFn

__all__ = [
    "Energy",
    "HardConstraint",
    "PenaltyConstraint",
    "ScaledEnergy",
    "SumEnergy",
    "TemperedEnergy",
    "energy_and_grad",
    "grad_energy",
]


class Energy(nn.Module):
    """Base class for energies ``(C, *D) -> (C,)``; composes like the distributions it defines.

    * ``e1 + e2``: product of experts, ``p ∝ p1 · p2`` (energies add).
    * ``c * e``: scaled energy; ``e / T`` or ``e.tempered(T)``: tempering, ``p ∝ p^(1/T)``.
    * ``e.constrained(penalty, weight)``: soft constraint, ``E(x) + weight · penalty(x)``.
    * ``e.restricted(feasible)``: hard constraint, ``E = +inf`` where ``feasible(x)`` is False;
      the Metropolis samplers reject such proposals.

    Subclasses implement ``forward(x) -> (C,)`` and may override :meth:`energy_and_grad` with a
    closed form (then no autograd is used on the sampling hot path).
    """

    def forward(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def energy_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(E(x), grad_x E(x))``, shapes (C,) and (C, *D); autograd unless overridden."""
        return autograd_energy_and_grad(self, x, name=type(self).__name__)

    def score(self, x: Tensor) -> Tensor:
        """``grad_x log p(x) = -grad_x E(x)``, shape (C, *D)."""
        return -energy_and_grad(self, x)[1]

    # composition -------------------------------------------------------------------------
    def __add__(self, other: object) -> Energy:
        if callable(other):
            return SumEnergy(self, other)
        return NotImplemented

    def __radd__(self, other: object) -> Energy:
        if callable(other):
            return SumEnergy(other, self)
        return NotImplemented

    def __mul__(self, scale: object) -> Energy:
        if isinstance(scale, (int, float, Tensor)) and not isinstance(scale, bool):
            return ScaledEnergy(self, scale)
        return NotImplemented

    __rmul__ = __mul__

    def __truediv__(self, temperature: object) -> Energy:
        if isinstance(temperature, (int, float, Tensor)) and not isinstance(temperature, bool):
            return self.tempered(temperature)
        return NotImplemented

    def tempered(self, temperature: float | Tensor) -> Energy:
        """``E(x) / T``: the tempered density ``p(x)^(1/T)``."""
        return TemperedEnergy(self, temperature)

    def constrained(self, penalty: EnergyFn, weight: float = 1.0) -> Energy:
        """Soft constraint ``E(x) + weight · penalty(x)`` (penalty ``(C, *D) -> (C,)``, >= 0)."""
        return PenaltyConstraint(self, penalty, weight)

    def restricted(self, feasible: object) -> Energy:
        """Hard constraint: ``+inf`` energy where ``feasible(x)`` (a (C,) bool) is False."""
        return HardConstraint(self, feasible)  # type: ignore[arg-type]


# the algebra ---------------------------------------------------------------------------
def _as_module(fn: EnergyFn) -> nn.Module | None:
    return fn if isinstance(fn, nn.Module) else None


class SumEnergy(Energy):
    """Product of experts: ``E(x) = sum_i E_i(x)``, i.e. ``p(x) ∝ prod_i p_i(x)``.

    Shapes: x (C, *D) -> (C,).

    Example:
        >>> from torchenergy.energies import HarmonicEnergy
        >>> e = HarmonicEnergy() + HarmonicEnergy()
        >>> e(torch.ones(2, 3)).tolist()
        [3.0, 3.0]
    """

    def __init__(self, *energies: EnergyFn) -> None:
        super().__init__()
        if len(energies) < 1:
            raise ValueError("SumEnergy needs at least one energy, got none")
        parts: list[EnergyFn] = []
        for e in energies:  # flatten nested sums
            parts.extend(e.parts if isinstance(e, SumEnergy) else [e])
        self.parts = parts
        self._modules_list = nn.ModuleList([m for m in map(_as_module, parts) if m is not None])

    def forward(self, x: Tensor) -> Tensor:
        out = None
        for e in self.parts:
            v = e(x)
            check_energy_shape(v, x, type(e).__name__)
            out = v if out is None else out + v
        return out  # type: ignore[return-value]

    def energy_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        e_tot, g_tot = None, None
        for e in self.parts:
            v, g = energy_and_grad(e, x)
            e_tot = v if e_tot is None else e_tot + v
            g_tot = g if g_tot is None else g_tot + g
        return e_tot, g_tot  # type: ignore[return-value]


class ScaledEnergy(Energy):
    """``c · E(x)``; with ``c = 1/T`` this is tempering. Shapes: (C, *D) -> (C,)."""

    def __init__(self, energy: EnergyFn, scale: float | Tensor) -> None:
        super().__init__()
        if isinstance(scale, Tensor):
            if not bool(torch.isfinite(scale).all()):
                raise ValueError(f"scale must be finite, got {scale}")
        elif not isinstance(scale, (int, float)) or scale != scale or abs(scale) == float("inf"):
            raise ValueError(f"scale must be a finite number, got {scale!r}")
        self.energy = energy
        self.scale = scale

    def _scale_for(self, x: Tensor) -> Tensor | float:
        s = self.scale
        if isinstance(s, Tensor):
            s = s.to(device=x.device, dtype=x.dtype)
        return s

    def forward(self, x: Tensor) -> Tensor:
        return self._scale_for(x) * self.energy(x)

    def energy_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        e, g = energy_and_grad(self.energy, x)
        s = self._scale_for(x)
        if isinstance(s, Tensor) and s.dim() > 0:  # per-chain scale (C,)
            return s * e, s.reshape(-1, *([1] * (x.dim() - 1))) * g
        return s * e, s * g


class TemperedEnergy(ScaledEnergy):
    """``E(x) / T`` for temperature ``T > 0`` (scalar or per-chain (C,)): ``p_T ∝ p^(1/T)``."""

    def __init__(self, energy: EnergyFn, temperature: float | Tensor) -> None:
        check_positive("temperature", temperature)
        self.temperature = temperature
        super().__init__(energy, 1.0 / temperature)


class PenaltyConstraint(Energy):
    """Soft constraint: ``E(x) + weight · penalty(x)``; ``penalty`` maps (C, *D) -> (C,), >= 0."""

    def __init__(self, energy: EnergyFn, penalty: EnergyFn, weight: float = 1.0) -> None:
        super().__init__()
        check_positive("weight", weight, allow_zero=True)
        self.energy = energy
        self.penalty = penalty
        self.weight = float(weight)

    def forward(self, x: Tensor) -> Tensor:
        p = self.penalty(x)
        check_energy_shape(p, x, "penalty")
        return self.energy(x) + self.weight * p

    def energy_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        e, g = energy_and_grad(self.energy, x)
        p, gp = energy_and_grad(self.penalty, x)
        return e + self.weight * p, g + self.weight * gp


class HardConstraint(Energy):
    """Hard constraint: ``E(x)`` where ``feasible(x)`` holds and ``+inf`` elsewhere.

    ``feasible`` maps (C, *D) -> (C,) bool. Metropolis samplers (MALA, HMC, tempering swaps)
    reject proposals with infinite energy, so chains started inside never leave. The gradient
    outside the feasible set is reported as zero (unadjusted samplers should be combined with
    clamping, e.g. ``Langevin(..., clamp=(lo, hi))``, rather than relying on it).
    """

    def __init__(self, energy: EnergyFn, feasible: Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        if not callable(feasible):
            raise TypeError(f"feasible must be callable (C, *D) -> (C,) bool, got {feasible!r}")
        self.energy = energy
        self.feasible = feasible

    def _mask(self, x: Tensor) -> Tensor:
        ok = self.feasible(x)
        if not isinstance(ok, Tensor) or ok.shape != x.shape[:1]:
            shape = tuple(ok.shape) if isinstance(ok, Tensor) else type(ok).__name__
            raise ValueError(
                f"feasible must return a (C,) = ({x.shape[0]},) bool tensor, got {shape}"
            )
        return ok.bool()

    def forward(self, x: Tensor) -> Tensor:
        e = self.energy(x)
        return torch.where(self._mask(x), e, torch.full_like(e, float("inf")))

    def energy_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        e, g = energy_and_grad(self.energy, x)
        ok = self._mask(x)
        e = torch.where(ok, e, torch.full_like(e, float("inf")))
        g = torch.where(ok.reshape(-1, *([1] * (x.dim() - 1))), g, torch.zeros_like(g))
        return e, g
