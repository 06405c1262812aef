"""Every declared fast path equals its reference path.

The hooks are declared in :mod:`torchenergy.energies.protocols` (energies) and
:mod:`torchenergy.samplers.base` (kernels); the accelerators behind them live in ``_`` modules
or methods beside plain code. Here each one is held to the reference: closed-form gradients to
autograd (round-off, float64), unchecked evaluations and kernel steps bit for bit, the driver's
block mode bit for bit against stepping with ``step`` only.
"""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from torchenergy.energies import (
    AckleyEnergy,
    DoubleWellEnergy,
    GaussianEnergy,
    GaussianMixtureEnergy,
    HarmonicEnergy,
    MLPEnergy,
    RastriginEnergy,
    RosenbrockEnergy,
)
from torchenergy.energies.autograd import autograd_energy_and_grad
from torchenergy.energies.protocols import ClosedFormGrad, GradUnchecked, UncheckedEnergy
from torchenergy.samplers import (
    AnnealedLangevin,
    BlockKernel,
    GradientDescent,
    Langevin,
    Nesterov,
    UncheckedKernel,
    geometric_schedule,
    run_chain,
)

DT = torch.float64


def _energies():
    torch.manual_seed(0)
    a = torch.randn(3, 3, dtype=DT)
    cov = a @ a.T + 3 * torch.eye(3, dtype=DT)
    mix_means = torch.randn(4, 3, dtype=DT)
    mlp = MLPEnergy(3, [16, 16], activation="silu").to(DT)
    return {
        "gaussian": GaussianEnergy(torch.randn(3, dtype=DT), cov),
        "mixture": GaussianMixtureEnergy(mix_means, 0.5 * torch.eye(3, dtype=DT)),
        "harmonic": HarmonicEnergy(2.0),
        "double_well": DoubleWellEnergy(3),
        "rosenbrock": RosenbrockEnergy(3),
        "rastrigin": RastriginEnergy(3),
        "ackley": AckleyEnergy(3),
        "mlp": mlp,
        "sum": GaussianEnergy(torch.zeros(3, dtype=DT), cov) + HarmonicEnergy(0.5),
        "tempered": DoubleWellEnergy(3).tempered(2.0),
    }


ENERGIES = _energies()


@pytest.mark.parametrize("name", sorted(ENERGIES))
def test_closed_form_gradient_equals_autograd(name):
    energy = ENERGIES[name]
    assert isinstance(energy, ClosedFormGrad)
    x = torch.randn(64, 3, dtype=DT, generator=torch.Generator().manual_seed(1))
    e, g = energy.energy_and_grad(x)
    e_ref, g_ref = autograd_energy_and_grad(energy, x)
    torch.testing.assert_close(e, e_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g, g_ref, rtol=1e-11, atol=1e-11)


UNCHECKED = sorted(n for n, e in ENERGIES.items() if isinstance(e, UncheckedEnergy))
GRAD_ONLY = sorted(n for n, e in ENERGIES.items() if isinstance(e, GradUnchecked))


def test_the_hooks_are_found():
    # a power check on the two lists below: an empty list would make their tests vacuous
    assert "gaussian" in UNCHECKED
    assert {"gaussian", "harmonic"} <= set(GRAD_ONLY)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", UNCHECKED)
def test_unchecked_energy_is_bit_equal_on_finite_input(name, dtype):
    energy = copy.deepcopy(ENERGIES[name]).to(dtype)  # the shared fixture stays float64
    for c in (7, 4096):  # the grouped CPU layout starts at many chains
        x = torch.randn(c, 3, dtype=dtype, generator=torch.Generator().manual_seed(c))
        e, g = energy.energy_and_grad(x)
        eu, gu = energy.energy_and_grad_unchecked(x)
        assert torch.equal(e, eu) and torch.equal(g, gu)


@pytest.mark.parametrize("name", GRAD_ONLY)
def test_gradient_only_path_is_bit_equal_and_its_guard_sees_every_nonfinite_chain(name):
    energy = ENERGIES[name]
    x = torch.randn(4096, 3, dtype=DT, generator=torch.Generator().manual_seed(2))
    grad, guard = energy.grad_unchecked(x)
    assert torch.equal(grad, energy.energy_and_grad(x)[1])
    assert torch.isfinite(guard)
    for bad in (float("nan"), float("inf")):
        y = x.clone()
        y[1234, 1] = bad
        assert not torch.isfinite(energy.grad_unchecked(y)[1])


def _kernels():
    target = ENERGIES["gaussian"]
    return {
        "langevin": Langevin(target, 0.05),
        "langevin_tensor_eps": Langevin(target, torch.full((256,), 0.05, dtype=DT)),
        "langevin_clip_box": Langevin(target, 0.05, grad_clip=5.0, clamp=(-3.0, 3.0)),
        "langevin_mlp": Langevin(ENERGIES["mlp"], 0.01),
        "descent": GradientDescent(target, 0.05),
        "nesterov": Nesterov(target, 0.05),
        "annealed": AnnealedLangevin(target, 0.05, geometric_schedule(2.0, 0.5, 50)),
    }


KERNELS = _kernels()


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_step_unchecked_equals_step_bit_for_bit(name):
    kernel = KERNELS[name]
    assert isinstance(kernel, UncheckedKernel)
    x0 = torch.randn(256, 3, dtype=DT, generator=torch.Generator().manual_seed(3))
    s_ref = s_fast = kernel.init(x0)
    g_ref, g_fast = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    for _ in range(20):
        s_ref, info = kernel.step(s_ref, generator=g_ref)
        s_fast = kernel.step_unchecked(s_fast, generator=g_fast)
        assert not info.diverged.any()
        for a, b in zip(s_ref, s_fast):
            assert torch.equal(a, b)
    assert torch.equal(g_ref.get_state(), g_fast.get_state())


@pytest.mark.parametrize("name", ["gaussian", "harmonic"])
def test_langevin_gradient_only_block_equals_unchecked_steps(name):
    kernel = Langevin(ENERGIES[name], 0.05)
    assert isinstance(kernel, BlockKernel)
    x0 = torch.randn(4096, 3, dtype=DT, generator=torch.Generator().manual_seed(5))
    state = kernel.init(x0)
    g1, g2 = torch.Generator().manual_seed(6), torch.Generator().manual_seed(6)
    out = kernel.run_block(state, 12, generator=g1, keep=[3, 11])
    assert out is not None
    block_state, check, kept = out
    ref, xs = state, []
    for _ in range(12):
        ref = kernel.step_unchecked(ref, generator=g2)
        xs.append(ref)
    assert torch.isfinite(check)
    for a, b in zip(block_state, ref):
        assert torch.equal(a, b)
    for (x_k, e_k), i in zip(kept, [3, 11]):
        assert torch.equal(x_k, xs[i].x) and torch.equal(e_k, xs[i].energy)


class _CheckedOnly:
    """An energy exposing only the checked closed form: Langevin's step takes its exact path."""

    def __init__(self, energy):
        self.energy = energy

    def __call__(self, x):
        return self.energy(x)

    def energy_and_grad(self, x):
        return self.energy.energy_and_grad(x)


@pytest.mark.parametrize("name", UNCHECKED)
def test_langevin_step_fast_path_equals_checked_path(name):
    # 4096 chains: the grouped CPU layout, where one chain's overflow spreads NaN to the chains
    # grouped with it in the unchecked evaluation; the step must still hold only that chain
    energy = ENERGIES[name]
    fast, ref = Langevin(energy, 0.05), Langevin(_CheckedOnly(energy), 0.05)
    assert fast._energy_unchecked is not None and ref._energy_unchecked is None
    x0 = torch.randn(4096, 3, dtype=DT, generator=torch.Generator().manual_seed(7))
    s_fast = s_ref = fast.init(x0)
    g_fast, g_ref = torch.Generator().manual_seed(8), torch.Generator().manual_seed(8)
    for t in range(6):
        if t == 3:  # chain 5's next proposal overflows (E = inf); its own state stays finite
            grad = s_fast.grad.clone()
            grad[5] = 1e306
            s_fast = s_ref = s_fast._replace(grad=grad)
        s_fast, i_fast = fast.step(s_fast, generator=g_fast)
        s_ref, i_ref = ref.step(s_ref, generator=g_ref)
        for a, b in zip(s_fast, s_ref):
            assert torch.equal(a, b)
        for a, b in zip(i_fast, i_ref):
            assert torch.equal(a, b)
        held = i_ref.diverged.nonzero().flatten().tolist()
        assert held == ([5] if t >= 3 else [])  # a held chain keeps its huge gradient
    assert torch.equal(g_fast.get_state(), g_ref.get_state())


@dataclasses.dataclass(frozen=True)
class _ReferenceOnly:
    """A kernel seen without its fast path: only ``init`` and ``step``."""

    kernel: object
    adjusted = False

    def init(self, x):
        return self.kernel.init(x)

    def step(self, state, *, generator=None):
        return self.kernel.step(state, generator=generator)


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_driver_block_mode_equals_the_reference_loop(name):
    kernel = KERNELS[name]
    assert not isinstance(_ReferenceOnly(kernel), UncheckedKernel)
    x0 = torch.randn(256, 3, dtype=DT, generator=torch.Generator().manual_seed(7))
    kw = dict(burn_in=5, thin=3, trace=True)
    fast = run_chain(kernel, x0, 70, generator=torch.Generator().manual_seed(8), **kw)
    ref = run_chain(
        _ReferenceOnly(kernel), x0, 70, generator=torch.Generator().manual_seed(8), **kw
    )
    assert torch.equal(fast.x, ref.x) and torch.equal(fast.trace, ref.trace)
    assert torch.equal(fast.energy_trace, ref.energy_trace)
    assert torch.equal(fast.accept_rate, ref.accept_rate)
