"""Contrastive divergence, its negative makers, improved CD, regularisers, non-finite errors."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import pytest
import torch
from torch import nn

from torchenergy.energies import energy_and_grad
from torchenergy.losses import (
    DataNegatives,
    NonFiniteEnergyError,
    PersistentNegatives,
    PersistentStateNegatives,
    ShortRunNegatives,
    contrastive_divergence,
    energy_l2,
    gradient_penalty,
    improved_contrastive_divergence,
    nearest_neighbour_entropy,
)
from torchenergy.samplers import Sampler, unadjusted_info
from torchenergy.samplers.buffer import ReplayBuffer


class _State(NamedTuple):
    x: torch.Tensor
    energy: torch.Tensor
    grad: torch.Tensor


@dataclass(frozen=True)
class _ULA(Sampler):
    """Minimal unadjusted Langevin kernel of the protocol (test double)."""

    energy_fn: Any
    step_size: float = 0.01

    def init(self, x):
        e, g = energy_and_grad(self.energy_fn, x)
        return _State(x.detach(), e, g)

    def step(self, state, *, generator=None):
        z = torch.randn(state.x.shape, generator=generator, dtype=state.x.dtype)
        x = state.x - self.step_size * state.grad + math.sqrt(2 * self.step_size) * z
        s = self.init(x)
        return s, unadjusted_info(~torch.isfinite(s.energy))


class _ShiftState(NamedTuple):
    x: torch.Tensor


@dataclass(frozen=True)
class _Shift(Sampler):
    """Deterministic kernel x -> x + 1 so that chain lineages can be read off the values."""

    energy_fn: Any = None

    def init(self, x):
        return _ShiftState(x.detach())

    def step(self, state, *, generator=None):
        c = state.x.shape[0]
        return _ShiftState(state.x + 1.0), unadjusted_info(torch.zeros(c, dtype=torch.bool))


def _mlp(seed=0):
    torch.manual_seed(seed)  # test-only initialisation of the weights
    net = nn.Sequential(nn.Linear(2, 16), nn.SiLU(), nn.Linear(16, 1)).double()
    return lambda x: net(x).squeeze(-1), net


def _x(n, seed):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_cd_gradient_is_difference_of_mean_parameter_gradients():
    e, net = _mlp()
    xp, xn = _x(7, 1), _x(5, 2)
    out = contrastive_divergence(e, xp, xn)
    grads = torch.autograd.grad(out.loss, list(net.parameters()))

    def mean_grad(x):
        gs = [
            torch.autograd.grad(e(x[i : i + 1]).sum(), list(net.parameters()))
            for i in range(len(x))
        ]
        return [torch.stack(p).mean(0) for p in zip(*gs)]

    for g, gp, gn in zip(grads, mean_grad(xp), mean_grad(xn)):
        assert torch.allclose(g, gp - gn, atol=1e-12)
    assert torch.allclose(out.gap, out.pos_energy.mean() - out.neg_energy.mean())


def test_cd_value_and_l2():
    e = lambda x: x.pow(2).sum(-1)  # noqa: E731
    xp, xn = torch.zeros(3, 2), torch.ones(4, 2)
    assert float(contrastive_divergence(e, xp, xn).loss) == -2.0
    out = contrastive_divergence(e, xp, xn, l2_reg=0.5)
    assert float(out.loss) == pytest.approx(-2.0 + 0.5 * (0 + 4.0))


def test_cd_negatives_are_detached_and_any_event_shape():
    w = torch.ones((), requires_grad=True)
    e = lambda x: w * x.reshape(x.shape[0], -1).pow(2).sum(-1)  # noqa: E731
    xn = torch.randn(3, 1, 2, 2, requires_grad=True)
    out = contrastive_divergence(e, torch.zeros(3, 1, 2, 2), xn)
    out.loss.backward()
    assert xn.grad is None and w.grad is not None
    with pytest.raises(ValueError, match="event shape"):
        contrastive_divergence(e, torch.zeros(3, 4), xn)


@pytest.mark.parametrize("phase", ["positive", "negative"])
def test_nonfinite_energy_raises_naming_phase_and_count(phase):
    def e(x):
        out = x.sum(-1)
        return torch.where(x[:, 0] > 0.5, torch.nan, out)

    good, bad = torch.zeros(4, 2), torch.tensor([[1.0, 0], [1.0, 0], [0, 0]])
    xp, xn = (bad, good) if phase == "positive" else (good, bad)
    with pytest.raises(NonFiniteEnergyError, match=rf"2 of 3 {phase}-phase"):
        contrastive_divergence(e, xp, xn)


def test_inf_energy_raises():
    with pytest.raises(NonFiniteEnergyError, match="1 of 2 negative"):
        contrastive_divergence(
            lambda x: x.sum(-1), torch.zeros(2, 1), torch.tensor([[math.inf], [0.0]])
        )


def test_data_negatives_start_at_data_and_are_reproducible():
    e, _ = _mlp()
    make = DataNegatives(_ULA(e, 1e-3), n_steps=3)
    x = _x(32, 3)
    a = make(x, generator=torch.Generator().manual_seed(0))
    b = make(x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.shape == x.shape and not a.requires_grad
    assert (a - x).abs().max() < 0.5  # three small steps from the data
    assert torch.allclose(DataNegatives(_Shift(), n_steps=4)(x), x + 4, atol=1e-12)


def test_short_run_negatives_start_from_noise():
    make = ShortRunNegatives(_Shift(), n_steps=2, n_chains=50)
    out = make(_x(8, 0), generator=torch.Generator().manual_seed(0))
    assert out.shape == (50, 2)
    assert bool(((out >= 1) & (out <= 3)).all())  # uniform [-1, 1] noise + 2


def test_persistent_negatives_keep_lineages():
    init = torch.arange(20, dtype=torch.float64).reshape(10, 2) * 1000
    buf = ReplayBuffer(10, (2,), reinit_prob=0.0, initial=init)
    make = PersistentNegatives(_Shift(), buf, n_steps=3, n_chains=4)
    g = torch.Generator().manual_seed(0)
    for _ in range(25):
        x = make(_x(4, 0), generator=g)
        assert x.shape == (4, 2)
    # every slot is one chain: its value is its own start plus 3 per time it was advanced
    assert torch.allclose(buf.data, init + 3 * buf.age[:, None].double(), atol=1e-9)
    assert int(buf.age.sum()) == 25 * 4 and int(buf.age.min()) > 0


def test_persistent_negatives_restart_from_noise():
    g = torch.Generator().manual_seed(0)
    init = torch.full((200, 1), 100.0, dtype=torch.float64)
    buf = ReplayBuffer(200, (1,), reinit_prob=0.05, initial=init)
    make = PersistentNegatives(_Shift(), buf, n_steps=2, n_chains=100)
    for _ in range(20):
        out = make(torch.zeros(3, 1, dtype=torch.float64), generator=g)
    # chains restarted from uniform[-1, 1] noise are the only ones below 100
    restarted = buf.data[:, 0] < 50
    assert int(buf.n_reinit) > 0 and int(restarted.sum()) > 0
    # a restarted chain has been advanced 2 steps per update since its restart
    frac = buf.data[restarted, 0] - 2 * buf.age[restarted].double()
    assert bool(((frac >= -1) & (frac <= 1)).all())
    kept = ~restarted
    assert torch.allclose(buf.data[kept, 0] % 2, torch.zeros_like(buf.data[kept, 0]))
    n = int(buf.n_drawn)
    p = int(buf.n_reinit) / n  # 5% restarts, within 4 binomial standard errors
    assert abs(p - 0.05) <= 4 * math.sqrt(0.05 * 0.95 / n)
    assert out.shape == (100, 1)


def test_persistent_state_negatives_continue_the_same_state():
    make = PersistentStateNegatives(_Shift(), n_steps=2)
    x = torch.zeros(3, 2)
    assert torch.equal(make(x), x + 2)
    assert torch.equal(make(x + 50), x + 4)  # ignores later batches: chains persist
    make.reset()
    assert torch.equal(make(x + 50), x + 52)


def test_persistent_state_refreshes_cached_energy():
    theta = torch.tensor(1.0)
    e = lambda x: theta * x.pow(2).sum(-1)  # noqa: E731
    make = PersistentStateNegatives(_ULA(e, 1e-3), n_steps=1)
    make(torch.ones(2, 1), generator=torch.Generator().manual_seed(0))
    theta.fill_(5.0)
    make(torch.ones(2, 1), generator=torch.Generator().manual_seed(0))
    assert torch.allclose(make.state.energy, 5.0 * make.state.x.pow(2).sum(-1))


def test_improved_cd_kl_gradient_flows_only_through_last_step():
    theta = nn.Parameter(torch.tensor(0.7, dtype=torch.float64))

    class Quad(nn.Module):
        def __init__(self):
            super().__init__()
            self.theta = theta

        def forward(self, x):
            return 0.5 * self.theta * x.pow(2).sum(-1)

    e = Quad()
    xp, xprev = _x(6, 1), _x(5, 2)
    eps = 0.1
    out = improved_contrastive_divergence(
        e, xp, xprev, step_size=eps, noise_scale=0.0, entropy_weight=0.0
    )
    (g,) = torch.autograd.grad(out.loss, [theta])
    th = float(theta.detach())
    xk = xprev * (1 - eps * th)
    # CD part: d/dtheta of 1/2 theta (mean|xp|^2 - mean|xk|^2) with xk detached
    g_cd = 0.5 * (xp.pow(2).sum(-1).mean() - xk.pow(2).sum(-1).mean())
    # KL part: frozen theta, gradient through xk = (1 - eps theta) xprev only
    g_kl = (th * xk * (-eps * xprev)).sum(-1).mean()
    assert torch.allclose(g, g_cd + g_kl, atol=1e-12)
    assert torch.allclose(out.negatives, xk)


def test_improved_cd_entropy_pushes_samples_apart():
    x = torch.tensor([[0.0], [0.1], [3.0]], dtype=torch.float64, requires_grad=True)
    h = nearest_neighbour_entropy(x)
    (g,) = torch.autograd.grad(h, [x])
    assert g[0, 0] < 0 < g[1, 0]  # increasing entropy separates the two close points
    ref = torch.tensor([[1.0]], dtype=torch.float64)
    assert float(nearest_neighbour_entropy(torch.tensor([[3.0]]), ref)) == pytest.approx(
        math.log(2)
    )


def test_regularisers():
    assert float(energy_l2(torch.tensor([1.0, 3.0]), torch.tensor([2.0]))) == 9.0
    w = torch.tensor(2.0, requires_grad=True)
    gp = gradient_penalty(lambda x: w * x.pow(2).sum((1, 2)), torch.ones(3, 1, 2))
    assert float(gp.detach()) == pytest.approx(32.0)  # |2 w x|^2 summed over 2 dims
    (gw,) = torch.autograd.grad(gp, [w])
    assert float(gw) == pytest.approx(32.0)
    with pytest.raises(ValueError):
        energy_l2()


def test_makers_with_library_langevin_are_reproducible():
    from torchenergy.samplers import Langevin

    e, _ = _mlp()

    def run(seed):
        g = torch.Generator().manual_seed(seed)
        buf = ReplayBuffer(64, (2,), reinit_prob=0.05, dtype=torch.float64, generator=g)
        make = PersistentNegatives(Langevin(e, step_size=1e-2), buf, n_steps=5, n_chains=16)
        outs = [make(_x(16, 0), generator=g) for _ in range(3)]
        state = PersistentStateNegatives(Langevin(e, step_size=1e-2), n_steps=2)
        outs += [state(_x(16, 1), generator=g) for _ in range(2)]
        return torch.cat(outs), buf.data.clone()

    (a, da), (b, db), (c, _) = run(0), run(0), run(1)
    assert torch.equal(a, b) and torch.equal(da, db) and not torch.equal(a, c)
    assert bool(torch.isfinite(a).all())


def test_parallel_tempering_cd_keeps_every_replica_and_refreshes():
    from torchenergy.samplers import MALA, ParallelTempering, geometric_ladder
    from torchenergy.samplers.chains import _refresh

    theta = torch.tensor(1.0, dtype=torch.float64)
    e = lambda x: 0.5 * theta * x.pow(2).sum(-1)  # noqa: E731
    pt = ParallelTempering(e, MALA(e, 0.1), geometric_ladder(3, 4.0), step_scaling=1.0)
    make = PersistentStateNegatives(pt, n_steps=5)
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(8, 2, dtype=torch.float64)
    neg = make(x, generator=g)
    assert neg.shape == (8, 2) and torch.equal(neg, make.state.x)  # the T = 1 replica
    assert make.state.inner_x.shape == (8, 3, 2)
    theta.fill_(3.0)  # an optimiser step changed the energy: cached energies are stale
    fresh = _refresh(pt, make.state)
    assert torch.equal(fresh.inner_x, make.state.inner_x)  # hot replicas keep their positions
    expected = 1.5 * make.state.inner_x.pow(2).sum(-1)
    assert torch.allclose(fresh.replica_energy, expected)
    neg2 = make(x, generator=g)
    assert torch.allclose(make.state.replica_energy, 1.5 * make.state.inner_x.pow(2).sum(-1))
    assert not torch.equal(neg2, neg)
