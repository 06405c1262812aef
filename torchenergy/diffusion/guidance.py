"""Classifier-free guidance: one network, conditional and unconditional, mixed at sampling.

Training drops each label to the null label K with probability p (:func:`drop_labels`), so the
same network learns ``f(x, t, y)`` and ``f(x, t, ∅)``. At sampling the guided prediction is::

    f_w(x, t, y) = f(x, t, ∅) + w · (f(x, t, y) − f(x, t, ∅))

w = 0 is the unconditional model, w = 1 the conditional one, w > 1 sharpens towards the class.
Every prediction type is an affine function of the model output at fixed (x, t), so guiding
the raw output guides the velocity, score, noise and data alike.

Reference: Ho & Salimans (2021), "Classifier-free diffusion guidance".
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

__all__ = ["ClassifierFreeGuidance"]


class ClassifierFreeGuidance(nn.Module):
    """Wrap a conditional ``model(x, t, y)`` as the guided ``model_w(x, t, y)``.

    Shapes: x (C, *D), t (C,), y (C,) long -> (C, *D). w = 0 and w = 1 evaluate the network once.

    Args:
        model: conditional network whose label ``null_label`` means "no label".
        scale: guidance scale w (>= 0).
        null_label: the null label K.

    Example:
        >>> f = lambda x, t, y: x * y[:, None].to(x)
        >>> g = ClassifierFreeGuidance(f, 2.0, null_label=0)
        >>> g(torch.ones(1, 2), torch.zeros(1), torch.tensor([3])).tolist()  # 0 + 2 (3 - 0)
        [[6.0, 6.0]]
    """

    def __init__(self, model: Callable[..., Tensor], scale: float, null_label: int) -> None:
        super().__init__()
        if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale >= 0):
            raise ValueError(f"guidance scale must be a finite number >= 0, got {scale!r}")
        self.model = model
        self.scale = float(scale)
        self.null_label = int(null_label)

    def forward(self, x: Tensor, t: Tensor, y: Tensor) -> Tensor:
        null = torch.full_like(y, self.null_label)
        if self.scale == 0.0:
            return self.model(x, t, null)
        if self.scale == 1.0:
            return self.model(x, t, y)
        n = x.shape[0]
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device).expand(n)
        both = self.model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, null]))
        cond, uncond = both[:n], both[n:]
        return uncond + self.scale * (cond - uncond)
