"""Sample-quality metrics and exact likelihoods for low-dimensional models.

* :func:`mmd2` - unbiased squared maximum mean discrepancy with an RBF kernel whose bandwidth is
  the median pairwise distance of the pooled sample (median heuristic).
* :func:`sliced_wasserstein` - Monte Carlo sliced p-Wasserstein distance (random unit directions,
  exact 1-D transport by sorting / quantiles).
* :func:`energy_distance` - Székely's energy distance ``sqrt(2 E|X-Y| - E|X-X'| - E|Y-Y'|)``
  (V-statistic, the same value as ``scipy.stats.energy_distance`` in 1-D).
* :func:`grid_log_partition` / :func:`grid_nll` - for 2-D (generally small-D) energies, ``log Z``
  by midpoint quadrature on a grid (log-sum-exp of ``-E`` plus the log cell volume) with a check
  that the grid covers the mass, so toy results are real held-out negative log-likelihoods
  ``NLL(x) = E(x) + log Z`` in nats.

All functions flatten the event dimensions: inputs are (N, *D) and (M, *D).

References: Gretton et al. (2012), "A kernel two-sample test"; Bonneel et al. (2015), "Sliced and
Radon Wasserstein barycenters of measures"; Székely & Rizzo (2013), "Energy statistics".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from torchenergy._checks import check_positive, check_positive_int, check_tensor
from torchenergy.metrics_images import frechet_distance as frechet_distance
from torchenergy.metrics_images import kernel_distance as kernel_distance
from torchenergy.types import EnergyFn, Generator

__all__ = [
    "GridLogZ",
    "energy_distance",
    "grid_log_partition",
    "grid_nll",
    "median_bandwidth",
    "mmd2",
    "sliced_wasserstein",
]


def _flat_pair(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    check_tensor("x", x, min_dim=1, floating=True)
    check_tensor("y", y, min_dim=1, floating=True)
    xf = x.reshape(x.shape[0], -1)
    yf = y.reshape(y.shape[0], -1).to(xf)
    if xf.shape[1] != yf.shape[1]:
        raise ValueError(
            f"x and y must share the event shape, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    return xf, yf


def median_bandwidth(x: Tensor, y: Tensor) -> Tensor:
    """Median pairwise Euclidean distance of the pooled sample (off-diagonal pairs), a scalar.

    Shapes: ``x`` (N, *D), ``y`` (M, *D).
    """
    xf, yf = _flat_pair(x, y)
    z = torch.cat([xf, yf])
    d = torch.cdist(z, z)
    iu = torch.triu_indices(z.shape[0], z.shape[0], offset=1, device=z.device)
    return d[iu[0], iu[1]].median()


def mmd2(x: Tensor, y: Tensor, *, bandwidth: float | Tensor | None = None) -> Tensor:
    """Unbiased squared MMD with ``k(a, b) = exp(-||a - b||^2 / (2 h^2))``.

    ``MMD^2 = mean_{i != j} k(x_i, x_j) + mean_{i != j} k(y_i, y_j) - 2 mean_{i, j} k(x_i, y_j)``;
    its expectation is 0 when x and y come from the same law (it can be slightly negative).

    Shapes: ``x`` (N, *D), ``y`` (M, *D), N, M >= 2; returns a scalar.

    Args:
        x, y: the two samples.
        bandwidth: ``h``; the median pairwise distance of the pooled sample when None.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x, y = torch.randn(200, 2, generator=g), torch.randn(200, 2, generator=g) + 3
        >>> bool(mmd2(x, y) > 0.1)
        True
    """
    xf, yf = _flat_pair(x, y)
    n, m = xf.shape[0], yf.shape[0]
    if n < 2 or m < 2:
        raise ValueError(f"mmd2 needs at least 2 points in each sample, got N={n}, M={m}")
    h = (
        median_bandwidth(xf, yf)
        if bandwidth is None
        else torch.as_tensor(bandwidth, dtype=xf.dtype, device=xf.device)
    )
    check_positive("bandwidth", h)
    scale = 2.0 * h**2
    kxx = torch.exp(-torch.cdist(xf, xf).pow(2) / scale)
    kyy = torch.exp(-torch.cdist(yf, yf).pow(2) / scale)
    kxy = torch.exp(-torch.cdist(xf, yf).pow(2) / scale)
    sxx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    syy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return sxx + syy - 2.0 * kxy.mean()


def sliced_wasserstein(
    x: Tensor,
    y: Tensor,
    *,
    n_projections: int = 256,
    p: float = 2.0,
    generator: Generator = None,
) -> Tensor:
    """Sliced p-Wasserstein distance ``(mean_theta W_p^p(theta.x, theta.y))^(1/p)``.

    Directions are uniform on the unit sphere; each 1-D distance is computed exactly from the
    empirical quantile functions (on the merged grid of quantile levels when N != M).

    Shapes: ``x`` (N, *D), ``y`` (M, *D); returns a scalar.

    Example:
        >>> x = torch.zeros(10, 1)
        >>> float(sliced_wasserstein(x, x + 2.0, n_projections=4))
        2.0
    """
    xf, yf = _flat_pair(x, y)
    check_positive_int("n_projections", n_projections)
    check_positive("p", p)
    d = xf.shape[1]
    theta = torch.randn(d, n_projections, generator=generator, device=xf.device, dtype=xf.dtype)
    theta = theta / theta.norm(dim=0, keepdim=True)
    px = torch.sort(xf @ theta, dim=0).values  # (N, P)
    py = torch.sort(yf @ theta, dim=0).values  # (M, P)
    n, m = px.shape[0], py.shape[0]
    if n == m:
        cost = (px - py).abs().pow(p).mean(0)
    else:
        kw = {"device": xf.device, "dtype": torch.float64}
        levels = torch.cat([torch.arange(1, n + 1, **kw) / n, torch.arange(1, m + 1, **kw) / m])
        levels = torch.unique(levels.clamp(max=1.0))  # sorted breakpoints of both step functions
        widths = torch.diff(levels, prepend=levels.new_zeros(1)).to(xf.dtype)
        ix = torch.clamp(torch.ceil(levels * n - 1e-9).long() - 1, 0, n - 1)
        iy = torch.clamp(torch.ceil(levels * m - 1e-9).long() - 1, 0, m - 1)
        cost = ((px[ix] - py[iy]).abs().pow(p) * widths[:, None]).sum(0)
    return cost.mean().pow(1.0 / p)


def energy_distance(x: Tensor, y: Tensor) -> Tensor:
    """Energy distance ``sqrt(2 E||X - Y|| - E||X - X'|| - E||Y - Y'||)`` (V-statistic).

    In 1-D this equals ``scipy.stats.energy_distance(x, y)``. Shapes: (N, *D), (M, *D) -> scalar.

    Example:
        >>> round(float(energy_distance(torch.tensor([[0.0]]), torch.tensor([[1.0]]))), 4)
        1.4142
    """
    xf, yf = _flat_pair(x, y)
    dxy = torch.cdist(xf, yf).mean()
    dxx = torch.cdist(xf, xf).mean()
    dyy = torch.cdist(yf, yf).mean()
    return (2.0 * dxy - dxx - dyy).clamp_min(0.0).sqrt()


class GridLogZ(NamedTuple):
    """Result of :func:`grid_log_partition`.

    Attributes:
        log_z: ``log sum exp(-E(cell centres)) + log(cell volume)`` (scalar, float64).
        edge_mass: fraction of the grid's probability mass in the outermost ring of cells.
        log_density: ``-E - log Z`` on the grid, shape (resolution,) * D (float64), for plots.
        axes: the cell-centre coordinates of each dimension, a tuple of (resolution,) tensors.
    """

    log_z: Tensor
    edge_mass: Tensor
    log_density: Tensor
    axes: tuple[Tensor, ...]


def _bounds(bounds: float | Sequence, dim: int) -> list[tuple[float, float]]:
    if isinstance(bounds, (int, float)) and not isinstance(bounds, bool):
        check_positive("bounds", float(bounds))
        return [(-float(bounds), float(bounds))] * dim
    out = [tuple(float(v) for v in b) for b in bounds]  # type: ignore[union-attr]
    if len(out) != dim or any(len(b) != 2 or not b[0] < b[1] for b in out):
        raise ValueError(
            f"bounds must be a half-width > 0 or {dim} pairs (low, high) with low < high, "
            f"got {bounds!r}"
        )
    return out  # type: ignore[return-value]


@torch.no_grad()
def grid_log_partition(
    energy_fn: EnergyFn,
    *,
    bounds: float | Sequence[tuple[float, float]] = 6.0,
    resolution: int = 400,
    dim: int = 2,
    max_edge_mass: float = 1e-3,
    chunk: int = 65536,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> GridLogZ:
    """``log Z = log int exp(-E(x)) dx`` by midpoint quadrature on a regular grid (small D).

    The box is split into ``resolution ** dim`` equal cells; the energy is evaluated at the cell
    centres in chunks (``dtype``/``device`` of the evaluation) and the sum is taken in float64.
    If more than ``max_edge_mass`` of the mass lies in the outermost ring of cells, the box cuts
    off probability mass and a ``ValueError`` asks for wider bounds.

    Args:
        energy_fn: energy ``(C, dim) -> (C,)``.
        bounds: half-width ``L`` of the box ``[-L, L]^dim`` or ``dim`` pairs ``(low, high)``.
        resolution: cells per axis (>= 8).
        dim: event dimension (the grid has ``resolution ** dim`` points; keep it small).
        max_edge_mass: tolerated mass fraction on the boundary ring.
        chunk: points per energy evaluation.
        device, dtype: where and in which dtype to evaluate the energy (default: CPU, default dtype).

    Returns:
        :class:`GridLogZ`.

    Example:
        >>> out = grid_log_partition(lambda x: 0.5 * (x ** 2).sum(-1), bounds=8.0, resolution=200)
        >>> round(float(out.log_z), 6) == round(math.log(2 * math.pi), 6)
        True
    """
    check_positive_int("resolution", resolution)
    if resolution < 8:
        raise ValueError(f"resolution must be >= 8, got {resolution}")
    check_positive_int("dim", dim)
    check_positive("max_edge_mass", max_edge_mass)
    check_positive_int("chunk", chunk)
    if resolution**dim > 50_000_000:
        raise ValueError(
            f"resolution ** dim = {resolution}**{dim} grid points is too many; grid quadrature "
            "is for small D (use estimate.AIS for larger models)"
        )
    box = _bounds(bounds, dim)
    dtype = dtype or torch.get_default_dtype()
    axes = tuple(
        torch.linspace(lo, hi, resolution + 1, dtype=torch.float64)[:-1]
        + (hi - lo) / (2 * resolution)
        for lo, hi in box
    )
    log_cell = sum(math.log((hi - lo) / resolution) for lo, hi in box)
    mesh = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, dim)
    neg_e = torch.empty(mesh.shape[0], dtype=torch.float64)
    for start in range(0, mesh.shape[0], chunk):
        pts = mesh[start : start + chunk].to(device=device, dtype=dtype)
        e = energy_fn(pts)
        if e.shape != pts.shape[:1]:
            raise ValueError(
                f"energy_fn must return shape (C,) = ({pts.shape[0]},), got {tuple(e.shape)}"
            )
        neg_e[start : start + chunk] = -e.detach().to("cpu", torch.float64)
    if torch.isnan(neg_e).any():
        raise ValueError(
            f"energy_fn returned {int(torch.isnan(neg_e).sum())} NaN values on the grid"
        )
    lse = torch.logsumexp(neg_e, 0)
    log_z = lse + log_cell
    logp = (neg_e - lse).reshape((resolution,) * dim)
    inner = logp[(slice(1, -1),) * dim]
    edge_mass = (1.0 - torch.exp(torch.logsumexp(inner.reshape(-1), 0))).clamp_min(0.0)
    if float(edge_mass) > max_edge_mass:
        raise ValueError(
            f"the grid {box} does not cover the mass: {float(edge_mass):.3g} of it lies on the "
            f"boundary cells (max_edge_mass={max_edge_mass}); widen bounds"
        )
    return GridLogZ(log_z, edge_mass, logp - log_cell, axes)


@torch.no_grad()
def grid_nll(
    energy_fn: EnergyFn,
    x: Tensor,
    *,
    bounds: float | Sequence[tuple[float, float]] = 6.0,
    resolution: int = 400,
    max_edge_mass: float = 1e-3,
    log_z: Tensor | None = None,
) -> Tensor:
    """Mean held-out negative log-likelihood ``mean(E(x) + log Z)`` in nats (``log Z`` on a grid).

    Shapes: ``x`` (N, dim) with small dim; returns a float64 scalar. Points outside the box are
    scored with the same formula (their energy is still defined); ``log Z`` comes from
    :func:`grid_log_partition` unless given.

    Example:
        >>> x = torch.zeros(3, 2)
        >>> nll = grid_nll(lambda y: 0.5 * (y ** 2).sum(-1), x, bounds=8.0, resolution=200)
        >>> round(float(nll), 4) == round(math.log(2 * math.pi), 4)
        True
    """
    check_tensor("x", x, min_dim=2, floating=True)
    if log_z is None:
        log_z = grid_log_partition(
            energy_fn,
            bounds=bounds,
            resolution=resolution,
            dim=x.shape[1],
            max_edge_mass=max_edge_mass,
            device=x.device,
            dtype=x.dtype,
        ).log_z
    e = energy_fn(x).detach().to("cpu", torch.float64)
    if not bool(torch.isfinite(e).all()):
        raise ValueError(
            f"energy_fn returned {int((~torch.isfinite(e)).sum())} non-finite test energies"
        )
    return e.mean() + log_z
