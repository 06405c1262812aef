import math

import pytest
import torch

from torchenergy.energies import energy_and_grad
from torchenergy.estimate import binary_states, exact_distribution, rbm_log_partition
from torchenergy.models import (
    BernoulliRBM,
    BlockGibbs,
    GaussianBernoulliRBM,
    cd_gradients,
    cd_step,
    fit_rbm,
)
from torchenergy.samplers import run_chain

D64 = torch.float64


def _rbm(v, h, seed=0, scale=1.0, cls=BernoulliRBM, **kw):
    g = torch.Generator().manual_seed(seed)
    rbm = cls(v, h, init_std=scale, generator=g, dtype=D64, **kw)
    with torch.no_grad():
        rbm.b.copy_(torch.randn(v, generator=g, dtype=D64) * scale)
        rbm.c.copy_(torch.randn(h, generator=g, dtype=D64) * scale)
    return rbm


def test_free_energy_equals_brute_force_sum_over_hidden():
    rbm = _rbm(4, 3)
    v = binary_states(4)
    h = binary_states(3)
    ej = torch.stack([rbm.joint_energy(v, hh.expand(16, 3)) for hh in h], 1)  # (16, 8)
    torch.testing.assert_close(rbm(v), -torch.logsumexp(-ej, 1))
    # the hidden marginal energy is the sum over v
    ev = torch.stack([rbm.joint_energy(vv.expand(8, 4), h) for vv in v], 1)
    torch.testing.assert_close(rbm.hidden_free_energy(h), -torch.logsumexp(-ev, 1))


def test_gaussian_free_energy_sum_over_hidden_and_hidden_marginal_by_quadrature():
    rbm = _rbm(1, 3, cls=GaussianBernoulliRBM, scale=0.7)
    with torch.no_grad():
        rbm.log_var.fill_(math.log(0.6))
    v = torch.linspace(-12, 12, 20001, dtype=D64)[:, None]
    h = binary_states(3)
    ej = torch.stack([rbm.joint_energy(v, hh.expand(v.shape[0], 3)) for hh in h], 1)
    torch.testing.assert_close(rbm(v), -torch.logsumexp(-ej, 1))
    dv = float(v[1] - v[0])
    for j, hh in enumerate(h):
        integral = torch.logsumexp(-ej[:, j], 0) + math.log(dv)
        torch.testing.assert_close(-rbm.hidden_free_energy(hh[None])[0], integral)


@pytest.mark.parametrize("cls", [BernoulliRBM, GaussianBernoulliRBM])
def test_closed_form_gradient_matches_autograd(cls):
    rbm = _rbm(5, 3, cls=cls, scale=0.5)
    v = torch.rand(7, 5, dtype=D64)
    e, g = rbm.energy_and_grad(v)
    xg = v.clone().requires_grad_(True)
    (g_auto,) = torch.autograd.grad(rbm(xg).sum(), xg)
    torch.testing.assert_close(g, g_auto)
    torch.testing.assert_close(e, rbm(v))
    _, g2 = energy_and_grad(rbm, v)
    torch.testing.assert_close(g2, g_auto)


def _gibbs_matrix(rbm, broken=False):
    v = binary_states(rbm.n_visible)
    h = binary_states(rbm.n_hidden)
    ph = rbm.hidden_probs(v)  # (Nv, H)
    p_h = torch.prod(torch.where(h[None] == 1, ph[:, None], 1 - ph[:, None]), -1)  # (Nv, Nh)
    if broken:  # a wrong kernel: the visible conditional ignores the visible bias
        pv = torch.sigmoid(h @ rbm.W.T)
    else:
        pv = rbm.visible_probs(h)
    p_v = torch.prod(torch.where(v[None] == 1, pv[:, None], 1 - pv[:, None]), -1)  # (Nh, Nv)
    return p_h @ p_v


def test_gibbs_transition_matrix_leaves_exact_distribution_invariant():
    rbm = _rbm(3, 2, seed=1)
    _, pi = exact_distribution(rbm, 3)
    T = _gibbs_matrix(rbm)
    torch.testing.assert_close(T.sum(1), torch.ones(8, dtype=D64))
    torch.testing.assert_close(pi @ T, pi, rtol=0, atol=1e-12)
    # power check: a broken kernel moves the distribution
    assert (pi @ _gibbs_matrix(rbm, broken=True) - pi).abs().max() > 1e-3


def test_block_gibbs_step_follows_the_enumerated_transition_matrix():
    rbm = _rbm(3, 2, seed=1)
    T = _gibbs_matrix(rbm)
    states = binary_states(3)
    n = 4000
    g = torch.Generator().manual_seed(5)
    kernel = BlockGibbs(rbm)
    for i in range(8):
        st, info = kernel.step(kernel.init(states[i].expand(n, 3).clone()), generator=g)
        assert bool(info.accepted.all())
        idx = (st.x * torch.tensor([1.0, 2.0, 4.0], dtype=D64)).sum(1).long()
        freq = torch.bincount(idx, minlength=8).to(D64) / n
        se = torch.sqrt(T[i] * (1 - T[i]) / n).clamp_min(1e-4)
        assert bool(((freq - T[i]).abs() <= 4.5 * se).all()), (i, freq, T[i])  # 64 cells


def test_block_gibbs_marginals_match_exact_on_10_units():
    rbm = _rbm(10, 4, seed=2, scale=0.8)
    x, pi = exact_distribution(rbm, 10)
    exact = pi @ x  # (10,)
    g = torch.Generator().manual_seed(3)
    c = 4000
    x0 = torch.bernoulli(torch.full((c, 10), 0.5, dtype=D64), generator=g)
    res = run_chain(BlockGibbs(rbm), x0, 1, burn_in=50, generator=g)
    est = res.x.mean(0)
    se = torch.sqrt(exact * (1 - exact) / c)
    # z = 4 with 10 marginals: Bonferroni level 10 * 6e-5
    assert bool(((est - exact).abs() <= 4 * se).all()), (est, exact)
    # power: chains that did not mix (a single step from uniform) are detected
    bad = run_chain(BlockGibbs(rbm), x0, 0, generator=g).x.mean(0)
    assert bool(((bad - exact).abs() > 4 * se).any())


def test_cd_gradients_match_autograd_of_free_energy_difference_any_sizes():
    rbm = _rbm(6, 4, scale=0.5)
    g = torch.Generator().manual_seed(0)
    vp = torch.bernoulli(torch.full((3, 6), 0.4, dtype=D64), generator=g)
    vn = torch.bernoulli(torch.full((10, 6), 0.6, dtype=D64), generator=g)
    closed = cd_gradients(rbm, vp, vn)
    loss = rbm(vp).mean() - rbm(vn).mean()
    auto = torch.autograd.grad(loss, [rbm.W, rbm.b, rbm.c])
    for k, a in zip(["W", "b", "c"], auto):
        torch.testing.assert_close(closed[k], a)


def test_short_last_batch_is_averaged_over_its_own_size():
    # PCD with 10 chains and a positive batch of 3: one step of plain SGD must move the
    # parameters by lr * (mean_pos - mean_neg), never by lr * (sum_pos - sum_neg) / 3
    rbm = _rbm(4, 2, scale=0.3)
    g = torch.Generator().manual_seed(1)
    chains = torch.bernoulli(torch.full((10, 4), 0.5, dtype=D64), generator=g)
    v = torch.bernoulli(torch.full((3, 4), 0.5, dtype=D64), generator=g)
    b0 = rbm.b.detach().clone()
    opt = torch.optim.SGD(rbm.parameters(), lr=1.0)
    res = cd_step(rbm, v, opt, chains=chains, generator=g)
    torch.testing.assert_close(rbm.b.detach() - b0, v.mean(0) - res.chains.mean(0))


def _exact_ll(rbm, data):
    with torch.no_grad():
        return float((-rbm(data) - rbm_log_partition(rbm)).mean())


@pytest.mark.parametrize("mode", ["cd1", "cd5", "pcd"])
def test_training_increases_exact_log_likelihood(mode):
    teacher = _rbm(8, 3, seed=7, scale=1.5)
    g = torch.Generator().manual_seed(8)
    from torchenergy.estimate import rbm_exact_sample

    data = rbm_exact_sample(teacher, 500, generator=g)
    student = _rbm(8, 6, seed=9, scale=0.01)
    before = _exact_ll(student, data)
    kw = {"cd1": {"k": 1}, "cd5": {"k": 5}, "pcd": {"persistent": True, "n_chains": 50}}[mode]
    hist = fit_rbm(
        student, data, epochs=30, batch_size=32, lr=0.05, momentum=0.5, generator=g, **kw
    )
    after = _exact_ll(student, data)
    assert len(hist) == 30 and all(math.isfinite(h["recon_error"]) for h in hist)
    truth = _exact_ll(teacher, data)
    assert after > before + 0.5 * (truth - before), (before, after, truth)


def test_sparsity_target_lowers_hidden_activity_and_weight_decay_shrinks_w():
    g = torch.Generator().manual_seed(0)
    data = torch.bernoulli(torch.full((300, 12), 0.5, dtype=D64), generator=g)
    a = _rbm(12, 8, seed=1, scale=0.01)
    b = _rbm(12, 8, seed=1, scale=0.01)
    fit_rbm(a, data, epochs=20, batch_size=20, generator=torch.Generator().manual_seed(2))
    c = _rbm(12, 8, seed=1, scale=0.01)
    fit_rbm(
        b,
        data,
        epochs=20,
        batch_size=20,
        sparsity_target=0.05,
        sparsity_cost=1.0,
        generator=torch.Generator().manual_seed(2),
    )
    fit_rbm(
        c,
        data,
        epochs=20,
        batch_size=20,
        weight_decay=0.05,
        generator=torch.Generator().manual_seed(2),
    )
    assert float(b.transform(data).mean()) < 0.2 < float(a.transform(data).mean())
    assert float(c.W.detach().norm()) < float(a.W.detach().norm())


def test_gaussian_rbm_training_increases_exact_log_likelihood_and_learns_variance():
    g = torch.Generator().manual_seed(0)
    n = 600
    comp = torch.bernoulli(torch.full((n, 1), 0.5, dtype=D64), generator=g)
    data = (2 * comp - 1) * torch.tensor([1.5, -1.5, 0.0], dtype=D64) + 0.5 * torch.randn(
        n, 3, generator=g, dtype=D64
    )
    rbm = _rbm(3, 4, cls=GaussianBernoulliRBM, scale=0.01)
    with torch.no_grad():
        rbm.b.zero_()
        rbm.c.zero_()
    before = _exact_ll(rbm, data)
    fit_rbm(rbm, data, epochs=40, batch_size=50, lr=0.05, k=1, sigma_lr_scale=1.0, generator=g)
    after = _exact_ll(rbm, data)
    assert after > before + 0.3, (before, after)
    # the third unit is pure noise of sd 0.5: its variance parameter must shrink toward 0.25
    assert float(rbm.var[2]) < 0.6


def test_transform_sample_shapes_and_validation():
    rbm = BernoulliRBM(6, 3)
    v = torch.bernoulli(torch.full((4, 6), 0.5))
    assert rbm.transform(v).shape == (4, 3)
    assert rbm.transform(v.reshape(4, 2, 3)).shape == (4, 3)
    s = rbm.sample(5, 3, generator=torch.Generator().manual_seed(0))
    assert s.shape == (5, 6) and set(s.unique().tolist()) <= {0.0, 1.0}
    s1 = rbm.sample(5, 3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(s, s1)
    with pytest.raises(ValueError, match=r"\(C, 6\)"):
        rbm(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="n_hidden"):
        BernoulliRBM(3, 0)
    with pytest.raises(ValueError, match="momentum"):
        fit_rbm(rbm, v, momentum=1.0)
    with pytest.raises(TypeError, match="sample_hidden"):
        BlockGibbs(lambda x: x.sum(-1))
    grb = GaussianBernoulliRBM(3, 2, learn_sigma=False)
    assert not grb.log_var.requires_grad
    assert grb.sample(4, 2).shape == (4, 3)


def test_bf16_matmuls_give_the_same_update_up_to_rounding():
    g = torch.Generator().manual_seed(0)
    data = torch.bernoulli(torch.full((64, 30), 0.4), generator=g)
    chains = torch.bernoulli(torch.full((64, 30), 0.5), generator=g)
    deltas = []
    for md in (None, torch.bfloat16):
        rbm = BernoulliRBM(30, 20, init_std=0.3, generator=torch.Generator().manual_seed(1))
        w0 = rbm.W.detach().clone()
        opt = torch.optim.SGD(rbm.parameters(), lr=1.0)
        res = cd_step(
            rbm,
            data,
            opt,
            chains=chains,
            matmul_dtype=md,
            generator=torch.Generator().manual_seed(2),
        )
        assert res.chains.dtype == torch.float32 and rbm.W.dtype == torch.float32
        deltas.append(rbm.W.detach() - w0)
    # same random draws; the bf16 products round to ~3 significant digits
    rel = (deltas[0] - deltas[1]).norm() / deltas[0].norm()
    assert float(rel) < 0.05, float(rel)
    with pytest.raises(ValueError, match="matmul_dtype"):
        cd_step(BernoulliRBM(3, 2), data[:, :3], opt, matmul_dtype=torch.int8)


def test_linear_lr_decay_reaches_zero_and_is_validated():
    g = torch.Generator().manual_seed(0)
    data = torch.bernoulli(torch.full((50, 6), 0.5), generator=g)
    rbm = BernoulliRBM(6, 4, generator=g)
    opt = torch.optim.SGD(rbm.parameters(), lr=0.1)
    fit_rbm(rbm, data, epochs=2, batch_size=20, optimizer=opt, lr_decay="linear", generator=g)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="lr_decay"):
        fit_rbm(rbm, data, lr_decay="cosine")
