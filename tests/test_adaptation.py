import dataclasses
import itertools
import math

import pytest
import torch

from torchenergy.energies import Energy
from torchenergy.samplers import HMC, MALA, Langevin
from torchenergy.samplers.adaptation import (
    DualAveraging,
    Welford,
    adapt,
    warmup_windows,
)
from torchenergy.samplers.driver import run_chain

# Adaptation accuracy: dual averaging drives E[accept] to the target, but the averaged step size
# after a finite warm-up carries some adaptation noise. We accept |rate - target| <= 0.05 on top
# of the Monte Carlo error (4 MCSE) of the measured rate.
ADAPT_TOL = 0.05


class Gauss(Energy):
    """Zero-mean Gaussian with covariance ``cov`` and closed-form gradient (test target)."""

    def __init__(self, cov):
        super().__init__()
        self.prec = torch.linalg.inv(cov)

    def forward(self, x):
        return 0.5 * ((x @ self.prec) * x).sum(-1)

    def energy_and_grad(self, x):
        g = x @ self.prec
        return 0.5 * (g * x).sum(-1), g


def gen(seed):
    return torch.Generator().manual_seed(seed)


def reference_dual_averaging(eps0, accepts, delta, gamma=0.05, t0=10.0, kappa=0.75):
    """Hoffman & Gelman (2014), Algorithm 5, written out with Python floats."""
    mu, h_bar, log_eps_bar, log_eps = math.log(10 * eps0), 0.0, 0.0, math.log(eps0)
    out = []
    for m, a in enumerate(accepts, start=1):
        h_bar = (1 - 1 / (m + t0)) * h_bar + (delta - a) / (m + t0)
        log_eps = mu - math.sqrt(m) / gamma * h_bar
        eta = m**-kappa
        log_eps_bar = eta * log_eps + (1 - eta) * log_eps_bar
        out.append((math.exp(log_eps), math.exp(log_eps_bar)))
    return out


def test_dual_averaging_matches_algorithm_5_pooled_and_per_chain():
    torch.manual_seed(0)
    acc = torch.rand(30, 3, dtype=torch.float64)
    da = DualAveraging(0.7)
    # per chain: each chain follows its own recursion
    s = da.init(torch.tensor([0.1, 0.5, 2.0], dtype=torch.float64))
    for t in range(30):
        s = da.update(s, acc[t])
    for c, eps0 in enumerate([0.1, 0.5, 2.0]):
        ref = reference_dual_averaging(eps0, acc[:, c].tolist(), 0.7)
        assert float(da.step_size(s)[c]) == pytest.approx(ref[-1][0], rel=1e-12)
        assert float(da.final_step_size(s)[c]) == pytest.approx(ref[-1][1], rel=1e-12)
    # pooled: one recursion on the mean acceptance
    s = da.init(0.3)
    for t in range(30):
        s = da.update(s, acc[t])
    ref = reference_dual_averaging(0.3, acc.mean(1).tolist(), 0.7)
    assert s.log_step.shape == ()
    assert float(da.final_step_size(s)) == pytest.approx(ref[-1][1], rel=1e-12)
    # NaN acceptance counts as a rejection
    s = da.update(da.init(0.3), torch.tensor([float("nan")], dtype=torch.float64))
    ref = reference_dual_averaging(0.3, [0.0], 0.7)
    assert float(da.step_size(s)) == pytest.approx(ref[0][0], rel=1e-12)


def test_welford_matches_torch_var_on_a_stream_pooled_and_per_chain():
    torch.manual_seed(1)
    xs = torch.randn(40, 7, 2, 3, dtype=torch.float64) * torch.tensor([0.1, 1.0, 10.0]) + 5.0
    pooled, per_chain = Welford(), Welford(per_chain=True)
    sp, sc = pooled.init(xs[0]), per_chain.init(xs[0])
    for x in xs:
        sp, sc = pooled.update(sp, x), per_chain.update(sc, x)
    flat = xs.reshape(-1, 2, 3)
    torch.testing.assert_close(sp.mean, flat.mean(0))
    torch.testing.assert_close(pooled.variance(sp, regularize=False), flat.var(0))
    torch.testing.assert_close(per_chain.variance(sc, regularize=False), xs.var(0))
    n = 40 * 7
    reg = n / (n + 5) * flat.var(0) + 1e-3 * 5 / (n + 5)
    torch.testing.assert_close(pooled.variance(sp), reg)


def test_warmup_windows_follow_stan():
    w = warmup_windows(1000)
    assert w[0][0] == 75 and w[-1][1] == 950
    assert all(a[1] == b[0] for a, b in itertools.pairwise(w))
    assert [e - s for s, e in w][:4] == [25, 50, 100, 200]
    short = warmup_windows(100)  # buffers shrink to 15% / 10%
    assert short == [(15, 90)]
    assert warmup_windows(10) == []


def _accept_and_mcse(sampler, state, n, seed):
    res = run_chain(sampler, state, n, generator=gen(seed))
    per_chain = res.mean_accept_prob
    return float(per_chain.mean()), float(per_chain.std() / math.sqrt(per_chain.numel()))


COV2 = torch.tensor([[1.0, 0.9], [0.9, 1.0]], dtype=torch.float64)


@pytest.mark.parametrize("per_chain", [False, True])
def test_mala_reaches_target_acceptance(per_chain):
    target = Gauss(COV2)
    x0 = torch.randn(128, 2, dtype=torch.float64, generator=gen(2))
    tuned, state = adapt(
        MALA(target, 1e-3), x0, 600, target_accept=0.574, per_chain=per_chain, generator=gen(3)
    )
    if per_chain:
        assert isinstance(tuned.step_size, torch.Tensor) and tuned.step_size.shape == (128,)
    else:
        assert isinstance(tuned.step_size, float)
    rate, mcse = _accept_and_mcse(tuned, state, 400, 4)
    assert abs(rate - 0.574) <= ADAPT_TOL + 4 * mcse, (rate, mcse)


def test_hmc_reaches_target_acceptance_without_mass():
    # 20 distinct scales: the acceptance falls smoothly with the step size. (On a 2-D Gaussian
    # HMC's acceptance is a cliff, ~0.9 up to the leapfrog stability limit 2·sd_min and 0
    # beyond, so no step size has acceptance 0.65 and the target cannot be met.)
    sd = torch.linspace(0.3, 1.0, 20, dtype=torch.float64)
    target = Gauss(torch.diag(sd**2))
    x0 = torch.randn(64, 20, dtype=torch.float64, generator=gen(5)) * sd
    tuned, state = adapt(HMC(target, 1e-2, 5), x0, 400, adapt_mass=False, generator=gen(6))
    assert tuned.inverse_mass is None
    rate, mcse = _accept_and_mcse(tuned, state, 200, 7)
    assert abs(rate - 0.65) <= ADAPT_TOL + 4 * mcse, (rate, mcse)


def test_hmc_mass_matrix_learns_anisotropic_variances():
    var = torch.tensor([0.01, 0.1, 1.0, 10.0, 100.0], dtype=torch.float64)
    target = Gauss(torch.diag(var))
    c = 64
    x0 = torch.randn(c, 5, dtype=torch.float64, generator=gen(8)) * var.sqrt()
    tuned, state = adapt(HMC(target, 1e-2, 8), x0, 1000, target_accept=0.7, generator=gen(9))
    inv_mass = tuned.inverse_mass
    assert inv_mass.shape == (5,)
    # MCSE of a pooled window variance: rerun the tuned kernel for the last window's length
    # (500 steps), estimate each chain's variance (independent chains) and take sd / sqrt(C).
    window = warmup_windows(1000)[-1]
    res = run_chain(tuned, state, window[1] - window[0], trace=True, generator=gen(10))
    v_chain = res.trace.var(0)  # (C, 5)
    mcse = v_chain.std(0) / math.sqrt(c)
    z = 4.0  # Bonferroni over 5 coordinates at z = 4 keeps the family error tiny
    assert torch.all((inv_mass - var).abs() <= z * mcse), (inv_mass, var, mcse)
    # after preconditioning every coordinate has unit scale: the tuned step size is far above
    # what the smallest scale (sd 0.1) would allow without a mass matrix, and below the
    # leapfrog stability limit 2 of the preconditioned problem
    assert 0.2 < tuned.step_size < 2.0
    assert float(res.mean_accept_prob.mean()) > 0.5


def test_adapt_is_reproducible_and_resumable():
    target = Gauss(COV2)
    x0 = torch.zeros(16, 2, dtype=torch.float64)
    a, sa = adapt(MALA(target, 0.1), x0, 50, generator=gen(11))
    b, sb = adapt(MALA(target, 0.1), x0, 50, generator=gen(11))
    assert a.step_size == b.step_size and torch.equal(sa.x, sb.x)
    # the returned state resumes with the tuned sampler
    assert run_chain(a, sa, 3, generator=gen(12)).x.shape == (16, 2)
    # zero warm-up leaves the sampler as it was
    same, _ = adapt(MALA(target, 0.1), x0, 0)
    assert same.step_size == 0.1


def test_adapt_bad_input():
    target = Gauss(COV2)
    x0 = torch.zeros(4, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="adapt_mass=True needs"):
        adapt(Langevin(target, 0.1), x0, 10, adapt_mass=True)
    with pytest.raises(ValueError, match="target_accept"):
        adapt(MALA(target, 0.1), x0, 10, target_accept=1.5)
    with pytest.raises(TypeError, match="frozen-dataclass"):
        adapt(object(), x0, 10)

    @dataclasses.dataclass(frozen=True)
    class NoStep:
        energy_fn: object

        def init(self, x):
            return x

        def step(self, s, *, generator=None):
            return s, None

    with pytest.raises(ValueError, match="no step_size field"):
        adapt(NoStep(target), x0, 10)
    with pytest.raises(ValueError, match="n_warmup"):
        adapt(MALA(target, 0.1), x0, -1)
    with pytest.warns(RuntimeWarning, match="unadjusted"):
        adapt(Langevin(target, 0.01), x0, 20)


def test_parallel_tempering_gets_one_tuned_step_size_per_replica():
    from torchenergy.samplers import ParallelTempering, geometric_ladder

    target = Gauss(torch.eye(5, dtype=torch.float64))
    temps = geometric_ladder(4, 16.0)
    pt = ParallelTempering(target, MALA(target, 0.1), temps)
    c = 64
    x0 = torch.randn(c, 5, dtype=torch.float64, generator=gen(13))
    tuned, state = adapt(pt, x0, 400, generator=gen(14))
    eps = torch.as_tensor(tuned.replica_step_sizes)
    assert eps.shape == (4,)
    # the tempered Gaussian has variance T: the tuned MALA step grows with the temperature
    assert bool((eps[1:] > eps[:-1]).all())
    acc = []
    g = gen(15)
    for _ in range(200):
        state, info = tuned.step(state, generator=g)
        acc.append(info.replica_accept_prob)
    per_chain = torch.stack(acc).mean(0)  # (C, R): independent chains per replica
    rate = per_chain.mean(0)
    mcse = per_chain.std(0) / math.sqrt(c)
    assert torch.all((rate - 0.574).abs() <= ADAPT_TOL + 4 * mcse), (rate, mcse)
    with pytest.raises(ValueError, match="per replica"):
        adapt(pt, x0, 10, per_chain=True)
