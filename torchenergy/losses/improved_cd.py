"""Improved contrastive divergence (Du, Li, Tenenbaum & Mordatch 2021).

The usual CD gradient ignores that the negatives depend on the parameters through the sampler.
Improved CD adds the missing KL term ``KL(q_theta || p_theta)`` where ``q_theta`` is the sampler's
output distribution, estimated through the *last* Langevin step only:

    x_k = x_{k-1} - eps * grad_x E_theta(x_{k-1}) + noise_scale * z        (x_{k-1} detached)
    L_KL = mean E_{stop(theta)}(x_k) - entropy_weight * H_nn(x_k)

``E_{stop(theta)}`` evaluates the energy with frozen parameters, so the gradient of L_KL reaches the
parameters only through ``x_k`` (i.e. through ``grad_x E_theta`` in the step): the sampler is
trained to move samples to low energy. ``H_nn(x) = mean_i log min_j ||x_i - r_j||`` is the
nearest-neighbour entropy estimate against reference samples ``r`` (detached; e.g. the replay buffer
or the other negatives). The total loss is ``CD(x+, stop(x_k)) + kl_weight * L_KL``.

Reference: Du, Li, Tenenbaum & Mordatch (2021), "Improved contrastive divergence training of
energy-based models", ICML.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from torchenergy._checks import check_positive, check_tensor
from torchenergy.energies import energy_and_grad
from torchenergy.losses._common import check_phase_finite, frozen_call
from torchenergy.losses.contrastive_divergence import contrastive_divergence
from torchenergy.types import EnergyFn, Generator

__all__ = ["ICDOutput", "improved_contrastive_divergence", "nearest_neighbour_entropy"]


class ICDOutput(NamedTuple):
    """Result of :func:`improved_contrastive_divergence`.

    Attributes:
        loss: scalar, ``cd_loss + kl_weight * kl_loss``.
        pos_energy: data energies (C+,), detached.
        neg_energy: energies of the final negatives (C-,), detached.
        negatives: the final negatives ``x_k`` (C-, *D), detached (write them back to a buffer).
        cd_loss: the contrastive-divergence part (scalar, detached).
        kl_loss: ``mean E_frozen(x_k) - entropy_weight * entropy`` (scalar, detached).
        entropy: the nearest-neighbour entropy estimate (scalar, detached).
    """

    loss: Tensor
    pos_energy: Tensor
    neg_energy: Tensor
    negatives: Tensor
    cd_loss: Tensor
    kl_loss: Tensor
    entropy: Tensor


def nearest_neighbour_entropy(x: Tensor, reference: Tensor | None = None) -> Tensor:
    """``mean_i log min_j ||x_i - r_j||`` (the entropy up to constants), differentiable in ``x``.

    Shapes: ``x`` (C, *D), ``reference`` (R, *D) (detached). Without a reference, the other rows
    of ``x`` (detached) are used and each point's distance to itself is excluded.

    Example:
        >>> import torch
        >>> round(float(nearest_neighbour_entropy(torch.tensor([[0.0], [1.0], [3.0]]))), 4)  # (0 + 0 + log 2) / 3
        0.231
    """
    flat = x.reshape(x.shape[0], -1)
    if reference is None:
        ref = flat.detach()
        d = torch.cdist(flat, ref)
        eye = torch.eye(flat.shape[0], dtype=torch.bool, device=x.device)
        d = d.masked_fill(eye, math.inf)
    else:
        ref = reference.detach().reshape(reference.shape[0], -1).to(flat)
        d = torch.cdist(flat, ref)
    nn_dist = d.min(dim=1).values
    return torch.log(nn_dist.clamp_min(1e-12)).mean()


def improved_contrastive_divergence(
    energy_fn: EnergyFn,
    x_pos: Tensor,
    x_prev: Tensor,
    *,
    step_size: float,
    noise_scale: float | None = None,
    kl_weight: float = 1.0,
    entropy_weight: float = 1.0,
    reference: Tensor | None = None,
    l2_reg: float = 0.0,
    generator: Generator = None,
) -> ICDOutput:
    """Improved CD: CD on the final negatives plus the KL term through the last Langevin step.

    ``x_prev`` are the chains after ``k - 1`` sampler steps (detached, e.g. from a negative maker
    with ``n_steps = k - 1``); this function takes the last step
    ``x_k = x_prev - step_size * grad E(x_prev) + noise_scale * z`` with the graph kept.

    Shapes: ``x_pos`` (C+, *D), ``x_prev`` (C-, *D), ``reference`` (R, *D).

    Args:
        energy_fn: energy ``(C, *D) -> (C,)`` (an ``nn.Module`` for the frozen evaluation).
        x_pos: data (C+, *D).
        x_prev: chains before their last step (C-, *D).
        step_size: Langevin ``eps`` of the last step (> 0).
        noise_scale: standard deviation of the last step's noise; default ``sqrt(2 eps)``.
        kl_weight: weight of the KL term (>= 0).
        entropy_weight: weight of the nearest-neighbour entropy inside the KL term (>= 0).
        reference: samples for the nearest-neighbour search (default: the other negatives).
        l2_reg: L2 weight on the CD energies (see :func:`contrastive_divergence`).
        generator: random stream for the last step's noise.

    Returns:
        :class:`ICDOutput`.
    """
    check_tensor("x_prev", x_prev, min_dim=2, floating=True)
    check_positive("step_size", step_size)
    check_positive("kl_weight", kl_weight, allow_zero=True)
    check_positive("entropy_weight", entropy_weight, allow_zero=True)
    if noise_scale is None:
        noise_scale = math.sqrt(2.0 * step_size)
    check_positive("noise_scale", noise_scale, allow_zero=True)
    xp = x_prev.detach().requires_grad_(True)
    e_prev, grad = energy_and_grad(energy_fn, xp, create_graph=True)
    check_phase_finite(e_prev, "negative")
    z = torch.randn(x_prev.shape, generator=generator, device=x_prev.device, dtype=x_prev.dtype)
    x_k = x_prev.detach() - step_size * grad + noise_scale * z

    cd = contrastive_divergence(energy_fn, x_pos, x_k.detach(), l2_reg=l2_reg)
    e_frozen = frozen_call(energy_fn, x_k)
    check_phase_finite(e_frozen, "negative")
    entropy = nearest_neighbour_entropy(x_k, reference)
    kl = e_frozen.mean() - entropy_weight * entropy
    loss = cd.loss + kl_weight * kl
    return ICDOutput(
        loss,
        cd.pos_energy,
        cd.neg_energy,
        cd.negatives,
        cd.loss.detach(),
        kl.detach(),
        entropy.detach(),
    )
