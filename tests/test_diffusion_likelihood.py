"""PF-ODE log-likelihood: exact on Gaussian data, Hutchinson unbiased, bits/dim."""

from __future__ import annotations

import math

import pytest
import torch

from tests._diffusion_helpers import MU, SIGMA, one_thread  # noqa: F401
from torchenergy.diffusion import GaussianPath, bits_per_dim, divergence, pf_ode_log_likelihood

X = torch.randn(20, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 1.5 + MU


@pytest.mark.parametrize(
    ("name", "pred"),
    [("linear", "velocity"), ("cosine", "velocity"), ("linear", "score"), ("cosine", "noise")],
)
def test_exact_divergence_matches_gaussian_log_density(name: str, pred: str) -> None:
    path = GaussianPath(MU, SIGMA, name)
    res = pf_ode_log_likelihood(path.field(pred), X, name, pred, method="rk4", n_steps=100)
    err = (res.log_prob - path.log_prob(X)).abs().max().item()
    assert err <= 1e-6, err
    # power: the wrong law's field is off by far more than the tolerance
    wrong = GaussianPath(MU, 1.2 * SIGMA, name)
    bad = pf_ode_log_likelihood(wrong.field(pred), X, name, pred, method="rk4", n_steps=100)
    assert (bad.log_prob - path.log_prob(X)).abs().max().item() > 1e-2


def test_dopri5_likelihood() -> None:
    path = GaussianPath(MU, SIGMA, "linear")
    res = pf_ode_log_likelihood(path.velocity, X, method="dopri5", rtol=1e-10, atol=1e-10)
    assert (res.log_prob - path.log_prob(X)).abs().max().item() <= 1e-6


@pytest.mark.parametrize("probe", ["rademacher", "gaussian"])
def test_hutchinson_unbiased(probe: str) -> None:
    path = GaussianPath(MU, SIGMA, "linear")
    x = X[:4].repeat(400, 1)  # 400 independent probes per point
    res = pf_ode_log_likelihood(
        path.velocity,
        x,
        method="rk4",
        n_steps=40,
        estimator="hutchinson",
        probe=probe,
        generator=torch.Generator().manual_seed(2),
    )
    exact = pf_ode_log_likelihood(path.velocity, X[:4], method="rk4", n_steps=40).log_prob
    est = res.log_prob.reshape(400, 4)
    mean, se = est.mean(0), est.std(0) / math.sqrt(400)
    assert bool(((mean - exact).abs() <= 4 * se + 1e-9).all()), (mean - exact, se)
    assert bool((se > 0).all())
    # power: a biased probe (Rademacher x 1.5: E[z^T J z] = 2.25 tr J) fails the same check
    from torchenergy.diffusion import ModelField

    field = ModelField(path.velocity, "linear", "velocity")
    t = torch.tensor(0.5, dtype=torch.float64)
    z = torch.sign(
        torch.randn(1600, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    )
    _, est_bad = divergence(lambda u: field.velocity(u, t), x, 1.5 * z)
    _, est_ok = divergence(lambda u: field.velocity(u, t), x, z)
    _, div_true = divergence(
        lambda u: field.velocity(u, t), x[:1]
    )  # affine field: constant divergence
    for est, should_pass in ((est_ok, True), (est_bad, False)):
        ok = (est.mean() - div_true).abs() <= 4 * est.std() / math.sqrt(est.numel())
        assert bool(ok) == should_pass


def test_bits_per_dim_and_errors() -> None:
    assert bits_per_dim(torch.tensor([-8 * math.log(2.0)]), 8).item() == pytest.approx(1.0)
    assert bits_per_dim(torch.tensor([0.0]), 4, data_range=1.0).item() == pytest.approx(8.0)
    path = GaussianPath(MU, SIGMA, "linear")
    with pytest.raises(ValueError, match="estimator"):
        pf_ode_log_likelihood(path.velocity, X, estimator="skilling")
    with pytest.raises(ValueError, match="probe"):
        pf_ode_log_likelihood(path.velocity, X, estimator="hutchinson", probe="uniform")
