"""Equilibrium matching (Wang & Du 2025) for an explicit energy whose gradient is the field.

Interpolate between noise and data with ``gamma ~ U(0, 1)`` per example:
``x_gamma = gamma * x + (1 - gamma) * eps`` (``eps ~ N(0, I)``), and regress the energy gradient
on the time-free target

    grad_x E(x_gamma)  ~  (eps - x) * c(gamma),      c(gamma) = lam * min(1, (1 - gamma) / (1 - a)),

the truncated decay: constant ``lam`` up to ``gamma = a`` then linear to 0 at the data, so data
points are equilibria (zero gradient, local minima of E). Samples come from descending the energy
(``x <- x - eta * grad E``, plain or Nesterov gradient descent from noise), since
``-grad E ~ (x - eps) * c`` points from noise to data.

Loss: ``mean over C of sum over D of (grad E(x_gamma) - target)^2``.

Reference: Wang & Du (2025), "Equilibrium Matching: Generative Modeling with Implicit
Energy-Based Models".
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from torchenergy._checks import check_positive, check_probability, check_tensor
from torchenergy.energies import energy_and_grad
from torchenergy.losses._common import check_phase_finite, flat_sum
from torchenergy.types import EnergyFn, Generator

__all__ = ["EqMOutput", "equilibrium_matching", "equilibrium_target", "truncated_decay"]


class EqMOutput(NamedTuple):
    """Result of :func:`equilibrium_matching`.

    Attributes:
        loss: scalar, differentiable in the parameters.
        per_sample: per-example squared error (C,), detached.
        interpolated: ``x_gamma`` (C, *D), detached.
        gamma: interpolation weights (C,).
        target: the regression target ``(eps - x) * c(gamma)`` (C, *D).
        energy: ``E(x_gamma)`` (C,), detached.
    """

    loss: Tensor
    per_sample: Tensor
    interpolated: Tensor
    gamma: Tensor
    target: Tensor
    energy: Tensor


def truncated_decay(gamma: Tensor, *, truncation: float = 0.8, scale: float = 4.0) -> Tensor:
    """``c(gamma) = scale * min(1, (1 - gamma) / (1 - truncation))``, shape of ``gamma``.

    Example:
        >>> [round(v, 4) for v in truncated_decay(torch.tensor([0.0, 0.9, 1.0])).tolist()]
        [4.0, 2.0, 0.0]
    """
    return scale * torch.clamp((1.0 - gamma) / (1.0 - truncation), max=1.0)


def equilibrium_target(
    x: Tensor, noise: Tensor, gamma: Tensor, *, truncation: float = 0.8, scale: float = 4.0
) -> tuple[Tensor, Tensor]:
    """Interpolant and target: ``(gamma x + (1 - gamma) eps, (eps - x) c(gamma))``, both (C, *D).

    Shapes: ``x``, ``noise`` (C, *D); ``gamma`` (C,).
    """
    view = (x.shape[0],) + (1,) * (x.dim() - 1)
    g = gamma.view(view)
    x_gamma = g * x + (1.0 - g) * noise
    target = (noise - x) * truncated_decay(g, truncation=truncation, scale=scale)
    return x_gamma, target


def equilibrium_matching(
    energy_fn: EnergyFn,
    x: Tensor,
    *,
    truncation: float = 0.8,
    scale: float = 4.0,
    gamma: Tensor | None = None,
    generator: Generator = None,
) -> EqMOutput:
    """Equilibrium-matching loss for an explicit energy (its gradient is the learned field).

    Shapes: ``x`` (C, *D); ``gamma`` (C,) when given.

    Args:
        energy_fn: energy ``(C, *D) -> (C,)``.
        x: data (C, *D).
        truncation: ``a`` in c(gamma): the decay starts at gamma = a (in [0, 1)).
        scale: ``lam``, the gradient magnitude away from the data (> 0).
        gamma: fixed interpolation weights (C,) in [0, 1]; drawn from U(0, 1) when None.
        generator: random stream for gamma and the noise.

    Returns:
        :class:`EqMOutput`.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> out = equilibrium_matching(lambda x: 0.5 * (x ** 2).sum(-1), torch.ones(4, 2), generator=g)
        >>> out.target.shape
        torch.Size([4, 2])
    """
    check_tensor("x", x, min_dim=2, floating=True)
    check_probability("truncation", truncation, open_right=True)
    check_positive("scale", scale)
    c = x.shape[0]
    if gamma is None:
        gamma = torch.rand((c,), generator=generator, device=x.device, dtype=x.dtype)
    else:
        check_tensor("gamma", gamma, min_dim=1, floating=True)
        if gamma.shape != (c,):
            raise ValueError(f"gamma must have shape (C,) = ({c},), got {tuple(gamma.shape)}")
        gamma = gamma.to(device=x.device, dtype=x.dtype)
    eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    x_gamma, target = equilibrium_target(x.detach(), eps, gamma, truncation=truncation, scale=scale)
    xg = x_gamma.requires_grad_(True)
    energy, grad = energy_and_grad(energy_fn, xg, create_graph=True)
    check_phase_finite(energy, "interpolated")
    per = flat_sum((grad - target).pow(2))
    return EqMOutput(per.mean(), per.detach(), xg.detach(), gamma, target, energy.detach())
