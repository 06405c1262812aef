"""Noise-contrastive estimation: classify data against a known noise, learning log Z on the way.

The model's log density is ``log p_theta(x) = -E(x) - log_z`` with ``log_z`` a learnable scalar.
With ``nu = n_noise / n_data`` noise samples per data point and the logit
``G(x) = log p_theta(x) - log p_noise(x) - log nu``,

    loss = -[ mean_data log sigmoid(G(x)) + nu * mean_noise log sigmoid(-G(y)) ],

whose minimiser is the data density itself, normalised (so ``log_z`` converges to the true
log-partition of the energy) when the model family contains it.

Reference: Gutmann & Hyvärinen (2010), "Noise-contrastive estimation: a new estimation principle
for unnormalized statistical models".
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor
from torch.nn import functional as F

from torchenergy._checks import check_tensor
from torchenergy.losses._common import phase_energy
from torchenergy.samplers.buffer import sample_distribution
from torchenergy.types import EnergyFn, Generator

__all__ = ["NCEOutput", "noise_contrastive_estimation"]


class NCEOutput(NamedTuple):
    """Result of :func:`noise_contrastive_estimation`.

    Attributes:
        loss: scalar, differentiable in the energy's parameters and ``log_z``.
        pos_energy: data energies (C,), detached.
        neg_energy: noise-sample energies (C_noise,), detached.
        negatives: the noise samples (C_noise, *D), detached.
        accuracy: fraction of data and noise points the classifier gets right (scalar).
    """

    loss: Tensor
    pos_energy: Tensor
    neg_energy: Tensor
    negatives: Tensor
    accuracy: Tensor


def noise_contrastive_estimation(
    energy_fn: EnergyFn,
    x: Tensor,
    noise: torch.distributions.Distribution,
    *,
    log_z: Tensor,
    n_noise: int | None = None,
    x_noise: Tensor | None = None,
    generator: Generator = None,
) -> NCEOutput:
    """NCE loss for an unnormalised energy with a learnable log-partition ``log_z``.

    Shapes: ``x`` (C, *D); noise samples (C_noise, *D) with ``noise.event_shape == D``
    (flatten/reshape through a wrapper distribution otherwise); ``log_z`` a scalar tensor
    (typically an ``nn.Parameter`` optimised with the energy).

    Args:
        energy_fn: energy ``(C, *D) -> (C,)``.
        x: data (C, *D).
        noise: the noise distribution (``sample`` and ``log_prob`` summed over the event).
        log_z: learnable log-partition, shape () (or (1,)).
        n_noise: number of noise samples (default C); ignored when ``x_noise`` is given.
        x_noise: pre-drawn noise samples from ``noise`` (C_noise, *D).
        generator: random stream for the noise samples.

    Returns:
        :class:`NCEOutput`.

    Example:
        >>> import torch
        >>> noise = torch.distributions.Independent(torch.distributions.Normal(torch.zeros(2), 2 * torch.ones(2)), 1)
        >>> log_z = torch.zeros((), requires_grad=True)
        >>> out = noise_contrastive_estimation(lambda x: 0.5 * (x ** 2).sum(-1), torch.zeros(8, 2), noise, log_z=log_z)
        >>> out.loss.shape
        torch.Size([])
    """
    check_tensor("x", x, min_dim=1, floating=True)
    check_tensor("log_z", log_z, floating=True)
    if log_z.numel() != 1:
        raise ValueError(f"log_z must hold one value, got shape {tuple(log_z.shape)}")
    if not isinstance(noise, torch.distributions.Distribution):
        raise TypeError(
            f"noise must be a torch.distributions.Distribution, got {type(noise).__name__}"
        )
    if tuple(noise.event_shape) != tuple(x.shape[1:]):
        raise ValueError(
            f"noise.event_shape {tuple(noise.event_shape)} must equal the data event shape "
            f"{tuple(x.shape[1:])} (wrap with torch.distributions.Independent)"
        )
    if x_noise is None:
        n = x.shape[0] if n_noise is None else n_noise
        x_noise = sample_distribution(noise, n, generator=generator)
    x_noise = x_noise.detach().to(device=x.device, dtype=x.dtype)
    nu = x_noise.shape[0] / x.shape[0]
    lz = log_z.reshape(())

    e_pos = phase_energy(energy_fn, x, "positive")
    e_neg = phase_energy(energy_fn, x_noise, "noise")
    g_pos = -e_pos - lz - noise.log_prob(x).to(x.dtype) - math.log(nu)
    g_neg = -e_neg - lz - noise.log_prob(x_noise).to(x.dtype) - math.log(nu)
    loss = -(F.logsigmoid(g_pos).mean() + nu * F.logsigmoid(-g_neg).mean())
    acc = torch.cat([(g_pos > 0), (g_neg < 0)]).to(x.dtype).mean()
    return NCEOutput(loss, e_pos.detach(), e_neg.detach(), x_noise, acc.detach())
