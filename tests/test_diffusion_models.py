"""Networks, the energy parameterisation and its MALA/HMC-corrected composition, fitting, example."""

from __future__ import annotations

import math

import pytest
import torch

from tests._diffusion_helpers import moments_ok, one_thread  # noqa: F401
from torchenergy.diffusion import (
    DiT,
    EnergyScoreModel,
    GaussianPath,
    ProductEnergy,
    TimeMLP,
    annealed_mcmc,
    dsm_loss,
    fit_diffusion,
    fit_score,
)


def test_dit_adaln_zero_starts_at_zero_and_learns() -> None:
    torch.manual_seed(0)
    net = DiT(8, 1, patch=4, dim=32, depth=2, heads=2, n_classes=3)
    x, t, y = torch.randn(4, 1, 8, 8), torch.rand(4), torch.tensor([0, 1, 2, 3])
    assert torch.equal(net(x, t, y), torch.zeros_like(x))  # zero-initialised modulation and head
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(3):
        loss = (net(x, t, y) - x).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    out = net(x, t, y)
    assert out.shape == x.shape and out.abs().max() > 0
    # the label changes the output once trained (conditioning is wired through adaLN)
    assert not torch.allclose(net(x, t, torch.zeros_like(y)), net(x, t, torch.full_like(y, 3)))
    with pytest.raises(ValueError, match="conditional"):
        net(x, t)
    with pytest.raises(ValueError, match="divisible"):
        DiT(10, 1, patch=4)


def test_time_mlp_is_smooth_in_t() -> None:
    from torch.func import jvp

    net = TimeMLP(2, hidden=16, depth=1).double()
    x, t = torch.randn(3, 2, dtype=torch.float64), torch.rand(3, dtype=torch.float64)
    _, dt = jvp(lambda u: net(x, u), (t,), (torch.ones_like(t),))
    fd = (net(x, t + 1e-6) - net(x, t - 1e-6)) / 2e-6
    torch.testing.assert_close(dt, fd, atol=1e-5, rtol=1e-5)


def test_energy_score_model_and_dsm_gradient() -> None:
    torch.manual_seed(0)
    body = torch.nn.Sequential(
        torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)
    ).double()
    m = EnergyScoreModel(lambda x, t: body(torch.cat([x, t[:, None]], 1))[:, 0])
    x, t = torch.randn(5, 2, dtype=torch.float64), torch.rand(5, dtype=torch.float64)
    m.eval()
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(m.energy(xg, t).sum(), xg)
    torch.testing.assert_close(m(x, t), -g)
    m.train()
    out = dsm_loss(m, x, "vp")
    out.loss.backward()
    assert body[0].weight.grad is not None and body[0].weight.grad.abs().sum() > 0


def test_composed_diffusion_energies_with_mala_and_hmc() -> None:
    """Product of two diffused Gaussian energies; MALA/HMC at each level targets the product law.

    At t = 1 the product of N(μ₁, Σ₁) and N(μ₂, Σ₂) is N(μ, Σ) with Σ⁻¹ = Σ₁⁻¹ + Σ₂⁻¹ and
    μ = Σ (Σ₁⁻¹ μ₁ + Σ₂⁻¹ μ₂): the samples must match it within 4 MCSE (chains independent).
    """
    d = torch.float64
    m1, s1 = torch.tensor([1.0, 0.0], dtype=d), torch.tensor([[1.0, 0.3], [0.3, 0.5]], dtype=d)
    m2, s2 = torch.tensor([-1.0, 1.0], dtype=d), torch.tensor([[0.6, -0.2], [-0.2, 1.2]], dtype=d)
    p1, p2 = GaussianPath(m1, s1, "vp"), GaussianPath(m2, s2, "vp")
    prod = ProductEnergy([p1.energy, p2.energy])
    prec = torch.linalg.inv(s1) + torch.linalg.inv(s2)
    cov = torch.linalg.inv(prec)
    mean = cov @ (torch.linalg.solve(s1, m1) + torch.linalg.solve(s2, m2))
    x0 = torch.randn(2000, 2, generator=torch.Generator().manual_seed(0), dtype=d)
    times = torch.tensor([0.0, 0.5, 0.8, 0.95, 1.0], dtype=d)
    z = 4.0 + 0.5 * math.log10(10)
    for kernel, step in (("mala", 0.2), ("hmc", 0.2)):
        out = annealed_mcmc(
            prod,
            x0,
            times,
            kernel=kernel,
            step_size=step,
            n_mcmc=30,
            n_leapfrog=4,
            interpolant="vp",
            generator=torch.Generator().manual_seed(1),
        )
        assert moments_ok(out.x, mean, cov, z=z), kernel
    # power: one expert alone does not give the product law
    alone = annealed_mcmc(
        EnergyScoreModel(p1.energy),
        x0,
        times,
        kernel="mala",
        step_size=0.2,
        n_mcmc=30,
        interpolant="vp",
        generator=torch.Generator().manual_seed(1),
    )
    assert not moments_ok(alone.x, mean, cov, z=z)


def test_fit_functions_validate_and_run() -> None:
    net = TimeMLP(2, hidden=8, depth=1)
    res = fit_score(
        net, torch.randn(32, 2), n_steps=3, batch_size=8, generator=torch.Generator().manual_seed(0)
    )
    assert res.losses.shape == (3,) and not res.model.training
    cond = TimeMLP(2, hidden=8, depth=1, n_classes=2)
    res = fit_diffusion(
        cond, torch.randn(32, 2), labels=torch.randint(2, (32,)), n_steps=2, batch_size=8
    )
    assert torch.isfinite(res.losses).all()
    with pytest.raises(ValueError, match="labels"):
        fit_diffusion(net, torch.randn(32, 2), labels=torch.zeros(5, dtype=torch.long), n_steps=1)
    with pytest.raises(TypeError, match="data"):
        fit_diffusion(net, [1, 2, 3], n_steps=1)


def test_example_smoke() -> None:
    from examples.diffusion_2d import main

    out = main(["--steps", "30", "--batch", "64", "--hidden", "16", "--n-eval", "64"])
    assert math.isfinite(out["nll"]) and math.isfinite(out["mmd2"])
