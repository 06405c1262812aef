"""Random-walk Metropolis: stationary moments within the ESS-based MCSE, detailed balance of
one step on a grid of bins (with a power check), proposal scales, errors."""

import pytest
import torch

import torchenergy.samplers.rwm as rwm_module
from tests._sampler_targets import single_thread, z_bonferroni  # noqa: F401
from tests.test_nuts import _pair_asymmetry_z, corr2d, ess_moment_z, illcond, run_from_exact
from torchenergy.samplers import DenseMass, RandomWalkMetropolis
from torchenergy.samplers.rwm import random_walk_proposal

F64 = torch.float64

CASES = [
    ("corr2d-scalar", corr2d, lambda t: RandomWalkMetropolis(t, 1.2)),
    (
        "illcond-diag",
        illcond,
        lambda t: RandomWalkMetropolis(t, 0.3, torch.diagonal(t.cov).clone()),
    ),
    ("illcond-dense", illcond, lambda t: RandomWalkMetropolis(t, 0.9, DenseMass(t.cov))),
]


@pytest.mark.parametrize(("name", "target_fn", "make"), CASES)
def test_stationary_moments_within_ess_mcse(name, target_fn, make):
    target = target_fn()
    res = run_from_exact(make(target), target, 500, 200, seed=99)
    zmax, zlim = ess_moment_z(res.trace, target)
    assert zmax <= zlim, f"{name}: max |err|/MCSE = {zmax:.2f} > {zlim:.2f}"
    assert 0.15 < float(res.accept_rate.mean()) < 0.8


def _pair_z(sampler, target, seed=4):
    g = torch.Generator().manual_seed(seed)
    x = target.sample(40_000, generator=g)
    state, _ = sampler.step(sampler.init(x), generator=g)
    edges = torch.tensor([-1.0, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0], dtype=F64)
    z = _pair_asymmetry_z(x[:, 0].contiguous(), state.x[:, 0].contiguous(), edges)
    return float(z.max()), z_bonferroni(z.numel())


def test_detailed_balance_on_a_grid_and_power(monkeypatch):
    """π(i) P(i→j) = π(j) P(j→i) on 8 bins: the binned pair counts of one step from x ~ π are
    symmetric. A drifting (non-symmetric) proposal accepted with the symmetric ratio is not
    reversible and must fail the same test."""
    target = corr2d()
    zmax, zlim = _pair_z(RandomWalkMetropolis(target, 1.0), target)
    assert zmax <= zlim, f"{zmax:.2f} > {zlim:.2f}"

    def drifting(x, step_size, inverse_mass=None, *, generator=None):
        return random_walk_proposal(x, step_size, inverse_mass, generator=generator) + 0.3

    monkeypatch.setattr(rwm_module, "random_walk_proposal", drifting)
    zbad, _ = _pair_z(RandomWalkMetropolis(target, 1.0), target)
    assert zbad > zlim, f"broken RWM passed the detailed-balance test (z = {zbad:.2f})"


def test_exact_detailed_balance_on_a_grid(monkeypatch):
    """On a 7 x 7 grid of points, every pair (i, j): the kernel's own acceptance probability
    α(i→j) (the proposal forced to j) satisfies π(i) q(j | i) α(i→j) = π(j) q(i | j) α(j→i)
    to round-off (q is the symmetric Gaussian)."""
    target = corr2d()
    axis = torch.linspace(-2.0, 3.0, 7, dtype=F64)
    pts = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    n = pts.shape[0]
    i, j = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    x, y = pts[i.flatten()], pts[j.flatten()]
    monkeypatch.setattr(rwm_module, "random_walk_proposal", lambda x, *a, **k: y)
    eps = 0.8
    s = RandomWalkMetropolis(target, eps)
    _, info = s.step(s.init(x), generator=torch.Generator().manual_seed(0))
    alpha = info.accept_prob.reshape(n, n)
    log_q = -((x - y) ** 2).sum(-1).reshape(n, n) / (2 * eps**2)
    flux = torch.exp(-target(pts)[:, None] + log_q) * alpha
    torch.testing.assert_close(flux, flux.T, rtol=1e-12, atol=1e-300)
    assert float(alpha.min()) < 0.01 and float(alpha.max()) == 1.0


def test_proposal_covariance():
    g = torch.Generator().manual_seed(0)
    cov = torch.tensor([[2.0, 0.6], [0.6, 0.5]], dtype=F64)
    x = torch.zeros(200_000, 2, dtype=F64)
    y = random_walk_proposal(x, 0.5, DenseMass(cov), generator=g)
    emp = y.T @ y / y.shape[0]
    se = 0.25 * (cov.diagonal()[:, None] * cov.diagonal()[None, :] + cov**2).sqrt() / 200_000**0.5
    assert float(((emp - 0.25 * cov).abs() / se).max()) <= z_bonferroni(4)
    y = random_walk_proposal(x[:10], torch.full((10,), 0.1, dtype=F64), 4.0, generator=g)
    assert y.shape == (10, 2)


def test_errors_and_nonfinite():
    f = lambda x: 0.5 * (x**2).sum(-1)  # noqa: E731
    with pytest.raises(ValueError, match="finite energy"):
        RandomWalkMetropolis(lambda x: torch.log(x).sum(-1), 0.1).init(-torch.ones(2, 2))
    with pytest.raises(ValueError, match="step_size"):
        RandomWalkMetropolis(f, 0.0)
    with pytest.raises(ValueError, match="inverse_mass"):
        RandomWalkMetropolis(f, 0.1, -1.0)
    with pytest.raises(ValueError, match="shape"):
        RandomWalkMetropolis(f, 0.1).init(torch.zeros(2, 2)) and RandomWalkMetropolis(
            lambda x: x, 0.1
        ).init(torch.zeros(2, 2))

    def walled(x):
        e = f(x)
        return torch.where(x[:, 0] > 0.5, torch.full_like(e, float("inf")), e)

    s = RandomWalkMetropolis(walled, 1.0)
    state = s.init(torch.zeros(256, 2))
    nonfinite = 0
    for _ in range(10):
        state, info = s.step(state, generator=torch.Generator().manual_seed(_))
        nonfinite += int(info.nonfinite.sum())
    assert nonfinite > 0 and float(state.x[:, 0].max()) <= 0.5
