import pytest
import torch

from torchenergy.estimate import binary_states, exact_distribution
from torchenergy.models import BoltzmannMachine, SiteGibbs, fit_boltzmann, moments
from torchenergy.samplers import run_chain

D64 = torch.float64


def _bm(n, seed=0, scale=0.5, spin=False):
    g = torch.Generator().manual_seed(seed)
    bm = BoltzmannMachine(n, spin=spin, init_std=scale, generator=g, dtype=D64)
    with torch.no_grad():
        bm.b.copy_(torch.randn(n, generator=g, dtype=D64) * scale)
    return bm


@pytest.mark.parametrize("spin", [False, True])
def test_energy_gradient_and_exact_conditionals(spin):
    bm = _bm(5, spin=spin)
    w = bm.weight
    torch.testing.assert_close(w, w.T)
    assert float(torch.diagonal(w).abs().max()) == 0.0
    x, pi = exact_distribution(bm, 5, spin=spin)
    torch.testing.assert_close(bm(x), -((x @ w) * x).sum(-1) - x @ bm.b)
    _e, g = bm.energy_and_grad(x)
    xg = x.clone().requires_grad_(True)
    (ga,) = torch.autograd.grad(bm(xg).sum(), xg)
    torch.testing.assert_close(g, ga)
    # single-site conditional vs the exact joint
    on = 1.0
    for i in range(5):
        for s in range(0, 32, 7):
            row = x[s].clone()
            row_on, row_off = row.clone(), row.clone()
            row_on[i], row_off[i] = on, (-1.0 if spin else 0.0)
            idx_on = int(((row_on > 0).to(torch.long) * (2 ** torch.arange(5))).sum())
            idx_off = int(((row_off > 0).to(torch.long) * (2 ** torch.arange(5))).sum())
            p_exact = pi[idx_on] / (pi[idx_on] + pi[idx_off])
            p_model = torch.sigmoid(bm.conditional_logit(row[None], i))[0]
            torch.testing.assert_close(p_model, p_exact)


@pytest.mark.parametrize("spin", [False, True])
def test_gibbs_sweeps_match_exact_marginals_on_10_units(spin):
    bm = _bm(10, seed=1, scale=0.3, spin=spin)
    x, pi = exact_distribution(bm, 10, spin=spin)
    m_exact, _c_exact = moments(x, pi)
    g = torch.Generator().manual_seed(2)
    c = 3000
    x0 = binary_states(10, 0, c % 1024 or 1024, spin=spin).repeat(3, 1)[:c]
    res = run_chain(SiteGibbs(bm, random_order=True), x0, 1, burn_in=30, generator=g)
    est = res.x.mean(0)
    var = (1 - m_exact**2) if spin else m_exact * (1 - m_exact)
    se = torch.sqrt(var / c)
    assert bool(((est - m_exact).abs() <= 4 * se).all()), (est, m_exact)


def test_moment_matching_with_exact_negatives_recovers_the_data_moments():
    teacher = _bm(6, seed=3, scale=0.6)
    x, pi = exact_distribution(teacher, 6)
    g = torch.Generator().manual_seed(4)
    data = x[torch.multinomial(pi, 3000, replacement=True, generator=g)]
    student = BoltzmannMachine(6, dtype=D64)
    gaps = fit_boltzmann(student, data, steps=800, lr=0.5, negatives="exact")
    assert gaps[-1] < 1e-4 < gaps[0]
    m_d, c_d = moments(data)
    xs, ps = exact_distribution(student, 6)
    m_s, c_s = moments(xs, ps)
    torch.testing.assert_close(m_s, m_d, atol=1e-4, rtol=0)
    torch.testing.assert_close(c_s, c_d, atol=1e-4, rtol=0)
    # the maximum-likelihood fit is at least as likely as the teacher on its own data
    from torchenergy.estimate import log_partition_enumerate

    ll_s = float((-student(data)).mean() - log_partition_enumerate(student, 6))
    ll_t = float((-teacher(data)).mean() - log_partition_enumerate(teacher, 6))
    assert ll_s >= ll_t - 1e-6


def test_moment_matching_with_persistent_gibbs_chains():
    teacher = _bm(6, seed=5, scale=0.6)
    x, pi = exact_distribution(teacher, 6)
    g = torch.Generator().manual_seed(6)
    data = x[torch.multinomial(pi, 3000, replacement=True, generator=g)]
    student = BoltzmannMachine(6, dtype=D64)
    gaps = fit_boltzmann(
        student, data, steps=300, lr=0.1, negatives="gibbs", n_chains=500, generator=g
    )
    xs, ps = exact_distribution(student, 6)
    m_s, c_s = moments(xs, ps)
    m_d, c_d = moments(data)
    # stochastic negatives: within a few standard errors of 500 chains
    assert float((c_s - c_d).abs().max()) < 0.06 and float((m_s - m_d).abs().max()) < 0.06
    assert gaps[0] > 0.1


def test_validation():
    with pytest.raises(ValueError, match=r"\(C, 3\)"):
        BoltzmannMachine(3)(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="negatives"):
        fit_boltzmann(BoltzmannMachine(3), torch.zeros(5, 3), negatives="cd")
    with pytest.raises(TypeError, match="BoltzmannMachine"):
        SiteGibbs(lambda x: x.sum(-1))
