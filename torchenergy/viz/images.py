"""Image grids: tile a batch of images (C, H, W), (C, 1, H, W) or (C, 3, H, W) into one picture.

Example:
    >>> tile = make_grid(torch.zeros(6, 1, 4, 4), nrow=3, pad=1)
    >>> tile.shape
    (11, 16)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from torchenergy._checks import check_positive_int
from torchenergy.viz.landscape import new_axes

__all__ = ["make_grid", "plot_image_grid"]


def make_grid(
    images: Tensor | np.ndarray,
    nrow: int | None = None,
    *,
    pad: int = 1,
    value_range: tuple[float, float] | None = None,
) -> np.ndarray:
    """Tile images into an array of shape (rows·(H+pad)+pad, nrow·(W+pad)+pad[, 3]) in [0, 1].

    Args:
        images: (C, H, W), (C, 1, H, W) or (C, 3, H, W).
        nrow: images per row (default ceil(sqrt(C))).
        pad: pixels between tiles.
        value_range: map this range to [0, 1] (default: the batch's min and max).
    """
    x = torch.as_tensor(images).detach().cpu().double()
    if x.dim() == 3:
        x = x[:, None]
    if x.dim() != 4 or x.shape[1] not in (1, 3) or x.shape[0] == 0:
        raise ValueError(
            f"images must be (C, H, W), (C, 1, H, W) or (C, 3, H, W), got {tuple(x.shape)}"
        )
    c, ch, h, w = x.shape
    nrow = nrow or math.ceil(math.sqrt(c))
    check_positive_int("nrow", nrow)
    lo, hi = value_range if value_range is not None else (float(x.min()), float(x.max()))
    x = ((x - lo) / (hi - lo if hi > lo else 1.0)).clamp(0, 1)
    rows = math.ceil(c / nrow)
    out = np.ones((ch, rows * (h + pad) + pad, nrow * (w + pad) + pad))
    for i in range(c):
        r, col = divmod(i, nrow)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        out[:, top : top + h, left : left + w] = x[i].numpy()
    return out[0] if ch == 1 else out.transpose(1, 2, 0)


def plot_image_grid(
    images: Tensor | np.ndarray,
    ax: Any = None,
    *,
    nrow: int | None = None,
    title: str = "samples",
    value_range: tuple[float, float] | None = None,
) -> Any:
    """Show :func:`make_grid` of ``images`` in grey (one channel) or colour (three)."""
    ax = new_axes() if ax is None else ax
    tile = make_grid(images, nrow, value_range=value_range)
    ax.imshow(
        tile, cmap="gray" if tile.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest"
    )
    ax.set_axis_off()
    ax.set_title(title)
    return ax
