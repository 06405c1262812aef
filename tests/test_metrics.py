"""Metrics: MMD (unbiased, exact against a loop), energy distance and sliced W against scipy /
closed forms, grid log Z of Gaussians against the closed form."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from torchenergy.metrics import (
    energy_distance,
    grid_log_partition,
    grid_nll,
    median_bandwidth,
    mmd2,
    sliced_wasserstein,
)


def _g(seed):
    return torch.Generator().manual_seed(seed)


def _naive_mmd2(x, y, h):
    k = lambda a, b: math.exp(-float(((a - b) ** 2).sum()) / (2 * h * h))  # noqa: E731
    n, m = len(x), len(y)
    sxx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    syy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    sxy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return sxx + syy - 2 * sxy


def test_mmd_matches_definition():
    x = torch.randn(7, 2, generator=_g(0), dtype=torch.float64)
    y = torch.randn(5, 2, generator=_g(1), dtype=torch.float64) + 0.3
    assert abs(float(mmd2(x, y, bandwidth=0.8)) - _naive_mmd2(x, y, 0.8)) < 1e-12
    z = torch.cat([x, y])
    d = torch.cdist(z, z)
    off = d[~torch.eye(12, dtype=torch.bool)]
    assert float(median_bandwidth(x, y)) == pytest.approx(float(off.median()))
    assert float(mmd2(x.reshape(7, 1, 2), y.reshape(5, 1, 2), bandwidth=0.8)) == pytest.approx(
        float(mmd2(x, y, bandwidth=0.8))
    )


def test_mmd_unbiased_zero_for_same_law_and_positive_for_shift():
    g = _g(2)
    same, shifted = [], []
    for _ in range(40):
        x = torch.randn(120, 2, generator=g, dtype=torch.float64)
        y = torch.randn(120, 2, generator=g, dtype=torch.float64)
        same.append(float(mmd2(x, y, bandwidth=1.0)))
        shifted.append(float(mmd2(x, y + torch.tensor([0.5, 0.0], dtype=torch.float64))))
    same_t, shift_t = torch.tensor(same), torch.tensor(shifted)
    se = float(same_t.std()) / math.sqrt(len(same))
    assert abs(float(same_t.mean())) <= 4 * se
    assert float(shift_t.mean()) > 4 * float(shift_t.std()) / math.sqrt(len(shifted))
    assert float(shift_t.mean()) > 10 * abs(float(same_t.mean()))


def test_energy_distance_matches_scipy_1d():
    x = torch.randn(40, 1, generator=_g(3), dtype=torch.float64)
    y = torch.randn(25, 1, generator=_g(4), dtype=torch.float64) * 2 + 1
    ref = stats.energy_distance(x.squeeze(1).numpy(), y.squeeze(1).numpy())
    assert float(energy_distance(x, y)) == pytest.approx(ref, rel=1e-12)


def test_energy_distance_closed_form_point_masses():
    a, b = torch.tensor([[0.0, 0.0]]), torch.tensor([[3.0, 4.0]])
    assert float(energy_distance(a, b)) == pytest.approx(math.sqrt(2 * 5.0))
    assert float(energy_distance(a, a)) == 0.0


def test_sliced_wasserstein_1d_matches_scipy_unequal_sizes():
    x = torch.randn(13, 1, generator=_g(5), dtype=torch.float64)
    y = torch.randn(8, 1, generator=_g(6), dtype=torch.float64) + 0.7
    ref = stats.wasserstein_distance(x.squeeze(1).numpy(), y.squeeze(1).numpy())
    got = sliced_wasserstein(x, y, p=1.0, n_projections=3, generator=_g(0))
    assert float(got) == pytest.approx(ref, rel=1e-10)
    same = sliced_wasserstein(x, x[:10], p=1.0, n_projections=1, generator=_g(0))
    ref2 = stats.wasserstein_distance(x.squeeze(1).numpy(), x[:10].squeeze(1).numpy())
    assert float(same) == pytest.approx(ref2, rel=1e-10)


def test_sliced_wasserstein_translation_closed_form():
    # for y = x + s in 2-D, SW_2^2 = E_theta (theta . s)^2 = |s|^2 / 2; var of cos^2 is 1/8
    x = torch.randn(300, 2, generator=_g(7), dtype=torch.float64)
    s = torch.tensor([1.0, 2.0], dtype=torch.float64)
    p = 4000
    got = float(sliced_wasserstein(x, x + s, n_projections=p, generator=_g(8))) ** 2
    se = 5.0 * math.sqrt(1 / 8) / math.sqrt(p)
    assert abs(got - 5.0 / 2) <= 4 * se


def test_grid_log_z_gaussian_closed_form():
    cov = torch.tensor([[1.0, 0.6], [0.6, 0.8]], dtype=torch.float64)
    prec = torch.linalg.inv(cov)
    mu = torch.tensor([0.5, -1.0], dtype=torch.float64)

    def e(x):
        d = x - mu
        return 0.5 * ((d @ prec) * d).sum(-1) + 3.0  # constant offset: log Z shifts by -3

    out = grid_log_partition(e, bounds=8.0, resolution=300, dtype=torch.float64)
    truth = math.log(2 * math.pi) + 0.5 * math.log(float(torch.linalg.det(cov))) - 3.0
    assert abs(float(out.log_z) - truth) < 1e-8
    assert float(out.edge_mass) < 1e-10
    assert out.log_density.shape == (300, 300)
    cell = (16 / 300) ** 2
    assert float(out.log_density.exp().sum() * cell) == pytest.approx(1.0, abs=1e-10)
    # held-out NLL against the exact Gaussian log-density
    x = (
        mu
        + torch.randn(500, 2, generator=_g(9), dtype=torch.float64) @ torch.linalg.cholesky(cov).T
    )
    exact = -torch.distributions.MultivariateNormal(mu, cov).log_prob(x).mean()
    assert float(grid_nll(e, x, bounds=8.0, resolution=300)) == pytest.approx(
        float(exact), abs=1e-8
    )


def test_grid_rectangular_bounds_and_1d():
    out = grid_log_partition(
        lambda x: 0.5 * (x[:, 0] - 3.0) ** 2,
        bounds=[(-5.0, 11.0)],
        dim=1,
        resolution=400,
        dtype=torch.float64,
    )
    assert float(out.log_z) == pytest.approx(0.5 * math.log(2 * math.pi), abs=1e-8)


def test_grid_detects_uncovered_mass():
    with pytest.raises(ValueError, match="does not cover the mass"):
        grid_log_partition(lambda x: 0.5 * (x**2).sum(-1) / 4.0, bounds=3.0, resolution=100)
    with pytest.raises(ValueError, match="bounds"):
        grid_log_partition(lambda x: x.sum(-1), bounds=[(1.0, 0.0), (0.0, 1.0)])
