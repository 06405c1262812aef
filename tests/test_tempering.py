import dataclasses
import math

import pytest
import torch

from torchenergy.energies import Energy, GaussianMixtureEnergy, energy_and_grad
from torchenergy.samplers import HMC, MALA, GradState, run_chain
from torchenergy.samplers.base import BaseInfo
from torchenergy.samplers.driver import Sampler
from torchenergy.samplers.tempering import ParallelTempering, geometric_ladder


def gen(seed):
    return torch.Generator().manual_seed(seed)


class Quad(Energy):
    def forward(self, x):
        return 0.5 * x.flatten(1).pow(2).sum(1)


@dataclasses.dataclass(frozen=True, eq=False)
class Frozen(Sampler):
    """A kernel that never moves (caches E and grad like MALA): isolates the swap move."""

    energy_fn: object
    step_size: float = 1.0

    def init(self, x):
        e, g = energy_and_grad(self.energy_fn, x)
        return GradState(x, e, g)

    def step(self, state, *, generator=None):
        c = state.x.shape[0]
        ones = torch.ones(c, dtype=state.x.dtype)
        false = torch.zeros(c, dtype=torch.bool)
        return state, BaseInfo(ones, ~false, false, false)


TEMPS = [1.0, 2.0, 5.0]


def swap_formula(e_i, e_j, t_i, t_j):
    return min(1.0, math.exp((1 / t_i - 1 / t_j) * (e_i - e_j)))


def test_geometric_ladder():
    t = geometric_ladder(5, 16.0)
    torch.testing.assert_close(t, torch.tensor([1.0, 2.0, 4.0, 8.0, 16.0], dtype=torch.float64))
    assert geometric_ladder(1, 3.0).tolist() == [1.0]
    with pytest.raises(ValueError, match="max_temperature"):
        geometric_ladder(3, 0.5)


def test_swap_probability_and_permutation_are_exact():
    c = 4
    pt = ParallelTempering(Quad(), Frozen(Quad()), TEMPS)
    # replica r of chain k sits at a distinct point; layout (C, R, D)
    pts = torch.tensor([[0.5, 2.0, 3.0, 0.1], [1.5, 0.2, 3.0, 2.5], [2.5, 1.0, 0.0, 4.0]]).T
    x = pts.double().unsqueeze(-1).expand(c, 3, 2).clone()  # (C, R, D=2)
    state = pt.init_replicas(x)
    energy = 0.5 * 2 * pts.double() ** 2  # E(x) = 0.5 |x|^2 with both coordinates equal, (C, R)
    torch.testing.assert_close(state.replica_energy, energy)
    torch.testing.assert_close(state.inner_x, x)
    for v in state:  # the protocol: every State field is per chain
        assert isinstance(v, torch.Tensor) and v.shape[0] == c

    new, info = pt.step(state, generator=gen(0))
    for i in range(2):
        for k in range(c):
            p = swap_formula(float(energy[k, i]), float(energy[k, i + 1]), TEMPS[i], TEMPS[i + 1])
            assert float(info.swap_prob[k, i]) == pytest.approx(p, rel=1e-12)
    # step 1: even pairs (0, 1) proposed for every chain
    assert info.swap_proposed.tolist() == [[True, False]] * c
    assert not bool(info.swapped[:, 1].any())
    sw = info.swapped[:, 0]
    exp_x = x.clone()
    exp_x[sw, 0], exp_x[sw, 1] = x[sw, 1], x[sw, 0]
    torch.testing.assert_close(new.inner_x, exp_x)
    torch.testing.assert_close(new.x, exp_x[:, 0])
    # the cached tempered energy and gradient were moved and rescaled to the new temperature
    inner = pt.inner_state(new)
    t_chain = torch.tensor(TEMPS, dtype=torch.float64).repeat(c)
    e_fresh, g_fresh = energy_and_grad(Quad(), inner.x)
    torch.testing.assert_close(inner.energy, e_fresh / t_chain)
    torch.testing.assert_close(inner.grad, g_fresh / t_chain.unsqueeze(1))
    torch.testing.assert_close(new.replica_energy, e_fresh.reshape(c, 3))
    assert new.swap_attempts.tolist() == [[1.0, 0.0]] * c
    torch.testing.assert_close(new.swap_accepts[:, 0], sw.double())

    # step 2: odd pairs (1, 2)
    _, info2 = pt.step(new, generator=gen(1))
    assert info2.swap_proposed.tolist() == [[False, True]] * c


def test_swap_frequency_matches_formula_within_mcse():
    c = 20000
    pt = ParallelTempering(Quad(), Frozen(Quad()), [1.0, 3.0])
    x = torch.tensor([[1.0], [2.0]], dtype=torch.float64).expand(c, 2, 1)
    _, info = pt.step(pt.init_replicas(x.clone()), generator=gen(2))
    p = swap_formula(0.5, 2.0, 1.0, 3.0)  # exp((1 - 1/3)(0.5 - 2)) = exp(-1)
    assert p == pytest.approx(math.exp(-1.0))
    rate = float(info.swapped.double().mean())
    assert abs(rate - p) <= 4 * math.sqrt(p * (1 - p) / c)


def test_nonfinite_energies_never_swap():
    inf_beyond = Quad().restricted(lambda x: x[:, 0] < 3.0)
    nan_at = lambda x: torch.where(x[:, 0] > 9.0, torch.nan, 0.5 * x.pow(2).sum(1))  # noqa: E731
    for energy in (inf_beyond, nan_at):
        pt = ParallelTempering(energy, Frozen(energy), [1.0, 2.0])
        # chain 0: replica 1 infinite/NaN; chain 1: both finite, swap favourable (prob 1)
        bad = 4.0 if energy is inf_beyond else 10.0
        x = torch.tensor([[[0.0], [bad]], [[2.0], [0.0]]], dtype=torch.float64)  # (C, R, 1)
        _, info = pt.step(pt.init_replicas(x), generator=gen(3))
        assert float(info.swap_prob[0, 0]) == 0.0 and not bool(info.swapped[0, 0])
        assert float(info.swap_prob[1, 0]) == 1.0 and bool(info.swapped[1, 0])


def test_swap_every_and_step_scaling():
    pt = ParallelTempering(Quad(), Frozen(Quad(), 0.1), [1.0, 2.0, 4.0], swap_every=2)
    state = pt.init(torch.zeros(3, 2))
    proposed = []
    for t in range(6):
        state, info = pt.step(state, generator=gen(t))
        proposed.append(info.swap_proposed[0].tolist())
        assert bool((info.swap_proposed == info.swap_proposed[0]).all())
    nothing, even, odd = [False, False], [True, False], [False, True]
    assert proposed == [nothing, even, nothing, odd, nothing, even]
    pt = ParallelTempering(Quad(), MALA(Quad(), 0.1), [1.0, 2.0, 4.0], step_scaling=1.0)
    inner = pt.inner_sampler(3, torch.zeros(3, 2))  # chain-major: (c0: T0 T1 T2, c1: ...)
    torch.testing.assert_close(inner.step_size, torch.tensor([0.1, 0.2, 0.4] * 3))
    # a per-chain T = 1 step size (C,) is scaled per replica
    pt = dataclasses.replace(pt, step_size=torch.tensor([0.1, 0.2, 0.3]))
    inner = pt.inner_sampler(3, torch.zeros(3, 2))
    expected = torch.tensor([0.1, 0.2, 0.3]).repeat_interleave(3) * torch.tensor([1.0, 2, 4] * 3)
    torch.testing.assert_close(inner.step_size, expected)
    pt = ParallelTempering(Quad(), MALA(Quad(), 0.1), [1.0, 2.0], replica_step_sizes=[0.3, 0.7])
    inner = pt.inner_sampler(2, torch.zeros(2, 2))
    torch.testing.assert_close(inner.step_size, torch.tensor([0.3, 0.7, 0.3, 0.7]))


def _mixture(dtype=torch.float64):
    means = torch.tensor([[-5.0, 0.0], [5.0, 0.0]], dtype=dtype)
    return GaussianMixtureEnergy(
        means, torch.eye(2, dtype=dtype), torch.tensor([0.8, 0.2], dtype=dtype)
    )


def _left_fraction(sampler, x0, burn_in, n, seed):
    res = run_chain(sampler, x0, n, burn_in=burn_in, trace=True, generator=gen(seed))
    per_chain = (res.trace[..., 0] < 0).double().mean(0)  # (C,): time average per chain
    return float(per_chain.mean()), float(per_chain.std() / math.sqrt(per_chain.numel()))


def test_pt_recovers_mixture_weights_that_mala_misses():
    target = _mixture()
    # exact mass of the half-plane x0 < 0: 0.8 Phi(5) + 0.2 Phi(-5)
    phi = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))  # noqa: E731
    truth = 0.8 * phi(5.0) + 0.2 * phi(-5.0)
    c = 80
    x0 = torch.tensor([5.0, 0.0], dtype=torch.float64).expand(c, 2).clone()  # all in the 0.2 mode
    pt = ParallelTempering(target, MALA(target, 0.5), geometric_ladder(8, 60.0), step_scaling=1.0)
    est, mcse = _left_fraction(pt, x0, 300, 1000, 4)
    assert abs(est - truth) <= 4 * mcse, (est, truth, mcse)
    swap = ParallelTempering.swap_rate(run_chain(pt, x0, 50, generator=gen(5)).state)
    assert swap.shape == (7,) and bool((swap > 0.2).all())
    # plain MALA started the same way stays in the minor mode: it misses the 0.8 weight
    est_mala, _ = _left_fraction(MALA(target, 0.5), x0, 300, 1000, 4)
    assert abs(est_mala - truth) > 0.5, est_mala


class WrongSignSwaps(ParallelTempering):
    """Power check: swaps accepted with the reciprocal ratio (a classic sign slip)."""

    @staticmethod
    def swap_log_ratio(beta, e_lo, e_hi):
        return -ParallelTempering.swap_log_ratio(beta, e_lo, e_hi)


def _t1_moment_z_scores(pt_cls, kernel="mala"):
    """|estimate - truth| / MCSE of the T=1 mean and second moment of a 1-D mixture,
    0.3 N(-3, 0.5^2) + 0.7 N(2, 1), whose moments are exact."""
    w, mu, sd = [0.3, 0.7], [-3.0, 2.0], [0.5, 1.0]
    target = GaussianMixtureEnergy(
        torch.tensor([[mu[0]], [mu[1]]], dtype=torch.float64),
        torch.tensor([[[sd[0] ** 2]], [[sd[1] ** 2]]], dtype=torch.float64),
        torch.tensor(w, dtype=torch.float64),
    )
    m1 = sum(wi * mi for wi, mi in zip(w, mu))
    m2 = sum(wi * (mi**2 + si**2) for wi, mi, si in zip(w, mu, sd))
    c = 128
    if kernel == "mala":
        pt = pt_cls(target, MALA(target, 0.3), geometric_ladder(5, 20.0), step_scaling=1.0)
    else:  # HMC starts every transition from the cached gradient: checks its rescaling on swaps
        pt = pt_cls(target, HMC(target, 0.3, 4), geometric_ladder(5, 20.0), step_scaling=0.5)
    x0 = torch.zeros(c, 1, dtype=torch.float64)
    res = run_chain(pt, x0, 1000, burn_in=300, trace=True, generator=gen(6))
    x = res.trace[..., 0]  # (T, C); chains are independent, time averages per chain
    z = []
    for stat, truth in ((x, m1), (x**2, m2)):
        per_chain = stat.mean(0)
        est, mcse = float(per_chain.mean()), float(per_chain.std() / math.sqrt(c))
        z.append(abs(est - truth) / mcse)
    return z


@pytest.mark.parametrize("kernel", ["mala", "hmc"])
def test_t1_marginal_of_1d_target_matches_exact_moments(kernel):
    z = _t1_moment_z_scores(ParallelTempering, kernel)
    assert max(z) <= 4.0, z


class StaleCacheOnSwap(ParallelTempering):
    """Power check: swapped states keep the cached E/T and ∇E/T of their old temperature."""

    @staticmethod
    def _permute(inner, flat, t_chain):
        return type(inner)(*(v.index_select(0, flat) for v in inner))


@pytest.mark.parametrize("broken", [WrongSignSwaps, StaleCacheOnSwap])
def test_power_broken_swaps_fail_the_same_test(broken):
    z = _t1_moment_z_scores(broken)
    assert max(z) > 4.0, z


def test_protocol_shapes_dtype_reproducibility_and_kernels():
    for shape in [(2,), (3,), (1, 4, 4)]:
        pt = ParallelTempering(Quad(), MALA(Quad(), 0.2), [1.0, 2.0, 4.0], step_scaling=1.0)
        x0 = torch.randn(5, *shape, generator=gen(7), dtype=torch.float32)
        a = run_chain(pt, x0, 6, thin=2, trace=True, generator=gen(8))
        b = run_chain(pt, x0, 6, thin=2, trace=True, generator=gen(8))
        assert a.x.shape == (5, *shape) and a.x.dtype == torch.float32
        assert a.trace.shape == (3, 5, *shape) and a.energy_trace.shape == (3, 5)
        assert torch.equal(a.trace, b.trace)
        assert pt.sample(x0, 3, generator=gen(1)).shape == x0.shape
    # HMC inside, and a factory
    hmc = ParallelTempering(Quad(), HMC(Quad(), 0.2, 3), [1.0, 3.0], step_scaling=0.5)
    fac = ParallelTempering(Quad(), lambda e: MALA(e, 0.1), [1.0, 3.0])
    for s in (hmc, fac):
        state, info = s.step(s.init(torch.zeros(4, 2)), generator=gen(9))
        assert state.inner_x.shape == (4, 2, 2) and info.replica_accept_prob.shape == (4, 2)
        assert s.inner_state(state).x.shape == (8, 2)
    # resume from a state
    res = run_chain(hmc, torch.zeros(4, 2), 3, generator=gen(2))
    assert run_chain(hmc, res.state, 2, generator=gen(3)).x.shape == (4, 2)


def test_bad_input():
    with pytest.raises(ValueError, match="strictly increasing"):
        ParallelTempering(Quad(), MALA(Quad(), 0.1), [1.0, 1.0])
    with pytest.raises(ValueError, match="> 0"):
        ParallelTempering(Quad(), MALA(Quad(), 0.1), [-1.0, 1.0])
    with pytest.raises(ValueError, match="1-D"):
        ParallelTempering(Quad(), MALA(Quad(), 0.1), [[1.0, 2.0]])
    with pytest.raises(ValueError, match="swap_every"):
        ParallelTempering(Quad(), MALA(Quad(), 0.1), [1.0, 2.0], swap_every=0)
    with pytest.raises(TypeError, match="kernel"):
        ParallelTempering(Quad(), 3, [1.0, 2.0])
    with pytest.raises(ValueError, match=r"replica_step_sizes must have shape \(R,\) = \(2,\)"):
        ParallelTempering(Quad(), MALA(Quad(), 0.1), [1.0, 2.0], replica_step_sizes=[0.1])
    pt = ParallelTempering(Quad(), MALA(Quad(), 0.1), [1.0, 2.0])
    with pytest.raises(ValueError, match="R = 2"):
        pt.init_replicas(torch.zeros(4, 3, 2))
    with pytest.raises(ValueError, match="not both"):
        ParallelTempering(
            Quad(), MALA(Quad(), 0.1), [1.0, 2.0], replica_step_sizes=[0.1, 0.2], step_size=0.1
        )
    with pytest.raises(ValueError, match="step_size"):
        ParallelTempering(Quad(), MALA(Quad(), 0.1), [1.0, 2.0], step_size=-0.1)
    bad_c = ParallelTempering(Quad(), MALA(Quad(), 0.1), [1.0, 2.0], step_size=torch.ones(3))
    with pytest.raises(ValueError, match="C = 4 chains"):
        bad_c.init(torch.zeros(4, 2))
    with pytest.raises(TypeError, match="energy_fn"):
        ParallelTempering(None, MALA(Quad(), 0.1), [1.0, 2.0])


def test_single_temperature_is_exactly_the_kernel():
    """R = 1: no swaps, and the chains equal the inner kernel's draw for draw."""
    x0 = torch.randn(5, 2, dtype=torch.float64, generator=gen(20))
    pt = ParallelTempering(Quad(), MALA(Quad(), 0.3), [1.0])
    a = run_chain(pt, x0, 20, trace=True, generator=gen(21))
    b = run_chain(MALA(Quad(), 0.3), x0, 20, trace=True, generator=gen(21))
    assert torch.equal(a.trace, b.trace) and torch.equal(a.energy_trace, b.energy_trace)
    assert torch.equal(a.accept_rate, b.accept_rate)
