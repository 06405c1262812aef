"""The driver's fast path: unadjusted kernels run in blocks of unchecked steps.

Reference path (:func:`torchenergy.samplers.run_chain` without this module): ``step`` at every
transition, each holding its non-finite chains. Fast path: a kernel that is an
:class:`~torchenergy.samplers.base.UncheckedKernel` runs ``BLOCK`` steps of ``step_unchecked``
with no per-step bookkeeping and one host synchronisation per block, the finiteness test of its
``finite_fields`` (every step) and ``finite_fields_at_end`` (the block's last state). A block
whose test fails is replayed with ``step`` from its saved state and random-stream state, so the
result equals the reference path bit for bit (``tests/test_driver_blocks.py`` holds it to that);
after a replay that finds diverged chains the rest of the run steps with ``step`` (the held
chains would fail every block again). A :class:`~torchenergy.samplers.base.BlockKernel` may run
a whole block itself (Langevin's gradient-only block, :func:`langevin_grad_block`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any, Protocol

import torch
from torch import Tensor

from torchenergy.samplers.base import BlockKernel, UncheckedKernel
from torchenergy.samplers.proposals import GradState, langevin_move
from torchenergy.types import Generator

__all__ = ["BLOCK", "Bookkeeping", "block_stream", "langevin_grad_block", "run_blocks"]

BLOCK = 32  # steps between finiteness checks of an unadjusted kernel's fast path


class Bookkeeping(Protocol):
    """What the driver's run exposes to the block loop (its reference path and its records)."""

    state: Any
    xs: list[Tensor]
    es: list[Tensor]
    has_energy: bool
    n_rec: int

    def checked_step(self, t: int) -> None: ...

    def record(self, t: int) -> None: ...

    def traced(self, t: int) -> bool: ...

    def any_diverged(self) -> bool: ...


def block_stream(kernel: Any, generator: Generator, device: torch.device) -> Any:
    """The generator to save and restore for replays when ``kernel`` can run blocks, else None.

    The caller's generator, else the device's default one; None (step with ``step``
    throughout) for adjusted kernels, kernels without ``step_unchecked`` or ``finite_fields``,
    and devices whose default generator can't be found.
    """
    if getattr(kernel, "adjusted", True) or not isinstance(kernel, UncheckedKernel):
        return None
    if not tuple(kernel.finite_fields):
        return None
    if generator is not None:
        return generator
    if device.type == "cpu":
        return torch.default_generator
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return torch.cuda.default_generators[index]
    return None


def run_blocks(
    kernel: UncheckedKernel,
    run: Bookkeeping,
    t: int,
    total: int,
    rng: torch.Generator,
    generator: Generator,
    progress: Callable[[int], None],
) -> int:
    """Advance ``run`` from step ``t`` in blocks until ``total`` or until a replay found a
    diverged chain; returns the next step index (the reference path takes over from there)."""
    fields = tuple(kernel.finite_fields)
    end_fields = tuple(getattr(kernel, "finite_fields_at_end", ()))
    per_step = attrgetter(*fields)
    own_block = kernel.run_block if isinstance(kernel, BlockKernel) else None
    unchecked = kernel.step_unchecked
    while t < total:
        k = min(BLOCK, total - t)
        saved_state, saved_rng, n_saved = run.state, rng.get_state(), len(run.xs)
        out = None
        if own_block is not None:
            keep = [i for i in range(k) if run.traced(t + i)][: max(run.n_rec - len(run.xs), 0)]
            out = own_block(run.state, k, generator=generator, keep=keep)
        if out is not None:
            run.state, check, kept = out
            for x_i, e_i in kept:
                run.xs.append(x_i)
                if run.has_energy:
                    run.es.append(e_i)
        else:
            sums: list[Tensor] = []
            for i in range(k):
                run.state = unchecked(run.state, generator=generator)
                if len(fields) == 1:
                    sums.append(per_step(run.state).sum())
                else:
                    sums.extend(v.sum() for v in per_step(run.state))
                run.record(t + i)
            sums.extend(getattr(run.state, f).sum() for f in end_fields)
            check = torch.stack(sums).sum()
        if not bool(torch.isfinite(check)):
            run.state = saved_state
            rng.set_state(saved_rng)
            del run.xs[n_saved:], run.es[n_saved:]
            for i in range(k):
                run.checked_step(t + i)
            if run.any_diverged():
                return t + k
        t += k
        progress(k)
    return t


def langevin_grad_block(
    state: GradState,
    n: int,
    grad_unchecked: Callable[[Tensor], tuple[Tensor, Tensor]],
    energy: Callable[[Tensor], Tensor],
    step_size: float,
    noise: float,
    *,
    generator: Generator = None,
    keep: Sequence[int] = (),
) -> tuple[GradState, Tensor, list[tuple[Tensor, Tensor]]]:
    """``n`` plain Langevin moves (:func:`~torchenergy.samplers.proposals.langevin_move`) on
    the gradient only, for an energy with ``grad_unchecked(x) -> (grad, guard)``.

    Each step evaluates the gradient and a 0-dim guard whose finiteness certifies that every
    chain's energy, gradient and x are finite; ``energy(x)`` (C,) is evaluated for the last
    state and the steps in ``keep``. The moves, draws and gradients are those of ``n`` calls of
    ``Langevin.step_unchecked``, bit for bit.

    Returns:
        ``(state, check, kept)``: the last state, a 0-dim tensor finite only if every step
        was, and ``(x, energy)`` for each step in ``keep``.
    """
    x, grad = state.x, state.grad
    guards: list[Tensor] = []
    kept_x: list[Tensor] = []
    want = iter(keep)
    nxt = next(want, None)
    for i in range(n):
        x = langevin_move(x, grad, step_size, noise, generator=generator)
        grad, guard = grad_unchecked(x)
        guards.append(guard)
        if i == nxt:
            kept_x.append(x)
            nxt = next(want, None)
    e_last = energy(x)
    kept = [(xi, e_last if xi is x else energy(xi)) for xi in kept_x]
    check = torch.stack(guards).sum() + x.sum() + grad.sum() + e_last.sum()
    if grad.requires_grad:
        grad = grad.detach()
    return GradState(x, e_last, grad), check, kept
