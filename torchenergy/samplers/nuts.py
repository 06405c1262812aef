"""The No-U-Turn Sampler (multinomial, Betancourt 2017), batched over chains with per-chain trees.

Each transition draws ``p ~ N(0, M)`` and grows a trajectory by doubling: at depth j a chain
picks a direction (forward or backward in time) and integrates a new subtree of ``2^j`` leapfrog
steps from that end. Every point (leaf) carries the weight ``w = exp(H(x₀, p₀) − H(x, p))``.
A subtree is sampled from uniformly-progressively (multinomial within it); at each doubling the
tree's sample jumps to the new subtree's with probability ``min(1, W_new / W_old)`` (biased
progressive sampling). A chain stops when

* the generalised U-turn criterion holds for the whole tree or for any of the subtrees the new
  one is built of (``v₋·ρ ≤ 0`` or ``v₊·ρ ≤ 0``, ``v = M⁻¹p`` at the two ends and
  ``ρ = Σp − (p₋ + p₊)/2``): a subtree that turns is rejected as a whole;
* a leaf's energy error ``H − H₀`` exceeds ``max_energy_error`` (a divergence) or is not finite;
* the tree reaches ``max_depth`` (at most ``2^max_depth − 1`` leapfrog steps).

Batching: all chains grow their own trees at once; at depth j every chain that has not stopped
builds its j-th subtree, leaf by leaf, with per-chain masks (``torch.where``), so chains differ in
directions, depth, U-turns and divergences. The subtree U-turn checks are iterative (momentum and
momentum-sum checkpoints indexed by the leaf's bits, as in NumPyro/BlackJAX), not recursive. The
loop ends when every chain has stopped: the one host synchronisation per leapfrog step that a
data-dependent trajectory length needs.

Reference:
    Hoffman & Gelman (2014), The No-U-Turn Sampler, JMLR 15;
    Betancourt (2017), A Conceptual Introduction to Hamiltonian Monte Carlo, arXiv:1701.02434,
    appendix A (multinomial sampling, generalised criterion);
    Phan, Pradhan & Jankowiak (2019), NumPyro (iterative NUTS).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from torchenergy._checks import check_positive, check_positive_int
from torchenergy._ops import row_sum
from torchenergy.energies import energy_and_grad
from torchenergy.samplers.driver import Sampler
from torchenergy.samplers.integrators import sample_momentum
from torchenergy.samplers.mass import (
    DenseMass,
    InverseMass,
    check_inverse_mass,
    check_inverse_mass_shape,
    inverse_mass_apply,
)
from torchenergy.samplers.proposals import (
    GradState,
    check_energy_fn,
    check_per_chain,
    check_step_size,
    init_grad_state,
    where_chains,
)
from torchenergy.types import EnergyFn, Generator, StepSize

__all__ = ["NUTS", "NUTSInfo", "nuts_trajectory"]


class NUTSInfo(NamedTuple):
    """Per-transition diagnostics of :class:`NUTS`; every field has shape (C,).

    Attributes:
        accept_prob: the acceptance statistic, the mean of ``min(1, exp(H₀ − H))`` over the
            trajectory's new points (what dual averaging aims at).
        accepted: the chain moved (the sample is not the starting point).
        nonfinite: a leaf had a non-finite energy or gradient (the tree stopped there).
        diverged: always False: a NUTS divergence is not a held unadjusted step (see
            ``divergent``); kept for the common Info contract.
        divergent: the energy error exceeded ``max_energy_error`` (or was not finite).
        tree_depth: number of doublings (int64).
        n_leapfrog: leapfrog steps (gradient evaluations) of this chain's tree (int64).
    """

    accept_prob: Tensor
    accepted: Tensor
    nonfinite: Tensor
    diverged: Tensor
    divergent: Tensor
    tree_depth: Tensor
    n_leapfrog: Tensor


def _dot(a: Tensor, b: Tensor) -> Tensor:
    return row_sum((a * b).flatten(1))


def _kinetic(p: Tensor, v: Tensor) -> Tensor:
    """``K = 0.5 · pᵀ M⁻¹ p`` from the momentum and its velocity ``v = M⁻¹ p``, (C,)."""
    return 0.5 * _dot(p, v)


def _is_turning(v_left: Tensor, v_right: Tensor, p_left: Tensor, p_right: Tensor, p_sum: Tensor):
    """Generalised U-turn: ``v₋·ρ ≤ 0 or v₊·ρ ≤ 0``, ``ρ = Σp − (p₋ + p₊)/2`` (C,) bool."""
    rho = p_sum - 0.5 * (p_left + p_right)
    return (_dot(v_left, rho) <= 0) | (_dot(v_right, rho) <= 0)


def _ckpt_range(k: int) -> tuple[int, int]:
    """Checkpoints to test at leaf ``k`` of a subtree: ``[lo, hi]`` (empty when lo > hi).

    ``hi`` = number of set bits of ``k >> 1``; the leaf closes ``t`` = (trailing ones of k)
    sub-subtrees, whose first leaves were stored at checkpoints ``hi − t + 1 .. hi``.
    """
    hi = bin(k >> 1).count("1")
    t = 0
    while (k >> t) & 1:
        t += 1
    return hi - t + 1, hi


def _subtree(
    energy_fn: EnergyFn,
    start: tuple[Tensor, Tensor, Tensor, Tensor],
    se: Tensor,
    step: Tensor,
    m: InverseMass,
    h0: Tensor,
    building: Tensor,
    j: int,
    max_energy_error: float,
    generator: Generator,
) -> tuple:
    """Build a subtree of ``2^j`` leapfrog steps from the tree end ``start = (x, p, v, g)`` for
    the chains where ``building`` (signed per-chain step ``step`` (C,)); stop a chain at its first
    divergence or U-turn of a sub-subtree (the subtree is then rejected: ``bad``)."""
    ex, ep, ev, eg = start
    n = ex.shape[0]
    kw = {"device": ex.device, "dtype": ex.dtype}
    step = step.view(-1, *([1] * (ex.dim() - 1)))
    half = 0.5 * step
    drift = step
    if isinstance(m, Tensor):
        drift = step * m.to(**kw)
    elif isinstance(m, (int, float)):
        drift = step * m
    neg_inf = torch.full((n,), -float("inf"), **kw)
    sub_x, sub_e, sub_g = ex, se, eg
    sub_log_w = neg_inf
    sub_sum = torch.zeros_like(ep)
    bad = torch.zeros_like(building)
    nonfinite = torch.zeros_like(building)
    divergent = torch.zeros_like(building)
    n_leap = torch.zeros(n, dtype=torch.long, device=ex.device)
    sum_acc = torch.zeros(n, **kw)
    n_ck = max(j, 1)
    ck_p = ex.new_empty((n_ck, *ex.shape))
    ck_v = torch.empty_like(ck_p)
    ck_sum = torch.empty_like(ck_p)
    for k in range(2**j):
        if k > 0 and not bool(building.any()):  # host sync: every subtree stopped early
            break
        # one leapfrog step (velocity Verlet): p ← p − (ε/2)∇E; x ← x + ε M⁻¹p; p ← ... .
        # The end needs no mask: a chain that stopped building never uses it again, so only
        # the accumulators are masked with ``building``
        ep = torch.addcmul(ep, half, eg, value=-1.0)
        if isinstance(m, DenseMass):
            ex = torch.addcmul(ex, step, m.velocity(ep))
        else:
            ex = torch.addcmul(ex, drift, ep)
        e1, eg = energy_and_grad(energy_fn, ex)
        ep = torch.addcmul(ep, half, eg, value=-1.0)
        ev = inverse_mass_apply(ep, m)
        delta = e1 + _kinetic(ep, ev) - h0
        # non-finite energy, gradient, momentum (through K) or position: weight 0, divergent
        ok = torch.isfinite(delta + 0.0 * row_sum(ex.flatten(1)))
        delta = torch.where(ok, delta, torch.full_like(delta, float("inf")))
        div = delta > max_energy_error
        lw = torch.where(building, -delta, neg_inf)
        new_sub_log_w = torch.logaddexp(sub_log_w, lw)
        u = torch.rand(n, generator=generator, **kw)
        take = torch.log(u) < lw - new_sub_log_w  # uniform progressive; False off ``building``
        sub_x = where_chains(take, ex, sub_x)
        sub_e = torch.where(take, e1, sub_e)
        sub_g = where_chains(take, eg, sub_g)
        sub_log_w = new_sub_log_w
        sum_acc = sum_acc + torch.exp(torch.clamp(lw, max=0.0))
        n_leap = n_leap + building
        nonfinite = nonfinite | (building & ~ok)
        divergent = divergent | (building & div)
        sub_sum = sub_sum + ep
        lo, hi = _ckpt_range(k)
        if k % 2 == 0 and j > 0:
            ck_p[hi], ck_v[hi], ck_sum[hi] = ep, ev, sub_sum
        turn = div
        for i in range(lo, hi + 1):
            partial = sub_sum - ck_sum[i] + ck_p[i]
            turn = turn | _is_turning(ck_v[i], ev, ck_p[i], ep, partial)
        bad = bad | (building & turn)
        building = building & ~bad
    edge = (ex, ep, ev, eg)
    return edge, sub_x, sub_e, sub_g, sub_log_w, sub_sum, bad, n_leap, sum_acc, nonfinite, divergent


def nuts_trajectory(
    energy_fn: EnergyFn,
    state: GradState,
    momentum: Tensor,
    forward: Tensor,
    step_size: StepSize,
    inverse_mass: InverseMass = None,
    *,
    max_energy_error: float = 1000.0,
    compact: bool = True,
    generator: Generator = None,
) -> tuple[GradState, NUTSInfo]:
    """Grow one multinomial NUTS tree per chain from ``state`` with momenta ``momentum``.

    ``forward`` (C, max_depth) bool gives each chain's direction at each doubling (True: forward
    in time); the tree depth is at most ``max_depth``. The only randomness drawn from
    ``generator`` is the uniforms of the multinomial (progressive) sampling, so with the
    momenta and directions fixed the trajectories (depth, leapfrog count, U-turns) are
    deterministic. :class:`NUTS` draws the momenta, then the directions, then calls this.

    With ``compact`` the j-th subtree is integrated only for the chains whose tree is still
    growing (gathered, then scattered back), so chains that stopped early cost nothing; this
    needs an energy whose value at a point does not depend on its row in the batch (a
    per-chain tempered energy does: pass ``compact=False``).

    Shapes: ``state`` fields (C, *D)/(C,); ``momentum`` (C, *D); ``forward`` (C, max_depth).

    Returns:
        ``(new_state, info)`` with the sampled point and :class:`NUTSInfo`.

    Example:
        >>> from torchenergy.samplers.proposals import init_grad_state
        >>> f = lambda x: 0.5 * (x ** 2).sum(-1)
        >>> state = init_grad_state(f, torch.zeros(2, 1))
        >>> p = torch.ones(2, 1)
        >>> fwd = torch.tensor([[True] * 8, [False] * 8])
        >>> _, info = nuts_trajectory(f, state, p, fwd, 0.5)
        >>> info.n_leapfrog.tolist()  # mirror-image trees: the same length
        [7, 7]
    """
    x, energy, grad = state
    n, max_depth = forward.shape
    m = inverse_mass
    eps = step_size
    if not isinstance(eps, Tensor):
        eps = torch.tensor(eps, dtype=x.dtype, device=x.device)
    eps = eps.to(device=x.device, dtype=x.dtype).expand(n)
    kw = {"device": x.device, "dtype": x.dtype}

    p0 = momentum
    v0 = inverse_mass_apply(p0, m)
    h0 = energy + _kinetic(p0, v0)
    # the tree: its two ends (position, momentum, velocity, gradient), its sample, weights
    left = right = (x, p0, v0, grad)
    sx, se, sg = x, energy, grad
    log_w = torch.zeros(n, **kw)
    p_sum = p0
    depth = torch.zeros(n, dtype=torch.long, device=x.device)
    n_leap = torch.zeros(n, dtype=torch.long, device=x.device)
    sum_acc = torch.zeros(n, **kw)
    stopped = torch.zeros(n, dtype=torch.bool, device=x.device)
    divergent = torch.zeros_like(stopped)
    nonfinite = torch.zeros_like(stopped)
    moved = torch.zeros_like(stopped)

    for j in range(max_depth):
        active = ~stopped
        n_active = int(active.sum())  # host sync: the trajectory length is data-dependent
        if n_active == 0:
            break
        # compaction: the j-th subtree is built only for the chains still growing their tree
        idx = None if (not compact or n_active == n) else torch.nonzero(active).flatten()

        def sub(t: Tensor, idx: Tensor | None = idx) -> Tensor:
            return t if idx is None else t.index_select(0, idx)

        fwd = sub(forward[:, j])
        active_a = sub(active)
        per_chain_mass = isinstance(m, Tensor) and m.shape == x.shape
        m_a = sub(m) if per_chain_mass else m
        start = tuple(where_chains(fwd, sub(r), sub(le)) for r, le in zip(right, left, strict=True))
        out = _subtree(
            energy_fn,
            start,
            sub(se),
            torch.where(fwd, sub(eps), -sub(eps)),
            m_a,
            sub(h0),
            active_a,
            j,
            max_energy_error,
            generator,
        )
        edge, sub_x, sub_e, sub_g, sub_log_w, sub_sum, bad, n_new, acc_new, nonfin, div = out

        def put(full: Tensor, part: Tensor, idx: Tensor | None = idx) -> Tensor:
            return part if idx is None else full.index_copy(0, idx, part)

        # merge the new subtree into the tree (chains whose subtree is valid): biased
        # progressive sampling, jump to the subtree's sample with prob min(1, W_new / W_old)
        valid = active_a & ~bad
        log_w_a = sub(log_w)
        u = torch.rand(fwd.shape[0], generator=generator, **kw)
        jump = valid & (torch.log(u) < sub_log_w - log_w_a)
        sx = put(sx, where_chains(jump, sub_x, sub(sx)))
        se = put(se, torch.where(jump, sub_e, sub(se)))
        sg = put(sg, where_chains(jump, sub_g, sub(sg)))
        moved = put(moved, sub(moved) | jump)
        log_w = put(log_w, torch.where(valid, torch.logaddexp(log_w_a, sub_log_w), log_w_a))
        p_sum_a = where_chains(valid, sub(p_sum) + sub_sum, sub(p_sum))
        p_sum = put(p_sum, p_sum_a)
        go_r, go_l = valid & fwd, valid & ~fwd
        right_a = tuple(where_chains(go_r, e, sub(r)) for e, r in zip(edge, right, strict=True))
        left_a = tuple(where_chains(go_l, e, sub(le)) for e, le in zip(edge, left, strict=True))
        right = tuple(put(r, ra) for r, ra in zip(right, right_a, strict=True))
        left = tuple(put(le, la) for le, la in zip(left, left_a, strict=True))
        turned = _is_turning(left_a[2], right_a[2], left_a[1], right_a[1], p_sum_a)
        stopped = put(stopped, sub(stopped) | (active_a & (bad | turned)))
        depth = depth + active
        n_leap = put(n_leap, sub(n_leap) + n_new)
        sum_acc = put(sum_acc, sub(sum_acc) + acc_new)
        nonfinite = put(nonfinite, sub(nonfinite) | nonfin)
        divergent = put(divergent, sub(divergent) | div)

    accept_prob = sum_acc / n_leap.clamp_min(1).to(x.dtype)
    zeros = torch.zeros_like(stopped)
    info = NUTSInfo(accept_prob, moved, nonfinite, zeros, divergent, depth, n_leap)
    return GradState(sx, se, sg), info


@dataclass(frozen=True, eq=False)
class NUTS(Sampler):
    """No-U-Turn Sampler with multinomial sampling: exact for ``exp(−E)``; any event shape D.

    Update: ``p ~ N(0, M)``; grow a trajectory of leapfrog steps (step ε) by doubling in random
    directions until it makes a U-turn, diverges or reaches ``max_depth``; return a point of it
    drawn with probability ∝ ``exp(−H)`` (biased progressive multinomial sampling), see
    :func:`nuts_trajectory` and the module docstring. The State caches ``E`` and ``∇E``: a
    transition costs ``Info.n_leapfrog`` gradient evaluations per chain (the batch runs until
    its longest tree is done; with ``compact`` a doubling is integrated only for the chains
    still growing, so stopped chains cost nothing). The step synchronises with the host once
    per leapfrog step and doubling (the trajectory length is data-dependent).

    Shapes: State ``x`` (C, *D), ``energy`` (C,), ``grad`` (C, *D); Info fields (C,).

    Args:
        energy_fn: ``(C, *D) -> (C,)``.
        step_size: ε > 0, a float or a per-chain (C,) tensor.
        inverse_mass: ``M⁻¹``: None (identity), diagonal (a float or a tensor of shape D or
            (C, *D)) or a :class:`~torchenergy.samplers.DenseMass`.
        max_depth: at most ``2^max_depth − 1`` leapfrog steps per transition (default 10).
        max_energy_error: a leaf with ``H − H₀`` above this is a divergence (default 1000).
        compact: integrate each subtree only for the chains still growing their tree (see
            :func:`nuts_trajectory`); set False for energies that depend on a chain's row in
            the batch (per-chain tempered energies, e.g. inside parallel tempering).

    Example:
        >>> f = lambda x: 0.5 * (x ** 2).sum(-1)
        >>> s = NUTS(f, 0.5)
        >>> state, info = s.step(s.init(torch.zeros(4, 3)), generator=torch.Generator().manual_seed(0))
        >>> state.x.shape, info.tree_depth.dtype
        (torch.Size([4, 3]), torch.int64)

    Reference:
        Hoffman & Gelman (2014), The No-U-Turn Sampler, JMLR 15;
        Betancourt (2017), A Conceptual Introduction to Hamiltonian Monte Carlo, appendix A.
    """

    energy_fn: EnergyFn
    step_size: StepSize
    inverse_mass: InverseMass = None
    max_depth: int = 10
    max_energy_error: float = 1000.0
    compact: bool = True

    def __post_init__(self) -> None:
        check_energy_fn(self.energy_fn)
        check_step_size("step_size", self.step_size)
        check_inverse_mass(self.inverse_mass)
        check_positive_int("max_depth", self.max_depth)
        if self.max_depth > 20:
            raise ValueError(f"max_depth must be <= 20 (2^20 leapfrog steps), got {self.max_depth}")
        check_positive("max_energy_error", self.max_energy_error)
        if not isinstance(self.compact, bool):
            raise TypeError(f"compact must be a bool, got {self.compact!r}")

    def init(self, x: Tensor) -> GradState:
        """Cache ``E(x)`` and ``∇E(x)`` for ``x`` (C, *D); refuse a non-finite start."""
        state = init_grad_state(self.energy_fn, x)
        check_per_chain("step_size", self.step_size, state.x)
        check_inverse_mass_shape(self.inverse_mass, state.x)
        bad = ~(torch.isfinite(state.energy) & torch.isfinite(state.grad.flatten(1)).all(1))
        if bool(bad.any()):
            idx = torch.nonzero(bad).flatten()[:8].tolist()
            raise ValueError(
                f"NUTS needs a finite energy and gradient at the start; chains {idx} are not "
                "finite there (move the start into the support of exp(-E))"
            )
        return state

    def step(self, state: GradState, *, generator: Generator = None) -> tuple[GradState, NUTSInfo]:
        """One NUTS transition (momenta, then directions, then the tree, from ``generator``)."""
        x = state.x
        p0 = sample_momentum(x, self.inverse_mass, generator=generator)
        u = torch.rand((x.shape[0], self.max_depth), generator=generator, device=x.device)
        return nuts_trajectory(
            self.energy_fn,
            state,
            p0,
            u < 0.5,
            self.step_size,
            self.inverse_mass,
            max_energy_error=self.max_energy_error,
            compact=self.compact,
            generator=generator,
        )
