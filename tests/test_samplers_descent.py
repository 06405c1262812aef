"""Mode seekers (GradientDescent, Nesterov) and annealed Langevin."""

import math

import pytest
import torch

from tests._sampler_targets import Counting, Gauss, Quartic, mcse_z, single_thread, z_bonferroni  # noqa: F401
from torchenergy.samplers import (
    AnnealedLangevin,
    DivergenceError,
    GradientDescent,
    Nesterov,
    geometric_schedule,
    run_chain,
)

F64 = torch.float64


def _sgd_trajectory(energy, x0, lr, n, momentum=0.0, nesterov=False):
    x = x0.clone().requires_grad_(True)
    opt = torch.optim.SGD([x], lr=lr, momentum=momentum, nesterov=nesterov)
    out = []
    for _ in range(n):
        opt.zero_grad()
        energy(x).sum().backward()
        opt.step()
        out.append(x.detach().clone())
    return torch.stack(out)


def test_gradient_descent_equals_torch_sgd():
    x0 = torch.randn(5, 3, generator=torch.Generator().manual_seed(0), dtype=F64)
    res = run_chain(GradientDescent(Quartic(), 0.1), x0, 20, trace=True)
    torch.testing.assert_close(res.trace, _sgd_trajectory(Quartic(), x0, 0.1, 20))


def test_nesterov_equals_torch_sgd_nesterov():
    x0 = torch.randn(5, 3, generator=torch.Generator().manual_seed(1), dtype=F64)
    res = run_chain(Nesterov(Quartic(), 0.05, momentum=0.8), x0, 30, trace=True)
    ref = _sgd_trajectory(Quartic(), x0, 0.05, 30, momentum=0.8, nesterov=True)
    torch.testing.assert_close(res.trace, ref)


def test_per_chain_step_size_equals_separate_runs():
    x0 = torch.randn(4, 2, generator=torch.Generator().manual_seed(2), dtype=F64)
    eps = torch.tensor([0.01, 0.05, 0.1, 0.2], dtype=F64)
    for cls in (GradientDescent, Nesterov):
        joint = cls(Quartic(), eps).sample(x0, 15)
        for c in range(4):
            alone = cls(Quartic(), float(eps[c])).sample(x0[c : c + 1], 15)
            torch.testing.assert_close(joint[c : c + 1], alone)


def test_nesterov_beats_gradient_descent_on_ill_conditioned_quadratic():
    target = Gauss(torch.zeros(2, dtype=F64), torch.diag(torch.tensor([100.0, 1.0], dtype=F64)))
    x0 = torch.tensor([[10.0, 1.0]], dtype=F64)
    # both use the largest stable step for the stiff direction (curvature 1)
    gd = GradientDescent(target, 1.0).sample(x0, 100)
    nag = Nesterov(target, 1.0, momentum=0.8).sample(x0, 100)
    assert float(target(nag)) < 1e-3 * float(target(gd))


def test_one_evaluation_per_step():
    x0 = torch.randn(3, 2, dtype=F64)
    for make in (
        lambda e: GradientDescent(e, 0.1),
        lambda e: Nesterov(e, 0.1),
        lambda e: AnnealedLangevin(e, 0.1, geometric_schedule(1.0, 0.1, 5)),
    ):
        energy = Counting(Quartic())
        run_chain(make(energy), x0, 12, generator=torch.Generator().manual_seed(0))
        assert energy.calls == 13


def test_gradient_descent_divergence_is_reported():
    quad = lambda x: 0.5 * (x**2).sum(-1)  # noqa: E731
    x0 = torch.ones(3, 2, dtype=F64)
    with pytest.raises(DivergenceError, match="3 of 3 chains diverged"):
        run_chain(GradientDescent(quad, 1e3), x0, 200)
    with pytest.warns(RuntimeWarning, match="diverged"):
        res = run_chain(Nesterov(quad, 1e3), x0, 200, on_divergence="warn")
    assert torch.isfinite(res.x).all() and res.diverged.all()


# Annealed Langevin -----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["tensor", "callable"])
def test_annealed_at_constant_temperature_matches_ula_of_tempered_target(kind):
    """Fixed T: ULA on E/T with step εT; for N(0, σ²) the variance is Tσ² / (1 − ε / (2σ²))."""
    sigma2, temp, eps = 1.0, 0.5, 0.4
    target = Gauss(torch.zeros(1, dtype=F64), torch.tensor([[sigma2]], dtype=F64))
    sched = torch.tensor([temp], dtype=F64) if kind == "tensor" else (lambda t: temp + 0.0 * t)
    g = torch.Generator().manual_seed(3)
    x0 = torch.randn(4000, 1, generator=g, dtype=F64)
    res = run_chain(
        AnnealedLangevin(target, eps, sched), x0, 200, burn_in=60, trace=True, thin=4, generator=g
    )
    v = temp * sigma2 / (1 - eps / (2 * sigma2))
    z = mcse_z((res.trace**2).mean(0), torch.tensor([v], dtype=F64))
    assert float(z.max()) <= z_bonferroni(1)
    assert torch.equal(res.state.step, torch.full((4000,), 260))


def test_schedule_indexing_and_callable_receives_step_counts():
    seen = []

    def sched(t):
        seen.append(t.clone())
        return 1.0 / (1.0 + t)

    s = AnnealedLangevin(Quartic(), 0.01, sched)
    state = s.init(torch.zeros(2, 3, dtype=F64))
    for _ in range(3):
        state, _ = s.step(state, generator=torch.Generator().manual_seed(0))
    assert [t.tolist() for t in seen] == [[0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]
    temps = torch.tensor([3.0, 2.0, 1.0])
    s2 = AnnealedLangevin(Quartic(), 0.01, temps)
    step = torch.tensor([0, 1, 2, 7])
    assert s2.temperature(step, torch.zeros(4, 1, dtype=F64)).tolist() == [3.0, 2.0, 1.0, 1.0]


def test_annealing_finds_the_global_well_where_descent_stays_local():
    """Asymmetric double well; all chains start in the shallower (right) well."""
    energy = lambda x: ((x**2 - 1) ** 2).sum(-1) + 0.3 * x.sum(-1)  # noqa: E731
    x0 = torch.ones(2000, 1, dtype=F64)
    g = torch.Generator().manual_seed(4)
    t_end, eps, n = 1e-3, 0.05, 1000
    x = AnnealedLangevin(energy, eps, geometric_schedule(1.0, t_end, n)).sample(
        x0, n + 100, generator=g
    )
    gd = GradientDescent(energy, eps).sample(x0, n + 100)
    assert bool((gd > 0).all())  # descent never leaves the local well
    left = x[x < 0]
    assert left.numel() >= 0.6 * x.shape[0]  # most chains reach the global well (measured 0.73)
    # at the end the chains are ULA at T_end around the minimum x* (E'(x*) = 0):
    # variance T·/E''(x*) / (1 − ε E''(x*) / 2)
    xs = torch.tensor(-1.0, dtype=F64)
    for _ in range(50):  # Newton on E'(x) = 4x³ − 4x + 0.3
        xs = xs - (4 * xs**3 - 4 * xs + 0.3) / (12 * xs**2 - 4)
    curv = 12 * xs**2 - 4
    v = t_end / curv / (1 - eps * curv / 2)
    var = left.var()
    se = v * math.sqrt(2.0 / (left.numel() - 1))
    assert abs(var - v) <= 4 * se, (float(var), float(v))
    # mean: x* plus the first-order anharmonic shift -E'''(x*) T / (2 E''(x*)^2), E''' = 24x
    mean = xs - 24 * xs * t_end / (2 * curv**2)
    assert abs(left.mean() - mean) <= 4 * math.sqrt(v / left.numel())
