"""Shared pieces of the diffusion tests: a 2-D Gaussian data law, MCSE checks, exact laws."""

from __future__ import annotations

import math

import pytest
import torch

MU = torch.tensor([1.0, -0.5], dtype=torch.float64)
SIGMA = torch.tensor([[1.0, 0.6], [0.6, 0.8]], dtype=torch.float64)
WRONG_SIGMA = 1.5 * SIGMA  # a deliberately wrong data law for power checks
INTERPOLANTS = ("linear", "cosine", "vp", "ve")


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny ops on a loaded 2-core machine are 10^4 times faster on one thread."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def interp(name: str):
    from torchenergy.diffusion import VEInterpolant, get_interpolant

    # VE with sigma_max large enough that N(0, sigma_max^2) is close to the t = 0 law
    return VEInterpolant(0.01, 20.0) if name == "ve" else get_interpolant(name)


def exact_start(path, n: int, seed: int) -> torch.Tensor:
    """n draws from the exact t = 0 marginal of the Gaussian path."""
    m, c = path.marginal(0.0)
    z = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return m + z @ torch.linalg.cholesky(c).T


def moment_errors(x: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor):
    """|sample moment − target| / standard error for the 2 means and 3 covariance entries.

    Standard errors of an iid sample from N(mean, cov): sqrt(Σ_ii/n) for means and
    sqrt((Σ_ii Σ_jj + Σ_ij²)/n) for covariance entries.
    """
    n = x.shape[0]
    m = x.mean(0)
    c = torch.cov(x.T)
    out = []
    for i in range(2):
        out.append(((m[i] - mean[i]).abs() / math.sqrt(cov[i, i] / n)).item())
    for i, j in ((0, 0), (0, 1), (1, 1)):
        se = math.sqrt((cov[i, i] * cov[j, j] + cov[i, j] ** 2) / n)
        out.append(((c[i, j] - cov[i, j]).abs() / se).item())
    return out


def moments_ok(x, mean, cov, *, z: float, slack_mean: float = 0.0, slack_cov: float = 0.0) -> bool:
    """All five moments within z·MCSE plus a (known) discretisation slack."""
    n = x.shape[0]
    m, c = x.mean(0), torch.cov(x.T)
    for i in range(2):
        if abs(m[i] - mean[i]) > z * math.sqrt(cov[i, i] / n) + slack_mean:
            return False
    for i, j in ((0, 0), (0, 1), (1, 1)):
        se = math.sqrt((cov[i, i] * cov[j, j] + cov[i, j] ** 2) / n)
        if abs(c[i, j] - cov[i, j]) > z * se + slack_cov:
            return False
    return True


def propagate(step, mean: torch.Tensor, cov: torch.Tensor):
    """Exact mean/cov after ``x' = step(x, z)``, affine in (x, z) with z ~ N(0, I) (D = 2)."""
    e = torch.eye(2, dtype=torch.float64)
    zero = torch.zeros(1, 2, dtype=torch.float64)
    b = step(zero, zero)[0]
    m_cols = torch.stack([step(e[j : j + 1], zero)[0] - b for j in range(2)], 1)
    n_cols = torch.stack([step(zero, e[j : j + 1])[0] - b for j in range(2)], 1)
    return m_cols @ mean + b, m_cols @ cov @ m_cols.T + n_cols @ n_cols.T
