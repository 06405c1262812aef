"""Every interpolant × prediction × sampler returns N(μ, Σ) with the exact Gaussian field.

Tolerances: z·MCSE (Bonferroni over the combinations and moments) plus the discretisation
error, which is measured, not guessed: pathwise against the exact flow map for ODE samplers,
and by propagating the exact (Gaussian) law of the discrete chain for the stochastic ones.
Each group has a power check: the field of a wrong law N(μ, 1.5 Σ) fails the same test.
"""

from __future__ import annotations

import math

import pytest
import torch

from tests._diffusion_helpers import (
    INTERPOLANTS,
    MU,
    SIGMA,
    WRONG_SIGMA,
    exact_start,
    interp,
    moments_ok,
    one_thread,  # noqa: F401  (autouse fixture)
    propagate,
)
from torchenergy.diffusion import (
    PREDICTIONS,
    FlowSampler,
    GaussianPath,
    ModelField,
    annealed_langevin,
    ddim_sample,
    ddim_update,
    ddpm_sample,
    ddpm_update,
    langevin_update,
    predictor_corrector,
)

N = 3000
ODE = ("euler", "heun", "midpoint", "rk4", "dopri5")
SDE = ("euler_maruyama", "stochastic_heun")
Z = 4.0 + 0.5 * math.log10(len(INTERPOLANTS) * len(PREDICTIONS) * 7 * 5)  # Bonferroni-ish


def _grid(name: str) -> str:
    return "karras" if name in ("vp", "ve") else "uniform"


@pytest.mark.parametrize("name", INTERPOLANTS)
@pytest.mark.parametrize("pred", PREDICTIONS)
def test_ode_samplers_exact_field(name: str, pred: str) -> None:
    path = GaussianPath(MU, SIGMA, interp(name))
    wrong = GaussianPath(MU, WRONG_SIGMA, interp(name))
    x0 = exact_start(path, N, seed=11)
    exact = path.flow_map(x0, 0.0, 1.0)
    for method in ODE:
        fs = FlowSampler(
            path.field(pred),
            path.interpolant,
            prediction=pred,
            integrator=method,
            n_steps=40,
            grid=_grid(name),
            rtol=1e-7,
            atol=1e-7,
        )
        out = fs.sample(x0)
        assert torch.isfinite(out.x).all(), (name, pred, method)
        # discretisation error measured pathwise against the exact flow map
        d_mean = (out.x - exact).mean(0).abs().max().item()
        d_cov = (torch.cov(out.x.T) - torch.cov(exact.T)).abs().max().item()
        assert moments_ok(out.x, MU, SIGMA, z=Z, slack_mean=d_mean, slack_cov=d_cov), (
            name,
            pred,
            method,
        )
        path_err = (out.x - exact).abs().max().item() / max(1.0, path.interpolant.prior_std())
        limit = {"euler": 0.3, "heun": 0.05, "midpoint": 0.05, "rk4": 5e-3, "dopri5": 5e-3}[method]
        if name == "vp" and pred in ("noise", "data"):
            limit = max(
                limit, 0.05
            )  # last interval is a first-order DDIM step (sigma'(1) infinite)
        assert path_err < limit, (name, pred, method, path_err)
    # power: the wrong law's field is rejected by the same test
    fs = FlowSampler(
        wrong.field(pred),
        wrong.interpolant,
        prediction=pred,
        integrator="rk4",
        n_steps=40,
        grid=_grid(name),
    )
    bad = fs.sample(x0).x
    assert not moments_ok(bad, MU, SIGMA, z=Z, slack_mean=0.01, slack_cov=0.01)


@pytest.mark.parametrize("name", INTERPOLANTS)
@pytest.mark.parametrize("pred", PREDICTIONS)
def test_sde_samplers_exact_field(name: str, pred: str) -> None:
    path = GaussianPath(MU, SIGMA, interp(name))
    m0, c0 = path.marginal(0.0)
    diffusion = "natural" if name in ("vp", "ve") else "sigma"
    for method in SDE:
        fs = FlowSampler(
            path.field(pred),
            path.interpolant,
            prediction=pred,
            integrator=method,
            n_steps=60,
            grid=_grid(name),
            diffusion=diffusion,
        )
        x0 = exact_start(path, N, seed=12)
        out = fs.sample(x0, generator=torch.Generator().manual_seed(13))
        assert torch.isfinite(out.x).all()
        # the exact law of the discrete chain (affine in (x, z) for a Gaussian field)
        drift, grid = fs._drift(None), out.times
        by_data = fs._last_by_data(1.0)
        from torchenergy.diffusion import sde_step
        from torchenergy.diffusion.flow_sampler import ddim_step

        m, c = m0, c0
        for i in range(grid.numel() - 1):
            t, t1 = grid[i], grid[i + 1]
            last = i == grid.numel() - 2 and by_data

            def step(x, z, t=t, t1=t1, last=last, fs=fs, method=method, drift=drift):
                if last:
                    return ddim_step(fs.field, x, t, t1)
                return sde_step(method, drift, fs.w, x, t, t1 - t, z)

            m, c = propagate(step, m, c)
        # the sampler draws from that law (MCSE), and that law is N(mu, Sigma) up to its own error
        assert moments_ok(out.x, m, c, z=Z), (name, pred, method)
        d_mean = (m - MU).abs().max().item()
        d_cov = (c - SIGMA).abs().max().item()
        assert d_mean < 0.05 and d_cov < 0.1, (name, pred, method, d_mean, d_cov)
        assert moments_ok(out.x, MU, SIGMA, z=Z, slack_mean=d_mean, slack_cov=d_cov)


def _observed_order(method: str, name: str, pred: str = "velocity") -> float:
    path = GaussianPath(MU, SIGMA, name)
    x0 = exact_start(path, 64, seed=3)
    exact = path.flow_map(x0, 0.0, 1.0)
    errs = []
    for n in (16, 32):
        fs = FlowSampler(path.field(pred), name, prediction=pred, integrator=method, n_steps=n)
        errs.append((fs.sample(x0).x - exact).abs().max().item())
    return math.log2(errs[0] / errs[1])


@pytest.mark.parametrize("name", ["linear", "cosine"])
@pytest.mark.parametrize(
    ("method", "order"), [("euler", 1), ("heun", 2), ("midpoint", 2), ("rk4", 4)]
)
def test_observed_order_on_exact_flow_map(name: str, method: str, order: int) -> None:
    observed = _observed_order(method, name)
    if name == "linear" and method == "midpoint":
        # the h^2 error term of the midpoint rule vanishes on this flow: it converges at order 3
        assert abs(observed - 3) < 0.3
    else:
        assert abs(observed - order) < 0.3


def test_observed_order_power_check() -> None:
    # Heun is not fourth order: the same measurement distinguishes them
    assert abs(_observed_order("heun", "linear") - 4) > 1.0


def test_cosine_score_heun_no_endpoint_epsilon() -> None:
    """TorchEBM 0.8.9 ends at mean 7.7e5 here (cos(pi/2) != 0 and dα/α at the noise end)."""
    path = GaussianPath(
        torch.ones(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64), "cosine"
    )
    fs = FlowSampler(path.score, "cosine", prediction="score", integrator="heun", n_steps=50)
    x0 = exact_start(path, N, seed=5)
    out = fs.sample(x0)
    assert out.times[0] == 0.0 and out.times[-1] == 1.0
    assert (out.x - path.flow_map(x0, 0.0, 1.0)).abs().max() < 1e-3


@pytest.mark.parametrize("name", INTERPOLANTS)
def test_ddim_deterministic_converges_to_flow_map(name: str) -> None:
    path = GaussianPath(MU, SIGMA, interp(name))
    x0 = exact_start(path, 256, seed=6)
    exact = path.flow_map(x0, 0.0, 1.0)
    errs = [
        (
            ddim_sample(path.noise, path.interpolant, "noise", n_steps=n, x0=x0, grid=_grid(name)).x
            - exact
        )
        .abs()
        .max()
        .item()
        for n in (25, 100)
    ]
    # first order: 4x the steps gives about 4x less error
    assert 4**0.75 < errs[0] / errs[1] < 4**1.3, errs


@pytest.mark.parametrize("name", INTERPOLANTS)
@pytest.mark.parametrize("kind", ["ddpm", "ddim_eta1"])
def test_ddpm_and_stochastic_ddim_exact_law(name: str, kind: str) -> None:
    path = GaussianPath(MU, SIGMA, interp(name))
    field = ModelField(path.data, path.interpolant, "data")
    g = _grid(name)
    x0 = exact_start(path, N, seed=7)

    def sample(n):
        gen = torch.Generator().manual_seed(8)
        if kind == "ddpm":
            return ddpm_sample(field, n_steps=n, x0=x0, grid=g, generator=gen)
        return ddim_sample(field, n_steps=n, eta=1.0, x0=x0, grid=g, generator=gen)

    def upd(x, z, t, t1):
        if kind == "ddpm":
            return ddpm_update(field, x, t, t1, z)
        return ddim_update(field, x, t, t1, z, eta=1.0)

    def law(grid):
        m, c = path.marginal(0.0)
        for i in range(grid.numel() - 1):
            m, c = propagate(lambda x, z, i=i: upd(x, z, grid[i], grid[i + 1]), m, c)
        return m, c

    out = sample(50)
    m, c = law(out.times)
    assert moments_ok(out.x, m, c, z=Z)  # the sampler draws from its discrete chain's law
    # ... and that law converges to N(mu, Sigma) at first order in the step
    from torchenergy.diffusion import time_grid

    m4, c4 = law(time_grid(200, g, path.interpolant))
    err_n = max((m - MU).abs().max().item(), (c - SIGMA).abs().max().item())
    err_4n = max((m4 - MU).abs().max().item(), (c4 - SIGMA).abs().max().item())
    assert err_4n < err_n / 2.5, (err_n, err_4n)
    assert moments_ok(out.x, MU, SIGMA, z=Z, slack_mean=err_n, slack_cov=err_n)
    # power: the chain's own law is distinguishable from the wrong data law
    assert not moments_ok(out.x, MU, WRONG_SIGMA, z=Z, slack_mean=err_n, slack_cov=err_n)


def test_ncsn_annealed_langevin_exact_law() -> None:
    """Song & Ermon's rule ε_i = lr σ_i²/(2σ_L²); exact ULA law propagated level by level."""
    from torchenergy.diffusion import VEInterpolant

    ve = VEInterpolant(0.1, 10.0)
    path = GaussianPath(MU, SIGMA, ve)
    times = torch.linspace(0.0, 1.0, 8, dtype=torch.float64)
    lr, n_inner = 0.01, 40
    x0 = exact_start(path, N, seed=9)
    out = annealed_langevin(
        path.score,
        ve,
        times=times,
        n_inner=n_inner,
        lr=lr,
        denoise=False,
        x0=x0,
        generator=torch.Generator().manual_seed(10),
    )
    sig = ve.coefficients(times).sigma
    m, c = path.marginal(0.0)
    for i in range(times.numel()):
        eps = float(lr * sig[i] ** 2 / (2 * sig[-1] ** 2))
        t = times[i]
        for _ in range(n_inner):
            m, c = propagate(
                lambda x, z, t=t, eps=eps: langevin_update(x, path.score(x, t.expand(1)), eps, z),
                m,
                c,
            )
    assert moments_ok(out.x, m, c, z=Z)
    assert (c - SIGMA).abs().max() < 0.15  # the law after 40 steps per level (measured: 0.07)
    # power: a step rule without the σ_i² scaling does not reach the same law in the same steps
    bad = annealed_langevin(
        path.score,
        ve,
        times=times,
        n_inner=n_inner,
        lr=lr * 1e-3,
        denoise=False,
        x0=x0,
        generator=torch.Generator().manual_seed(10),
    )
    assert not moments_ok(bad.x, m, c, z=Z)


def test_predictor_corrector_ve_gaussian() -> None:
    from torchenergy.diffusion import VEInterpolant

    ve = VEInterpolant(0.01, 20.0)
    path = GaussianPath(MU, SIGMA, ve)
    x0 = exact_start(path, N, seed=14)
    from torchenergy.diffusion import diffusion_coefficient, sde_step, time_grid

    # the predictor alone is affine: its discrete law (exact) gives the discretisation slack
    field = ModelField(path.score, ve, "score")
    w = diffusion_coefficient(ve, "natural")

    def drift(x, t):
        v, s = field.velocity_and_score(x, t)
        return v + 0.5 * w(t) * s

    grid = time_grid(100, "karras", ve)
    m, c = path.marginal(0.0)
    for i in range(100):
        m, c = propagate(
            lambda x, z, i=i: sde_step(
                "euler_maruyama", drift, w, x, grid[i], grid[i + 1] - grid[i], z
            ),
            m,
            c,
        )
    d_mean, d_cov = (m - MU).abs().max().item(), (c - SIGMA).abs().max().item()
    for snr in (0.05, 0.16):
        out = predictor_corrector(
            path.score,
            ve,
            n_steps=100,
            snr=snr,
            grid="karras",
            x0=x0,
            generator=torch.Generator().manual_seed(15),
        )
        assert moments_ok(out.x, MU, SIGMA, z=Z, slack_mean=d_mean, slack_cov=d_cov), snr
    wrong = GaussianPath(MU, WRONG_SIGMA, ve)
    bad = predictor_corrector(
        wrong.score,
        ve,
        n_steps=100,
        snr=0.16,
        grid="karras",
        x0=x0,
        generator=torch.Generator().manual_seed(15),
    )
    assert not moments_ok(bad.x, MU, SIGMA, z=Z, slack_mean=d_mean, slack_cov=d_cov)


def test_flow_sampler_trajectory_and_errors() -> None:
    path = GaussianPath(MU, SIGMA, "linear")
    fs = FlowSampler(path.velocity, "linear", n_steps=5)
    out = fs.sample(
        n=7, dtype=torch.float64, return_trajectory=True, generator=torch.Generator().manual_seed(0)
    )
    assert out.trajectory.shape == (6, 7, 2) and out.n_evals == 10
    with pytest.raises(ValueError, match="integrator"):
        FlowSampler(path.velocity, "linear", integrator="leapfrog")
    with pytest.raises(ValueError, match="prediction"):
        FlowSampler(path.velocity, "linear", prediction="energy")
    with pytest.raises(ValueError, match="natural"):
        FlowSampler(
            path.velocity, "linear", integrator="euler_maruyama", diffusion="natural"
        ).sample(n=3, dtype=torch.float64)
