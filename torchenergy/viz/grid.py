"""Evaluate a 2-D energy on a regular grid: energies, normalised log-densities, scores.

``log p(x) = −E(x) − log Z`` with ``log Z ≈ logsumexp(−E) + log(cell area)`` (quadrature on the
grid), so the density heat maps are real, normalised densities of the model restricted to the box.

Example:
    >>> g = energy_grid(lambda x: 0.5 * (x ** 2).sum(-1), (-4, 4), (-4, 4), n=101)
    >>> round(float(np.exp(g.log_density).sum() * g.cell_area), 3)
    1.0
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from torchenergy._checks import check_positive_int
from torchenergy.types import EnergyFn

__all__ = ["Grid", "check_limits", "energy_grid", "model_dtype_device", "score_grid"]


class Grid(NamedTuple):
    """A 2-D grid with the energy on it (NumPy arrays for plotting).

    Attributes:
        xs: (n,) x coordinates; ys: (n,) y coordinates.
        energy: (n, n) energies, ``energy[i, j] = E(xs[j], ys[i])``.
        log_density: (n, n) normalised log-density on the box.
        cell_area: area of one grid cell.
    """

    xs: np.ndarray
    ys: np.ndarray
    energy: np.ndarray
    log_density: np.ndarray
    cell_area: float


def check_limits(name: str, lim: Any) -> tuple[float, float]:
    """Validate an axis range ``(low, high)`` with ``low < high``."""
    try:
        lo, hi = (float(v) for v in lim)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a pair (low, high), got {lim!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"{name} must satisfy low < high (finite), got {lim!r}")
    return lo, hi


def model_dtype_device(energy_fn: EnergyFn) -> tuple[torch.dtype, torch.device]:
    """The dtype and device of the first parameter of ``energy_fn`` (float32 on CPU if none)."""
    params = getattr(energy_fn, "parameters", None)
    if callable(params):
        for p in params():
            return p.dtype, p.device
    return torch.get_default_dtype(), torch.device("cpu")


def _points(xlim: Any, ylim: Any, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    check_positive_int("n", n)
    x0, x1 = check_limits("xlim", xlim)
    y0, y1 = check_limits("ylim", ylim)
    xs, ys = np.linspace(x0, x1, n), np.linspace(y0, y1, n)
    xx, yy = np.meshgrid(xs, ys)
    return xs, ys, np.stack([xx.ravel(), yy.ravel()], axis=1)


@torch.no_grad()
def _eval_energy(energy_fn: EnergyFn, pts: np.ndarray, chunk: int = 16384) -> np.ndarray:
    dtype, device = model_dtype_device(energy_fn)
    x = torch.as_tensor(pts, dtype=dtype, device=device)
    out = [energy_fn(x[i : i + chunk]).detach().double().cpu() for i in range(0, len(x), chunk)]
    return torch.cat(out).numpy()


def energy_grid(
    energy_fn: EnergyFn, xlim: Any = (-4, 4), ylim: Any = (-4, 4), n: int = 200
) -> Grid:
    """Energies and normalised log-densities of a 2-D energy on an ``n × n`` grid.

    Args:
        energy_fn: ``(C, 2) -> (C,)``.
        xlim, ylim: the box.
        n: points per axis.
    """
    xs, ys, pts = _points(xlim, ylim, n)
    e = _eval_energy(energy_fn, pts).reshape(n, n)
    area = float((xs[1] - xs[0]) * (ys[1] - ys[0])) if n > 1 else 1.0
    finite = np.isfinite(e)
    neg = np.where(finite, -e, -np.inf)
    m = neg[finite].max() if finite.any() else 0.0
    log_z = m + np.log(np.exp(neg - m).sum() * area) if finite.any() else np.inf
    return Grid(xs, ys, e, neg - log_z, area)


def score_grid(
    energy_fn: EnergyFn, xlim: Any = (-4, 4), ylim: Any = (-4, 4), n: int = 25
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The score ``−∇E`` on an ``n × n`` grid: ``(xs, ys, u, v)`` with u, v of shape (n, n)."""
    from torchenergy.energies import energy_and_grad

    xs, ys, pts = _points(xlim, ylim, n)
    dtype, device = model_dtype_device(energy_fn)
    x: Tensor = torch.as_tensor(pts, dtype=dtype, device=device)
    _, grad = energy_and_grad(energy_fn, x)
    s = (-grad).double().cpu().numpy()
    return xs, ys, s[:, 0].reshape(n, n), s[:, 1].reshape(n, n)
