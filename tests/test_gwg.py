import torch

from torchenergy.energies import energy_and_grad
from torchenergy.estimate import binary_states, exact_distribution
from torchenergy.models import BernoulliRBM, BoltzmannMachine
from torchenergy.samplers import GibbsWithGradients, run_chain

D64 = torch.float64


def _bm(n, seed=0, scale=0.5):
    g = torch.Generator().manual_seed(seed)
    bm = BoltzmannMachine(n, init_std=scale, generator=g, dtype=D64)
    with torch.no_grad():
        bm.b.copy_(torch.randn(n, generator=g, dtype=D64) * scale)
    return bm


class _NoReverse(GibbsWithGradients):
    """Broken: the reverse proposal is evaluated at the current point instead of the proposal."""

    def log_accept_ratio(self, state, idx, e_new, x_new, g_new):
        return super().log_accept_ratio(state, idx, e_new, state.x, state.grad)


def _transition_matrix(sampler, n):
    x = binary_states(n)
    s = sampler.init(x)
    q = torch.softmax(sampler.proposal_logits(s.x, s.grad), -1)  # (2^n, n)
    T = torch.zeros(2**n, 2**n, dtype=D64)
    for i in range(n):
        xn = x.clone()
        xn[:, i] = 1 - xn[:, i]
        en, gn = energy_and_grad(sampler.energy_fn, xn)
        idx = torch.full((2**n,), i)
        a = torch.exp(sampler.log_accept_ratio(s, idx, en, xn, gn).clamp(max=0))
        j = (xn * (2 ** torch.arange(n))).sum(1).long()
        T[torch.arange(2**n), j] += q[:, i] * a
    T[torch.arange(2**n), torch.arange(2**n)] += 1 - T.sum(1)
    return T


def test_gwg_transition_matrix_leaves_exact_distribution_invariant():
    for model in (
        _bm(4, seed=1, scale=0.8),
        BernoulliRBM(4, 3, init_std=1.0, generator=torch.Generator().manual_seed(2), dtype=D64),
    ):
        _, pi = exact_distribution(model, 4)
        T = _transition_matrix(GibbsWithGradients(model), 4)
        assert bool((T >= -1e-15).all())
        torch.testing.assert_close(pi @ T, pi, rtol=0, atol=1e-12)
        # power check: the reverse proposal taken at the current point breaks invariance
        Tb = _transition_matrix(_NoReverse(model), 4)
        assert float((pi @ Tb - pi).abs().max()) > 1e-3


def test_gwg_step_follows_the_enumerated_transition_matrix():
    bm = _bm(3, seed=3, scale=0.8)
    sampler = GibbsWithGradients(bm)
    T = _transition_matrix(sampler, 3)
    states = binary_states(3)
    n = 4000
    g = torch.Generator().manual_seed(4)
    for i in range(8):
        st, info = sampler.step(sampler.init(states[i].expand(n, 3).clone()), generator=g)
        assert info.accept_prob.shape == (n,) and not bool(info.nonfinite.any())
        j = (st.x * torch.tensor([1.0, 2.0, 4.0], dtype=D64)).sum(1).long()
        freq = torch.bincount(j, minlength=8).to(D64) / n
        se = torch.sqrt(T[i] * (1 - T[i]) / n).clamp_min(1e-4)
        assert bool(((freq - T[i]).abs() <= 4.5 * se).all()), (i, freq, T[i])
        e, _ = bm.energy_and_grad(st.x)
        torch.testing.assert_close(st.energy, e)


def test_gwg_marginals_match_exact_on_10_units():
    bm = _bm(10, seed=5, scale=0.3)
    x, pi = exact_distribution(bm, 10)
    exact = pi @ x
    g = torch.Generator().manual_seed(6)
    c = 3000
    x0 = torch.bernoulli(torch.full((c, 10), 0.5, dtype=D64), generator=g)
    res = run_chain(GibbsWithGradients(bm), x0, 1, burn_in=100, generator=g)
    se = torch.sqrt(exact * (1 - exact) / c)
    assert bool(((res.x.mean(0) - exact).abs() <= 4 * se).all()), (res.x.mean(0), exact)
    assert 0.2 < float(res.accept_rate.mean()) <= 1.0


def test_gwg_rejects_nonfinite_and_validates():
    bm = _bm(3)
    inf_energy = bm.restricted(lambda x: x[:, 0] == 0)  # +inf when unit 0 is on
    s = GibbsWithGradients(inf_energy)
    x = torch.zeros(200, 3, dtype=D64)
    out = s.sample(x, 20, generator=torch.Generator().manual_seed(0))
    assert bool((out[:, 0] == 0).all())
    import pytest

    with pytest.raises(ValueError, match="binary"):
        s.init(torch.full((2, 3), 0.5, dtype=D64))


def _kernels():
    from torchenergy.models import BlockGibbs, SiteGibbs

    rbm = BernoulliRBM(5, 3, init_std=0.5, generator=torch.Generator().manual_seed(0))
    bm = BoltzmannMachine(5, init_std=0.5, generator=torch.Generator().manual_seed(0))
    return [
        (GibbsWithGradients(bm), bm),
        (GibbsWithGradients(rbm, n_flips=2), rbm),
        (BlockGibbs(rbm, k=2), rbm),
        (SiteGibbs(bm, random_order=True), bm),
    ]


def test_discrete_kernels_contract():
    """Shapes and dtype kept, same seed => same chains, binary states, no parameter gradients."""
    for kernel, model in _kernels():
        for dtype in (torch.float32, torch.float64):
            k = kernel.__class__(**{**kernel.__dict__, "energy_fn": model.to(dtype)})
            x0 = torch.bernoulli(
                torch.full((6, 5), 0.5, dtype=dtype), generator=torch.Generator().manual_seed(1)
            )
            a = run_chain(k, x0, 5, trace=True, generator=torch.Generator().manual_seed(2))
            b = run_chain(k, x0, 5, trace=True, generator=torch.Generator().manual_seed(2))
            assert a.x.shape == x0.shape and a.x.dtype == dtype and a.trace.shape == (5, 6, 5)
            torch.testing.assert_close(a.x, b.x)
            assert set(a.trace.unique().tolist()) <= {0.0, 1.0}
            assert a.accept_rate.shape == (6,) and not bool(a.diverged.any())
            assert all(p.grad is None for p in model.parameters())
        model.to(torch.float32)
