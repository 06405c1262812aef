"""Metropolis–Hastings accept/reject, written once for every adjusted kernel (MALA, HMC, swaps).

Given a per-chain log acceptance ratio ``log r`` (C,), a chain accepts with probability
``min(1, exp(log r))``. Proposals that are not finite (NaN or ±inf in the point, its energy or
its gradient, or a NaN ratio) are rejected, flagged ``nonfinite`` and never propagated: the
caller selects with :func:`torchenergy.samplers.where_chains`, so a rejected NaN never reaches
the state. An infinite energy (e.g. outside a hard constraint) therefore never gets accepted.

Reference:
    Metropolis et al. (1953), Equation of state calculations by fast computing machines;
    Hastings (1970), Monte Carlo sampling methods using Markov chains and their applications.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from torchenergy.types import Generator

__all__ = ["MetropolisResult", "metropolis_accept"]


class MetropolisResult(NamedTuple):
    """Outcome of one accept/reject per chain; every field has shape (C,).

    Attributes:
        accepted: bool, the proposal replaces the current state.
        accept_prob: ``min(1, exp(log r))`` in [0, 1]; 0 for non-finite proposals.
        nonfinite: bool, the proposal was not finite and was rejected.
    """

    accepted: Tensor
    accept_prob: Tensor
    nonfinite: Tensor


def metropolis_accept(
    log_ratio: Tensor, proposal_finite: Tensor | None = None, *, generator: Generator = None
) -> MetropolisResult:
    """Per-chain Metropolis–Hastings decision from a log acceptance ratio.

    Rule: draw ``u ~ U(0, 1)`` per chain and accept when ``log u < log r`` (probability
    ``min(1, r)``). A chain whose proposal is not finite (``proposal_finite`` False, or
    ``log r`` NaN) is rejected with ``accept_prob = 0`` and flagged ``nonfinite``. ``log r = +inf``
    with a finite proposal (the current state had infinite energy) is accepted.

    Shapes: ``log_ratio`` (C,), ``proposal_finite`` (C,) bool -> fields (C,).

    Args:
        log_ratio: ``log[p(x') q(x | x') / (p(x) q(x' | x))]`` per chain.
        proposal_finite: per-chain finiteness of the proposal (point, energy, gradient); when
            None, only the ratio is checked (``-inf`` still rejects, NaN is flagged).
        generator: random stream for the uniforms.

    Returns:
        :class:`MetropolisResult`.

    Example:
        >>> r = metropolis_accept(torch.tensor([0.0, float("nan"), -float("inf")]))
        >>> r.accepted.tolist(), r.accept_prob.tolist(), r.nonfinite.tolist()
        ([True, False, False], [1.0, 0.0, 0.0], [False, True, False])
    """
    nonfinite = torch.isnan(log_ratio)
    if proposal_finite is not None:
        nonfinite = nonfinite | ~proposal_finite
    neg_inf = torch.full_like(log_ratio, -float("inf"))
    lr = torch.where(nonfinite, neg_inf, log_ratio)
    accept_prob = torch.exp(torch.clamp(lr, max=0.0))
    u = torch.rand(
        log_ratio.shape, generator=generator, device=log_ratio.device, dtype=log_ratio.dtype
    )
    accepted = (torch.log(u) < lr) & ~nonfinite
    return MetropolisResult(accepted, accept_prob, nonfinite)
