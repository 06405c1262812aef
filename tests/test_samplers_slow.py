"""Long sampler checks (``-m slow``): larger statistical runs and the ``torch.compile`` path."""

import pytest
import torch

import torchenergy.samplers.mala as mala_module
from tests._sampler_targets import single_thread  # noqa: F401
from tests.test_samplers_statistics import (
    _always_accept,
    _aniso10d,
    _ula_stationary_cov,
    moment_z,
)
from torchenergy.energies import GaussianEnergy
from torchenergy.samplers import HMC, MALA, Langevin

F64 = torch.float64
pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("name", "make", "burn_in", "n_steps"),
    [
        ("mala", lambda e: MALA(e, 0.08), 600, 1000),
        ("hmc", lambda e: HMC(e, 0.15, 10, jitter=0.2), 100, 300),
        ("ula", lambda e: Langevin(e, 0.05), 600, 1000),
    ],
)
def test_ten_dimensional_moments_with_many_chains(name, make, burn_in, n_steps):
    target = _aniso10d()
    truth = target
    if name == "ula":  # ULA is compared with its own stationary law
        truth = type(target)(target.mean, _ula_stationary_cov(target, 0.05))
    zmax, zlim, _ = moment_z(
        make(target), truth, n_chains=8000, burn_in=burn_in, n_steps=n_steps, thin=5, seed=99
    )
    assert zmax <= zlim, f"{name}: {zmax:.2f} > {zlim:.2f}"


def test_power_broken_mala_caught_at_a_moderate_step(monkeypatch):
    """With 8x the chains the uncorrected kernel is caught at a smaller step than in the fast test."""
    target = _aniso10d()
    kwargs = dict(n_chains=8000, burn_in=400, n_steps=400, thin=5, seed=5)
    zmax, zlim, res = moment_z(MALA(target, 0.15), target, **kwargs)
    assert zmax <= zlim
    assert 0.7 < float(res.accept_rate.mean()) < 0.95  # measured 0.85: a mild correction
    monkeypatch.setattr(mala_module, "metropolis_accept", _always_accept)
    zbad, _, _ = moment_z(MALA(target, 0.15), target, **kwargs)
    assert zbad > zlim, zbad


@pytest.mark.parametrize(
    "make",
    [lambda e: Langevin(e, 0.1), lambda e: MALA(e, 0.3), lambda e: HMC(e, 0.2, 3, jitter=0.1)],
)
def test_compiled_step_matches_eager(make):
    """``torch.compile(sampler.step)`` runs (graph breaks at the generator draws) and agrees."""
    target = GaussianEnergy(torch.zeros(2), torch.tensor([[1.0, 0.5], [0.5, 1.0]]))
    s = make(target)
    state = s.init(torch.randn(256, 2, generator=torch.Generator().manual_seed(0)))
    step = torch.compile(s.step)
    ga, gb = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    a, b = state, state
    for _ in range(5):
        a, ia = step(a, generator=ga)
        b, ib = s.step(b, generator=gb)
        assert torch.equal(ia.accepted, ib.accepted)
        torch.testing.assert_close(a.x, b.x, atol=1e-5, rtol=1e-5)
