"""Score-matching losses: population values on E = 1/2 x^T A x, event-shape invariance, DSM fit."""

from __future__ import annotations

import math

import pytest
import torch

from torchenergy.losses import (
    denoising_score_matching,
    multiscale_denoising_score_matching,
    score_matching,
    sliced_score_matching,
)

Z = 4.0
D = 4


def _matrix() -> torch.Tensor:
    g = torch.Generator().manual_seed(123)
    m = torch.randn(D, D, generator=g, dtype=torch.float64)
    return m @ m.T / D + 0.5 * torch.eye(D, dtype=torch.float64)


A = _matrix()
TR_A = float(torch.trace(A))
TR_A2 = float(torch.trace(A @ A))


def quad_energy(x: torch.Tensor) -> torch.Tensor:
    f = x.reshape(x.shape[0], -1)
    return 0.5 * ((f @ A) * f).sum(-1)


def _data(n: int = 4000, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, D, generator=g, dtype=torch.float64)


def _within(per: torch.Tensor, truth: float) -> None:
    se = float(per.std()) / math.sqrt(per.numel())
    est = float(per.mean())
    assert abs(est - truth) <= Z * se, (est, truth, se)


def test_exact_score_matching_population_value():
    out = score_matching(quad_energy, _data())
    _within(out.per_sample, 0.5 * TR_A2 - TR_A)
    assert torch.allclose(out.loss.detach(), out.per_sample.mean())


@pytest.mark.parametrize("vr", [True, False])
def test_sliced_score_matching_population_value(vr):
    g = torch.Generator().manual_seed(1)
    out = sliced_score_matching(quad_energy, _data(), variance_reduction=vr, generator=g)
    _within(out.per_sample, 0.5 * TR_A2 - TR_A)


def test_sliced_more_projections_lower_variance():
    x = _data(2000)
    v1 = sliced_score_matching(
        quad_energy,
        x,
        n_projections=1,
        variance_reduction=False,
        generator=torch.Generator().manual_seed(2),
    ).per_sample.var()
    v8 = sliced_score_matching(
        quad_energy,
        x,
        n_projections=8,
        variance_reduction=False,
        generator=torch.Generator().manual_seed(2),
    ).per_sample.var()
    assert v8 < v1


def test_denoising_population_value():
    # E over x, eps of 1/2 ||A(x + s eps) - eps / s||^2 = 1/2 (1 + s^2) tr(A^2) - tr(A) + D / (2 s^2):
    # Hyvärinen's objective on the noised data N(0, (1 + s^2) I) plus D / (2 s^2).
    s = 0.5
    out = denoising_score_matching(
        quad_energy, _data(), sigma=s, generator=torch.Generator().manual_seed(3)
    )
    truth = 0.5 * (1 + s**2) * TR_A2 - TR_A + D / (2 * s**2)
    _within(out.per_sample, truth)
    # and the sigma -> 0 limit of the theta-dependent part is the population value itself
    assert (
        abs((0.5 * (1 + s**2) * TR_A2 - TR_A) - (0.5 * TR_A2 - TR_A) - 0.5 * s**2 * TR_A2) < 1e-12
    )


def test_multiscale_population_value():
    sigmas = torch.tensor([1.0, 0.5, 0.1], dtype=torch.float64)
    out = multiscale_denoising_score_matching(
        lambda x, s: quad_energy(x),
        _data(),
        sigmas=sigmas,
        generator=torch.Generator().manual_seed(4),
    )
    # per level: s^2 * [1/2 (1 + s^2) tr(A^2) - tr(A) + D / (2 s^2)]
    per_level = [float(s) ** 2 * (0.5 * (1 + float(s) ** 2) * TR_A2 - TR_A) + D / 2 for s in sigmas]
    truth = sum(per_level) / len(per_level)
    _within(out.per_sample, truth)
    assert set(out.sigma.tolist()) <= set(sigmas.tolist())


def test_multiscale_passes_sigma_to_energy():
    seen = {}

    def e(x, s):
        seen["s"] = s
        return quad_energy(x) / (1 + s**2)

    out = multiscale_denoising_score_matching(
        e,
        _data(16),
        sigmas=torch.tensor([2.0, 0.3], dtype=torch.float64),
        generator=torch.Generator().manual_seed(0),
    )
    assert torch.equal(seen["s"], out.sigma)


@pytest.mark.parametrize("name", ["exact", "sliced", "denoising", "multiscale"])
def test_image_shape_equals_flat(name):
    x = _data(64, seed=5)
    img = x.reshape(64, 1, 2, 2)

    def run(inp):
        g = torch.Generator().manual_seed(9)
        if name == "exact":
            return score_matching(quad_energy, inp)
        if name == "sliced":
            return sliced_score_matching(quad_energy, inp, n_projections=3, generator=g)
        if name == "denoising":
            return denoising_score_matching(quad_energy, inp, sigma=0.3, generator=g)
        return multiscale_denoising_score_matching(
            lambda y, s: quad_energy(y), inp, sigmas=torch.tensor([0.1, 1.0]).double(), generator=g
        )

    a, b = run(x), run(img)
    assert torch.allclose(a.loss, b.loss, rtol=1e-12, atol=1e-12)
    assert torch.allclose(a.per_sample, b.per_sample, rtol=1e-12, atol=1e-12)


def test_score_matching_gradients_reach_parameters():
    theta = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)

    def e(x):
        return 0.5 * theta * x.pow(2).sum(-1)

    x = _data(3000)
    out = score_matching(e, x)
    out.loss.backward()
    # J(theta) = 1/2 theta^2 mean||x||^2 - D theta  ->  dJ/dtheta = theta mean||x||^2 - D
    expected = float(theta.detach()) * float(x.pow(2).sum(-1).mean()) - D
    assert abs(float(theta.grad) - expected) < 1e-9


def test_dsm_fit_recovers_noised_variance():
    s, sigma, n = 0.6, 0.4, 20000
    x = torch.randn(n, 1, generator=torch.Generator().manual_seed(7), dtype=torch.float64) * s
    log_v = torch.zeros((), dtype=torch.float64, requires_grad=True)

    def e(y):
        return 0.5 * y.pow(2).sum(-1) * torch.exp(-log_v)

    opt = torch.optim.LBFGS(
        [log_v],
        lr=1.0,
        max_iter=100,
        tolerance_grad=1e-12,
        tolerance_change=1e-14,
        line_search_fn="strong_wolfe",
    )

    def closure():
        opt.zero_grad()
        loss = denoising_score_matching(
            e, x, sigma=sigma, generator=torch.Generator().manual_seed(8)
        ).loss
        loss.backward()
        return loss

    opt.step(closure)
    v_fit = float(log_v.detach().exp())
    # the sample optimum in closed form: 1/v = mean(x~ eps / sigma) / mean(x~^2)
    eps = torch.randn(x.shape, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    xt = x + sigma * eps
    a, b = xt.pow(2).squeeze(1), (xt * eps / sigma).squeeze(1)
    v_hat = float(a.mean() / b.mean())
    assert abs(v_fit - v_hat) < 1e-6 * v_hat
    # delta-method standard error of the ratio estimator
    r = v_hat
    var = (a.var() - 2 * r * torch.cov(torch.stack([a, b]))[0, 1] + r**2 * b.var()) / b.mean() ** 2
    se = math.sqrt(float(var) / n)
    assert abs(v_fit - (s**2 + sigma**2)) <= Z * se, (v_fit, s**2 + sigma**2, se)
    # a flipped target sign cannot fit a positive variance
    assert b.mean() > 0


def test_validation_errors():
    with pytest.raises(ValueError, match="sigma"):
        denoising_score_matching(quad_energy, _data(4), sigma=-1.0)
    with pytest.raises(ValueError, match="n_projections"):
        sliced_score_matching(quad_energy, _data(4), n_projections=0)
    with pytest.raises(TypeError, match="x"):
        score_matching(quad_energy, [[0.0]])
