"""Window adaptation (Stan's windows, dual averaging, diagonal or dense mass) for NUTS and the
other kernels: the tuned mass approaches the target covariance, the acceptance statistic its
target, and the tuned chains keep the exact moments."""

import pytest
import torch

from tests._sampler_targets import single_thread  # noqa: F401
from tests.test_nuts import ess_moment_z, illcond
from torchenergy.samplers import (
    HMC,
    MALA,
    NUTS,
    DenseMass,
    RandomWalkMetropolis,
    adapt,
    run_chain,
)
from torchenergy.samplers.adaptation import warmup_windows

F64 = torch.float64
WINDOWS = {"init_buffer": 20, "term_buffer": 20, "base_window": 20}


def _adapt(sampler, target, n_chains, n_warmup, seed, windows=WINDOWS, **kw):
    g = torch.Generator().manual_seed(seed)
    x0 = target.mean + torch.randn(n_chains, target.mean.shape[0], generator=g, dtype=F64)
    return adapt(sampler, x0, n_warmup, generator=g, **windows, **kw), g


def test_nuts_dense_window_adaptation():
    target = illcond(4, kappa=100.0)
    (tuned, state), g = _adapt(NUTS(target, 0.05), target, 100, 160, seed=0, dense_mass=True)
    assert isinstance(tuned.inverse_mass, DenseMass)
    # the adapted M⁻¹ whitens the target: the spectrum of M Σ is near 1 (κ 100 -> small)
    m_sigma = torch.linalg.solve(tuned.inverse_mass.inverse, target.cov)
    eig = torch.linalg.eigvals(m_sigma).real
    assert float(eig.max() / eig.min()) < 3.0
    res = run_chain(tuned, state, 40, trace=True, generator=g)
    assert 0.7 < float(res.mean_accept_prob.mean()) < 0.9  # target 0.8
    zmax, zlim = ess_moment_z(res.trace, target)
    assert zmax <= zlim, f"{zmax:.2f} > {zlim:.2f}"


def test_nuts_diagonal_adaptation_finds_the_variances():
    cov = torch.diag(torch.tensor([0.05, 0.2, 1.0, 5.0], dtype=F64))
    from tests._sampler_targets import Gauss

    target = Gauss(torch.zeros(4, dtype=F64), cov)
    (tuned, _), _ = _adapt(NUTS(target, 0.05), target, 40, 160, seed=1)
    ratio = tuned.inverse_mass / cov.diagonal()
    assert float(ratio.max() / ratio.min()) < 2.0


@pytest.mark.parametrize(
    ("make", "target_accept"),
    [
        (lambda t: HMC(t, 0.05, 5, jitter=0.3), None),
        (lambda t: MALA(t, 0.01, inverse_mass=1.0), 0.574),
        (lambda t: RandomWalkMetropolis(t, 0.1, 1.0), 0.3),
    ],
)
def test_dense_adaptation_for_the_other_kernels(make, target_accept):
    """The dense M⁻¹ whitens the target for HMC, MALA and RWM; MALA's and RWM's acceptance
    lands near the target (HMC with a fixed L on a whitened Gaussian is near-periodic, its
    acceptance is not monotone in ε, so only its mass is checked)."""
    target = illcond(4, kappa=100.0)
    windows = {"init_buffer": 50, "term_buffer": 100, "base_window": 50}
    (tuned, state), g = _adapt(
        make(target),
        target,
        100,
        500,
        seed=2,
        windows=windows,
        target_accept=target_accept,
        adapt_mass=True,
        dense_mass=True,
    )
    assert isinstance(tuned.inverse_mass, DenseMass)
    eig = torch.linalg.eigvals(torch.linalg.solve(tuned.inverse_mass.inverse, target.cov)).real
    assert float(eig.max() / eig.min()) < 3.0
    if target_accept is not None:
        res = run_chain(tuned, state, 100, generator=g)
        assert abs(float(res.mean_accept_prob.mean()) - target_accept) < 0.1


def test_windows_and_errors():
    # Stan's rule: a window whose successor would not fit is stretched to the terminal buffer
    assert warmup_windows(160, init_buffer=20, term_buffer=20, base_window=20) == [
        (20, 40),
        (40, 140),
    ]
    assert warmup_windows(200, init_buffer=20, term_buffer=20, base_window=20)[-1] == (80, 180)
    f = lambda x: 0.5 * (x**2).sum(-1)  # noqa: E731
    with pytest.raises(ValueError, match="dense_mass=True needs"):
        adapt(NUTS(f, 0.1), torch.zeros(4, 2), 10, adapt_mass=False, dense_mass=True)
    with pytest.raises(ValueError, match="dense_mass=True needs"):
        adapt(NUTS(f, 0.1), torch.zeros(4, 2), 10, adapt_mass=False, dense_mass=True)
