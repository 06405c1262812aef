"""Training animations for image models: one image grid per frame (e.g. replay-buffer snapshots).

Example:
    >>> import tempfile, os, torch
    >>> frames = [(s, torch.rand(4, 1, 8, 8)) for s in (0, 10)]
    >>> p = save_image_animation(frames, os.path.join(tempfile.mkdtemp(), "a.gif"))
    >>> p.suffix
    '.gif'
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch import Tensor

from torchenergy._checks import check_positive_int
from torchenergy.viz.images import make_grid
from torchenergy.viz.landscape import new_axes

__all__ = ["save_image_animation"]


def save_image_animation(
    frames: Sequence[tuple[int, Tensor | np.ndarray]],
    path: str | os.PathLike[str],
    *,
    nrow: int | None = None,
    value_range: tuple[float, float] = (-1.0, 1.0),
    fps: int = 4,
    title: str = "samples",
) -> Path:
    """Write a GIF with one :func:`~torchenergy.viz.make_grid` of images (C, [1,] H, W) per frame.

    Args:
        frames: ``(step, images)`` pairs, e.g. :func:`~torchenergy.train.fit_image_ebm`'s
            ``snapshots``.
        path: output ``.gif``.
        nrow: images per row. value_range: pixel range mapped to black..white. fps: speed.
    """
    from matplotlib.animation import FuncAnimation, PillowWriter

    if not frames:
        raise ValueError("no frames to animate")
    check_positive_int("fps", fps)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tiles = [make_grid(im, nrow, value_range=value_range) for _, im in frames]
    ax = new_axes(1, size=4.0)
    fig = ax.figure
    img = ax.imshow(tiles[0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    t = ax.set_title(f"{title}, step {frames[0][0]}")

    def update(i: int) -> list:
        img.set_data(tiles[i])
        t.set_text(f"{title}, step {frames[i][0]}")
        return [img, t]

    FuncAnimation(fig, update, frames=len(tiles), blit=False).save(
        path, writer=PillowWriter(fps=fps), dpi=80
    )
    return path
