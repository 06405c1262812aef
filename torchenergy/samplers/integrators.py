"""Hamiltonian pieces written once: kinetic energy with a diagonal inverse mass, momentum draws,
and the leapfrog (velocity Verlet) integrator that carries the gradient.

With ``H(x, p) = E(x) + K(p)`` and ``K(p) = 0.5 · sum(p² · M⁻¹)`` (diagonal inverse mass ``M⁻¹``),
one leapfrog step of size ε is::

    p ← p − (ε/2) ∇E(x);   x ← x + ε M⁻¹ p;   p ← p − (ε/2) ∇E(x)

Consecutive half steps on ``p`` are fused, and the gradient at the start is passed in (it is
cached in the sampler State), so ``L`` steps cost exactly ``L`` gradient evaluations and return
the gradient at the end point for the next transition.

Inverse mass ``M⁻¹``: None (identity), a positive float, a tensor of event shape D (shared by
all chains) or of shape (C, *D) (per chain), or a dense
:class:`~torchenergy.samplers.DenseMass` (d, d) (then ``K(p) = 0.5 · pᵀ M⁻¹ p``, the drift is
``ε M⁻¹ p`` and momenta are ``N(0, M)`` by Cholesky). Step size ε: a float or a (C,) tensor.

Reference:
    Neal (2011), MCMC using Hamiltonian dynamics, Handbook of MCMC, ch. 5;
    Leimkuhler & Reich (2004), Simulating Hamiltonian Dynamics.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from torchenergy._checks import check_positive_int
from torchenergy._ops import row_sum
from torchenergy.energies import energy_and_grad
from torchenergy.samplers.mass import DenseMass, InverseMass
from torchenergy.samplers.proposals import chain_view, finite_chains, sqrt_of
from torchenergy.types import EnergyFn, Generator

__all__ = ["LeapfrogResult", "kinetic_energy", "leapfrog", "sample_momentum"]


class LeapfrogResult(NamedTuple):
    """End point of a leapfrog trajectory.

    Attributes:
        x: positions (C, *D).
        p: momenta (C, *D).
        energy: ``E(x)`` at the end, (C,).
        grad: ``grad_x E(x)`` at the end, (C, *D) (reuse it as the next start gradient).
        finite: (C,) bool, every energy along the path and the end point were finite
            (a trajectory that ever left the finite region is a divergence and must be rejected).
    """

    x: Tensor
    p: Tensor
    energy: Tensor
    grad: Tensor
    finite: Tensor


def kinetic_energy(p: Tensor, inverse_mass: InverseMass = None) -> Tensor:
    """``K(p) = 0.5 · sum_D p² M⁻¹`` (dense: ``0.5 · pᵀ M⁻¹ p``); ``p`` (C, *D) -> (C,).

    Example:
        >>> kinetic_energy(torch.ones(2, 3), torch.tensor([1.0, 2.0, 3.0])).tolist()
        [3.0, 3.0]
    """
    if isinstance(inverse_mass, DenseMass):
        return row_sum((p * inverse_mass.velocity(p)).flatten(1)).mul_(0.5)
    sq = p * p
    if inverse_mass is not None:
        sq = sq * _mass_view(inverse_mass, p)
    # the per-chain sum as a matrix-vector product: a sum over a short last dimension (D = 2)
    # is a slow scalar loop on CPU
    return row_sum(sq.flatten(1)).mul_(0.5)


def sample_momentum(
    x: Tensor, inverse_mass: InverseMass = None, *, generator: Generator = None
) -> Tensor:
    """Draw ``p ~ N(0, M)`` (``M = diag(1 / M⁻¹)``, or ``(M⁻¹)⁻¹`` for a dense mass), shape
    and dtype of ``x`` (C, *D)."""
    z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    if inverse_mass is None:
        return z
    if isinstance(inverse_mass, DenseMass):
        return inverse_mass.momentum(z)
    return z / sqrt_of(_mass_view(inverse_mass, x))


def _mass_view(inverse_mass: float | Tensor, x: Tensor) -> float | Tensor:
    if isinstance(inverse_mass, Tensor):
        return inverse_mass.to(device=x.device, dtype=x.dtype)
    return inverse_mass


def leapfrog(
    energy_fn: EnergyFn,
    x: Tensor,
    p: Tensor,
    grad: Tensor,
    step_size: float | Tensor,
    n_steps: int,
    inverse_mass: InverseMass = None,
) -> LeapfrogResult:
    """Run ``n_steps`` leapfrog steps from ``(x, p)`` given ``grad = grad_x E(x)``.

    Exactly ``n_steps`` energy-and-gradient evaluations. Time-reversible (negating the end
    momentum and integrating again returns to the start) and volume preserving; the energy
    error over a fixed time is O(ε²).

    Shapes: ``x``, ``p``, ``grad`` (C, *D); ``step_size`` float or (C,).

    Args:
        energy_fn: ``(C, *D) -> (C,)``.
        x: start positions.
        p: start momenta.
        grad: ``grad_x E(x)`` at the start positions (cached by the caller).
        step_size: ε, a float or a per-chain (C,) tensor.
        n_steps: L >= 1.
        inverse_mass: diagonal ``M⁻¹`` or a :class:`~torchenergy.samplers.DenseMass` (see
            module docstring), None for identity.

    Returns:
        :class:`LeapfrogResult`.

    Example:
        >>> f = lambda x: 0.5 * (x ** 2).sum(-1)
        >>> x0, p0 = torch.zeros(1, 1), torch.ones(1, 1)
        >>> out = leapfrog(f, x0, p0, torch.zeros(1, 1), 0.1, 10)
        >>> round(out.x.item(), 3)  # close to sin(1) = 0.841
        0.843
    """
    check_positive_int("n_steps", n_steps)
    eps = chain_view(step_size, x)
    half = 0.5 * eps
    dense = inverse_mass if isinstance(inverse_mass, DenseMass) else None
    if dense is None:
        drift = eps if inverse_mass is None else eps * _mass_view(inverse_mass, x)
    p = _axpy(p, -half, grad)
    # ``(0 + E) − E`` is exactly 0 for a finite E and NaN for ±inf or NaN, and NaN sticks: one
    # (C,) accumulator records whether any energy along the path was not finite, in two cheap
    # in-place ops per step (``torch.isfinite`` is four kernels)
    path = grad.new_zeros(x.shape[0])
    energy = path
    for i in range(n_steps):
        x = _axpy(x, drift, p) if dense is None else _axpy(x, eps, dense.velocity(p))
        energy, grad = energy_and_grad(energy_fn, x)
        path.add_(energy).sub_(energy)
        p = _axpy(p, -(eps if i < n_steps - 1 else half), grad)
    finite = (path == 0) & finite_chains(x, p)
    return LeapfrogResult(x, p, energy, grad, finite)


def _axpy(y: Tensor, a: float | Tensor, x: Tensor) -> Tensor:
    """``y + a · x`` with one fused kernel for a float or tensor ``a``."""
    if isinstance(a, Tensor):
        return torch.addcmul(y, a, x)
    return torch.add(y, x, alpha=a)
