"""Data-parallel training across processes on PyTorch's own engine (``torch.distributed``).

:class:`~torchenergy.train.Trainer` with ``distributed=True`` inside an initialised process
group (``torchrun``; gloo on CPU, nccl on GPU) wraps the whole training step in
``torch.nn.parallel.DistributedDataParallel`` (see :mod:`torchenergy.train.ddp`): the sampler,
positives and negatives run inside one DDP forward, DDP buckets the gradients and overlaps their
all-reduce with the backward pass, and every rank takes the same optimiser step. Before the
backward one tiny all-gather of the per-rank losses makes a non-finite loss (or an exception)
on any rank stop every rank with the same error instead of a hang.

Each rank keeps its own negatives: its own replay buffer and sampler generator (seed them with
:func:`rank_seed`; :func:`mix_buffers` optionally swaps chains between ranks) and its own share
of the data (:func:`distributed_loader`, a ``DistributedSampler``, or a stream drawn from a
rank-seeded generator). Checkpoints: rank 0 writes the weights, optimiser, EMA and its own
sampler state to ``path``; rank ``r`` writes only its sampler state and random streams to
``stem.rank{r}.suffix`` (:func:`rank_path`). Resuming needs the same world size
(:func:`merge_rank_checkpoint` says so clearly otherwise).

Example (two CPU processes; ``torchrun --nproc-per-node 2 train.py``)::

    torch.distributed.init_process_group("gloo")
    g = torch.Generator().manual_seed(rank_seed(0))
    trainer = Trainer(net, opt, step_fn, generators={"sampler": g}, distributed=True)
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from torchenergy.train.outputs import loss_of

__all__ = [
    "RANK_LOCAL_KEYS",
    "all_reduce_gradients",
    "backward_on_all_ranks",
    "broadcast_parameters",
    "distributed_loader",
    "is_distributed",
    "launch_or_join",
    "merge_rank_checkpoint",
    "mix_buffers",
    "rank",
    "rank_checkpoint",
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
    """Deprecated: the Trainer now uses ``DistributedDataParallel``; average parameter
    gradients (and ``loss``) over all ranks with one ``all_reduce``.

    A parameter without a gradient on this rank counts as a zero gradient, and gets one (a rank
    whose batch did not reach a parameter still takes part in the sum, as it must).

    Args:
        params: the parameters the optimiser steps.
        loss: this rank's scalar loss (detached inside); its average over ranks is returned.

    Returns:
        The rank-averaged loss (a 0-dim tensor) when ``loss`` is given, else None. Outside a
        multi-rank process group nothing is reduced and ``loss`` comes back detached.
    """
    warnings.warn(
        "all_reduce_gradients is deprecated: Trainer(distributed=True) wraps the step in "
        "torch.nn.parallel.DistributedDataParallel; it will be removed in a future release",
        DeprecationWarning,
        stacklevel=2,
    )
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
    step: Callable[[Any], Any], batch: Any, params: list[Tensor], step_number: int
) -> tuple[Any, Tensor]:
    """One distributed step's forward and backward: ``step(batch)`` (the DDP-wrapped step of
    :func:`~torchenergy.train.ddp.wrap_step`, or a plain ``step_fn`` for an FSDP2 model), one
    tiny all-gather of the per-rank losses (:func:`~torchenergy.train.ddp.agree_on_loss`: a
    failure on any rank stops every rank, no hang), then ``loss.backward()``, during which DDP
    all-reduces the gradients bucket by bucket. ``params`` is unused (kept for the old
    signature); ``step_number`` (1-based) is only used in messages.

    Returns:
        ``(out, mean_loss)``: this rank's step output and the loss averaged over ranks.
    """
    from torchenergy.train.ddp import agree_on_loss

    del params
    error: BaseException | None = None
    out: Any = None
    loss: Tensor | None = None
    try:
        out = step(batch)
        loss = loss_of(out)
    except Exception as exc:  # re-raised after the collective
        error = exc
    mean_loss = agree_on_loss(loss, error, step_number)
    assert loss is not None
    loss.backward()
    return out, mean_loss


# ---------------------------------------------------------------------------- checkpoints
RANK_LOCAL_KEYS = ("step", "epoch", "batch_in_epoch", "epoch_rng", "state", "rng")
"""Trainer-state entries each rank keeps for itself (the rest is identical on every rank)."""


def rank_checkpoint(state: Mapping[str, Any]) -> dict[str, Any]:
    """What this rank writes: everything on rank 0, only :data:`RANK_LOCAL_KEYS` elsewhere;
    both stamped with the world size and rank."""
    keep = state if rank() == 0 else {k: state[k] for k in RANK_LOCAL_KEYS if k in state}
    return {**keep, "world_size": world_size(), "rank": rank()}


def merge_rank_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read this rank's checkpoint (``rank_path(path)``) and, off rank 0, add the weights,
    optimiser, scheduler and EMA from rank 0's file.

    Raises:
        CheckpointError: a file is missing, the checkpoint was written by another number of
            ranks, or the rank files are from different steps.
    """
    from torchenergy.train.checkpoint import CheckpointError, load_checkpoint

    mine = load_checkpoint(rank_path(path))
    saved = int(mine.get("world_size", 1))
    if saved != world_size():
        raise CheckpointError(
            f"checkpoint {str(path)!r} was written by {saved} rank(s) but this run has "
            f"{world_size()}; resume with the same world size (--nproc-per-node {saved}), "
            "since every rank's replay buffer and random streams are its own"
        )
    if rank() == 0:
        return mine
    main = load_checkpoint(path)
    if int(main["step"]) != int(mine["step"]):
        raise CheckpointError(
            f"rank files disagree: {str(path)!r} is at step {main['step']} but "
            f"{str(rank_path(path))!r} at step {mine['step']} (a run killed while saving?)"
        )
    return {**{k: v for k, v in main.items() if k not in RANK_LOCAL_KEYS}, **mine}


# ---------------------------------------------------------------------------- data, buffers
def distributed_loader(
    dataset: Any, batch_size: int, *, seed: int = 0, shuffle: bool = True, **kwargs: Any
) -> torch.utils.data.DataLoader:
    """A ``DataLoader`` over this rank's share of ``dataset`` (a ``DistributedSampler``,
    ``drop_last=True`` so every rank takes the same number of steps). The Trainer calls
    ``set_epoch`` every epoch, so the shuffle differs between epochs and resumes exactly."""
    from torch.utils.data import DataLoader, DistributedSampler

    sampler = DistributedSampler(
        dataset,
        num_replicas=world_size(),
        rank=rank(),
        shuffle=shuffle,
        seed=seed,
        drop_last=True,
    )
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=True, **kwargs)


def mix_buffers(buffer: Any, fraction: float, *, generator: torch.Generator | None = None) -> None:
    """Swap a ``fraction`` of every rank's replay-buffer chains with the other ranks' (an
    all-gather; the rows replaced are drawn from ``generator``). Call it from a callback every
    few steps to share long-run chains between ranks; a no-op outside a process group."""
    if not is_distributed() or fraction <= 0:
        return
    x = buffer.data
    n = max(1, round(fraction * x.shape[0]))
    idx = torch.randperm(x.shape[0], generator=generator)[:n]
    rows = x[idx].contiguous()
    gathered = [torch.empty_like(rows) for _ in range(world_size())]
    torch.distributed.all_gather(gathered, rows)
    others = torch.cat([g for r, g in enumerate(gathered) if r != rank()])
    pick = torch.randint(others.shape[0], (n,), generator=generator)
    buffer.update(idx, others[pick])


# ---------------------------------------------------------------------------- launching
def launch_or_join(nproc: int, module_args: list[str], argv: list[str]) -> int | None:
    """For ``torchenergy train --nproc-per-node N``: outside torchrun with ``N > 1``, run
    ``torch.distributed.run`` (torchrun) on ``python -m torchenergy train ...`` with the same
    arguments and return its exit code; inside torchrun (``WORLD_SIZE`` set), initialise the
    process group (nccl with CUDA, else gloo) and return None; else return None."""
    if "WORLD_SIZE" in os.environ and "RANK" in os.environ:
        if not torch.distributed.is_initialized():
            cuda = torch.cuda.is_available()
            if cuda:
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
            torch.distributed.init_process_group("nccl" if cuda else "gloo")
        return None
    if nproc <= 1:
        return None
    from torch.distributed.run import main as torchrun

    rest, skip = [], False
    args = argv[1:]
    if "train" in args:  # drop the program and command names, keep the options
        args = args[args.index("train") + 1 :]
    for a in args:
        if skip:
            skip = False
            continue
        if a == "--nproc-per-node":
            skip = True
            continue
        if a.startswith("--nproc-per-node="):
            continue
        rest.append(a)
    try:
        torchrun(["--standalone", f"--nproc-per-node={nproc}", *module_args, *rest])
    except SystemExit as exc:  # torchrun exits on failure; report the code instead
        return int(exc.code or 0)
    except Exception:  # ChildFailedError: a worker failed (its traceback is printed)
        return 1
    return 0
