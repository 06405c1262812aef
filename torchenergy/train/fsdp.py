"""FSDP2 (``torch.distributed.fsdp.fully_shard``) for energies too big for one device.

:func:`shard_energy` shards every parameterised child (e.g. each ``Linear``) and then the root of
an energy network in place; build the optimiser *after* it (the parameters become ``DTensor``
shards) and pass the sharded model to ``Trainer(..., distributed=True)``, which then runs the step
without DDP (FSDP all-gathers the weights per layer in forward and reduce-scatters the gradients
in backward) but keeps the rank-agreed loss check.

Status on CPU with gloo (torch 2.13), measured by ``tests/test_distributed.py``:

* CD/PCD (first-order backward; the sampler's ``autograd.grad`` w.r.t. the chains inside the
  step) trains and matches one process on the whole batch.
* Losses that differentiate ``∇ₓE`` with respect to the parameters (DSM, sliced SM, SM) fail
  in backward with ``RuntimeError: setStorage: sizes [2, 8], strides [1, 2], storage offset 0,
  and itemsize 8 requiring a storage size of 128 are out of bounds for storage of size 0`` (the
  double backward reaches weights FSDP has already freed), with ``reshard_after_forward`` True
  or False. Use DDP for them.
* ``fully_shard`` rejects 0-dim parameters ("fully_shard doesn't support scalar parameters"):
  keep a learnable ``log_z`` as shape (1,) or outside the sharded module.
* Checkpoints: ``Trainer.save`` stores DTensor shards, which a ``weights_only`` load cannot
  restore; gather a full state dict with ``torch.distributed.checkpoint.state_dict`` instead
  (not wired into the Trainer yet).
"""

from __future__ import annotations

from typing import Any

from torch import nn

__all__ = ["is_fsdp", "shard_energy"]


def is_fsdp(module: nn.Module) -> bool:
    """True when ``fully_shard`` has been applied to ``module``."""
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:  # pragma: no cover - old torch
        return False
    return isinstance(module, FSDPModule)


def shard_energy(module: nn.Module, **options: Any) -> nn.Module:
    """Apply ``fully_shard`` to each direct child that owns parameters, then to ``module``.

    Args:
        module: the energy network (inside an initialised process group).
        options: passed to ``fully_shard`` (``reshard_after_forward``, ``mesh``...).

    Returns:
        ``module``, sharded in place.
    """
    from torch.distributed.fsdp import fully_shard

    for child in module.modules():
        if child is module or is_fsdp(child):
            continue
        if any(True for _ in child.parameters(recurse=False)) and child is not module:
            fully_shard(child, **options)
    fully_shard(module, **options)
    return module
