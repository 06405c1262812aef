"""Exactness of the shared sampler parts: Metropolis, leapfrog, MALA proposal, evaluation counts."""

import math

import pytest
import torch

from tests._sampler_targets import Counting, Gauss, Quartic, single_thread  # noqa: F401
from torchenergy.energies import energy_and_grad
from torchenergy.samplers import (
    HMC,
    MALA,
    Langevin,
    kinetic_energy,
    leapfrog,
    mala_log_proposal,
    metropolis_accept,
    sample_momentum,
)

F64 = torch.float64


# Metropolis -----------------------------------------------------------------------------------
def test_metropolis_accept_prob_and_nonfinite_rejection():
    lr = torch.tensor([0.0, 5.0, -1.0, float("nan"), -float("inf"), float("inf"), 0.0], dtype=F64)
    finite = torch.tensor([True, True, True, True, True, True, False])
    r = metropolis_accept(lr, finite, generator=torch.Generator().manual_seed(0))
    expected = torch.tensor([1.0, 1.0, math.exp(-1.0), 0.0, 0.0, 1.0, 0.0], dtype=F64)
    torch.testing.assert_close(r.accept_prob, expected)
    assert r.nonfinite.tolist() == [False, False, False, True, False, False, True]
    assert r.accepted[[0, 1, 5]].all() and not r.accepted[[3, 4, 6]].any()
    assert ((r.accept_prob >= 0) & (r.accept_prob <= 1)).all()


def test_metropolis_accepts_with_probability_exp_log_ratio():
    n = 200_000
    lr = torch.full((n,), math.log(0.3), dtype=F64)
    r = metropolis_accept(lr, generator=torch.Generator().manual_seed(1))
    rate = r.accepted.double().mean()
    mcse = math.sqrt(0.3 * 0.7 / n)
    assert abs(rate - 0.3) <= 4 * mcse


# Kinetic energy and momenta ------------------------------------------------------------------
def test_momentum_has_covariance_mass_and_kinetic_energy_matches():
    inv_mass = torch.tensor([0.25, 1.0, 4.0], dtype=F64)
    x = torch.zeros(100_000, 3, dtype=F64)
    p = sample_momentum(x, inv_mass, generator=torch.Generator().manual_seed(2))
    var = p.var(0)
    se = var * math.sqrt(2.0 / (x.shape[0] - 1))
    assert ((var - 1 / inv_mass).abs() <= 4 * se).all()
    k = kinetic_energy(p[:5], inv_mass)
    torch.testing.assert_close(k, 0.5 * (p[:5] ** 2 * inv_mass).sum(1))


# Leapfrog -------------------------------------------------------------------------------------
def _start(shape, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=F64)
    p = torch.randn(shape, generator=g, dtype=F64)
    return x, p


def test_leapfrog_is_reversible_any_event_shape():
    energy = Quartic()
    for shape in [(7, 2), (5, 1, 4, 4)]:
        x0, p0 = _start(shape, 3)
        inv_mass = torch.rand(shape[1:], generator=torch.Generator().manual_seed(4), dtype=F64)
        inv_mass = inv_mass + 0.5
        _, g0 = energy_and_grad(energy, x0)
        fwd = leapfrog(energy, x0, p0, g0, 0.1, 25, inv_mass)
        back = leapfrog(energy, fwd.x, -fwd.p, fwd.grad, 0.1, 25, inv_mass)
        torch.testing.assert_close(back.x, x0, atol=1e-10, rtol=0)
        torch.testing.assert_close(-back.p, p0, atol=1e-10, rtol=0)
        assert fwd.finite.all()


def test_leapfrog_reversible_with_per_chain_step_and_mass():
    energy = Quartic()
    x0, p0 = _start((6, 3), 5)
    eps = torch.linspace(0.05, 0.2, 6, dtype=F64)
    inv_mass = 0.5 + torch.rand((6, 3), generator=torch.Generator().manual_seed(6), dtype=F64)
    _, g0 = energy_and_grad(energy, x0)
    fwd = leapfrog(energy, x0, p0, g0, eps, 12, inv_mass)
    back = leapfrog(energy, fwd.x, -fwd.p, fwd.grad, eps, 12, inv_mass)
    torch.testing.assert_close(back.x, x0, atol=1e-10, rtol=0)
    # per-chain step equals running each chain alone with its own float step
    for c in [0, 5]:
        alone = leapfrog(
            energy, x0[c : c + 1], p0[c : c + 1], g0[c : c + 1], float(eps[c]), 12, inv_mass[c]
        )
        torch.testing.assert_close(alone.x[0], fwd.x[c], atol=1e-12, rtol=0)


def test_leapfrog_energy_error_is_second_order():
    energy = Quartic()
    x0, p0 = _start((64, 3), 7)
    e0, g0 = energy_and_grad(energy, x0)
    h0 = e0 + kinetic_energy(p0)
    errors = []
    for eps in [0.1, 0.05, 0.025]:
        n = round(1.0 / eps)  # fixed integration time 1
        out = leapfrog(energy, x0, p0, g0, eps, n)
        errors.append((out.energy + kinetic_energy(out.p) - h0).abs().sum())
    r1, r2 = float(errors[0] / errors[1]), float(errors[1] / errors[2])
    assert 3.6 < r1 < 4.4 and 3.8 < r2 < 4.2, (r1, r2)


def test_leapfrog_harmonic_oscillator_matches_closed_form():
    # for E = x²/2 one leapfrog step is a linear map with known matrix
    eps = 0.3
    x0, p0 = _start((4, 1), 8)
    out = leapfrog(lambda x: 0.5 * (x**2).sum(1), x0, p0, x0.clone(), eps, 1)
    x1 = (1 - eps**2 / 2) * x0 + eps * p0
    p1 = -eps * (1 - eps**2 / 4) * x0 + (1 - eps**2 / 2) * p0
    torch.testing.assert_close(out.x, x1)
    torch.testing.assert_close(out.p, p1)


def test_leapfrog_flags_nonfinite_path():
    # energy is +inf for |x| > 1 somewhere along the path, finite again at the end
    def energy(x):
        e = 0.5 * (x**2).sum(1)
        return torch.where(x.abs().amax(1) > 1.0, torch.full_like(e, float("inf")), e)

    x0 = torch.tensor([[0.0], [0.0]], dtype=F64)
    p0 = torch.tensor([[0.1], [3.0]], dtype=F64)
    g0 = torch.zeros_like(x0)
    out = leapfrog(energy, x0, p0, g0, 0.1, 10)
    assert out.finite.tolist() == [True, False]


# MALA proposal density ------------------------------------------------------------------------
def test_mala_log_proposal_equals_torch_distributions():
    g = torch.Generator().manual_seed(9)
    x_from = torch.randn(5, 3, generator=g, dtype=F64)
    grad = torch.randn(5, 3, generator=g, dtype=F64)
    x_to = torch.randn(5, 3, generator=g, dtype=F64)
    for eps in [0.3, torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5], dtype=F64)]:
        lp = mala_log_proposal(x_to, x_from, grad, eps)
        e = eps if isinstance(eps, float) else eps[:, None]
        mvn = torch.distributions.MultivariateNormal(
            x_from - e * grad,
            covariance_matrix=(2 * torch.as_tensor(e, dtype=F64)).reshape(-1, 1, 1)
            * torch.eye(3, dtype=F64),
        )
        torch.testing.assert_close(lp, mvn.log_prob(x_to))
    # any event shape: product of independent Normals
    x_from, grad, x_to = (torch.randn(4, 1, 2, 2, generator=g, dtype=F64) for _ in range(3))
    ref = torch.distributions.Normal(x_from - 0.2 * grad, math.sqrt(0.4)).log_prob(x_to)
    torch.testing.assert_close(mala_log_proposal(x_to, x_from, grad, 0.2), ref.flatten(1).sum(1))


def test_mala_step_uses_this_ratio():
    """Recompute one MALA step by hand from the same random stream and compare the decision."""
    target = Gauss(torch.zeros(2, dtype=F64), torch.tensor([[1.0, 0.8], [0.8, 1.0]], dtype=F64))
    x0 = torch.randn(2000, 2, generator=torch.Generator().manual_seed(10), dtype=F64)
    s = MALA(target, 0.6)
    state, info = s.step(s.init(x0), generator=torch.Generator().manual_seed(11))
    g = torch.Generator().manual_seed(11)
    e0, g0 = target.energy_and_grad(x0)
    z = torch.randn(x0.shape, generator=g, dtype=F64)
    x1 = x0 - 0.6 * g0 + math.sqrt(1.2) * z
    e1, g1 = target.energy_and_grad(x1)
    q = torch.distributions.MultivariateNormal
    cov = 1.2 * torch.eye(2, dtype=F64)
    lr = e0 - e1 + q(x1 - 0.6 * g1, cov).log_prob(x0) - q(x0 - 0.6 * g0, cov).log_prob(x1)
    torch.testing.assert_close(info.accept_prob, lr.exp().clamp(max=1.0))
    u = torch.rand(2000, generator=g, dtype=F64)
    acc = u < lr.exp()
    assert torch.equal(info.accepted, acc)
    torch.testing.assert_close(state.x, torch.where(acc[:, None], x1, x0))
    assert 0.05 < acc.double().mean() < 0.95


# Gradient-evaluation counts ---------------------------------------------------------------------
def test_gradient_evaluation_counts():
    x0 = torch.randn(8, 3, generator=torch.Generator().manual_seed(12), dtype=F64)
    for make, per_step in [
        (lambda e: Langevin(e, 0.05), 1),
        (lambda e: MALA(e, 0.05), 1),
        (lambda e: HMC(e, 0.05, 7), 7),
        (lambda e: HMC(e, 0.05, 1, jitter=0.5), 1),
    ]:
        energy = Counting(Quartic())
        s = make(energy)
        state = s.init(x0)
        assert energy.calls == 1
        g = torch.Generator().manual_seed(0)
        for _ in range(10):
            state, _ = s.step(state, generator=g)
        assert energy.calls == 1 + 10 * per_step, (type(s).__name__, energy.calls)


def test_finite_chains_flags_each_kind_of_nonfinite_value():
    from torchenergy.samplers.proposals import finite_chains

    x = torch.zeros(5, 1, 2, 2, dtype=F64)
    e = torch.zeros(5, dtype=F64)
    g = torch.zeros(5, 1, 2, 2, dtype=F64)
    x[1, 0, 1, 1] = float("nan")
    g[2, 0, 0, 1] = float("inf")
    e[3] = -float("inf")
    x[4, 0, 0, 0], g[4, 0, 0, 0] = float("inf"), -float("inf")  # inf − inf must still be caught
    assert finite_chains(x, e, g).tolist() == [True, False, False, False, False]
    other = torch.zeros(5, 3, dtype=F64)  # a different event shape is reduced separately
    other[0, 2] = float("nan")
    assert finite_chains(x, e, other).tolist() == [False, False, True, False, False]


def test_langevin_step_by_hand_with_clip_clamp_and_noise_scale():
    g0 = torch.Generator().manual_seed(13)
    x0 = 2 * torch.randn(50, 3, generator=g0, dtype=F64)
    energy = Quartic()
    eps, s, clip, box = 0.2, 0.7, 1.5, (-1.0, 1.2)
    sampler = Langevin(energy, eps, noise_scale=s, grad_clip=clip, clamp=box)
    state, info = sampler.step(sampler.init(x0), generator=torch.Generator().manual_seed(14))
    _, grad = energy_and_grad(energy, x0)
    norm = grad.norm(dim=1, keepdim=True)
    clipped = torch.where(norm > clip, grad * clip / norm, grad)
    z = torch.randn(x0.shape, generator=torch.Generator().manual_seed(14), dtype=F64)
    x1 = (x0 - eps * clipped + math.sqrt(2 * eps) * s * z).clamp(*box)
    torch.testing.assert_close(state.x, x1)
    e1, g1 = energy_and_grad(energy, x1)
    torch.testing.assert_close(state.energy, e1)
    torch.testing.assert_close(state.grad, g1)
    assert info.accepted.all() and not info.diverged.any()
    assert (norm > clip).any() and (norm <= clip).any()  # both branches exercised


def test_hmc_step_by_hand():
    """Momentum draw, L leapfrog steps, Metropolis on H: recomputed from the same stream."""
    g0 = torch.Generator().manual_seed(15)
    x0 = torch.randn(400, 3, generator=g0, dtype=F64)
    energy = Quartic()
    inv_mass = torch.tensor([0.5, 1.0, 2.0], dtype=F64)
    sampler = HMC(energy, 0.45, 4, inverse_mass=inv_mass, jitter=0.3)
    state, info = sampler.step(sampler.init(x0), generator=torch.Generator().manual_seed(16))
    g = torch.Generator().manual_seed(16)
    eps = 0.45 * (1 + 0.3 * (2 * torch.rand(400, generator=g, dtype=F64) - 1))
    p0 = torch.randn(x0.shape, generator=g, dtype=F64) / inv_mass.sqrt()
    x, p = x0.clone(), p0.clone()
    for _ in range(4):  # textbook leapfrog, two gradient half steps per step
        p = p - 0.5 * eps[:, None] * energy_and_grad(energy, x)[1]
        x = x + eps[:, None] * inv_mass * p
        p = p - 0.5 * eps[:, None] * energy_and_grad(energy, x)[1]
    h0 = energy(x0) + 0.5 * (p0**2 * inv_mass).sum(1)
    h1 = energy(x) + 0.5 * (p**2 * inv_mass).sum(1)
    torch.testing.assert_close(info.accept_prob, torch.exp(h0 - h1).clamp(max=1.0))
    acc = torch.rand(400, generator=g, dtype=F64) < torch.exp(h0 - h1)
    assert torch.equal(info.accepted, acc) and 0.2 < acc.double().mean() < 0.98
    torch.testing.assert_close(state.x, torch.where(acc[:, None], x, x0))


@pytest.mark.parametrize(
    "shape,dtype",
    [
        ((4096, 2), torch.float32),  # 8-byte rows: int64 path
        ((4096, 2), torch.float64),  # 16-byte rows: complex128 path
        ((4096, 1, 2, 2), torch.float32),  # 16 bytes, an event shape
        ((4096, 1), torch.float64),  # 8 bytes
        ((4096, 3), torch.float32),  # 12 bytes: plain torch.where
        ((100, 2), torch.float32),  # few chains: plain torch.where
    ],
)
def test_where_chains_selects_the_same_bits_as_torch_where(shape, dtype):
    from torchenergy.samplers.proposals import where_chains

    g = torch.Generator().manual_seed(0)
    new = torch.randn(shape, generator=g, dtype=dtype)
    old = torch.randn(shape, generator=g, dtype=dtype)
    flat_new, flat_old = new.view(shape[0], -1), old.view(shape[0], -1)
    flat_new[0, 0], flat_old[1, 0], flat_new[2, -1] = float("nan"), float("inf"), -0.0
    mask = torch.rand(shape[0], generator=g) < 0.5
    mask[:3] = torch.tensor([True, False, True])
    ref = torch.where(mask.view(-1, *([1] * (len(shape) - 1))), new, old)
    got = where_chains(mask, new, old)
    assert got.shape == new.shape and got.dtype == dtype
    bits = {torch.float32: torch.int32, torch.float64: torch.int64}[dtype]
    assert torch.equal(got.view(bits), ref.view(bits))  # bit for bit, NaN, inf and -0.0 included


def test_where_chains_keeps_gradients_flowing():
    from torchenergy.samplers.proposals import where_chains

    new = torch.randn(4096, 2, requires_grad=True)
    old = torch.randn(4096, 2)
    mask = torch.arange(4096) % 2 == 0
    where_chains(mask, new, old).sum().backward()
    assert new.grad is not None and float(new.grad.sum()) == 4096.0  # 2048 rows x 2 picked
