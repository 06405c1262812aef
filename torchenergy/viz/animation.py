"""Training animations: samples over data (left) and the model density (right), frame by frame.

Like the two-moons contrastive-divergence animations in the seeds: the samples start scattered and
the density starts flat, and both settle on the data as training proceeds. Frames are collected
during training (for example with ``EveryN(k, snapshot_frame(...))``) and written as a GIF with
matplotlib's ``PillowWriter``.

Example:
    >>> import tempfile, os, torch
    >>> e = lambda x: 0.5 * (x ** 2).sum(-1)
    >>> f = snapshot_frame(e, torch.randn(50, 2), n=20)
    >>> path = os.path.join(tempfile.mkdtemp(), "a.gif")
    >>> _ = save_training_animation([(0, f), (1, f)], path, data=torch.randn(50, 2))
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from torch import Tensor

from torchenergy._checks import check_positive_int
from torchenergy.types import EnergyFn
from torchenergy.viz.grid import check_limits, energy_grid
from torchenergy.viz.landscape import new_axes, to_numpy_2d

__all__ = ["Frame", "save_training_animation", "snapshot_frame"]


class Frame(NamedTuple):
    """One animation frame: the log-density grid (n, n) and the current samples (C, 2)."""

    log_density: np.ndarray
    samples: np.ndarray
    xlim: tuple[float, float]
    ylim: tuple[float, float]


def snapshot_frame(
    energy_fn: EnergyFn,
    samples: Tensor | np.ndarray,
    *,
    xlim: Any = (-4, 4),
    ylim: Any = (-4, 4),
    n: int = 100,
) -> Frame:
    """Capture the current density (normalised on the box) and samples as a :class:`Frame`."""
    g = energy_grid(energy_fn, xlim, ylim, n)
    return Frame(
        g.log_density,
        to_numpy_2d(samples, "samples").copy(),
        check_limits("xlim", xlim),
        check_limits("ylim", ylim),
    )


def save_training_animation(
    frames: Sequence[tuple[int, Frame]],
    path: str | os.PathLike[str],
    *,
    data: Tensor | np.ndarray | None = None,
    fps: int = 6,
    max_points: int = 1000,
) -> Path:
    """Write a GIF: per frame, samples over data (left) and density heat map (right).

    Args:
        frames: ``(step, Frame)`` pairs, e.g. ``EveryN.history``.
        path: output ``.gif`` file.
        data: training data drawn in grey under the samples.
        fps: frames per second.

    Returns:
        The path written.
    """
    from matplotlib.animation import FuncAnimation, PillowWriter

    if not frames:
        raise ValueError("no frames to animate")
    check_positive_int("fps", fps)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    axes = new_axes(2, size=3.6)
    fig = axes[0].figure
    left, right = axes
    d = to_numpy_2d(data, "data")[:max_points] if data is not None else None
    step0, f0 = frames[0]
    extent = (*f0.xlim, *f0.ylim)
    if d is not None:
        left.scatter(d[:, 0], d[:, 1], s=3, c="0.65", alpha=0.5, linewidths=0)
    scat = left.scatter(
        f0.samples[:max_points, 0], f0.samples[:max_points, 1], s=3, c="tab:orange", linewidths=0
    )
    left.set_xlim(*f0.xlim)
    left.set_ylim(*f0.ylim)
    left.set_aspect("equal")
    left.set_title("samples over data")
    img = right.imshow(
        np.exp(f0.log_density),
        origin="lower",
        extent=extent,
        cmap="magma",
        interpolation="bilinear",
    )
    right.set_title("model density")
    right.set_aspect("equal")
    suptitle = fig.suptitle(f"step {step0}")

    def update(i: int) -> list[Any]:
        step, f = frames[i]
        scat.set_offsets(f.samples[:max_points])
        dens = np.exp(f.log_density)
        img.set_data(dens)
        img.set_clim(0.0, float(dens.max()) or 1.0)
        suptitle.set_text(f"step {step}")
        return [scat, img, suptitle]

    anim = FuncAnimation(fig, update, frames=len(frames), blit=False)
    anim.save(path, writer=PillowWriter(fps=fps), dpi=80)
    return path
