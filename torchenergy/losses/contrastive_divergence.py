"""Contrastive divergence: push data energies down and sample energies up.

Given positives ``x+`` (data) and negatives ``x-`` (samples from the current model, detached),

    loss = mean E(x+) - mean E(x-) + l2_reg * (mean E(x+)^2 + mean E(x-)^2),

whose parameter gradient is the maximum-likelihood gradient
``E_data[grad_theta E] - E_model[grad_theta E]`` when the negatives follow the model.
How the negatives are made (CD-k, persistent, short-run, tempering) lives in
:mod:`torchenergy.losses.negatives`.

Reference: Hinton (2002), "Training products of experts by minimizing contrastive divergence";
Du & Mordatch (2019), "Implicit generation and modeling with energy-based models".
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor

from torchenergy._checks import check_positive, check_tensor
from torchenergy.losses._common import phase_energy
from torchenergy.types import EnergyFn

__all__ = ["CDOutput", "contrastive_divergence"]


class CDOutput(NamedTuple):
    """Result of :func:`contrastive_divergence`.

    Attributes:
        loss: scalar, differentiable in the parameters.
        pos_energy: data energies (C+,), detached.
        neg_energy: sample energies (C-,), detached.
        negatives: the negatives used (C-, *D), detached.
        gap: ``mean E(x+) - mean E(x-)`` (scalar, detached); stays near 0 in healthy training.
    """

    loss: Tensor
    pos_energy: Tensor
    neg_energy: Tensor
    negatives: Tensor
    gap: Tensor


def contrastive_divergence(
    energy_fn: EnergyFn, x_pos: Tensor, x_neg: Tensor, *, l2_reg: float = 0.0
) -> CDOutput:
    """Contrastive-divergence loss ``mean E(x+) - mean E(x-)`` (+ L2 on the energies).

    Shapes: ``x_pos`` (C+, *D), ``x_neg`` (C-, *D) (same event shape D); energies (C,).

    The negatives are detached (the gradient does not flow through the sampler). Non-finite
    energies in either phase raise :class:`~torchenergy.losses.NonFiniteEnergyError` naming the
    phase and the count, instead of returning a loss whose gradients are NaN.

    Args:
        energy_fn: energy ``(C, *D) -> (C,)``.
        x_pos: data batch (C+, *D).
        x_neg: model samples (C-, *D).
        l2_reg: weight of ``mean E(x+)^2 + mean E(x-)^2`` (Du & Mordatch 2019), >= 0.

    Returns:
        :class:`CDOutput`.

    Example:
        >>> import torch
        >>> out = contrastive_divergence(lambda x: (x ** 2).sum(-1), torch.zeros(4, 2), torch.ones(4, 2))
        >>> float(out.loss)
        -2.0
    """
    check_tensor("x_pos", x_pos, min_dim=1, floating=True)
    check_tensor("x_neg", x_neg, min_dim=1, floating=True)
    if x_pos.shape[1:] != x_neg.shape[1:]:
        raise ValueError(
            f"x_pos and x_neg must share the event shape D, got {tuple(x_pos.shape)} and "
            f"{tuple(x_neg.shape)}"
        )
    check_positive("l2_reg", l2_reg, allow_zero=True)
    x_neg = x_neg.detach()
    e_pos = phase_energy(energy_fn, x_pos, "positive")
    e_neg = phase_energy(energy_fn, x_neg, "negative")
    gap = e_pos.mean() - e_neg.mean()
    loss = gap
    if l2_reg > 0:
        loss = loss + l2_reg * (e_pos.pow(2).mean() + e_neg.pow(2).mean())
    return CDOutput(loss, e_pos.detach(), e_neg.detach(), x_neg, gap.detach())
