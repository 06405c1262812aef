"""Training curves from logged rows (a CSV written by ``CSVLogger`` or a list of dicts).

Example:
    >>> rows = [{"step": s, "loss": 1.0 / s} for s in range(1, 50)]
    >>> axes = plot_training_curves(rows, keys=["loss"])
    >>> axes[0].get_title()
    'loss'
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from torchenergy.viz.landscape import new_axes

__all__ = ["plot_training_curves", "read_log"]


def read_log(path: str | os.PathLike[str]) -> list[dict[str, float]]:
    """Rows of a CSV log as dicts of floats."""
    with open(Path(path), newline="") as f:
        return [
            {k: float(v) for k, v in row.items() if v not in ("", None)}
            for row in csv.DictReader(f)
        ]


def _smooth(y: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(y) < window:
        return y
    kernel = np.ones(window) / window
    head = np.cumsum(y[: window - 1]) / np.arange(1, window)
    return np.concatenate([head, np.convolve(y, kernel, mode="valid")])


def plot_training_curves(
    rows: Sequence[dict[str, float]] | str | os.PathLike[str],
    keys: Sequence[str] | None = None,
    *,
    smooth: int = 1,
) -> Any:
    """One panel per logged quantity against ``step`` (raw in light colour, moving average on top).

    Args:
        rows: logged rows or the path of a CSV log.
        keys: quantities to plot (default: every column except ``step``).
        smooth: moving-average window.

    Returns:
        The array of axes.
    """
    if isinstance(rows, (str, os.PathLike)):
        rows = read_log(rows)
    if not rows:
        raise ValueError("no logged rows to plot")
    keys = list(keys) if keys is not None else [k for k in rows[0] if k != "step"]
    missing = [k for k in keys if k not in rows[0]]
    if missing:
        raise ValueError(f"keys {missing} are not in the log (it has {sorted(rows[0])})")
    axes = np.atleast_1d(new_axes(len(keys), size=3.2))
    steps = np.array([r.get("step", i + 1) for i, r in enumerate(rows)], dtype=float)
    for ax, key in zip(axes, keys):
        y = np.array([r.get(key, np.nan) for r in rows], dtype=float)
        ax.plot(steps, y, color="tab:blue", alpha=0.3 if smooth > 1 else 1.0, lw=0.8)
        if smooth > 1:
            ax.plot(steps, _smooth(y, smooth), color="tab:blue", lw=1.5)
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    return axes
