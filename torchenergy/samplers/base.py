"""The sampler protocol shared by every kernel.

A sampler is a frozen dataclass (its fields are the configuration: the energy and the
hyperparameters) with a functional core:

* ``init(x) -> State``: a NamedTuple of per-chain tensors; ``State.x`` has shape (C, *D).
* ``step(state, *, generator=None) -> (State, Info)``: one transition, no host synchronisation,
  no data-dependent Python branching (per-chain decisions use ``torch.where``).
* ``sample(x0, n_steps, *, generator=None) -> Tensor``: final states (C, *D), via the one driver
  :func:`torchenergy.samplers.run_chain` (the :class:`~torchenergy.samplers.Sampler` mixin).

``Info`` is a NamedTuple of per-chain tensors with at least ``accept_prob`` (C,) float,
``accepted`` (C,) bool, ``nonfinite`` (C,) bool (a proposal with non-finite energy was rejected)
and ``diverged`` (C,) bool (an unadjusted kernel could not move without producing a non-finite
value; it held the chain and the driver reports it). Returned states are detached.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

import torch
from torch import Tensor

from torchenergy.types import Generator

__all__ = [
    "BaseInfo",
    "BlockKernel",
    "DivergenceError",
    "Kernel",
    "NonFiniteStartError",
    "UncheckedKernel",
    "unadjusted_info",
]


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


class NonFiniteStartError(ValueError):
    """Raised at ``init`` when the start ``x``, its energy or its gradient is not finite.

    A ``ValueError`` (bad input to the sampler); training loops that start chains where the
    model has just become non-finite catch it as a divergence of the model.
    """


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


@runtime_checkable
class Kernel(Protocol):
    """What the driver runs: ``init(x (C, *D)) -> State`` and ``step(state) -> (State, Info)``.

    Invariants: ``State.x`` has shape (C, *D); ``Info`` has at least the :class:`BaseInfo`
    fields, each (C,); no host synchronisation and no data-dependent Python branch in ``step``;
    the same generator state gives the same step. A class attribute ``adjusted = False`` says
    the kernel has no accept/reject (the driver derives acceptance from ``Info.diverged``).
    """

    def init(self, x: Tensor) -> Any: ...

    def step(self, state: Any, *, generator: Generator = None) -> tuple[Any, Any]: ...


@runtime_checkable
class UncheckedKernel(Kernel, Protocol):
    """An unadjusted kernel with a fast path for the driver's block mode.

    ``step_unchecked(state) -> State`` is ``step`` without holding non-finite chains.
    Invariant (tested for every such kernel, bit for bit): for a run in which every state is
    finite, ``step_unchecked`` returns ``step``'s State and consumes the same random numbers.
    ``finite_fields`` are State fields whose finiteness the driver checks after every step of
    a block; ``finite_fields_at_end`` (optional) fields checked on the block's last state only,
    which the kernel guarantees stay non-finite once they are. A block that fails the check is
    replayed with ``step``, so results equal stepping with ``step`` throughout.
    """

    finite_fields: tuple[str, ...]

    def step_unchecked(self, state: Any, *, generator: Generator = None) -> Any: ...


@runtime_checkable
class BlockKernel(UncheckedKernel, Protocol):
    """An :class:`UncheckedKernel` that may run a whole block itself.

    ``run_block(state, n, *, generator, keep) -> (state, check, kept) | None``: ``n`` moves of
    ``step_unchecked`` bit for bit (states, draws), ``check`` a 0-dim tensor finite only if
    every step was, ``kept`` the ``(x, energy)`` of the steps listed in ``keep``; None declines
    (the driver then steps ``step_unchecked`` itself).
    """

    def run_block(
        self, state: Any, n: int, *, generator: Generator = None, keep: Sequence[int] = ()
    ) -> tuple[Any, Tensor, list[tuple[Tensor, Tensor]]] | None: ...
