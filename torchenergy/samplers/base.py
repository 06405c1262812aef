"""The sampler protocol shared by every kernel.

A sampler is a frozen dataclass (its fields are the configuration: the energy and the
hyperparameters) with a functional core:

* ``init(x) -> State``: a NamedTuple of per-chain tensors; ``State.x`` has shape (C, *D).
* ``step(state, *, generator=None) -> (State, Info)``: one transition, no host synchronisation,
  no data-dependent Python branching (per-chain decisions use ``torch.where``).
* ``sample(x0, n_steps, *, generator=None) -> Tensor``: final states (C, *D), via the one driver
  :func:`torchenergy.samplers.run_chain`.

``Info`` is a NamedTuple of per-chain tensors with at least ``accept_prob`` (C,) float,
``accepted`` (C,) bool, ``nonfinite`` (C,) bool (a proposal with non-finite energy was rejected)
and ``diverged`` (C,) bool (an unadjusted kernel could not move without producing a non-finite
value; it held the chain and the driver reports it). Returned states are detached.
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor

from torchenergy.types import Generator

__all__ = ["BaseInfo", "DivergenceError", "Sampler", "unadjusted_info"]


class BaseInfo(NamedTuple):
    """Per-step diagnostics common to all kernels; every field has shape (C,)."""

    accept_prob: Tensor
    accepted: Tensor
    nonfinite: Tensor
    diverged: Tensor


def unadjusted_info(diverged: Tensor) -> BaseInfo:
    """Info for a kernel without accept/reject: accepted unless it diverged. ``diverged`` (C,)."""
    ok = ~diverged
    return BaseInfo(ok.to(torch.get_default_dtype()), ok, diverged, diverged)


class DivergenceError(RuntimeError):
    """Raised by the driver when chains of an unadjusted kernel produced non-finite values.

    Attributes:
        n_diverged: number of chains that diverged.
        n_chains: total number of chains.
        first_step: the earliest step (0-based, counting burn-in) at which a chain diverged.
        chains: indices of the diverged chains (1-D long tensor).
    """

    def __init__(self, n_diverged: int, n_chains: int, first_step: int, chains: Tensor) -> None:
        self.n_diverged = n_diverged
        self.n_chains = n_chains
        self.first_step = first_step
        self.chains = chains
        shown = chains[:8].tolist()
        super().__init__(
            f"{n_diverged} of {n_chains} chains diverged (non-finite energy or gradient); the first at "
            f"step {first_step} (chains {shown}{'...' if len(chains) > 8 else ''}). Reduce the step "
            "size, clip gradients, or check the energy. Pass on_divergence='warn' to get the held "
            "(last finite) states back instead."
        )


class Sampler:
    """Mixin for the frozen-dataclass samplers: ``sample`` through the one driver.

    Subclasses define ``init`` and ``step``. Kernels without an accept/reject step (Langevin,
    gradient descent, ...) set the class attribute ``adjusted = False``: the driver then derives
    their acceptance statistics from ``Info.diverged`` instead of accumulating them.
    """

    adjusted: ClassVar[bool] = True

    def init(self, x: Tensor) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def step(
        self, state: Any, *, generator: Generator = None
    ) -> tuple[Any, Any]:  # pragma: no cover
        raise NotImplementedError

    def sample(self, x0: Tensor, n_steps: int, *, generator: Generator = None) -> Tensor:
        """Run ``n_steps`` transitions from ``x0`` (C, *D) and return the final states (C, *D)."""
        from torchenergy.samplers.driver import run_chain

        return run_chain(self, x0, n_steps, generator=generator).x
