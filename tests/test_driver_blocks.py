"""The driver's block mode for unadjusted kernels (``step_unchecked`` + a finiteness check per
block, replaying a failed block with ``step``) gives exactly what stepping with ``step`` does."""

from __future__ import annotations

import warnings

import pytest
import torch

from torchenergy.samplers import (
    AnnealedLangevin,
    DivergenceError,
    GradientDescent,
    Langevin,
    Nesterov,
    run_chain,
)
from torchenergy.samplers import _blocks as blocks_mod

F64 = torch.float64


def quad(x):
    return 0.5 * (x**2).sum(-1)


def reference(sampler, x0, n, generator, trace=False):
    """``step`` only, with the driver's bookkeeping written out: final x, trace, first step.
    ``x0`` is a start (C, *D) or a State to continue from (as ``run_chain`` takes)."""
    state = sampler.init(x0) if isinstance(x0, torch.Tensor) else x0
    c = state.x.shape[0]
    first = torch.full((c,), n, dtype=torch.long)
    held = torch.zeros(c, dtype=F64)
    xs = []
    for t in range(n):
        state, info = sampler.step(state, generator=generator)
        first = torch.minimum(first, torch.where(info.diverged, t, n))
        held += info.diverged
        xs.append(state.x)
    return state, (torch.stack(xs) if trace else None), first, held


def _run_both(sampler, x0, n, seed, trace=True):
    res = run_chain(
        sampler,
        x0,
        n,
        trace=trace,
        generator=torch.Generator().manual_seed(seed),
        on_divergence="warn",
    )
    ref = reference(sampler, x0, n, torch.Generator().manual_seed(seed), trace)
    return res, ref


def _assert_same(res, ref, n):
    state, trace, first, held = ref
    torch.testing.assert_close(res.x, state.x, rtol=0, atol=0)
    torch.testing.assert_close(res.state.energy, state.energy, rtol=0, atol=0)
    torch.testing.assert_close(res.state.grad, state.grad, rtol=0, atol=0)
    if trace is not None:
        torch.testing.assert_close(res.trace, trace, rtol=0, atol=0)
    assert res.diverged.tolist() == (first < n).tolist()
    torch.testing.assert_close(res.accept_rate, (n - held) / n, rtol=0, atol=0)


def test_block_mode_equals_step_by_step_without_divergence():
    x0 = torch.randn(7, 3, dtype=F64, generator=torch.Generator().manual_seed(1))
    for s in (
        Langevin(quad, 0.1),
        Langevin(quad, 0.1, grad_clip=0.5, clamp=(-1.0, 1.0)),
        GradientDescent(quad, 0.1),
        Nesterov(quad, 0.05),
        AnnealedLangevin(quad, 0.05, torch.linspace(2.0, 1.0, 50, dtype=F64)),
    ):
        res, ref = _run_both(s, x0, 100, seed=3)  # 100 = 3 full blocks and a partial one
        _assert_same(res, ref, 100)


def test_block_mode_replays_a_diverging_block_exactly():
    """Half the chains diverge mid-run (a huge per-chain step): held states, the first step and
    the trace all equal the step-by-step run; the warning names 8 of 16 chains."""
    x0 = torch.ones(16, 2, dtype=F64)
    x0[:8] = 0.0
    eps = torch.tensor([0.01] * 8 + [10.0] * 8, dtype=F64)
    with pytest.warns(RuntimeWarning, match="8 of 16 chains diverged"):
        res, ref = _run_both(Langevin(quad, eps), x0, 300, seed=0)
    _assert_same(res, ref, 300)
    assert res.diverged.tolist() == [False] * 8 + [True] * 8
    with pytest.raises(DivergenceError) as ei:
        run_chain(Langevin(quad, eps), x0, 300, generator=torch.Generator().manual_seed(0))
    assert ei.value.first_step == int(ref[2].min())


def test_block_mode_catches_a_transient_infinite_energy():
    """A hard constraint gives E = +inf (with a finite gradient) for one step, after which the
    clamp brings the chain back: no persistent NaN, yet the step-by-step run holds the chain and
    flags it, and so must the block run."""

    def energy(x):
        e = quad(x)
        return torch.where(x[:, 0] > 0.9, torch.full_like(e, float("inf")), e)

    x0 = torch.zeros(32, 2, dtype=F64)
    s = Langevin(energy, 0.2, clamp=(-1.0, 1.0))
    with pytest.warns(RuntimeWarning, match="chains diverged"):
        res, ref = _run_both(s, x0, 70, seed=5)
    _assert_same(res, ref, 70)
    assert bool(res.diverged.any())


class _NaNGradPastOne:
    """E = ½‖x‖² with NaN read as 0, so the energy is finite everywhere, even at a NaN point;
    the gradient is NaN where x₀ > 1. Only the gradient (and then x) can go non-finite."""

    def energy_and_grad(self, x):
        g = x.clone()
        g[x[:, 0] > 1.0] = float("nan")
        return self(x), g

    def __call__(self, x):
        return quad(torch.nan_to_num(x, nan=0.0))


def test_block_mode_catches_a_gradient_only_nan_without_a_clamp():
    """Without a box the driver checks the energy after every step and x, ∇E only at the end of
    a block: a NaN gradient makes the next x NaN for good, so the block's end check sees it even
    though every energy is finite, and the replay gives exactly the step-by-step run (the same
    held chains, the same first steps)."""
    s = Langevin(_NaNGradPastOne(), 0.05)
    assert s.finite_fields == ("energy",) and s.finite_fields_at_end == ("x", "grad")
    x0 = 0.3 * torch.randn(64, 2, dtype=F64, generator=torch.Generator().manual_seed(2))
    with pytest.warns(RuntimeWarning, match="chains diverged"):
        res, ref = _run_both(s, x0, 100, seed=4)
    _assert_same(res, ref, 100)
    first = ref[2][res.diverged]  # first steps of the held chains: in the first and later blocks
    assert 0 < first.numel() < 64 and int(first.min()) < 32 < int(first.max())
    assert bool(torch.isfinite(res.x).all())


def test_block_mode_spurious_overflow_replays_without_divergence(monkeypatch):
    """Finite energies whose sum overflows trigger a replay that finds nothing: same result, no
    divergence, and the run goes back to the fast path (fewer ``step`` calls than steps)."""
    x0 = torch.ones(4, 1, dtype=F64)
    calls = {"step": 0}
    s = GradientDescent(lambda x: quad(x) * 0 + 1e308, 0.1)  # E = 1e308 per chain: sum is inf
    orig = GradientDescent.step

    def counting(self, state, *, generator=None):
        calls["step"] += 1
        return orig(self, state, generator=generator)

    monkeypatch.setattr(GradientDescent, "step", counting)
    res = run_chain(s, x0, 40)
    assert not res.diverged.any() and calls["step"] == 40  # every block replayed, none diverged
    monkeypatch.setattr(blocks_mod, "BLOCK", 8)
    calls["step"] = 0
    s2 = GradientDescent(quad, 0.1)
    run_chain(s2, x0, 40)
    assert calls["step"] == 0  # the fast path never needed a replay


def test_block_mode_with_the_global_random_stream():
    x0 = torch.zeros(6, 2, dtype=F64)
    eps = torch.tensor([0.05] * 3 + [20.0] * 3, dtype=F64)
    s = Langevin(quad, eps)
    torch.manual_seed(11)
    with pytest.warns(RuntimeWarning):
        res = run_chain(s, x0, 250, on_divergence="warn")
    after = torch.rand(3)
    torch.manual_seed(11)
    ref = reference(s, x0, 250, None)
    torch.testing.assert_close(res.x, ref[0].x, rtol=0, atol=0)
    torch.testing.assert_close(torch.rand(3), after, rtol=0, atol=0)  # same stream position


class _StepOnly:
    """The same kernel without ``step_unchecked``: the driver then steps with ``step``."""

    adjusted = False

    def __init__(self, kernel):
        self.kernel = kernel

    def init(self, x):
        return self.kernel.init(x)

    def step(self, state, *, generator=None):
        return self.kernel.step(state, generator=generator)


@pytest.mark.parametrize("diverge", [False, True])
def test_block_mode_equals_the_plain_driver_with_burn_in_and_thinning(diverge):
    x0 = torch.randn(10, 2, dtype=F64, generator=torch.Generator().manual_seed(4))
    eps = torch.full((10,), 0.05, dtype=F64)
    if diverge:
        eps[3] = 30.0
    s = Langevin(quad, eps)
    kw = dict(burn_in=37, thin=3, trace=True, on_divergence="warn")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        a = run_chain(s, x0, 101, generator=torch.Generator().manual_seed(9), **kw)
        b = run_chain(_StepOnly(s), x0, 101, generator=torch.Generator().manual_seed(9), **kw)
    names = ("x", "trace", "energy_trace", "accept_rate", "mean_accept_prob", "n_nonfinite")
    for name in (*names, "diverged"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=0, atol=0)
    assert a.trace.shape == (33, 10, 2) and bool(a.diverged[3]) == diverge


def test_block_mode_with_a_grouped_gaussian_whose_unchecked_evaluation_spreads_nan():
    """GaussianEnergy's unchecked evaluation (grouped rows, no per-row recompute) lets a
    diverging chain spread NaN to the chains grouped with it; the block check sees it and the
    replay with the checked evaluation holds only the diverging chains, exactly as step by step."""
    from torchenergy.energies import GaussianEnergy

    target = GaussianEnergy(
        torch.zeros(2, dtype=F64), torch.tensor([[1.0, 0.3], [0.3, 0.5]], dtype=F64)
    )
    x = torch.tensor([[1.0, 2.0], [float("inf"), 0.0]] + [[0.5, -0.5]] * 6, dtype=F64)
    e_u, _ = target.energy_and_grad_unchecked(x)
    e_c, _ = target.energy_and_grad(x)
    assert not bool(torch.isfinite(e_u).all()) and bool(torch.isfinite(e_c[[0, 2, 3]]).all())
    assert not bool(torch.isfinite(e_c[1]))  # a non-finite chain is never made finite
    finite = torch.isfinite(e_c)
    torch.testing.assert_close(target.energy_and_grad_unchecked(x[finite])[0], e_c[finite])
    x0 = torch.zeros(16, 2, dtype=F64)
    eps = torch.tensor([0.05] * 10 + [40.0] * 6, dtype=F64)  # six chains overflow, mid-block
    with pytest.warns(RuntimeWarning, match="6 of 16 chains diverged"):
        res, ref = _run_both(Langevin(target, eps), x0, 200, seed=1)
    _assert_same(res, ref, 200)
    first = int(ref[2][10:].min())
    assert 64 < first < 95, first  # inside the third block of 32
    assert res.diverged.tolist() == [False] * 10 + [True] * 6


def _reference_with_energies(sampler, x0, n, generator):
    state = sampler.init(x0)
    es, xs = [], []
    first = torch.full((x0.shape[0],), n, dtype=torch.long)
    for t in range(n):
        state, info = sampler.step(state, generator=generator)
        first = torch.minimum(first, torch.where(info.diverged, t, n))
        xs.append(state.x)
        es.append(state.energy)
    return state, torch.stack(xs), torch.stack(es), first


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_gradient_only_blocks_equal_stepping_with_traces(dtype):
    """Langevin on a GaussianEnergy runs its blocks gradient only (``run_block``: a guard per
    step, the energy at block ends and traced steps): states, traces, energy traces, burn-in and
    thinning are bit for bit those of stepping with ``step``."""
    from torchenergy.energies import GaussianEnergy

    target = GaussianEnergy(
        torch.tensor([0.5, -1.0], dtype=dtype), torch.tensor([[1.0, 0.6], [0.6, 0.8]], dtype=dtype)
    )
    s = Langevin(target, 0.05)
    x0 = torch.randn(40, 2, dtype=dtype, generator=torch.Generator().manual_seed(0))
    assert s.run_block(s.init(x0), 3, generator=torch.Generator().manual_seed(1)) is not None
    ref_state, ref_xs, ref_es, first = _reference_with_energies(
        s, x0, 110, torch.Generator().manual_seed(7)
    )
    assert not bool((first < 110).any())
    for burn_in, thin in ((0, 1), (13, 3)):
        res = run_chain(
            s,
            x0,
            110 - burn_in,
            burn_in=burn_in,
            thin=thin,
            trace=True,
            generator=torch.Generator().manual_seed(7),
        )
        idx = torch.arange(burn_in + thin - 1, 110, thin)
        torch.testing.assert_close(res.trace, ref_xs[idx], rtol=0, atol=0)
        torch.testing.assert_close(res.energy_trace, ref_es[idx], rtol=0, atol=0)
        torch.testing.assert_close(res.state.energy, ref_state.energy, rtol=0, atol=0)
        torch.testing.assert_close(res.state.grad, ref_state.grad, rtol=0, atol=0)
    # a declining kernel: per-chain step sizes take the generic block path
    assert Langevin(target, torch.full((40,), 0.05, dtype=dtype)).run_block(s.init(x0), 3) is None


def test_gradient_only_blocks_replay_on_a_guard_and_hold_an_infinite_start():
    """float64 chains far out: the guard (4 λ_max Σ‖x − μ‖²) overflows while every energy is
    finite, so the block is replayed and nothing diverges; a chain started where its energy is
    already infinite is refused at ``init`` with a ValueError naming it, and a run continued
    from a State with such a chain holds and reports it, as stepping does."""
    from torchenergy.energies import GaussianEnergy

    target = GaussianEnergy(torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64))
    s = Langevin(target, 0.1)
    x0 = torch.zeros(8, 2, dtype=F64)
    x0[:2] = 1e153  # E ≈ 1e306: finite, but the guard's sum over chains overflows
    res, ref = _run_both(s, x0, 40, seed=3)
    _assert_same(res, ref, 40)
    assert not bool(res.diverged.any())
    x0[2] = 1e155  # E = inf from the start: refused at init (issue 15), on either path
    with pytest.raises(
        ValueError, match=r"not finite at the start x: 1 of 8 chains .*E\[2\] = inf"
    ):
        _run_both(s, x0, 40, seed=3)
    # a run continued from a State in which one chain is already at E = inf (init is not
    # called): every proposal of that chain is held and reported, by blocks as by stepping
    # (a guard that missed the infinite energy would let the block path move the chain)
    state = s.init(torch.where(torch.arange(8)[:, None] == 2, 0.0, x0))
    x_bad = state.x.clone()
    x_bad[2] = 1e155
    e_bad = state.energy.clone()
    e_bad[2] = float("inf")
    g_bad = state.grad.clone()
    g_bad[2] = x_bad[2]
    start = type(state)(x_bad, e_bad, g_bad)
    with pytest.warns(RuntimeWarning, match="1 of 8 chains diverged"):
        res, ref = _run_both(s, start, 40, seed=3)
    _assert_same(res, ref, 40)
    assert res.diverged.tolist() == [False, False, True] + [False] * 5


def test_gradient_only_blocks_on_a_harmonic_energy_with_an_event_shape():
    from torchenergy.energies import HarmonicEnergy

    s = Langevin(HarmonicEnergy(2.0, event_shape=(2, 3)), 0.05)
    x0 = torch.randn(9, 2, 3, dtype=F64, generator=torch.Generator().manual_seed(0))
    assert s.run_block(s.init(x0), 2, generator=torch.Generator().manual_seed(1)) is not None
    ref_state, ref_xs, ref_es, _ = _reference_with_energies(
        s, x0, 70, torch.Generator().manual_seed(2)
    )
    res = run_chain(s, x0, 70, trace=True, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(res.trace, ref_xs, rtol=0, atol=0)
    torch.testing.assert_close(res.energy_trace, ref_es, rtol=0, atol=0)
    torch.testing.assert_close(res.state.grad, ref_state.grad, rtol=0, atol=0)


def test_kernels_pickle_after_their_fast_paths_are_cached():
    import pickle

    from torchenergy.energies import GaussianEnergy, MLPEnergy

    for energy in (GaussianEnergy(torch.zeros(2), torch.eye(2)), MLPEnergy(2, (8,))):
        s = Langevin(energy, 0.1)
        a = s.sample(torch.zeros(8, 2), 40, generator=torch.Generator().manual_seed(0))
        s2 = pickle.loads(pickle.dumps(s))
        b = s2.sample(torch.zeros(8, 2), 40, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_checked_step_holds_only_the_non_finite_chain_of_a_grouped_gaussian():
    """``step`` evaluates the energy checked (row by row when the grouped result is not all
    finite): a chain at +inf is held alone, its group-mates move on. (The unchecked evaluation
    of ``step_unchecked`` would spread NaN to the whole group of 8.)"""
    from torchenergy.energies import GaussianEnergy

    target = GaussianEnergy(torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64))
    s = Langevin(target, 0.1)
    x = torch.zeros(8, 2, dtype=F64)
    state = s.init(x)
    bad = state._replace(x=state.x.clone(), grad=state.grad.clone())
    bad.x[1, 0] = float("inf")
    bad.grad[1, 0] = float("inf")
    new, info = s.step(bad, generator=torch.Generator().manual_seed(0))
    assert info.diverged.tolist() == [i == 1 for i in range(8)]
    assert bool(torch.isfinite(new.x[[0, 2, 3, 4, 5, 6, 7]]).all())
    spread = s.step_unchecked(bad, generator=torch.Generator().manual_seed(0))
    assert not bool(torch.isfinite(spread.energy).any())  # the unchecked evaluation spreads it
