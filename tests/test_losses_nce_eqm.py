"""NCE recovers a Gaussian and its log Z; equilibrium matching's target on a closed form."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Independent, Normal

from torchenergy.energies import energy_and_grad
from torchenergy.losses import (
    NonFiniteEnergyError,
    equilibrium_matching,
    equilibrium_target,
    noise_contrastive_estimation,
    truncated_decay,
)

MU, SD = 1.0, 0.7
NOISE = Independent(
    Normal(torch.zeros(1, dtype=torch.float64), 2.0 * torch.ones(1, dtype=torch.float64)), 1
)


def _fit_nce(seed: int, n: int = 1000) -> tuple[float, float, float]:
    g = torch.Generator().manual_seed(seed)
    x = MU + SD * torch.randn(n, 1, generator=g, dtype=torch.float64)
    x_noise = torch.randn(n, 1, generator=g, dtype=torch.float64) * 2.0
    mu = torch.zeros((), dtype=torch.float64, requires_grad=True)
    log_sd = torch.zeros((), dtype=torch.float64, requires_grad=True)
    log_z = torch.zeros((), dtype=torch.float64, requires_grad=True)

    def e(y):
        return 0.5 * ((y.squeeze(-1) - mu) / log_sd.exp()).pow(2)

    opt = torch.optim.LBFGS(
        [mu, log_sd, log_z], max_iter=50, tolerance_grad=1e-10, line_search_fn="strong_wolfe"
    )

    def closure():
        opt.zero_grad()
        loss = noise_contrastive_estimation(e, x, NOISE, log_z=log_z, x_noise=x_noise).loss
        loss.backward()
        return loss

    opt.step(closure)
    return float(mu.detach()), float(log_sd.detach().exp()), float(log_z.detach())


def test_nce_recovers_gaussian_and_log_z():
    fits = torch.tensor([_fit_nce(s) for s in range(8)], dtype=torch.float64)
    truth = torch.tensor([MU, SD, math.log(SD * math.sqrt(2 * math.pi))], dtype=torch.float64)
    mean, se = fits.mean(0), fits.std(0) / math.sqrt(fits.shape[0])
    # z = 4 on each of three parameters; replicate spread gives the Monte Carlo error
    assert bool(((mean - truth).abs() <= 4.0 * se).all()), (mean, truth, se)


def test_nce_reproducible_noise_and_shapes():
    log_z = torch.zeros((), dtype=torch.float64, requires_grad=True)
    e = lambda y: 0.5 * y.pow(2).sum(-1)  # noqa: E731
    x = torch.zeros(5, 1, dtype=torch.float64)
    state = torch.get_rng_state()
    a = noise_contrastive_estimation(
        e, x, NOISE, log_z=log_z, n_noise=12, generator=torch.Generator().manual_seed(0)
    )
    b = noise_contrastive_estimation(
        e, x, NOISE, log_z=log_z, n_noise=12, generator=torch.Generator().manual_seed(0)
    )
    assert torch.equal(torch.get_rng_state(), state)  # the global stream is left alone
    assert torch.equal(a.negatives, b.negatives) and a.negatives.shape == (12, 1)
    (gz,) = torch.autograd.grad(a.loss, [log_z])
    assert torch.isfinite(gz)


def test_nce_errors():
    log_z = torch.zeros(())
    with pytest.raises(ValueError, match="event_shape"):
        noise_contrastive_estimation(lambda y: y.sum(-1), torch.zeros(3, 2), NOISE, log_z=log_z)
    with pytest.raises(NonFiniteEnergyError, match="noise-phase"):
        noise_contrastive_estimation(
            lambda y: torch.where(y[:, 0] > 1e9, 0.0, torch.nan).to(y.dtype),
            torch.full((3, 1), 2e9, dtype=torch.float64),
            NOISE,
            log_z=log_z.double(),
            n_noise=4,
        )


def test_truncated_decay_shape():
    g = torch.tensor([0.0, 0.5, 0.8, 0.9, 1.0])
    assert torch.allclose(truncated_decay(g), torch.tensor([4.0, 4.0, 4.0, 2.0, 0.0]), atol=1e-5)


def test_equilibrium_target_sign_and_interpolant():
    x = torch.randn(6, 1, 2, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    eps = torch.randn(6, 1, 2, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    gamma = torch.tensor([0.0, 0.3, 0.5, 0.8, 0.95, 1.0], dtype=torch.float64)
    xg, t = equilibrium_target(x, eps, gamma)
    assert xg.shape == t.shape == x.shape
    assert torch.allclose(xg[0], eps[0]) and torch.allclose(xg[-1], x[-1])
    assert torch.allclose(t[0], 4.0 * (eps[0] - x[0]))
    assert torch.allclose(t[-1], torch.zeros_like(t[-1]))  # data points are equilibria


@pytest.mark.parametrize("gamma", [0.3, 0.9])
def test_equilibrium_matching_closed_form_point_mass(gamma):
    # data = point mass at mu: x_g = g mu + (1 - g) eps, so the target (eps - mu) c(g) equals
    # (x_g - mu) c(g) / (1 - g): the gradient of E(y) = 1/2 k |y - mu|^2 with k = c(g) / (1 - g).
    mu = torch.tensor([[1.0, -2.0, 0.5, 3.0]], dtype=torch.float64).reshape(1, 1, 2, 2)
    x = mu.expand(64, 1, 2, 2)
    gam = torch.full((64,), gamma, dtype=torch.float64)
    k = float(truncated_decay(torch.tensor(gamma, dtype=torch.float64))) / (1 - gamma)

    def e(y):
        return 0.5 * k * (y - mu).pow(2).sum((1, 2, 3))

    out = equilibrium_matching(e, x, gamma=gam, generator=torch.Generator().manual_seed(0))
    assert float(out.loss.detach()) < 1e-20
    flipped = equilibrium_matching(
        lambda y: -e(y), x, gamma=gam, generator=torch.Generator().manual_seed(0)
    )
    assert float(flipped.loss.detach()) > 1.0
    # descending the learned energy moves noise towards the data
    y = out.interpolated
    _, grad = energy_and_grad(e, y)
    assert float((y - 0.05 * grad - mu).norm()) < float((y - mu).norm())


def test_equilibrium_matching_random_gamma_reproducible():
    e = lambda y: 0.5 * y.pow(2).sum(-1)  # noqa: E731
    x = torch.ones(16, 3)
    a = equilibrium_matching(e, x, generator=torch.Generator().manual_seed(3))
    b = equilibrium_matching(e, x, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.loss, b.loss) and a.gamma.shape == (16,)
    assert bool(((a.gamma >= 0) & (a.gamma <= 1)).all())
    with pytest.raises(ValueError, match="gamma"):
        equilibrium_matching(e, x, gamma=torch.ones(3))
