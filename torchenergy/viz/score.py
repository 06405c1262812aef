"""The score field ``−∇E(x)`` of a 2-D energy as arrows (quiver) or streamlines.

Example:
    >>> ax = plot_score_field(lambda x: 0.5 * (x ** 2).sum(-1), n=8)
    >>> ax.get_title()
    'score field −∇E(x)'
"""

from __future__ import annotations

from typing import Any

import numpy as np

from torchenergy.types import EnergyFn
from torchenergy.viz.grid import score_grid
from torchenergy.viz.landscape import new_axes

__all__ = ["plot_score_field"]


def plot_score_field(
    energy_fn: EnergyFn,
    ax: Any = None,
    *,
    xlim: Any = (-4, 4),
    ylim: Any = (-4, 4),
    n: int = 25,
    kind: str = "quiver",
) -> Any:
    """Draw ``−∇E`` on an ``n × n`` grid; arrows are normalised, colour shows the magnitude.

    Args:
        kind: ``"quiver"`` (arrows) or ``"stream"`` (streamlines).
    """
    if kind not in ("quiver", "stream"):
        raise ValueError(f"kind must be 'quiver' or 'stream', got {kind!r}")
    ax = new_axes() if ax is None else ax
    xs, ys, u, v = score_grid(energy_fn, xlim, ylim, n)
    mag = np.hypot(u, v)
    if kind == "quiver":
        scale = np.where(mag > 0, mag, 1.0)
        ax.quiver(
            xs,
            ys,
            u / scale,
            v / scale,
            np.log1p(mag),
            cmap="viridis",
            pivot="mid",
            scale=1.3 * n,
            scale_units="width",
            width=0.004,
            headwidth=4,
        )
    else:
        ax.streamplot(xs, ys, u, v, color=np.log1p(mag), cmap="viridis", density=1.2)
    ax.set_xlim(xs[0], xs[-1])
    ax.set_ylim(ys[0], ys[-1])
    ax.set_aspect("equal")
    ax.set_title("score field −∇E(x)")
    return ax
