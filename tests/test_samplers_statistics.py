"""Statistical correctness of the kernels, with tolerances from Monte Carlo standard errors.

Each test runs many independent chains from a fixed seed; every chain contributes its own
average of each statistic, so the across-chain spread gives the MCSE without any autocorrelation
modelling. A statistic passes when ``|estimate − truth| ≤ z · MCSE``, z ≈ 4 Bonferroni-corrected
over the statistics of the test (see ``z_bonferroni``).
"""

import math

import pytest
import torch

import torchenergy.samplers.mala as mala_module
from tests._sampler_targets import Gauss, mcse_z, single_thread, z_bonferroni  # noqa: F401
from torchenergy.samplers import HMC, MALA, Langevin, run_chain
from torchenergy.samplers.metropolis import MetropolisResult

F64 = torch.float64


def _corr2d() -> Gauss:
    mean = torch.tensor([1.0, -0.5], dtype=F64)
    cov = torch.tensor([[2.0, 0.8], [0.8, 1.0]], dtype=F64)
    return Gauss(mean, cov)


def _aniso10d() -> Gauss:
    std = torch.logspace(math.log10(0.5), math.log10(2.0), 10, dtype=F64)
    g = torch.Generator().manual_seed(123)
    q, _ = torch.linalg.qr(torch.randn(10, 10, generator=g, dtype=F64))
    # mostly axis-aligned anisotropy with a mild rotation of the first three coordinates
    rot = torch.eye(10, dtype=F64)
    rot[:3, :3] = q[:3, :3] / q[:3, :3].norm(dim=0)
    rot, _ = torch.linalg.qr(rot)
    cov = rot @ torch.diag(std**2) @ rot.T
    mean = torch.linspace(-1.0, 1.0, 10, dtype=F64)
    return Gauss(mean, cov)


def _per_chain_stats(trace: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """(T, C, d) -> (C, d + d(d+1)/2): each chain's average of x and of (x−μ)(x−μ)ᵀ (upper)."""
    d = trace.shape[-1]
    iu = torch.triu_indices(d, d)
    c = trace - mean
    outer = (c[..., :, None] * c[..., None, :])[..., iu[0], iu[1]]
    return torch.cat([trace, outer], -1).mean(0)


def _truth(target: Gauss) -> torch.Tensor:
    d = target.mean.shape[0]
    iu = torch.triu_indices(d, d)
    return torch.cat([target.mean, target.cov[iu[0], iu[1]]])


def moment_z(sampler, target: Gauss, *, n_chains, burn_in, n_steps, thin, seed, x0=None):
    """Max standardised error of mean and covariance entries, and the Bonferroni threshold."""
    g = torch.Generator().manual_seed(seed)
    if x0 is None:
        x0 = target.mean + 2.0 * torch.randn(n_chains, target.mean.shape[0], generator=g, dtype=F64)
    res = run_chain(sampler, x0, n_steps, burn_in=burn_in, thin=thin, trace=True, generator=g)
    stats = _per_chain_stats(res.trace, target.mean)
    z = mcse_z(stats, _truth(target))
    return float(z.max()), z_bonferroni(z.numel()), res


CASES = [
    ("mala-2d", _corr2d, lambda e: MALA(e, 0.25), 300, 400),
    ("mala-10d", _aniso10d, lambda e: MALA(e, 0.08), 500, 500),
    ("hmc-2d", _corr2d, lambda e: HMC(e, 0.25, 6), 60, 100),
    ("hmc-10d", _aniso10d, lambda e: HMC(e, 0.15, 10, jitter=0.2), 100, 150),
    (
        "hmc-10d-mass",
        _aniso10d,
        lambda e: HMC(e, 0.3, 5, inverse_mass=torch.diagonal(e.cov).clone(), jitter=0.1),
        60,
        100,
    ),
    (
        "mala-10d-per-chain-step",
        _aniso10d,
        lambda e: MALA(e, torch.linspace(0.04, 0.1, 1000, dtype=F64)),
        500,
        500,
    ),
]


@pytest.mark.parametrize(("name", "target_fn", "make", "burn_in", "n_steps"), CASES)
def test_recovers_gaussian_mean_and_covariance(name, target_fn, make, burn_in, n_steps):
    target = target_fn()
    zmax, zlim, res = moment_z(
        make(target), target, n_chains=1000, burn_in=burn_in, n_steps=n_steps, thin=5, seed=2024
    )
    assert zmax <= zlim, f"{name}: max |err|/MCSE = {zmax:.2f} > {zlim:.2f}"
    rate = float(res.accept_rate.mean())
    assert 0.4 < rate < 1.0, f"{name}: acceptance {rate:.2f}"
    assert int(res.n_nonfinite.sum()) == 0


def _always_accept(log_ratio, proposal_finite=None, *, generator=None):
    """The deliberately broken kernel: Metropolis correction removed (MALA becomes ULA)."""
    ones = torch.ones_like(log_ratio)
    acc = torch.ones_like(log_ratio, dtype=torch.bool)
    return MetropolisResult(acc, ones, ~acc)


def test_power_mala_without_correction_fails_the_same_moment_test(monkeypatch):
    target = _corr2d()
    kwargs = dict(n_chains=1000, burn_in=200, n_steps=200, thin=5, seed=7)
    zmax, zlim, res = moment_z(MALA(target, 0.45), target, **kwargs)
    assert zmax <= zlim, f"MALA at a large step: {zmax:.2f} > {zlim:.2f}"
    assert float(res.accept_rate.mean()) < 0.9  # the correction is doing work at this step
    monkeypatch.setattr(mala_module, "metropolis_accept", _always_accept)
    zbad, _, res_bad = moment_z(MALA(target, 0.45), target, **kwargs)
    assert float(res_bad.accept_rate.mean()) == 1.0
    assert zbad > zlim, f"broken MALA passed the moment test (z = {zbad:.2f})"


def _ula_stationary_cov(target: Gauss, eps: float) -> torch.Tensor:
    """ULA on N(m, Σ): per eigen-direction σ² -> σ² / (1 − ε / (2σ²))."""
    lam, u = torch.linalg.eigh(target.cov)
    return u @ torch.diag(lam / (1 - eps / (2 * lam))) @ u.T


def test_ula_matches_its_own_stationary_variance():
    target = _corr2d()
    eps = 0.4
    biased = Gauss(target.mean, _ula_stationary_cov(target, eps))
    zmax, zlim, _ = moment_z(
        Langevin(target, eps), biased, n_chains=1000, burn_in=200, n_steps=300, thin=5, seed=11
    )
    assert zmax <= zlim, f"ULA vs its stationary law: {zmax:.2f} > {zlim:.2f}"
    # and the same data are far from the exact target (the bias is resolvable at this size)
    zexact, _, _ = moment_z(
        Langevin(target, eps), target, n_chains=1000, burn_in=200, n_steps=300, thin=5, seed=11
    )
    assert zexact > zlim


def test_ula_one_dimensional_variance_formula():
    sigma2, eps = 1.5, 0.6
    target = Gauss(torch.zeros(1, dtype=F64), torch.tensor([[sigma2]], dtype=F64))
    g = torch.Generator().manual_seed(5)
    x0 = torch.randn(4000, 1, generator=g, dtype=F64)
    res = run_chain(Langevin(target, eps), x0, 200, burn_in=100, trace=True, thin=4, generator=g)
    per_chain = (res.trace**2).mean(0)  # (C, 1)
    v = sigma2 / (1 - eps / (2 * sigma2))
    z = mcse_z(per_chain, torch.tensor([v], dtype=F64))
    assert float(z.max()) <= z_bonferroni(1)


@pytest.mark.parametrize(
    ("name", "make", "n_steps"),
    [
        ("mala", lambda e: MALA(e, 0.3), 30),
        ("hmc", lambda e: HMC(e, 0.4, 8, jitter=0.3), 10),
        ("hmc-mass", lambda e: HMC(e, 0.5, 4, inverse_mass=torch.diagonal(e.cov).clone()), 10),
        (
            "hmc-per-chain-mass-and-step",
            lambda e: HMC(
                e,
                torch.linspace(0.2, 0.5, 4000, dtype=F64),
                4,
                inverse_mass=torch.diagonal(e.cov)
                * torch.linspace(0.5, 1.5, 4000, dtype=F64)[:, None],
            ),
            10,
        ),
    ],
)
def test_chains_started_at_exact_draws_stay_there(name, make, n_steps):
    target = _aniso10d()
    g = torch.Generator().manual_seed(31)
    x0 = target.sample(4000, generator=g)
    res = run_chain(make(target), x0, n_steps, generator=g)
    stats = _per_chain_stats(res.x[None], target.mean)  # final states: iid draws if exact
    z = mcse_z(stats, _truth(target))
    assert float(z.max()) <= z_bonferroni(z.numel()), name
    assert float(res.accept_rate.mean()) > 0.3


def test_ula_started_at_its_stationary_law_stays_there():
    target = _corr2d()
    eps = 0.4
    biased = Gauss(target.mean, _ula_stationary_cov(target, eps))
    g = torch.Generator().manual_seed(41)
    x0 = biased.sample(4000, generator=g)
    res = run_chain(Langevin(target, eps), x0, 25, generator=g)
    z = mcse_z(_per_chain_stats(res.x[None], target.mean), _truth(biased))
    assert float(z.max()) <= z_bonferroni(z.numel())


@pytest.mark.parametrize(
    ("name", "make"),
    [("mala", lambda e: MALA(e, 0.3)), ("hmc", lambda e: HMC(e, 0.3, 5, jitter=0.2))],
)
def test_long_chains_within_ess_based_mcse(name, make):
    """Few long chains on the library's GaussianEnergy, MCSE = sd / sqrt(ESS) from diagnostics."""
    from torchenergy.diagnostics import effective_sample_size, mcse_mean, split_rhat
    from torchenergy.energies import GaussianEnergy

    ref = _corr2d()
    target = GaussianEnergy(ref.mean, ref.cov)
    g = torch.Generator().manual_seed(77)
    x0 = target.sample(32, generator=g)  # exact draws: no burn-in bias
    res = run_chain(make(target), x0, 1500, trace=True, generator=g)
    c = res.trace - ref.mean
    stats = torch.cat([res.trace, c[..., [0, 0, 1]] * c[..., [0, 1, 1]]], -1)  # (T, C, 5)
    z = (stats.mean((0, 1)) - _truth(ref)).abs() / mcse_mean(stats)
    assert float(z.max()) <= z_bonferroni(5), (name, z)
    # split R-hat of well-mixed chains: R² ≈ (n−1)/n + B/W with B/W ≈ χ²_{m−1} / ((m−1) n_e),
    # m = 64 half-chains of effective size n_e = ESS / m; bound at z = 4 on the χ² quantile
    m = 2 * res.trace.shape[1]
    n_e = effective_sample_size(res.trace) / m
    bound = torch.sqrt(1 + (1 + 4 * math.sqrt(2 / (m - 1))) / n_e)
    r = split_rhat(res.trace)
    assert (r <= bound).all(), (name, r, bound)
