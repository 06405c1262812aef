"""Data-parallel training across processes (``torch.distributed``), shaped for EBMs.

``DistributedDataParallel`` hooks the parameters' backward pass of one forward call, while an
EBM step calls the energy several times before its one backward (positives, negatives, and
``torch.autograd.grad`` with respect to the samples inside the sampler, which must not trigger
any gradient synchronisation). So torchenergy synchronises explicitly, once per optimiser step,
after ``loss.backward()``: every rank's parameter gradients and its loss are packed into one
flat buffer, summed with a single ``all_reduce`` and divided by the world size. Every rank then
holds the same averaged gradient, clips it the same way and takes the same optimiser step, so
the weights stay identical without a broadcast. A non-finite loss on any rank shows up in the
summed loss on every rank, so all ranks raise together instead of one raising while the others
wait in a collective forever.

Each rank keeps its own negatives: its own replay buffer and sampler generator (seed them with
:func:`rank_seed`) and its own share of the data (a ``DistributedSampler``, or a stream drawn
from a rank-seeded generator). :class:`~torchenergy.train.Trainer` does all of this when passed
``distributed=True`` inside an initialised process group; checkpoints are then written per rank
(see :func:`rank_path`) because buffers and random states differ between ranks.

Example (two CPU processes; ``torchrun --nproc-per-node 2 train.py``)::

    torch.distributed.init_process_group("gloo")
    g = torch.Generator().manual_seed(rank_seed(0))
    broadcast_parameters(net)
    trainer = Trainer(net, opt, step_fn, generators={"sampler": g}, distributed=True)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from torchenergy.train.outputs import loss_of, nonfinite_loss

__all__ = [
    "all_reduce_gradients",
    "backward_on_all_ranks",
    "broadcast_parameters",
    "is_distributed",
    "rank",
    "rank_path",
    "rank_seed",
    "world_size",
]


def is_distributed() -> bool:
    """True inside an initialised ``torch.distributed`` process group with more than one rank."""
    return (
        torch.distributed.is_available()
        and torch.distributed.is_initialized()
        and torch.distributed.get_world_size() > 1
    )


def rank() -> int:
    """This process's rank (0 outside a process group)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return 0


def world_size() -> int:
    """Number of processes (1 outside a process group)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return 1


def rank_seed(seed: int) -> int:
    """A seed for this rank's own random streams: ``seed`` on rank 0, distinct on the others
    (the rank times a large odd number is added), so ranks draw independent negatives."""
    return int(seed) + 1_000_003 * rank()


def rank_path(path: str | os.PathLike[str]) -> Path:
    """Where this rank writes its checkpoint: ``path`` on rank 0, ``stem.rank{r}.suffix`` on the
    others (each rank's replay buffer and random states are its own)."""
    p = Path(path)
    r = rank()
    return p if r == 0 else p.with_name(f"{p.stem}.rank{r}{p.suffix}")


def broadcast_parameters(module: nn.Module, src: int = 0) -> None:
    """Copy ``module``'s parameters and buffers from rank ``src`` to every rank (call once after
    building the model, so all ranks start from the same weights)."""
    if not is_distributed():
        return
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            torch.distributed.broadcast(t.data, src)


def all_reduce_gradients(params: Iterable[Tensor], loss: Tensor | None = None) -> Tensor | None:
    """Average parameter gradients (and ``loss``) over all ranks with one ``all_reduce``.

    A parameter without a gradient on this rank counts as a zero gradient, and gets one (a rank
    whose batch did not reach a parameter still takes part in the sum, as it must).

    Args:
        params: the parameters the optimiser steps.
        loss: this rank's scalar loss (detached inside); its average over ranks is returned.

    Returns:
        The rank-averaged loss (a 0-dim tensor) when ``loss`` is given, else None. Outside a
        multi-rank process group nothing is reduced and ``loss`` comes back detached.
    """
    params = [p for p in params if p.requires_grad]
    if not is_distributed():
        return None if loss is None else loss.detach()
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    grads = [p.grad for p in params]
    if not grads and loss is None:
        return None
    like: Tensor = grads[0] if grads else loss  # type: ignore[assignment]
    parts = [g.reshape(-1).to(like.dtype) for g in grads]
    if loss is not None:
        parts.append(loss.detach().reshape(1).to(device=like.device, dtype=like.dtype))
    flat = torch.cat(parts)
    torch.distributed.all_reduce(flat)
    flat.div_(torch.distributed.get_world_size())
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset : offset + n].view_as(g))
        offset += n
    return flat[-1] if loss is not None else None


def backward_on_all_ranks(
    step_fn: Callable[[Any], Any], batch: Any, params: list[Tensor], step: int
) -> tuple[Any, Tensor]:
    """``step_fn(batch)`` and backward on this rank, then the one collective of the step.

    A rank whose ``step_fn`` raised still joins the collective (with a NaN loss) before raising,
    so the others see the NaN and raise too rather than wait forever. ``step`` (1-based) is only
    used in messages.

    Returns:
        ``(out, mean_loss)``: this rank's step output and the loss averaged over ranks.
    """
    error: BaseException | None = None
    out: Any = None
    try:
        out = step_fn(batch)
        loss = loss_of(out)
        if bool(torch.isfinite(loss.detach())):
            loss.backward()
        else:
            error = nonfinite_loss(loss, f"on rank {rank()} at step {step}")
    except Exception as exc:  # re-raised after the collective
        error = exc
    signal = torch.tensor(float("nan")) if error is not None else loss_of(out).detach()
    mean_loss = all_reduce_gradients(params, signal)
    if error is not None:
        raise error
    assert mean_loss is not None
    if not bool(torch.isfinite(mean_loss)):
        raise FloatingPointError(
            f"the loss averaged over ranks is {float(mean_loss)} at step {step}: "
            "another rank failed this step (its own error says why)"
        )
    return out, mean_loss
