import copy
import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import pytest
import torch
import torch.nn.functional as F

from torchenergy.energies import GaussianEnergy, GaussianMixtureEnergy
from torchenergy.estimate import (
    GeometricPath,
    RBMAnnealingPath,
    ais,
    ais_schedule,
    base_rate_bias,
    binary_states,
    exact_distribution,
    log_partition_enumerate,
    log_weight_stats,
    pseudo_log_likelihood,
    rbm_ais_log_likelihood,
    rbm_exact_sample,
    rbm_log_partition,
    reverse_ais,
)
from torchenergy.models import BernoulliRBM, GaussianBernoulliRBM
from torchenergy.samplers import BaseInfo, Sampler

D64 = torch.float64


def _rbm(v, h, seed=0, scale=1.0, cls=BernoulliRBM):
    g = torch.Generator().manual_seed(seed)
    rbm = cls(v, h, init_std=scale, generator=g, dtype=D64)
    with torch.no_grad():
        rbm.b.copy_(torch.randn(v, generator=g, dtype=D64) * scale)
        rbm.c.copy_(torch.randn(h, generator=g, dtype=D64) * scale)
    return rbm


def _brute_log_z(rbm):
    v, h = binary_states(rbm.n_visible), binary_states(rbm.n_hidden)
    e = torch.stack([rbm.joint_energy(v, hh.expand(v.shape[0], -1)) for hh in h])
    return torch.logsumexp(-e.flatten(), 0)


@pytest.mark.parametrize(("nv", "nh"), [(5, 4), (3, 6)])
def test_rbm_exact_log_partition_matches_brute_force_either_layer(nv, nh):
    rbm = _rbm(nv, nh, scale=0.8)
    torch.testing.assert_close(rbm_log_partition(rbm, chunk_size=3), _brute_log_z(rbm))
    # float32 model: evaluated on a float64 copy, the model is untouched
    rbm32 = copy.deepcopy(rbm).to(torch.float32)
    rbm64 = copy.deepcopy(rbm32).double()
    torch.testing.assert_close(rbm_log_partition(rbm32), _brute_log_z(rbm64))
    assert rbm32.W.dtype == torch.float32


def test_gaussian_rbm_log_partition_by_quadrature():
    rbm = _rbm(1, 4, cls=GaussianBernoulliRBM, scale=0.6)
    v = torch.linspace(-15, 15, 30001, dtype=D64)[:, None]
    quad = torch.logsumexp(-rbm(v), 0) + math.log(float(v[1] - v[0]))
    torch.testing.assert_close(rbm_log_partition(rbm), quad)


def test_generic_enumeration_chunked_and_spin():
    w = torch.randn(6, 6, generator=torch.Generator().manual_seed(0), dtype=D64)
    e = lambda x: -((x @ w) * x).sum(-1)  # noqa: E731
    full = torch.logsumexp(-e(binary_states(6)), 0)
    torch.testing.assert_close(log_partition_enumerate(e, 6, chunk_size=5), full)
    spins = binary_states(6, spin=True)
    assert set(spins.unique().tolist()) == {-1.0, 1.0}
    torch.testing.assert_close(
        log_partition_enumerate(e, 6, spin=True), torch.logsumexp(-e(spins), 0)
    )
    with pytest.raises(ValueError, match="n <= 40"):
        binary_states(41)


def test_exact_rbm_samples_have_exact_marginals():
    for nv, nh in [(6, 3), (3, 6)]:
        rbm = _rbm(nv, nh, seed=1, scale=0.8)
        x, pi = exact_distribution(rbm, nv)
        exact = pi @ x
        n = 20000
        s = rbm_exact_sample(rbm, n, generator=torch.Generator().manual_seed(2))
        se = torch.sqrt(exact * (1 - exact) / n)
        assert bool(((s.mean(0) - exact).abs() <= 4 * se).all())


def test_log_weight_stats():
    lw = torch.log(torch.tensor([1.0, 3.0], dtype=D64))
    m, se, ess = log_weight_stats(lw)
    torch.testing.assert_close(m, torch.log(torch.tensor(2.0, dtype=D64)))
    torch.testing.assert_close(ess, torch.tensor(16.0 / 10.0, dtype=D64))
    torch.testing.assert_close(se, torch.tensor(2.0, dtype=D64).sqrt() / (2 * math.sqrt(2)))
    for kind in ("linear", "sigmoid", "salakhutdinov"):
        b = ais_schedule(200, kind=kind)
        assert float(b[0]) == 0.0 and float(b[-1]) == 1.0 and bool((b.diff() >= 0).all())
    with pytest.raises(ValueError, match="betas"):
        ais(RBMAnnealingPath(_rbm(3, 2)), torch.tensor([0.0, 0.5]), 4)


def test_ais_path_endpoints():
    rbm = _rbm(6, 4, scale=0.7)
    path = RBMAnnealingPath(rbm, base_bias=torch.full((6,), 0.3, dtype=D64))
    v = binary_states(6)
    torch.testing.assert_close(path.energy(v, 1.0), rbm(v))
    torch.testing.assert_close(torch.logsumexp(-path.energy(v, 0.0), 0), path.base_log_partition())
    grbm = _rbm(1, 3, cls=GaussianBernoulliRBM)
    gp = RBMAnnealingPath(grbm)
    x = torch.linspace(-15, 15, 30001, dtype=D64)[:, None]
    quad = torch.logsumexp(-gp.energy(x, 0.0), 0) + math.log(float(x[1] - x[0]))
    torch.testing.assert_close(quad, gp.base_log_partition())


def test_ais_rbm_20_hidden_within_3_se_and_reverse_ais_brackets():
    g = torch.Generator().manual_seed(0)
    rbm = _rbm(30, 20, seed=11, scale=1.0)
    exact = float(rbm_log_partition(rbm))
    data = rbm_exact_sample(rbm, 2000, generator=g)
    path = RBMAnnealingPath(rbm, base_bias=base_rate_bias(data))
    fine = ais(path, 1000, 400, generator=g)
    assert abs(float(fine.log_z) - exact) <= 3 * float(fine.stderr), (
        fine.log_z,
        exact,
        fine.stderr,
    )
    assert 0 < float(fine.stderr) < 0.05 and float(fine.ess) > 100
    rev_fine = reverse_ais(path, 1000, rbm_exact_sample(rbm, 400, generator=g), generator=g)
    assert abs(float(rev_fine.log_z) - exact) <= 3 * float(rev_fine.stderr)
    # The bracket is a statement about expectations (Jensen): E[log Z_fwd] <= log Z <= E[log Z_rev].
    # 50 independent replicates of 20 chains on a coarse path (uniform base, 5 steps), where the
    # bias is far larger than the replicate noise, put the two means on either side.
    r, n = 50, 20
    upath = RBMAnnealingPath(rbm)
    f = ais(upath, 5, r * n, generator=g)
    rv = reverse_ais(upath, 5, rbm_exact_sample(rbm, r * n, generator=g), generator=g)
    lz0 = upath.base_log_partition()
    lf = lz0 + torch.logsumexp(f.log_weights.view(r, n), 1) - math.log(n)
    lr = lz0 - (torch.logsumexp(rv.log_weights.view(r, n), 1) - math.log(n))
    se = float(torch.sqrt(lf.var() / r + lr.var() / r))
    assert float(lf.mean()) < exact < float(lr.mean()), (lf.mean(), exact, lr.mean())
    assert float(lr.mean() - lf.mean()) > 4 * se


def test_rbm_ais_log_likelihood_bracket_contains_exact():
    g = torch.Generator().manual_seed(1)
    rbm = _rbm(20, 12, seed=3, scale=0.4)
    test = rbm_exact_sample(rbm, 300, generator=g)
    est = rbm_ais_log_likelihood(
        rbm,
        test,
        n_betas=30,
        n_chains=300,
        base_bias=base_rate_bias(test),
        reverse_samples=rbm_exact_sample(rbm, 300, generator=g),
        generator=g,
    )
    with torch.no_grad():
        exact = float((-rbm(test) - rbm_log_partition(rbm)).mean())
    assert est.lower - 4 * est.stderr_reverse <= exact <= est.upper + 4 * est.stderr, est
    assert est.stderr > 0 and est.stderr_reverse > 0 and est.lower < est.upper
    assert est.upper == est.mean


def test_ais_gaussian_mixture_recovers_known_log_z():
    target = GaussianMixtureEnergy(
        torch.tensor([[-3.0, 0.0], [3.0, 1.0], [0.0, 4.0]], dtype=D64),
        torch.eye(2, dtype=D64) * 0.5,
        torch.tensor([0.5, 0.3, 0.2], dtype=D64),
    )
    base = GaussianEnergy(torch.zeros(2, dtype=D64), torch.eye(2, dtype=D64) * 16.0)
    path = GeometricPath(
        base,
        target,
        lambda n, gen: base.sample(n, generator=gen),
        base.log_partition(),
        lambda e: _RWM(e, 0.8),
    )
    g = torch.Generator().manual_seed(4)
    res = ais(path, 300, 1000, n_steps=2, generator=g)
    truth = float(target.log_partition())
    assert abs(float(res.log_z) - truth) <= 4 * float(res.stderr), (res.log_z, truth, res.stderr)
    rev = reverse_ais(path, 300, target.sample(1000, generator=g), n_steps=2, generator=g)
    assert abs(float(rev.log_z) - truth) <= 4 * float(rev.stderr)
    # a broken path (wrong base log Z) is detected
    bad = GeometricPath(
        base, target, path.base_sampler, base.log_partition() + 0.2, path.make_kernel
    )
    res_bad = ais(bad, 300, 1000, n_steps=2, generator=g)
    assert abs(float(res_bad.log_z) - truth) > 4 * float(res_bad.stderr)


class _RWMState(NamedTuple):
    x: torch.Tensor
    energy: torch.Tensor


@dataclass(frozen=True)
class _RWM(Sampler):
    """Random-walk Metropolis (test-local kernel in the sampler protocol)."""

    energy_fn: Any
    step_size: float

    def init(self, x):
        return _RWMState(x, self.energy_fn(x))

    def step(self, state, *, generator=None):
        z = torch.randn(state.x.shape, generator=generator, dtype=state.x.dtype)
        prop = state.x + self.step_size * z
        e = self.energy_fn(prop)
        log_a = (state.energy - e).clamp_max(0)
        u = torch.rand(e.shape, generator=generator, dtype=e.dtype)
        acc = torch.log(u) < log_a
        x = torch.where(acc[:, None], prop, state.x)
        en = torch.where(acc, e, state.energy)
        false = torch.zeros_like(acc)
        return _RWMState(x, en), BaseInfo(log_a.exp(), acc, false, false)


def test_pseudo_likelihood_is_the_sum_of_exact_conditionals():
    rbm = _rbm(5, 3, seed=4, scale=0.9)
    x, pi = exact_distribution(rbm, 5)
    logp = torch.log(pi)
    idx = {tuple(r.tolist()): i for i, r in enumerate(x)}
    rows = x[[3, 17, 30]]
    expected = []
    for r in rows:
        tot = 0.0
        for i in range(5):
            f = r.clone()
            f[i] = 1 - f[i]
            a, b = logp[idx[tuple(r.tolist())]], logp[idx[tuple(f.tolist())]]
            tot += float(a - torch.logaddexp(a, b))
        expected.append(tot)
    expected = torch.tensor(expected, dtype=D64)
    torch.testing.assert_close(pseudo_log_likelihood(rbm, rows), expected)
    torch.testing.assert_close(
        pseudo_log_likelihood(lambda v: rbm(v), rows, chunk_size=2), expected
    )
    # not the scikit-learn scaling: one flipped feature times D is a different number in general
    one = F.logsigmoid(rbm(torch.where(torch.arange(5) == 0, 1 - rows, rows)) - rbm(rows)) * 5
    assert not torch.allclose(one, expected)
    with pytest.raises(ValueError, match="binary"):
        pseudo_log_likelihood(rbm, torch.full((1, 5), 0.5, dtype=D64))


@pytest.mark.parametrize("cls", [BernoulliRBM, GaussianBernoulliRBM])
def test_fused_rbm_anneal_equals_the_generic_loop(cls):
    rbm = _rbm(7, 5, seed=2, scale=0.7, cls=cls)
    bb = None if cls is GaussianBernoulliRBM else torch.full((7,), -0.4, dtype=D64)
    path = RBMAnnealingPath(rbm, bb)
    generic = lambda at: path.kernel(at.beta)  # noqa: E731  (forces the generic loop)
    for fn, arg in ((ais, 6), (reverse_ais, None)):
        x = None if arg else path.base_sample(6, generator=torch.Generator().manual_seed(0))
        a = fn(path, 25, arg if arg else x, generator=torch.Generator().manual_seed(1))
        b = fn(
            path, 25, arg if arg else x, kernel=generic, generator=torch.Generator().manual_seed(1)
        )
        torch.testing.assert_close(a.log_weights, b.log_weights)
        assert torch.equal(a.x, b.x)  # the same draws: the same states, bit for bit


def test_ais_gaussian_bernoulli_rbm_matches_exact_log_z():
    rbm = _rbm(20, 12, seed=6, scale=0.4, cls=GaussianBernoulliRBM)
    with torch.no_grad():
        rbm.log_var.copy_(torch.linspace(-0.5, 0.5, 20, dtype=D64))
    exact = float(rbm_log_partition(rbm))
    g = torch.Generator().manual_seed(7)
    path = RBMAnnealingPath(rbm)
    fwd = ais(path, 500, 300, generator=g)
    assert abs(float(fwd.log_z) - exact) <= 3 * float(fwd.stderr), (fwd.log_z, exact, fwd.stderr)
    # reverse AIS from exact samples
    rev = reverse_ais(path, 500, rbm_exact_sample(rbm, 300, generator=g), generator=g)
    assert abs(float(rev.log_z) - exact) <= 3 * float(rev.stderr), (rev.log_z, exact, rev.stderr)


def test_ais_gaussian_mixture_with_the_library_mala_kernel():
    from torchenergy.samplers import MALA

    target = GaussianMixtureEnergy(
        torch.tensor([[-3.0, 0.0], [3.0, 1.0]], dtype=D64), torch.eye(2, dtype=D64) * 0.5
    )
    base = GaussianEnergy(torch.zeros(2, dtype=D64), torch.eye(2, dtype=D64) * 9.0)
    path = GeometricPath(
        base, target, lambda n, gen: base.sample(n, generator=gen), base.log_partition()
    )
    g = torch.Generator().manual_seed(5)
    res = ais(path, 200, 500, kernel=lambda e: MALA(e, 0.2), generator=g)
    truth = float(target.log_partition())
    assert abs(float(res.log_z) - truth) <= 4 * float(res.stderr), (res.log_z, truth, res.stderr)
    with pytest.raises(ValueError, match="make_kernel"):
        ais(path, 5, 3, generator=g)
