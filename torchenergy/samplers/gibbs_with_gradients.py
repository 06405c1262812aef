"""Gibbs-with-Gradients (Grathwohl et al. 2021): gradient-informed single-bit flips with MH correction.

For binary ``x ∈ {0,1}^D`` and an energy differentiable in a continuous relaxation, the change in
log-probability from flipping bit ``i`` is approximated to first order by

    ``d̃_i(x) = -(1 - 2 x_i) ∂E/∂x_i``   (``log p(x^{(i)}) - log p(x) ≈ d̃_i``).

The proposal picks bit ``i`` with ``q(i | x) = softmax(d̃(x) / 2)_i`` and flips it, giving ``x'``.
The Metropolis-Hastings acceptance probability is

    ``min(1, exp(E(x) - E(x')) · q(i | x') / q(i | x))``,

where the reverse probability ``q(i | x')`` uses the gradient *at the proposed point*. The state
caches ``E`` and ``∇E`` of the current x, so each step costs one energy-and-gradient evaluation.
The chain leaves ``p ∝ exp(-E)`` exactly invariant. Non-finite proposals are rejected.

Shapes: x (C, *D) with values in {0, 1}; the bit index runs over ``prod(D)``.

Reference:
    Grathwohl, Swersky, Hashemi, Duvenaud & Maddison (2021), Oops I took a gradient: scalable
    sampling for discrete distributions. ICML.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from torchenergy._checks import check_positive_int, check_tensor
from torchenergy.energies import energy_and_grad
from torchenergy.samplers.base import BaseInfo
from torchenergy.samplers.driver import Sampler
from torchenergy.samplers.metropolis import metropolis_accept
from torchenergy.samplers.proposals import accept_select, finite_chains
from torchenergy.types import EnergyFn, Generator

__all__ = ["GWGState", "GibbsWithGradients"]


class GWGState(NamedTuple):
    """State of :class:`GibbsWithGradients`: ``x`` (C, *D), cached ``energy`` (C,), ``grad`` (C, *D)."""

    x: Tensor
    energy: Tensor
    grad: Tensor


@dataclass(frozen=True)
class GibbsWithGradients(Sampler):
    """Gibbs-with-Gradients sampler for energies over binary vectors (sampler protocol).

    Args:
        energy_fn: ``(C, *D) -> (C,)`` over {0, 1}-valued float inputs (differentiable in x, or
            with a closed-form ``energy_and_grad``).
        n_flips: proposals (each a full MH step) per ``step`` call.

    Example:
        >>> e = lambda x: -(x * torch.tensor([1.0, -1.0, 2.0])).sum(-1)
        >>> s = GibbsWithGradients(e)
        >>> s.sample(torch.zeros(5, 3), 20, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([5, 3])
    """

    energy_fn: EnergyFn
    n_flips: int = 1

    def __post_init__(self) -> None:
        if not callable(self.energy_fn):
            raise TypeError(f"energy_fn must be callable, got {type(self.energy_fn).__name__}")
        check_positive_int("n_flips", self.n_flips)

    def init(self, x: Tensor) -> GWGState:
        check_tensor("x", x, min_dim=2, floating=True)
        if bool(((x != 0) & (x != 1)).any()):
            raise ValueError("GibbsWithGradients needs binary x with values in {0, 1}")
        e, g = energy_and_grad(self.energy_fn, x.detach())
        return GWGState(x.detach(), e, g)

    @staticmethod
    def proposal_logits(x: Tensor, grad: Tensor) -> Tensor:
        """``d̃(x) / 2 = -(1 - 2x) ∇E / 2``, flattened to (C, prod D); ``q(·|x)`` is its softmax."""
        return (-(1.0 - 2.0 * x) * grad).flatten(1) / 2.0

    def log_accept_ratio(
        self,
        state: GWGState,
        idx: Tensor,
        e_new: Tensor,
        x_new: Tensor,
        g_new: Tensor,
    ) -> Tensor:
        """``E(x) - E(x') + log q(i | x') - log q(i | x)`` for flipped bits ``idx`` (C,)."""
        fwd = torch.log_softmax(self.proposal_logits(state.x, state.grad), -1)
        rev = torch.log_softmax(self.proposal_logits(x_new, g_new), -1)
        pick = idx[:, None]
        return (
            state.energy - e_new + rev.gather(1, pick).squeeze(1) - fwd.gather(1, pick).squeeze(1)
        )

    def _one(self, state: GWGState, generator: Generator) -> tuple[GWGState, BaseInfo]:
        x = state.x
        c = x.shape[0]
        logits = self.proposal_logits(x, state.grad)
        probs = torch.softmax(logits, -1)
        idx = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        flat = x.flatten(1).clone()
        rows = torch.arange(c, device=x.device)
        flat[rows, idx] = 1.0 - flat[rows, idx]
        x_new = flat.reshape(x.shape)
        e_new, g_new = energy_and_grad(self.energy_fn, x_new)
        finite = finite_chains(e_new, g_new)
        log_r = self.log_accept_ratio(state, idx, e_new, x_new, g_new)
        mh = metropolis_accept(log_r, finite, generator=generator)
        return accept_select(mh, GWGState(x_new, e_new, g_new), state)

    def step(self, state: GWGState, *, generator: Generator = None) -> tuple[GWGState, BaseInfo]:
        info = None
        for _ in range(self.n_flips):
            state, info = self._one(state, generator)
        return state, info  # type: ignore[return-value]
