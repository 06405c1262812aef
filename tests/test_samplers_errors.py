"""Bad input gives clear errors; non-finite values are rejected or reported, never returned."""

import pytest
import torch

from tests._sampler_targets import Quartic, single_thread  # noqa: F401
from torchenergy.samplers import (
    HMC,
    MALA,
    AnnealedLangevin,
    DivergenceError,
    GradientDescent,
    Langevin,
    Nesterov,
    run_chain,
)

F64 = torch.float64
MAKERS = {
    "langevin": lambda e, eps: Langevin(e, eps),
    "mala": lambda e, eps: MALA(e, eps),
    "hmc": lambda e, eps: HMC(e, eps, 3),
    "gd": lambda e, eps: GradientDescent(e, eps),
    "nesterov": lambda e, eps: Nesterov(e, eps),
    "annealed": lambda e, eps: AnnealedLangevin(e, eps, torch.ones(3)),
}
quad = lambda x: 0.5 * (x**2).flatten(1).sum(1)  # noqa: E731


@pytest.mark.parametrize("name", MAKERS)
def test_non_positive_step_size_is_named(name):
    make = MAKERS[name]
    for bad in (0.0, -0.1, float("nan"), torch.tensor([0.1, 0.0])):
        with pytest.raises(ValueError, match="step_size"):
            make(quad, bad)
    with pytest.raises(ValueError, match=r"step_size .*shape"):
        make(quad, torch.ones(2, 2))
    with pytest.raises(TypeError, match="step_size"):
        make(quad, "0.1")


@pytest.mark.parametrize("name", MAKERS)
def test_bad_energy_and_bad_x(name):
    make = MAKERS[name]
    with pytest.raises(TypeError, match="energy_fn must be a callable"):
        make("not a function", 0.1)
    s = make(quad, 0.1)
    with pytest.raises(TypeError, match="floating-point"):
        s.init(torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="at least 1 dimension"):
        s.init(torch.tensor(1.0))
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        s.init([[0.0, 1.0]])
    # energy of the wrong shape: (C, 1) instead of (C,)
    with pytest.raises(ValueError, match=r"shape \(C,\) = \(3,\), got shape \(3, 1\)"):
        make(lambda x: (x**2).sum(-1, keepdim=True), 0.1).init(torch.zeros(3, 2))
    # per-chain step size for a different number of chains
    with pytest.raises(ValueError, match=r"step_size has shape \(4,\) but x has C = 3"):
        make(quad, torch.full((4,), 0.1)).init(torch.zeros(3, 2))


def test_hyperparameter_errors():
    with pytest.raises(ValueError, match="n_leapfrog"):
        HMC(quad, 0.1, 0)
    with pytest.raises(TypeError, match="n_leapfrog"):
        HMC(quad, 0.1, 2.5)
    with pytest.raises(ValueError, match="jitter"):
        HMC(quad, 0.1, 2, jitter=1.0)
    with pytest.raises(ValueError, match="inverse_mass"):
        HMC(quad, 0.1, 2, inverse_mass=torch.tensor([1.0, -1.0]))
    with pytest.raises(ValueError, match=r"inverse_mass must have the event shape D = \(2,\)"):
        HMC(quad, 0.1, 2, inverse_mass=torch.ones(3)).init(torch.zeros(5, 2))
    with pytest.raises(ValueError, match="momentum"):
        Nesterov(quad, 0.1, momentum=1.0)
    with pytest.raises(ValueError, match="clamp must satisfy low < high"):
        Langevin(quad, 0.1, clamp=(1.0, -1.0))
    with pytest.raises(ValueError, match="clamp must be a"):
        Langevin(quad, 0.1, clamp=1.0)
    with pytest.raises(ValueError, match="grad_clip"):
        Langevin(quad, 0.1, grad_clip=0.0)
    with pytest.raises(ValueError, match="noise_scale"):
        Langevin(quad, 0.1, noise_scale=-1.0)
    with pytest.raises(ValueError, match="schedule"):
        AnnealedLangevin(quad, 0.1, torch.tensor([1.0, 0.0]))
    with pytest.raises(TypeError, match="schedule"):
        AnnealedLangevin(quad, 0.1, 1.0)
    with pytest.raises(ValueError, match=r"schedule\(0\)"):
        AnnealedLangevin(quad, 0.1, lambda t: -1.0 + 0 * t).init(torch.zeros(2, 2))


def test_langevin_divergence_raises_with_count_and_step():
    x0 = torch.ones(16, 2, dtype=F64)
    with pytest.raises(
        DivergenceError, match=r"16 of 16 chains diverged .*first at step \d+"
    ) as ei:
        run_chain(Langevin(quad, 10.0), x0, 1000, generator=torch.Generator().manual_seed(0))
    err = ei.value
    assert err.n_diverged == 16 and err.n_chains == 16
    # |x| grows about 9x per step from 1; E = x²/2 overflows float64 once |x| > 1.9e154,
    # i.e. after log(1.9e154) / log(9) ≈ 162 steps
    assert 150 < err.first_step < 175
    assert err.chains.tolist() == list(range(16))


def test_langevin_divergence_warn_returns_finite_held_states():
    x0 = torch.ones(16, 2, dtype=F64)
    x0[:8] = 0.0
    eps = torch.tensor([10.0] * 8 + [0.01] * 8, dtype=F64)  # only the first half diverges
    s = Langevin(quad, eps)
    with pytest.warns(RuntimeWarning, match="8 of 16 chains diverged"):
        res = run_chain(
            s, x0, 600, trace=True, generator=torch.Generator().manual_seed(0), on_divergence="warn"
        )
    assert torch.isfinite(res.x).all() and torch.isfinite(res.trace).all()
    assert res.diverged.tolist() == [True] * 8 + [False] * 8
    assert (res.x[:8].abs() > 1e100).all()  # held at the last finite point, far out
    # a held chain stays exactly where it was
    torch.testing.assert_close(res.trace[-1, :8], res.trace[-50, :8], rtol=0, atol=0)
    assert torch.isfinite(res.state.energy).all() and torch.isfinite(res.state.grad).all()


def test_metropolis_kernels_reject_infinite_and_nan_energies():
    """A hard constraint (+inf outside x0 > 0) and a NaN region are never entered."""

    def energy(x):
        e = quad(x)
        e = torch.where(x[:, 0] > 0, e, torch.full_like(e, float("inf")))
        return torch.where(x[:, 1] > 2.0, torch.full_like(e, float("nan")), e)

    x0 = torch.full((200, 2), 0.5, dtype=F64)
    for s in (MALA(energy, 0.5), HMC(energy, 0.4, 4)):
        res = run_chain(s, x0, 200, trace=True, generator=torch.Generator().manual_seed(0))
        assert (res.trace[..., 0] > 0).all() and (res.trace[..., 1] <= 2.0).all()
        assert torch.isfinite(res.energy_trace).all()
        assert int(res.n_nonfinite.sum()) > 0 and not res.diverged.any()
        assert 0.1 < float(res.accept_rate.mean()) < 1.0


def test_quartic_energy_any_shape_with_clamp_stays_in_box():
    s = Langevin(Quartic(), 0.5, clamp=(-0.3, torch.tensor(0.2)))
    x = s.sample(torch.zeros(5, 1, 4, 4), 20, generator=torch.Generator().manual_seed(0))
    assert (x >= -0.3).all() and (x <= 0.2).all()


@pytest.mark.parametrize("name", MAKERS)
def test_event_shape_mismatch_with_the_energy_is_reported_at_init(name):
    from torchenergy.energies import GaussianEnergy

    s = MAKERS[name](GaussianEnergy(torch.zeros(2), torch.eye(2)), 0.1)
    for x in (torch.zeros(4, 3), torch.zeros(4), torch.zeros(4, 1, 2)):
        with pytest.raises(ValueError, match=r"expects x of shape \(C, 2\)"):
            s.init(x)
