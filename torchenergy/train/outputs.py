"""What a step function returns, read by the trainer: the loss and the scalars to log.

``step_fn(batch)`` returns a scalar tensor or a NamedTuple with a scalar ``.loss`` (every
``torchenergy.losses`` function does); its other 0-d and per-chain (C,) fields are logged.

Example:
    >>> import torch
    >>> from typing import NamedTuple
    >>> class Out(NamedTuple):
    ...     loss: torch.Tensor
    ...     gap: torch.Tensor
    >>> scalar_logs(Out(torch.tensor(1.5), torch.tensor([1.0, 3.0])))
    {'loss': 1.5, 'gap': 2.0}
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

__all__ = ["loss_of", "nonfinite_loss", "scalar_logs"]


def scalar_logs(out: Any) -> dict[str, float]:
    """Scalars to log from a step's output: 0-d tensors and numbers as they are, per-chain (C,)
    tensors as their mean; larger tensors (the negatives themselves) are skipped."""
    if isinstance(out, Tensor):
        return {"loss": float(out.detach())}
    fields = out._asdict() if hasattr(out, "_asdict") else {"loss": out.loss}
    logs: dict[str, float] = {}
    for key, value in fields.items():
        if isinstance(value, Tensor):
            if value.numel() == 1:
                logs[key] = float(value.detach())
            elif value.dim() == 1 and value.is_floating_point():
                logs[key] = float(value.detach().mean())
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            logs[key] = float(value)
    return logs


def loss_of(out: Any) -> Tensor:
    """The scalar loss of a step's output; TypeError when there is none."""
    loss = out if isinstance(out, Tensor) else getattr(out, "loss", None)
    if not isinstance(loss, Tensor) or loss.numel() != 1:
        raise TypeError(
            "step_fn must return a scalar tensor or a NamedTuple with a scalar .loss, got "
            f"{type(out).__name__}"
        )
    return loss


def nonfinite_loss(loss: Tensor, where: str) -> FloatingPointError:
    """The error raised for a non-finite loss, with what to try."""
    return FloatingPointError(
        f"loss is {float(loss.detach())} {where}; lower the learning rate or the sampler step "
        "size, add l2_reg, or clip gradients (grad_clip)"
    )
