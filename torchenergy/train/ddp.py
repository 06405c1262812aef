"""The DDP step: PyTorch's ``DistributedDataParallel`` around a whole EBM training step.

An EBM step calls the energy many times before its one backward: the sampler's
``torch.autograd.grad`` with respect to the chains, the positives, the negatives. DDP expects
one forward per backward (``static_graph`` counts forwards; ``find_unused_parameters`` searches
the graph of the *last* forward's outputs). So :class:`StepModule` makes the whole ``step_fn``
one module call: ``DistributedDataParallel(StepModule(model, step_fn))(batch)`` runs the
sampler, the positives and the negatives inside one DDP forward, and DDP's reducer then sees
exactly the loss's graph, bucketing and overlapping the gradient all-reduce with the loss's
backward. The sampler's gradients with respect to the chains never touch a parameter's
gradient accumulator, so they trigger no communication.

Unused parameters: a parameter that the loss does not reach gets no gradient hook, and DDP
then waits forever for its bucket ("Expected to have finished reduction in the prior
iteration"). Denoising/sliced score matching differentiate ``∇ₓE``, in which any additive
parameter of ``E`` (the last layer's bias, a learnable offset) vanishes. The wrapper therefore
defaults to ``find_unused_parameters=True`` (one graph walk per step from the loss: cheap next
to the sampler); pass ``find_unused_parameters=False`` for the last few percent when every
parameter reaches the loss, or ``static_graph=True``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["StepModule", "agree_on_loss", "wrap_step"]


class StepModule(nn.Module):
    """``forward(batch) = step_fn(batch)`` with ``model`` registered as the only submodule, so
    DDP owns exactly ``model``'s parameters and one DDP call is one training step."""

    def __init__(self, model: nn.Module, step_fn: Callable[[Any], Any]) -> None:
        super().__init__()
        self.model = model
        self._step_fn = step_fn

    def forward(self, batch: Any) -> Any:
        return self._step_fn(batch)


def wrap_step(
    model: nn.Module, step_fn: Callable[[Any], Any], **ddp_options: Any
) -> nn.parallel.DistributedDataParallel:
    """``DistributedDataParallel(StepModule(model, step_fn))`` with the EBM defaults.

    Args:
        model: the energy (its parameters are broadcast from rank 0 when DDP is built).
        step_fn: ``batch -> out`` as for :class:`~torchenergy.train.Trainer`.
        ddp_options: passed to ``DistributedDataParallel``; ``find_unused_parameters``
            defaults to True (see the module docstring), ``device_ids`` to the model's CUDA
            device when it has one.
    """
    options = dict(ddp_options)
    if not options.get("static_graph", False):
        options.setdefault("find_unused_parameters", True)
    first = next(model.parameters(), None)
    if first is not None and first.is_cuda:
        options.setdefault("device_ids", [first.device.index])
    return nn.parallel.DistributedDataParallel(StepModule(model, step_fn), **options)


def agree_on_loss(loss: Tensor | None, error: BaseException | None, step: int) -> Tensor:
    """One small collective before backward: every rank's loss (NaN for a rank whose
    ``step_fn`` raised) is gathered, so that a failure on any rank stops all of them together.

    Returns:
        The loss averaged over ranks (0-dim, detached) when every rank's loss is finite.

    Raises:
        FloatingPointError: some rank's loss is not finite; every rank raises the same message.
        RuntimeError: another rank's ``step_fn`` raised (this rank's own exception is re-raised
            on the rank where it happened).
    """
    import torch.distributed as dist

    world = dist.get_world_size()
    if loss is not None and error is None:
        mine = torch.stack(
            [loss.detach().reshape(()).double().cpu(), torch.zeros((), dtype=torch.float64)]
        )
    else:
        mine = torch.tensor([float("nan"), 1.0], dtype=torch.float64)
    device = loss.device if (loss is not None and loss.is_cuda) else torch.device("cpu")
    mine = mine.to(device)
    every = [torch.empty_like(mine) for _ in range(world)]
    dist.all_gather(every, mine)
    table = torch.stack(every).cpu()
    losses, failed = table[:, 0], table[:, 1] > 0
    if bool(failed.any()):
        if error is not None:
            raise error
        ranks = failed.nonzero().flatten().tolist()
        raise RuntimeError(
            f"step_fn raised on rank(s) {ranks} at step {step}; stopping every rank "
            "(the failing rank's own error says why)"
        )
    if not bool(torch.isfinite(losses).all()):
        bad = (~torch.isfinite(losses)).nonzero().flatten().tolist()
        values = [float(v) for v in losses]
        raise FloatingPointError(
            f"loss is not finite on rank(s) {bad} at step {step} (per-rank losses {values}); "
            "every rank stops here. Lower the learning rate or the sampler step size, add "
            "l2_reg, or clip gradients (grad_clip)"
        )
    return losses.mean().to(loss.dtype if loss is not None else torch.float64)
