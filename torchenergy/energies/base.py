"""The energy protocol and ``energy_and_grad``: the one place the library calls autograd for grad_x E.

An energy maps ``(C, *D) -> (C,)``. Any callable with that contract works everywhere
(``energy_fn``); subclasses of :class:`Energy` may also provide a closed-form gradient by
overriding :meth:`Energy.energy_and_grad`, which the samplers then use without autograd.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from torchenergy._checks import check_energy_shape, check_tensor
from torchenergy.types import EnergyFn

__all__ = ["Energy", "energy_and_grad", "grad_energy"]


def energy_and_grad(
    energy_fn: EnergyFn, x: Tensor, *, create_graph: bool = False
) -> tuple[Tensor, Tensor]:
    """Energy and its gradient with respect to ``x``.

    Shapes: ``x`` (C, *D) -> energy (C,), grad (C, *D).

    Uses a closed-form ``energy_fn.energy_and_grad`` when the energy provides one, otherwise
    ``torch.autograd.grad`` on ``sum(E(x))`` (the chains are independent, so this is the per-chain
    gradient). Parameter ``.grad`` fields are never written, and the call works inside
    ``torch.no_grad()``. With ``create_graph=False`` (sampling) both outputs are detached; with
    ``create_graph=True`` (losses such as score matching) the graph to the parameters and to ``x``
    is kept so the result can be differentiated again.

    Args:
        energy_fn: callable ``(C, *D) -> (C,)``.
        x: points, shape (C, *D).
        create_graph: keep the graph (for losses that differentiate through the gradient).

    Returns:
        ``(energy, grad)`` with shapes (C,) and (C, *D).

    Raises:
        ValueError: if ``energy_fn`` does not return shape (C,).

    Example:
        >>> e, g = energy_and_grad(lambda x: 0.5 * (x ** 2).sum(-1), torch.ones(3, 2))
        >>> g.tolist()
        [[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]]
    """
    check_tensor("x", x, min_dim=1, floating=True)
    closed = getattr(energy_fn, "energy_and_grad", None)
    if closed is not None and not create_graph:
        energy, grad = closed(x)
        check_energy_shape(energy, x, type(energy_fn).__name__)
        return energy.detach(), grad.detach()
    with torch.enable_grad():
        xg = x if (create_graph and x.requires_grad) else x.detach().requires_grad_(True)
        energy = energy_fn(xg)
        check_energy_shape(energy, x)
        (grad,) = torch.autograd.grad(energy.sum(), xg, create_graph=create_graph)
    if create_graph:
        return energy, grad
    return energy.detach(), grad.detach()


def grad_energy(energy_fn: EnergyFn, x: Tensor) -> Tensor:
    """``grad_x E(x)``, shape (C, *D), detached. See :func:`energy_and_grad`."""
    return energy_and_grad(energy_fn, x)[1]


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
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            e = self(xg)
            check_energy_shape(e, x, type(self).__name__)
            (g,) = torch.autograd.grad(e.sum(), xg)
        return e.detach(), g

    def score(self, x: Tensor) -> Tensor:
        """``grad_x log p(x) = -grad_x E(x)``, shape (C, *D)."""
        return -energy_and_grad(self, x)[1]

    # composition -------------------------------------------------------------------------
    def __add__(self, other: object) -> Energy:
        from torchenergy.energies.composition import SumEnergy

        if callable(other):
            return SumEnergy(self, other)
        return NotImplemented

    def __radd__(self, other: object) -> Energy:
        from torchenergy.energies.composition import SumEnergy

        if callable(other):
            return SumEnergy(other, self)
        return NotImplemented

    def __mul__(self, scale: object) -> Energy:
        from torchenergy.energies.composition import ScaledEnergy

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
        from torchenergy.energies.composition import TemperedEnergy

        return TemperedEnergy(self, temperature)

    def constrained(self, penalty: EnergyFn, weight: float = 1.0) -> Energy:
        """Soft constraint ``E(x) + weight · penalty(x)`` (penalty ``(C, *D) -> (C,)``, >= 0)."""
        from torchenergy.energies.composition import PenaltyConstraint

        return PenaltyConstraint(self, penalty, weight)

    def restricted(self, feasible: object) -> Energy:
        """Hard constraint: ``+inf`` energy where ``feasible(x)`` (a (C,) bool) is False."""
        from torchenergy.energies.composition import HardConstraint

        return HardConstraint(self, feasible)  # type: ignore[arg-type]
