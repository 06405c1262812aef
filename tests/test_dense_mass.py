"""Dense mass matrices: kinetic energy, momenta, leapfrog; dense HMC and preconditioned MALA
(exact proposal density, stationary moments within the ESS-based MCSE, power check)."""

import pytest
import torch

import torchenergy.samplers.mala as mala_module
from tests._sampler_targets import single_thread, z_bonferroni  # noqa: F401
from tests.test_nuts import ess_moment_z, illcond, run_from_exact
from torchenergy.samplers import (
    HMC,
    MALA,
    DenseMass,
    kinetic_energy,
    leapfrog,
    mala_log_proposal,
    sample_momentum,
)
from torchenergy.samplers.mass import WelfordCovariance

F64 = torch.float64


def _spd(d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=g, dtype=F64)
    return a @ a.T + 0.5 * torch.eye(d, dtype=F64)


def test_kinetic_energy_and_momenta():
    minv = _spd()
    m = DenseMass(minv)
    g = torch.Generator().manual_seed(1)
    p = torch.randn(5, 4, generator=g, dtype=F64)
    expected = 0.5 * torch.einsum("ci,ij,cj->c", p, minv, p)
    torch.testing.assert_close(kinetic_energy(p, m), expected)
    n = 200_000
    draws = sample_momentum(torch.zeros(n, 4, dtype=F64), m, generator=g)
    mass = torch.linalg.inv(minv)
    emp = draws.T @ draws / n
    se = ((mass.diagonal()[:, None] * mass.diagonal()[None, :] + mass**2) / n).sqrt()
    assert float(((emp - mass).abs() / se).max()) <= z_bonferroni(16)


def test_dense_leapfrog_is_reversible_and_matches_diagonal():
    target = illcond(4)
    g = torch.Generator().manual_seed(2)
    x = target.sample(6, generator=g)
    m = DenseMass(target.cov)
    p = sample_momentum(x, m, generator=g)
    _, grad = target.energy_and_grad(x)
    out = leapfrog(target, x, p, grad, 0.2, 15, m)
    back = leapfrog(target, out.x, -out.p, out.grad, 0.2, 15, m)
    torch.testing.assert_close(back.x, x, rtol=0, atol=1e-10)
    torch.testing.assert_close(-back.p, p, rtol=0, atol=1e-10)
    diag = torch.linspace(0.5, 2.0, 4, dtype=F64)
    a = leapfrog(target, x, p, grad, 0.2, 7, diag)
    b = leapfrog(target, x, p, grad, 0.2, 7, DenseMass(torch.diag(diag)))
    torch.testing.assert_close(a.x, b.x)
    torch.testing.assert_close(a.p, b.p)


@pytest.mark.parametrize("kind", ["dense", "diag", "scalar"])
def test_preconditioned_mala_density_is_the_gaussian(kind):
    a = _spd(3, seed=4)
    m = {"dense": DenseMass(a), "diag": a.diagonal().clone(), "scalar": 0.7}[kind]
    cov_a = {"dense": a, "diag": torch.diag(a.diagonal()), "scalar": 0.7 * torch.eye(3, dtype=F64)}[
        kind
    ]
    g = torch.Generator().manual_seed(5)
    x_from, grad, x_to = (torch.randn(4, 3, generator=g, dtype=F64) for _ in range(3))
    eps = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=F64)
    lp = mala_log_proposal(x_to, x_from, grad, eps, m)
    for c in range(4):
        mean = x_from[c] - eps[c] * (cov_a @ grad[c])
        ref = torch.distributions.MultivariateNormal(mean, 2 * eps[c] * cov_a).log_prob(x_to[c])
        torch.testing.assert_close(lp[c], ref)


CASES = [
    ("hmc-dense", lambda t: HMC(t, 0.5, 4, inverse_mass=DenseMass(t.cov), jitter=0.2)),
    ("mala-dense", lambda t: MALA(t, 0.35, inverse_mass=DenseMass(t.cov))),
    ("mala-diag", lambda t: MALA(t, 0.02, inverse_mass=torch.diagonal(t.cov).clone())),
]


@pytest.mark.parametrize(("name", "make"), CASES)
def test_stationary_moments_within_ess_mcse(name, make):
    target = illcond()  # condition number 100, correlated
    res = run_from_exact(make(target), target, 300, 100, seed=7)
    zmax, zlim = ess_moment_z(res.trace, target)
    assert zmax <= zlim, f"{name}: max |err|/MCSE = {zmax:.2f} > {zlim:.2f}"
    assert 0.3 < float(res.accept_rate.mean()) < 0.99


def test_power_mala_with_the_unpreconditioned_density_fails(monkeypatch):
    """The proposal moves with A = M⁻¹ but the ratio uses the identity-metric density: biased."""
    target = illcond()
    make = CASES[1][1]
    ok = run_from_exact(make(target), target, 300, 100, seed=7)
    zlim = ess_moment_z(ok.trace, target)[1]
    orig = mala_module.mala_log_proposal
    monkeypatch.setattr(
        mala_module, "mala_log_proposal", lambda xt, xf, gf, eps, m=None: orig(xt, xf, gf, eps)
    )
    bad = run_from_exact(make(target), target, 300, 100, seed=7)
    zbad = ess_moment_z(bad.trace, target)[0]
    assert zbad > zlim, f"broken MALA passed (z = {zbad:.2f})"


def test_welford_covariance_matches_batch():
    g = torch.Generator().manual_seed(3)
    xs = torch.randn(50, 8, 3, generator=g, dtype=F64) @ _spd(3)
    w = WelfordCovariance()
    s = w.init(xs[0])
    for x in xs:
        s = w.update(s, x)
    flat = xs.reshape(-1, 3)
    torch.testing.assert_close(w.covariance(s, regularize=False), torch.cov(flat.T))
    torch.testing.assert_close(s.mean, flat.mean(0))


def test_dense_mass_errors():
    with pytest.raises(ValueError, match="positive definite"):
        DenseMass(torch.tensor([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(ValueError, match="symmetric"):
        DenseMass(torch.tensor([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match=r"\(d, d\)"):
        DenseMass(torch.ones(3))
    with pytest.raises(TypeError, match="floating"):
        DenseMass(torch.eye(2, dtype=torch.long))
    f = lambda x: 0.5 * (x**2).sum(-1)  # noqa: E731
    with pytest.raises(ValueError, match="DenseMass"):
        HMC(f, 0.1, 2, inverse_mass=torch.full((3, 3), 0.5)).init(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="d = prod"):
        MALA(f, 0.1, inverse_mass=DenseMass(torch.eye(2))).init(torch.zeros(2, 3))
