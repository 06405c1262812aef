"""Denoising score matching (one noise level) and its multi-scale, noise-conditional form (NCSN).

Perturb ``x~ = x + sigma * eps`` with ``eps ~ N(0, I)``. The score of the perturbation kernel is
``grad log q(x~|x) = -(x~ - x) / sigma^2 = -eps / sigma``, so with ``s = -grad E``

    DSM = 1/2 E || grad_x E(x~) - eps / sigma ||^2        (sum over all event dimensions).

The sign matters: at the optimum ``grad E(x~) = E[eps | x~] / sigma`` points *away* from the data,
so the score ``-grad E`` points back to it (for N(0, s^2) data the fitted model is N(0, s^2 + sigma^2)).
The multi-scale loss (Song & Ermon 2019) draws one level per example from ``sigmas`` and weights
level sigma by sigma^2: ``1/2 || sigma * grad_x E(x~, sigma) - eps ||^2``, for energies that take
the noise level, ``energy_fn(x, sigma)`` with ``sigma`` of shape (C,).

References: Vincent (2011), "A connection between score matching and denoising autoencoders";
Song & Ermon (2019), "Generative modeling by estimating gradients of the data distribution".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from torchenergy._checks import check_positive, check_tensor
from torchenergy.energies import energy_and_grad
from torchenergy.losses._common import check_phase_finite, flat_sum
from torchenergy.types import EnergyFn, Generator

__all__ = ["DenoisingOutput", "denoising_score_matching", "multiscale_denoising_score_matching"]


class DenoisingOutput(NamedTuple):
    """Result of the denoising losses.

    Attributes:
        loss: scalar, differentiable in the parameters.
        per_sample: per-example objective (C,), detached.
        noisy: the perturbed inputs ``x~`` (C, *D), detached.
        sigma: the noise level of each example (C,).
        noisy_energy: ``E(x~)`` (C,), detached.
    """

    loss: Tensor
    per_sample: Tensor
    noisy: Tensor
    sigma: Tensor
    noisy_energy: Tensor


def denoising_score_matching(
    energy_fn: EnergyFn, x: Tensor, *, sigma: float, generator: Generator = None
) -> DenoisingOutput:
    """Denoising score matching ``mean 1/2 ||grad E(x + sigma eps) - eps / sigma||^2``.

    Shapes: ``x`` (C, *D); energies (C,).

    Args:
        energy_fn: energy ``(C, *D) -> (C,)``.
        x: clean data (C, *D).
        sigma: noise standard deviation (> 0).
        generator: random stream for ``eps``.

    Returns:
        :class:`DenoisingOutput`. Its expectation is Hyvärinen's objective on the noised data plus
        ``D / (2 sigma^2)`` (D = number of event elements).

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> out = denoising_score_matching(lambda x: (x ** 2).sum(-1), torch.zeros(5, 2), sigma=0.1, generator=g)
        >>> out.noisy.shape
        torch.Size([5, 2])
    """
    check_tensor("x", x, min_dim=2, floating=True)
    check_positive("sigma", sigma)
    eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    noisy = (x.detach() + sigma * eps).requires_grad_(True)
    energy, grad = energy_and_grad(energy_fn, noisy, create_graph=True)
    check_phase_finite(energy, "noisy-data")
    per = 0.5 * flat_sum((grad - eps / sigma).pow(2))
    sig = torch.full((x.shape[0],), float(sigma), device=x.device, dtype=x.dtype)
    return DenoisingOutput(per.mean(), per.detach(), noisy.detach(), sig, energy.detach())


def multiscale_denoising_score_matching(
    energy_fn: Callable[[Tensor, Tensor], Tensor],
    x: Tensor,
    *,
    sigmas: Tensor,
    generator: Generator = None,
) -> DenoisingOutput:
    """Multi-scale DSM with sigma^2 weighting for a noise-conditional energy ``E(x, sigma)``.

    Each example draws a level ``sigma_i`` uniformly from ``sigmas`` (L,) and contributes
    ``1/2 || sigma_i * grad_x E(x~_i, sigma_i) - eps_i ||^2`` (= sigma_i^2 times its DSM term).

    Shapes: ``x`` (C, *D); ``sigmas`` (L,); ``energy_fn(x, sigma)`` with sigma (C,) returns (C,).

    Args:
        energy_fn: noise-conditional energy ``((C, *D), (C,)) -> (C,)``.
        x: clean data (C, *D).
        sigmas: positive noise levels (L,), e.g. a geometric sequence.
        generator: random stream for the levels and the noise.

    Returns:
        :class:`DenoisingOutput` (``sigma`` holds the level drawn for each example).

    Example:
        >>> import torch
        >>> e = lambda x, s: 0.5 * (x ** 2).sum(-1) / (1 + s ** 2)
        >>> out = multiscale_denoising_score_matching(e, torch.zeros(4, 2), sigmas=torch.tensor([1.0, 0.1]))
        >>> out.sigma.shape
        torch.Size([4])
    """
    check_tensor("x", x, min_dim=2, floating=True)
    check_tensor("sigmas", sigmas, min_dim=1, floating=True)
    if sigmas.dim() != 1 or sigmas.numel() == 0:
        raise ValueError(
            f"sigmas must be a non-empty 1-D tensor (L,), got shape {tuple(sigmas.shape)}"
        )
    check_positive("sigmas", sigmas)
    c = x.shape[0]
    idx = torch.randint(sigmas.numel(), (c,), generator=generator, device=sigmas.device)
    sig = sigmas[idx].to(device=x.device, dtype=x.dtype)
    eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    view = (c,) + (1,) * (x.dim() - 1)
    noisy = (x.detach() + sig.view(view) * eps).requires_grad_(True)
    energy, grad = energy_and_grad(lambda y: energy_fn(y, sig), noisy, create_graph=True)
    check_phase_finite(energy, "noisy-data")
    per = 0.5 * flat_sum((sig.view(view) * grad - eps).pow(2))
    return DenoisingOutput(per.mean(), per.detach(), noisy.detach(), sig, energy.detach())
