"""Energy landscapes of 2-D models: contour of E, density heat map, samples over data.

All functions draw into a matplotlib ``Axes`` (a new Agg figure when ``ax`` is None) and return
the axes; nothing touches pyplot's global state, so they work headless.

Example:
    >>> ax = plot_energy(lambda x: 0.5 * (x ** 2).sum(-1), n=20)
    >>> ax.get_title()
    'energy E(x)'
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import Tensor

from torchenergy.types import EnergyFn
from torchenergy.viz.grid import energy_grid

__all__ = ["new_axes", "plot_density", "plot_energy", "plot_samples", "to_numpy_2d"]


def new_axes(ncols: int = 1, size: float = 4.0) -> Any:
    """A headless (Agg) figure with ``ncols`` square axes; returns the axes (array if ncols > 1)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size * ncols, size), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols)
    return axes


def to_numpy_2d(points: Tensor | np.ndarray, name: str = "points") -> np.ndarray:
    """(C, 2) tensor or array -> float64 NumPy array; raises ValueError for other shapes."""
    a = points.detach().cpu().double().numpy() if isinstance(points, Tensor) else np.asarray(points)
    if a.ndim != 2 or a.shape[1] != 2:
        raise ValueError(f"{name} must have shape (C, 2), got {a.shape}")
    return a


def plot_energy(
    energy_fn: EnergyFn,
    ax: Any = None,
    *,
    xlim: Any = (-4, 4),
    ylim: Any = (-4, 4),
    n: int = 200,
    levels: int = 30,
    clip_quantile: float = 0.9,
) -> Any:
    """Filled contour of ``E(x)`` over a box (high energies clipped at a quantile for contrast)."""
    ax = new_axes() if ax is None else ax
    g = energy_grid(energy_fn, xlim, ylim, n)
    e = g.energy
    finite = e[np.isfinite(e)]
    hi = np.quantile(finite, clip_quantile) if finite.size else 1.0
    cs = ax.contourf(g.xs, g.ys, np.clip(e, None, hi), levels=levels, cmap="viridis")
    ax.contour(
        g.xs,
        g.ys,
        np.clip(e, None, hi),
        levels=10,
        colors="white",
        linewidths=0.4,
        alpha=0.6,
        linestyles="solid",
    )
    ax.figure.colorbar(cs, ax=ax, shrink=0.8)
    ax.set_title("energy E(x)")
    ax.set_aspect("equal")
    return ax


def plot_density(
    energy_fn: EnergyFn,
    ax: Any = None,
    *,
    xlim: Any = (-4, 4),
    ylim: Any = (-4, 4),
    n: int = 200,
    title: str = "density exp(−E)/Z",
) -> Any:
    """Heat map of the normalised density ``exp(−E(x))/Z`` (Z by quadrature on the box)."""
    ax = new_axes() if ax is None else ax
    g = energy_grid(energy_fn, xlim, ylim, n)
    ax.imshow(
        np.exp(g.log_density),
        origin="lower",
        extent=(g.xs[0], g.xs[-1], g.ys[0], g.ys[-1]),
        cmap="magma",
        interpolation="bilinear",
    )
    ax.set_title(title)
    ax.set_aspect("equal")
    return ax


def plot_samples(
    samples: Tensor | np.ndarray,
    data: Tensor | np.ndarray | None = None,
    ax: Any = None,
    *,
    xlim: Any = (-4, 4),
    ylim: Any = (-4, 4),
    title: str = "samples over data",
    max_points: int = 2000,
) -> Any:
    """Scatter of model samples (orange) over data points (grey)."""
    ax = new_axes() if ax is None else ax
    if data is not None:
        d = to_numpy_2d(data, "data")[:max_points]
        ax.scatter(d[:, 0], d[:, 1], s=4, c="0.6", alpha=0.5, label="data", linewidths=0)
    s = to_numpy_2d(samples, "samples")[:max_points]
    ax.scatter(s[:, 0], s[:, 1], s=4, c="tab:orange", alpha=0.8, label="samples", linewidths=0)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal")
    ax.set_title(title)
    ax.legend(loc="upper right", markerscale=3, fontsize=8)
    return ax
