"""Block Gibbs sampling for RBMs: ``v → h ~ p(h | v) → v' ~ p(v' | h)``, as a library sampler.

The kernel only needs ``sample_hidden(v, generator=)`` and ``sample_visible(h, generator=)``, so
it serves the RBMs of :mod:`torchenergy.models.rbm.model` and the intermediate models of annealed
importance sampling (:mod:`torchenergy.estimate.rbm_paths`) alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor

from torchenergy._checks import check_positive_int, check_tensor
from torchenergy.samplers import BaseInfo, Sampler
from torchenergy.types import Generator

__all__ = ["BlockGibbs", "BlockGibbsState", "gibbs_info"]


def gibbs_info(x: Tensor) -> BaseInfo:
    """The :class:`BaseInfo` of an exact Gibbs move: accepted with probability 1, never
    non-finite or diverged; (C,) fields for a state ``x`` (C, ...), ``accept_prob`` in ``x``'s
    dtype."""
    ones = torch.ones(x.shape[0], dtype=x.dtype, device=x.device)
    false = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    return BaseInfo(ones, ~false, false, false)


class BlockGibbsState(NamedTuple):
    """State of :class:`BlockGibbs`: ``x`` the visible units (C, V)."""

    x: Tensor


@dataclass(frozen=True)
class BlockGibbs(Sampler):
    """Block Gibbs sampler for RBMs: ``h ~ p(h | v)``, then ``v' ~ p(v' | h)``; ``k`` rounds a step.

    Leaves ``p(v) ∝ exp(-F(v))`` invariant exactly (every move is accepted). ``energy_fn`` is any
    object with ``sample_hidden(v, generator=)`` and ``sample_visible(h, generator=)``: the RBMs
    here, or the intermediate models of annealed importance sampling.

    Shapes: state.x (C, V).

    Example:
        >>> from torchenergy.models import BernoulliRBM
        >>> rbm = BernoulliRBM(4, 2)
        >>> BlockGibbs(rbm).sample(torch.zeros(3, 4), 5).shape
        torch.Size([3, 4])
    """

    energy_fn: Any
    k: int = 1

    def __post_init__(self) -> None:
        for name in ("sample_hidden", "sample_visible"):
            if not callable(getattr(self.energy_fn, name, None)):
                raise TypeError(
                    f"BlockGibbs needs a model with sample_hidden/sample_visible methods, "
                    f"got {type(self.energy_fn).__name__}"
                )
        check_positive_int("k", self.k)

    def init(self, x: Tensor) -> BlockGibbsState:
        check_tensor("x", x, min_dim=2, floating=True)
        return BlockGibbsState(x.detach())

    def step(
        self, state: BlockGibbsState, *, generator: Generator = None
    ) -> tuple[BlockGibbsState, BaseInfo]:
        with torch.no_grad():
            v = state.x
            for _ in range(self.k):
                h = self.energy_fn.sample_hidden(v, generator=generator)
                v = self.energy_fn.sample_visible(h, generator=generator)
        return BlockGibbsState(v.reshape(state.x.shape)), gibbs_info(v)
