"""Exponential moving average (EMA) of a model's weights.

Update rule, after each optimiser step t (t = 1, 2, ...):
``θ̄ ← d_t·θ̄ + (1 − d_t)·θ`` with ``d_t = min(decay, (1 + t)/(10 + t))`` when ``warmup`` is on
(so early averages are not dominated by the random initialisation), else ``d_t = decay``.
Floating-point buffers are averaged the same way; integer buffers are copied.

The averaged weights live in ``ema.module``, a frozen copy of the model: sample or evaluate with
it directly, or copy them into the model with :meth:`EMA.copy_to`.

Reference: Polyak & Juditsky (1992), "Acceleration of stochastic approximation by averaging".

Example:
    >>> net = torch.nn.Linear(2, 1)
    >>> ema = EMA(net, decay=0.9, warmup=False)
    >>> with torch.no_grad():
    ...     _ = net.weight.add_(1.0)
    >>> ema.update(net)
    >>> bool(torch.allclose(ema.module.weight, net.weight - 0.9))
    True
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from torchenergy._checks import check_probability

__all__ = ["EMA"]


class EMA:
    """EMA of an ``nn.Module``'s parameters and floating buffers.

    Args:
        model: the module being trained.
        decay: ``d`` in [0, 1); 0.999 is a common choice for long runs.
        warmup: use ``min(decay, (1 + t)/(10 + t))`` at update ``t``.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, *, warmup: bool = True) -> None:
        check_probability("decay", decay, open_right=True)
        self.decay = float(decay)
        self.warmup = bool(warmup)
        self.num_updates = 0
        self.module = copy.deepcopy(model)
        self.module.requires_grad_(False)
        self.module.eval()

    def current_decay(self) -> float:
        """The decay ``d_t`` the next :meth:`update` will use."""
        t = self.num_updates + 1
        return min(self.decay, (1 + t) / (10 + t)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold the current weights of ``model`` into the average."""
        d = self.current_decay()
        self.num_updates += 1
        ema_p = dict(self.module.named_parameters())
        for name, p in model.named_parameters():
            ema_p[name].lerp_(p.detach(), 1.0 - d)
        ema_b = dict(self.module.named_buffers())
        for name, b in model.named_buffers():
            if b.is_floating_point():
                ema_b[name].lerp_(b.detach(), 1.0 - d)
            else:
                ema_b[name].copy_(b)

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Overwrite ``model``'s weights with the averaged ones."""
        model.load_state_dict(self.module.state_dict())

    def state_dict(self) -> dict[str, Any]:
        """Averaged weights and counters (safe for checkpoints)."""
        return {
            "decay": self.decay,
            "warmup": self.warmup,
            "num_updates": self.num_updates,
            "module": self.module.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.decay = float(state["decay"])
        self.warmup = bool(state["warmup"])
        self.num_updates = int(state["num_updates"])
        self.module.load_state_dict(state["module"])

    def __repr__(self) -> str:
        return f"EMA(decay={self.decay}, warmup={self.warmup}, num_updates={self.num_updates})"
