"""Small energies for the sampler tests (closed forms, exact draws, evaluation counting)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from torchenergy.energies import Energy

__all__ = ["Counting", "Gauss", "ParamQuad", "Quartic", "mcse_z", "single_thread", "z_bonferroni"]


class Gauss(Energy):
    """``E(x) = 0.5 (x − m)ᵀ P (x − m)``, P = Σ⁻¹, closed-form gradient, exact draws."""

    def __init__(self, mean: Tensor, cov: Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("cov", cov)
        self.register_buffer("prec", torch.linalg.inv(cov))
        self.register_buffer("chol", torch.linalg.cholesky(cov))

    def forward(self, x: Tensor) -> Tensor:
        d = x - self.mean
        return 0.5 * ((d @ self.prec) * d).sum(-1)

    def energy_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        d = x - self.mean
        g = d @ self.prec
        return 0.5 * (g * d).sum(-1), g

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        z = torch.randn(n, self.mean.shape[0], generator=generator, dtype=self.mean.dtype)
        return self.mean + z @ self.chol.T


class Quartic(Energy):
    """Anharmonic energy ``sum(0.5 x² + 0.1 x⁴)`` over any event shape (autograd gradient)."""

    def forward(self, x: Tensor) -> Tensor:
        f = x.flatten(1)
        return (0.5 * f**2 + 0.1 * f**4).sum(1)


class Counting(nn.Module):
    """Wraps an energy and counts forward evaluations (each autograd gradient needs one)."""

    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn
        self.calls = 0

    def forward(self, x: Tensor) -> Tensor:
        self.calls += 1
        return self.fn(x)


class ParamQuad(nn.Module):
    """A quadratic with trainable parameters, for the "parameter .grad untouched" check."""

    def __init__(self, event_numel: int) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(event_numel))
        self.shift = nn.Parameter(0.1 * torch.ones(event_numel))

    def forward(self, x: Tensor) -> Tensor:
        f = x.flatten(1) - self.shift.to(x.dtype)
        return 0.5 * (f**2 * self.log_scale.to(x.dtype).exp()).sum(1)


def z_bonferroni(n_tests: int, alpha: float = 6.3e-5) -> float:
    """Two-sided normal quantile for family-wise level ``alpha`` over ``n_tests`` (z≈4 for 1)."""
    p = alpha / (2 * n_tests)
    return float(-torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor(p, dtype=torch.float64)))


def mcse_z(per_chain: Tensor, truth: Tensor) -> Tensor:
    """Standardised errors of statistics from C independent chains.

    ``per_chain`` (C, k): each chain's average of k statistics (chains are independent, so the
    across-chain standard deviation / sqrt(C) is the Monte Carlo standard error of the mean).
    Returns ``|mean − truth| / MCSE``, shape (k,).
    """
    c = per_chain.shape[0]
    est = per_chain.mean(0)
    mcse = per_chain.std(0) / math.sqrt(c)
    return (est - truth).abs() / mcse


@pytest.fixture(autouse=True)
def single_thread():
    """Small tensors gain nothing from intra-op threads and lose a lot on a shared 2-core box."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
