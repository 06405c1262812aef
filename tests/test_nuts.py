"""NUTS: exact tree building against a recursive reference, stationary moments within the
ESS-based MCSE (with a power check), detailed balance of one step, divergences and limits."""

import math

import pytest
import torch

import torchenergy.samplers.nuts as nuts_module
from tests._sampler_targets import Gauss, single_thread, z_bonferroni  # noqa: F401
from torchenergy.diagnostics import mcse_mean
from torchenergy.samplers import NUTS, DenseMass, run_chain, sample_momentum
from torchenergy.samplers.nuts import nuts_trajectory
from torchenergy.samplers.proposals import init_grad_state

F64 = torch.float64


def corr2d() -> Gauss:
    cov = torch.tensor([[2.0, 0.8], [0.8, 1.0]], dtype=F64)
    return Gauss(torch.tensor([1.0, -0.5], dtype=F64), cov)


def illcond(d: int = 6, kappa: float = 100.0, seed: int = 3) -> Gauss:
    """Correlated Gaussian with condition number ``kappa`` (random rotation)."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=F64))
    lam = torch.logspace(-0.5 * math.log10(kappa), 0.5 * math.log10(kappa), d, dtype=F64)
    return Gauss(torch.linspace(-1.0, 1.0, d, dtype=F64), q @ torch.diag(lam) @ q.T)


def moment_stats(trace: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """(T, C, d) -> (T, C, d + d(d+1)/2): x and the upper triangle of (x − μ)(x − μ)ᵀ."""
    d = trace.shape[-1]
    iu = torch.triu_indices(d, d)
    c = trace - mean
    return torch.cat([trace, (c[..., :, None] * c[..., None, :])[..., iu[0], iu[1]]], -1)


def ess_moment_z(trace: torch.Tensor, target: Gauss) -> tuple[float, float]:
    """Max |estimate − truth| / MCSE (MCSE = sd / sqrt(ESS), torchenergy.diagnostics) over the
    mean and covariance entries, and the Bonferroni z threshold (z≈4 family-wise)."""
    d = target.mean.shape[0]
    iu = torch.triu_indices(d, d)
    truth = torch.cat([target.mean, target.cov[iu[0], iu[1]]])
    stats = moment_stats(trace, target.mean)
    z = (stats.mean((0, 1)) - truth).abs() / mcse_mean(stats)
    return float(z.max()), z_bonferroni(z.numel())


def run_from_exact(sampler, target, n_chains, n_steps, seed):
    g = torch.Generator().manual_seed(seed)
    x0 = target.sample(n_chains, generator=g)
    return run_chain(sampler, x0, n_steps, trace=True, generator=g)


# ----------------------------------------------------------------------- recursive reference


def reference_tree(target, x0, p0, eps, forward, minv, max_err=1000.0):
    """Textbook recursive multinomial NUTS (one chain, float64, Python): depth, leapfrog count,
    divergence and the probability of each leaf being the returned sample."""

    def grad(x):
        return target.energy_and_grad(x[None])[1][0]

    def energy(x):
        return float(target(x[None])[0])

    def kin(p):
        return 0.5 * float(p @ (minv @ p))

    def turning(pa, pb, psum):
        rho = psum - 0.5 * (pa + pb)
        return float((minv @ pa) @ rho) <= 0 or float((minv @ pb) @ rho) <= 0

    h0 = energy(x0) + kin(p0)
    count = [0]

    def build(x, p, g, step, j):
        """-> (first, last, psum, leaves [(x, log w)], bad, divergent)."""
        if j == 0:
            p = p - 0.5 * step * g
            x = x + step * (minv @ p)
            g = grad(x)
            p = p - 0.5 * step * g
            count[0] += 1
            delta = energy(x) + kin(p) - h0
            div = not math.isfinite(delta) or delta > max_err
            return (x, p, g), (x, p, g), p.clone(), [(x, -delta)], div, div
        a = build(x, p, g, step, j - 1)
        if a[4]:
            return a
        b = build(*a[1], step, j - 1)
        if b[4]:
            return a[0], b[1], a[2] + b[2], a[3] + b[3], True, b[5]
        psum = a[2] + b[2]
        return a[0], b[1], psum, a[3] + b[3], turning(a[0][1], b[1][1], psum), False

    g0 = grad(x0)
    left = right = (x0, p0, g0)
    psum, log_w = p0.clone(), 0.0
    leaves, probs = [x0], [1.0]
    depth, divergent = 0, False
    for j, fwd in enumerate(forward):
        start = right if fwd else left
        _, last, sub_sum, sub_leaves, bad, div = build(*start, eps if fwd else -eps, j)
        depth += 1
        divergent |= div
        if bad:
            break
        sub_w = [lw for _, lw in sub_leaves]
        sub_log_w = torch.logsumexp(torch.tensor(sub_w, dtype=F64), 0).item()
        a = min(1.0, math.exp(sub_log_w - log_w))
        probs = [(1 - a) * q for q in probs] + [a * math.exp(w - sub_log_w) for w in sub_w]
        leaves += [x for x, _ in sub_leaves]
        log_w = float(torch.logaddexp(torch.tensor(log_w), torch.tensor(sub_log_w)))
        if fwd:
            right = last
        else:
            left = last
        psum = psum + sub_sum
        if turning(left[1], right[1], psum):
            break
    return depth, count[0], divergent, torch.stack(leaves), torch.tensor(probs, dtype=F64)


@pytest.mark.parametrize(
    ("mass", "compact"), [("identity", True), ("identity", False), ("diag", True), ("dense", True)]
)
def test_trees_match_the_recursive_reference(mass, compact):
    target = illcond(4, kappa=30.0)
    g = torch.Generator().manual_seed(11)
    n, max_depth = 48, 7
    x = target.sample(n, generator=g)
    if mass == "identity":
        m, minv = None, torch.eye(4, dtype=F64)
    elif mass == "diag":
        m = torch.diagonal(target.cov).clone()
        minv = torch.diag(m)
    else:
        m, minv = DenseMass(target.cov * 1.3), target.cov * 1.3
    p0 = sample_momentum(x, m, generator=g)
    forward = torch.rand(n, max_depth, generator=g) < 0.5
    eps = 0.25 if mass == "identity" else 0.35
    _, info = nuts_trajectory(
        target, init_grad_state(target, x), p0, forward, eps, m, compact=compact, generator=g
    )
    depths = set()
    for c in range(n):
        depth, count, div, _, _ = reference_tree(
            target, x[c], p0[c], eps, forward[c].tolist(), minv
        )
        assert int(info.tree_depth[c]) == depth, c
        assert int(info.n_leapfrog[c]) == count, c
        assert bool(info.divergent[c]) == div
        depths.add(depth)
    assert len(depths) >= 2 and max(depths) >= 3  # trees of several depths are exercised


def test_sample_is_drawn_from_the_biased_progressive_multinomial():
    """One (x, p, directions) repeated over 40,000 chains: the frequency of each returned leaf
    matches the reference probabilities (only the sampling uniforms differ between chains)."""
    target = corr2d()
    x = torch.tensor([[0.3, -1.0]], dtype=F64)
    p0 = torch.tensor([[1.1, 0.4]], dtype=F64)
    forward = [True, False, True, True, False, True]
    depth, _, _, leaves, probs = reference_tree(
        target, x[0], p0[0], 0.3, forward, torch.eye(2, dtype=F64)
    )
    assert depth >= 3 and len(leaves) >= 8
    n = 40_000
    xs = x.expand(n, 2).clone()
    fw = torch.tensor(forward).expand(n, -1)
    state, _ = nuts_trajectory(
        target,
        init_grad_state(target, xs),
        p0.expand(n, 2).clone(),
        fw,
        0.3,
        generator=torch.Generator().manual_seed(5),
    )
    idx = torch.cdist(state.x, leaves).argmin(1)
    assert float(torch.cdist(state.x, leaves).min(1).values.max()) < 1e-9
    freq = torch.bincount(idx, minlength=len(leaves)).to(F64) / n
    sd = (probs * (1 - probs) / n).sqrt().clamp_min(1e-12)
    z = (freq - probs).abs() / sd
    keep = probs > 0
    assert float(z[keep].max()) <= z_bonferroni(int(keep.sum()))
    assert float(freq[~keep].sum()) == 0.0


CASES = [
    ("corr2d", corr2d, lambda t: NUTS(t, 0.5), 400, 60),
    ("illcond-identity", illcond, lambda t: NUTS(t, 0.2), 100, 30),
    (
        "illcond-diag",
        illcond,
        lambda t: NUTS(t, 0.3, inverse_mass=torch.diagonal(t.cov).clone()),
        200,
        40,
    ),
    ("illcond-dense", illcond, lambda t: NUTS(t, 0.7, inverse_mass=DenseMass(t.cov)), 200, 40),
]


@pytest.mark.parametrize(("name", "target_fn", "make", "n_chains", "n_steps"), CASES)
def test_stationary_moments_within_ess_mcse(name, target_fn, make, n_chains, n_steps):
    target = target_fn()
    res = run_from_exact(make(target), target, n_chains, n_steps, seed=2025)
    zmax, zlim = ess_moment_z(res.trace, target)
    assert zmax <= zlim, f"{name}: max |err|/MCSE = {zmax:.2f} > {zlim:.2f}"
    assert int(res.n_nonfinite.sum()) == 0


def test_converges_from_overdispersed_start():
    target = illcond()
    g = torch.Generator().manual_seed(8)
    x0 = target.mean + 4.0 * torch.randn(200, 6, generator=g, dtype=F64)
    res = run_chain(
        NUTS(target, 0.7, inverse_mass=DenseMass(target.cov)),
        x0,
        40,
        burn_in=20,
        trace=True,
        generator=g,
    )
    zmax, zlim = ess_moment_z(res.trace, target)
    assert zmax <= zlim, f"max |err|/MCSE = {zmax:.2f} > {zlim:.2f}"


def test_power_biased_leaf_weights_fail_the_same_moment_test(monkeypatch):
    """Weights exp(−E − K/2) instead of exp(−H): the same test must reject the broken kernel."""
    target = corr2d()
    make = lambda t: NUTS(t, 0.5)  # noqa: E731
    res = run_from_exact(make(target), target, 400, 60, seed=2025)
    assert ess_moment_z(res.trace, target)[0] <= ess_moment_z(res.trace, target)[1]
    monkeypatch.setattr(nuts_module, "_kinetic", lambda p, v: 0.25 * nuts_module._dot(p, v))
    bad = run_from_exact(make(target), target, 400, 60, seed=2025)
    zbad, zlim = ess_moment_z(bad.trace, target)
    assert zbad > zlim, f"broken NUTS passed the moment test (z = {zbad:.2f})"


def _pair_asymmetry_z(x: torch.Tensor, y: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Binned (x, y) counts: z = (N_ij − N_ji) / sqrt(N_ij + N_ji) for i < j (exchangeable
    pairs, i.e. detailed balance, give N_ij − N_ji ≈ 0)."""
    k = len(edges) + 1
    bx, by = torch.bucketize(x, edges), torch.bucketize(y, edges)
    counts = torch.bincount(bx * k + by, minlength=k * k).reshape(k, k).to(F64)
    iu = torch.triu_indices(k, k, 1)
    a, b = counts[iu[0], iu[1]], counts[iu[1], iu[0]]
    tot = a + b
    return ((a - b).abs() / tot.clamp_min(1).sqrt())[tot >= 20]


def _one_step_pair_z(sampler, target, seed=17):
    g = torch.Generator().manual_seed(seed)
    x = target.sample(30_000, generator=g)
    state, info = sampler.step(sampler.init(x), generator=g)
    assert float(info.accepted.double().mean()) > 0.5
    edges = torch.tensor([-1.0, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0], dtype=F64)
    z = _pair_asymmetry_z(x[:, 0].contiguous(), state.x[:, 0].contiguous(), edges)
    return float(z.max()), z_bonferroni(z.numel())


def test_one_step_from_stationarity_is_reversible(monkeypatch):
    """Detailed balance: with x ~ π, the pair (x, x') of one NUTS step is exchangeable; the
    kernel with biased leaf weights fails the same test."""
    target = corr2d()
    zmax, zlim = _one_step_pair_z(NUTS(target, 0.9, max_depth=4), target)
    assert zmax <= zlim, f"{zmax:.2f} > {zlim:.2f}"
    monkeypatch.setattr(nuts_module, "_kinetic", lambda p, v: 0.25 * nuts_module._dot(p, v))
    zbad, _ = _one_step_pair_z(NUTS(target, 0.9, max_depth=4), target)
    assert zbad > zlim, f"broken NUTS passed the detailed-balance test (z = {zbad:.2f})"


def test_divergence_flagged_and_state_stays_finite():
    target = corr2d()
    g = torch.Generator().manual_seed(0)
    s = NUTS(target, 3.0, max_depth=6)  # far past the stability limit: energy error explodes
    state, info = s.step(s.init(target.sample(64, generator=g)), generator=g)
    assert bool(info.divergent.any())
    assert not bool(info.diverged.any())  # not an unadjusted hold: the driver keeps going
    assert torch.isfinite(state.x).all() and torch.isfinite(state.energy).all()


def test_infinite_energy_region_is_never_entered():
    base = corr2d()

    def walled(x):
        e = base(x)
        return torch.where(x[:, 0] > 2.0, torch.full_like(e, float("inf")), e)

    g = torch.Generator().manual_seed(1)
    res = run_chain(NUTS(walled, 0.5), torch.zeros(64, 2, dtype=F64), 30, trace=True, generator=g)
    assert float(res.trace[..., 0].max()) <= 2.0
    assert int(res.n_nonfinite.sum()) > 0


def test_max_depth_bounds_the_tree():
    target = corr2d()
    s = NUTS(target, 1e-3, max_depth=5)  # tiny steps: no U-turn within 31 steps
    _, info = s.step(
        s.init(torch.zeros(8, 2, dtype=F64)), generator=torch.Generator().manual_seed(0)
    )
    assert info.tree_depth.tolist() == [5] * 8
    assert info.n_leapfrog.tolist() == [31] * 8
    assert torch.allclose(info.accept_prob, torch.ones(8, dtype=F64), atol=1e-6)


def test_per_chain_mass_with_compaction_keeps_the_trees():
    target = illcond(4, kappa=30.0)
    g = torch.Generator().manual_seed(12)
    x = target.sample(16, generator=g)
    m = torch.diagonal(target.cov) * torch.linspace(0.3, 2.0, 16, dtype=F64)[:, None]
    p0 = sample_momentum(x, m, generator=g)
    forward = torch.rand(16, 6, generator=g) < 0.5
    state = init_grad_state(target, x)
    infos = [
        nuts_trajectory(target, state, p0, forward, 0.3, m, compact=c, generator=g)[1]
        for c in (True, False)
    ]
    assert torch.equal(infos[0].n_leapfrog, infos[1].n_leapfrog)
    assert len(set(infos[0].n_leapfrog.tolist())) > 1


def test_per_chain_step_sizes_and_event_shapes():
    f = lambda x: 0.5 * (x**2).flatten(1).sum(1)  # noqa: E731
    eps = torch.tensor([0.05, 0.4, 0.8])
    s = NUTS(f, eps)
    _, info = s.step(s.init(torch.zeros(3, 2, 2)), generator=torch.Generator().manual_seed(0))
    assert info.n_leapfrog[0] > info.n_leapfrog[2]  # smaller steps, longer trajectories


def test_refuses_bad_input():
    f = lambda x: 0.5 * (x**2).sum(-1)  # noqa: E731
    # the one non-finite-start check of every gradient kernel (samplers.proposals)
    with pytest.raises(ValueError, match="energy is not finite at the start"):
        NUTS(lambda x: torch.log(x).sum(-1), 0.1).init(-torch.ones(2, 2))
    with pytest.raises(ValueError, match="max_depth"):
        NUTS(f, 0.1, max_depth=40)
    with pytest.raises(TypeError, match="max_depth"):
        NUTS(f, 0.1, max_depth=2.5)
    with pytest.raises(ValueError, match="step_size"):
        NUTS(f, -0.1)
    with pytest.raises(ValueError, match="DenseMass"):
        NUTS(f, 0.1, inverse_mass=torch.full((3, 3), 0.5)).init(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="d = prod"):
        NUTS(f, 0.1, inverse_mass=DenseMass(torch.eye(2))).init(torch.zeros(2, 3))
