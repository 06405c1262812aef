"""One contract for every sampler: a new sampler is one new row in ``SAMPLERS``.

Each row is ``pytest.param(make, stochastic, id=...)`` where ``make(energy_fn)`` builds the sampler
(its ``step_size`` field is replaced by a per-chain tensor in one test) and ``stochastic`` says
whether different seeds must give different chains.
"""

import dataclasses

import pytest
import torch

from tests._sampler_targets import ParamQuad, single_thread  # noqa: F401
from torchenergy.samplers import (
    HMC,
    MALA,
    NUTS,
    AnnealedLangevin,
    GradientDescent,
    Langevin,
    Nesterov,
    ParallelTempering,
    RandomWalkMetropolis,
    geometric_schedule,
    run_chain,
)

SAMPLERS = [
    pytest.param(lambda e: Langevin(e, 0.05), True, id="langevin"),
    pytest.param(
        lambda e: Langevin(e, 0.05, noise_scale=0.5, grad_clip=1.0, clamp=(-2.0, 2.0)),
        True,
        id="langevin-clip-clamp",
    ),
    pytest.param(lambda e: MALA(e, 0.1), True, id="mala"),
    pytest.param(lambda e: HMC(e, 0.1, 3), True, id="hmc"),
    pytest.param(lambda e: HMC(e, 0.1, 2, inverse_mass=0.5, jitter=0.2), True, id="hmc-mass-jit"),
    pytest.param(lambda e: NUTS(e, 0.1, max_depth=4), True, id="nuts"),
    pytest.param(lambda e: NUTS(e, 0.1, inverse_mass=0.5, max_depth=3), True, id="nuts-mass"),
    pytest.param(lambda e: RandomWalkMetropolis(e, 0.3), True, id="rwm"),
    pytest.param(lambda e: GradientDescent(e, 0.05), False, id="gradient-descent"),
    pytest.param(lambda e: Nesterov(e, 0.05, momentum=0.5), False, id="nesterov"),
    pytest.param(
        lambda e: AnnealedLangevin(e, 0.05, geometric_schedule(1.0, 0.1, 5)), True, id="annealed"
    ),
    pytest.param(
        lambda e: ParallelTempering(
            e, MALA(e, 0.1), [1.0, 2.0, 4.0], step_size=0.1, step_scaling=1.0
        ),
        True,
        id="parallel-tempering",
    ),
    pytest.param(
        lambda e: ParallelTempering(e, HMC(e, 0.1, 2), [1.0, 3.0], swap_every=2, step_size=0.1),
        True,
        id="parallel-tempering-hmc",
    ),
]
SHAPES = [(2,), (3,), (1, 4, 4)]
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
C = 6


def _x0(shape, dtype, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(C, *shape, generator=g, dtype=dtype).to(device)


def _energy(shape, device):
    return ParamQuad(int(torch.Size(shape).numel())).to(device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(("make", "stochastic"), SAMPLERS)
def test_shapes_dtype_device(make, stochastic, shape, dtype, device):
    energy = _energy(shape, device)
    s = make(energy)
    x0 = _x0(shape, dtype, device)
    state = s.init(x0)
    for _ in range(2):
        state, info = s.step(state, generator=torch.Generator(device).manual_seed(1))
    assert state.x.shape == x0.shape and state.x.dtype == dtype and state.x.device == x0.device
    for v in state:
        assert v.shape[0] == C and v.device == x0.device
        if v.is_floating_point():
            assert v.dtype == dtype
        assert not v.requires_grad
    for name in ("accept_prob", "accepted", "nonfinite", "diverged"):
        v = getattr(info, name)
        assert v.shape == (C,) and v.device == x0.device, name
    assert info.accepted.dtype == torch.bool and info.diverged.dtype == torch.bool
    assert ((info.accept_prob >= 0) & (info.accept_prob <= 1)).all()

    res = run_chain(s, x0, 7, burn_in=2, thin=2, trace=True, generator=torch.Generator(device))
    assert res.trace.shape == (7 // 2, C, *shape) and res.trace.dtype == dtype
    assert res.energy_trace.shape == (7 // 2, C)
    assert res.accept_rate.shape == (C,) and res.n_nonfinite.shape == (C,)
    out = s.sample(x0, 3, generator=torch.Generator(device).manual_seed(0))
    assert out.shape == x0.shape and out.dtype == dtype and out.device == x0.device
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(("make", "stochastic"), SAMPLERS)
def test_same_seed_same_chains(make, stochastic):
    s = make(_energy((3,), "cpu"))
    x0 = _x0((3,), torch.float64, "cpu")

    def run(seed):
        return run_chain(s, x0, 6, trace=True, generator=torch.Generator().manual_seed(seed)).trace

    a, b, c = run(5), run(5), run(6)
    assert torch.equal(a, b)
    assert (not torch.equal(a, c)) == stochastic


@pytest.mark.parametrize(("make", "stochastic"), SAMPLERS)
def test_parameter_grad_untouched_and_states_detached(make, stochastic):
    energy = _energy((1, 4, 4), "cpu")
    energy.shift.grad = torch.full_like(energy.shift, 7.0)  # a pre-existing gradient
    s = make(energy)
    x0 = _x0((1, 4, 4), torch.float32, "cpu").requires_grad_(True)
    res = run_chain(s, x0, 4, trace=True, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        state = s.init(x0)
        state, _ = s.step(state, generator=torch.Generator().manual_seed(0))
    assert energy.log_scale.grad is None
    assert torch.equal(energy.shift.grad, torch.full_like(energy.shift, 7.0))
    assert x0.grad is None
    for v in (*res.state, res.x, res.trace, res.energy_trace, *state):
        assert not v.requires_grad and v.grad_fn is None


@pytest.mark.parametrize(("make", "stochastic"), SAMPLERS)
def test_per_chain_step_size_via_replace(make, stochastic):
    """A (C,) step size with equal entries gives the chains of the float step size."""
    s = make(_energy((2,), "cpu"))
    x0 = _x0((2,), torch.float64, "cpu")
    per_chain = dataclasses.replace(s, step_size=torch.full((C,), float(s.step_size)))
    a = run_chain(s, x0, 5, trace=True, generator=torch.Generator().manual_seed(3)).trace
    b = run_chain(per_chain, x0, 5, trace=True, generator=torch.Generator().manual_seed(3)).trace
    torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="step_size"):
        dataclasses.replace(s, step_size=-1.0)
