"""Parallel tempering (replica exchange) over a temperature ladder, with any kernel inside.

R replicas of each of C chains run at temperatures ``T_0 < T_1 < ... < T_{R-1}`` (normally
``T_0 = 1``), each targeting ``p_r(x) ∝ exp(−E(x) / T_r)``. All ``R·C`` chains are stacked into
one batch (replica-major: flat chain ``r·C + c`` is replica r of chain c) and advanced by one call
of the inner kernel on the per-chain tempered energy ``E / T_r``. Every ``swap_every`` steps,
neighbouring replicas propose to exchange their states, alternating even pairs (0,1), (2,3), ...
and odd pairs (1,2), (3,4), ... (the deterministic even-odd scheme). A pair (i, j = i + 1)
swaps with probability::

    min(1, exp((β_i − β_j)(E(x_i) − E(x_j)))),   β = 1 / T,

and a pair with a non-finite energy never swaps. The product of the tempered targets is
invariant, so the coldest replica samples ``exp(−E / T_0)``; the hot replicas carry it across
energy barriers.

``State.x`` is the coldest replica, (C, *D), so ``run_chain`` and ``sample`` work as for any
kernel; the full replica state is ``State.inner`` (the inner kernel's state over R·C chains).

Reference:
    Swendsen & Wang, "Replica Monte Carlo simulation of spin glasses", PRL 57 (1986);
    Geyer, "Markov chain Monte Carlo maximum likelihood" (1991); Earl & Deem, "Parallel
    tempering: theory, applications, and new perspectives", PCCP 7 (2005); Okabe et al. (2001)
    and Syed et al., JRSS-B 84 (2022) for the deterministic even-odd swap scheme.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import Tensor

from torchenergy._checks import check_energy_shape, check_positive, check_positive_int
from torchenergy.energies.base import Energy
from torchenergy.energies.composition import TemperedEnergy
from torchenergy.samplers.base import Sampler
from torchenergy.samplers.metropolis import metropolis_accept
from torchenergy.types import EnergyFn, Generator

__all__ = ["ParallelTempering", "TemperingInfo", "TemperingState", "geometric_ladder"]


def geometric_ladder(
    n_temperatures: int, max_temperature: float, *, min_temperature: float = 1.0
) -> Tensor:
    """Geometrically spaced temperatures ``T_r = T_min · (T_max / T_min)^(r / (R − 1))``, (R,).

    A geometric ladder keeps the swap acceptance roughly constant between neighbours when the
    heat capacity is roughly constant (e.g. Gaussian-like targets).

    Example:
        >>> geometric_ladder(3, 4.0).tolist()
        [1.0, 2.0, 4.0]
    """
    check_positive_int("n_temperatures", n_temperatures)
    check_positive("min_temperature", min_temperature)
    check_positive("max_temperature", max_temperature)
    if n_temperatures == 1:
        return torch.tensor([float(min_temperature)], dtype=torch.float64)
    if max_temperature <= min_temperature:
        raise ValueError(
            f"max_temperature must exceed min_temperature = {min_temperature}, got {max_temperature}"
        )
    r = torch.arange(n_temperatures, dtype=torch.float64) / (n_temperatures - 1)
    out = min_temperature * (max_temperature / min_temperature) ** r
    out[-1] = max_temperature
    return out


class TemperingState(NamedTuple):
    """State of :class:`ParallelTempering`.

    Attributes:
        x: the coldest replica's points, (C, *D).
        energy: its untempered energies ``E(x)``, (C,).
        inner: the inner kernel's state over all R·C chains (replica-major).
        replica_energy: untempered energies of every replica, (R, C).
        step: transitions so far (0-dim long tensor); decides even or odd swap rounds.
        swap_attempts: swap proposals per neighbour pair and chain so far, (R − 1, C).
        swap_accepts: accepted swaps per neighbour pair and chain so far, (R − 1, C).
    """

    x: Tensor
    energy: Tensor
    inner: Any
    replica_energy: Tensor
    step: Tensor
    swap_attempts: Tensor
    swap_accepts: Tensor


class TemperingInfo(NamedTuple):
    """Per-step diagnostics of :class:`ParallelTempering`.

    ``accept_prob`` and ``accepted`` (C,) are the coldest replica's inner-kernel values;
    ``nonfinite`` and ``diverged`` (C,) are True when any replica of the chain had them.

    Attributes:
        replica_accept_prob: inner-kernel acceptance probability of every replica, (R, C).
        swap_prob: swap acceptance probability ``min(1, exp((β_i − β_j)(E_i − E_j)))`` of every
            neighbour pair (i, i + 1) at the current states, (R − 1, C) (0 for non-finite
            energies), whether or not the pair was proposed this step.
        swap_proposed: pairs proposed this step, (R − 1,) bool.
        swapped: pairs that exchanged their states, (R − 1, C) bool.
    """

    accept_prob: Tensor
    accepted: Tensor
    nonfinite: Tensor
    diverged: Tensor
    replica_accept_prob: Tensor
    swap_prob: Tensor
    swap_proposed: Tensor
    swapped: Tensor


def _as_temperatures(temperatures: Any) -> Tensor:
    t = torch.as_tensor(temperatures, dtype=torch.float64).detach().cpu()
    if t.dim() != 1 or t.numel() < 1:
        raise ValueError(f"temperatures must be a 1-D sequence (R,), got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all() and (t > 0).all()):
        raise ValueError(f"temperatures must be finite and > 0, got {t.tolist()}")
    if t.numel() > 1 and not bool((t[1:] > t[:-1]).all()):
        raise ValueError(f"temperatures must be strictly increasing, got {t.tolist()}")
    return t


@dataclass(frozen=True, eq=False)
class ParallelTempering(Sampler):
    """Replica exchange with any kernel inside; see the module docstring for the update rule.

    Shapes: ``init(x)`` takes x (C, *D) and starts every replica there (or
    :meth:`init_replicas` with (R, C, *D)); ``State.x`` (C, *D) is the coldest replica; the
    inner kernel runs on R·C chains.

    Args:
        energy_fn: the target energy ``(C, *D) -> (C,)`` (at ``T = 1``).
        kernel: the kernel run in every replica: a sampler instance (e.g. ``MALA(energy_fn,
            0.05)``; its ``energy_fn`` is replaced by the per-chain tempered energy with
            ``dataclasses.replace``) or a factory ``kernel(tempered_energy) -> sampler``.
        temperatures: strictly increasing ladder (R,), e.g. :func:`geometric_ladder`.
        swap_every: propose swaps every ``swap_every`` steps (>= 1).
        step_scaling: with ``s != 0`` the replica r uses step size ``ε · T_r^s`` (the kernel
            needs a float ``step_size`` field): ``s = 1`` keeps the MALA/Langevin acceptance
            roughly level across the ladder (their ε scales like a variance), ``s = 0.5`` suits
            HMC (ε scales like a length).
        replica_step_sizes: explicit per-replica step sizes (R,) instead (overrides the above).

    Example:
        >>> from torchenergy.samplers import MALA
        >>> f = lambda x: 0.5 * (x ** 2).sum(-1)
        >>> pt = ParallelTempering(f, MALA(f, 0.1), geometric_ladder(4, 8.0), step_scaling=1.0)
        >>> state, info = pt.step(pt.init(torch.zeros(5, 2)), generator=torch.Generator().manual_seed(0))
        >>> tuple(state.x.shape), tuple(info.swap_prob.shape)
        ((5, 2), (3, 5))
    """

    energy_fn: EnergyFn
    kernel: Any
    temperatures: Sequence[float] | Tensor
    swap_every: int = 1
    step_scaling: float = 0.0
    replica_step_sizes: Sequence[float] | Tensor | None = None
    _temps: Tensor = field(init=False, repr=False, compare=False)
    _cache: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not callable(self.energy_fn):
            raise TypeError(
                f"energy_fn must be a callable (C, *D) -> (C,), got {type(self.energy_fn).__name__}"
            )
        is_sampler = hasattr(self.kernel, "init") and hasattr(self.kernel, "step")
        if not is_sampler and not callable(self.kernel):
            raise TypeError(
                "kernel must be a sampler (with init/step) or a factory "
                f"kernel(tempered_energy) -> sampler, got {type(self.kernel).__name__}"
            )
        if is_sampler and not dataclasses.is_dataclass(self.kernel):
            raise TypeError(
                f"a kernel instance must be a dataclass sampler (its energy_fn is replaced per "
                f"temperature), got {type(self.kernel).__name__}; pass a factory instead"
            )
        temps = _as_temperatures(self.temperatures)
        check_positive_int("swap_every", self.swap_every)
        if isinstance(self.step_scaling, bool) or not isinstance(self.step_scaling, (int, float)):
            raise TypeError(f"step_scaling must be a float, got {self.step_scaling!r}")
        if not math.isfinite(self.step_scaling):
            raise ValueError(f"step_scaling must be finite, got {self.step_scaling!r}")
        if self.replica_step_sizes is not None:
            rs = torch.as_tensor(self.replica_step_sizes, dtype=torch.float64)
            if rs.shape != temps.shape:
                raise ValueError(
                    f"replica_step_sizes must have shape (R,) = ({temps.numel()},), "
                    f"got {tuple(rs.shape)}"
                )
            check_positive("replica_step_sizes", rs)
        object.__setattr__(self, "_temps", temps)
        object.__setattr__(self, "_cache", {})

    @property
    def n_replicas(self) -> int:
        """R, the number of temperatures."""
        return int(self._temps.numel())

    # the inner kernel over R*C chains ------------------------------------------------------
    def _chain_temps(self, n_chains: int, like: Tensor) -> Tensor:
        return self._temps.to(device=like.device, dtype=like.dtype).repeat_interleave(n_chains)

    def inner_sampler(self, n_chains: int, like: Tensor) -> Any:
        """The inner kernel over ``R · n_chains`` chains on the per-chain tempered energy."""
        key = (n_chains, like.device, like.dtype)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        t_chain = self._chain_temps(n_chains, like)
        if isinstance(self.energy_fn, Energy):
            tempered = self.energy_fn.tempered(t_chain)
        else:
            tempered = TemperedEnergy(self.energy_fn, t_chain)
        step = None
        base = (
            getattr(self.kernel, "step_size", None)
            if dataclasses.is_dataclass(self.kernel)
            else None
        )
        if self.replica_step_sizes is not None:
            rs = torch.as_tensor(self.replica_step_sizes, dtype=torch.float64)
            step = rs.to(device=like.device, dtype=like.dtype).repeat_interleave(n_chains)
        elif self.step_scaling != 0.0:
            if base is None:
                raise ValueError(
                    "step_scaling needs a kernel with a step_size field, got "
                    f"{type(self.kernel).__name__}"
                )
            if isinstance(base, Tensor) and base.numel() != 1:
                raise ValueError(
                    "step_scaling needs a scalar kernel step_size (use replica_step_sizes for "
                    f"per-replica sizes), got shape {tuple(base.shape)}"
                )
            step = float(base) * t_chain.pow(self.step_scaling)
        if dataclasses.is_dataclass(self.kernel) and hasattr(self.kernel, "step"):
            inner = dataclasses.replace(self.kernel, energy_fn=tempered)
        else:
            inner = self.kernel(tempered)
            if not (hasattr(inner, "init") and hasattr(inner, "step")):
                raise TypeError(
                    f"kernel factory must return a sampler with init/step, got {type(inner).__name__}"
                )
        if step is not None:
            inner = dataclasses.replace(inner, step_size=step)
        self._cache[key] = inner
        return inner

    def _raw_energy(self, inner_state: Any, t_chain: Tensor) -> Tensor:
        """Untempered energies of all R·C chains: from the cache ``E/T`` when the state has it."""
        if hasattr(inner_state, "energy"):
            return inner_state.energy * t_chain
        with torch.no_grad():
            e = self.energy_fn(inner_state.x)
        check_energy_shape(e, inner_state.x)
        return e.detach()

    # protocol ------------------------------------------------------------------------------
    def init(self, x: Tensor) -> TemperingState:
        """Start every replica at ``x`` (C, *D)."""
        if not isinstance(x, Tensor) or x.dim() < 1:
            raise TypeError(f"x must be a tensor (C, *D), got {type(x).__name__}")
        return self.init_replicas(x.unsqueeze(0).expand(self.n_replicas, *x.shape))

    def init_replicas(self, x: Tensor) -> TemperingState:
        """Start from per-replica points ``x`` (R, C, *D) (replica 0 is the coldest)."""
        if not isinstance(x, Tensor) or x.dim() < 2 or x.shape[0] != self.n_replicas:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(
                f"x must have shape (R, C, *D) with R = {self.n_replicas} replicas, got {got}"
            )
        r, c = x.shape[:2]
        flat = x.reshape(r * c, *x.shape[2:]).detach().clone()
        inner = self.inner_sampler(c, flat).init(flat)
        t_chain = self._chain_temps(c, inner.x)
        e = self._raw_energy(inner, t_chain).reshape(r, c)
        zeros = torch.zeros(max(r - 1, 0), c, device=flat.device, dtype=flat.dtype)
        return TemperingState(
            x=inner.x[:c],
            energy=e[0],
            inner=inner,
            replica_energy=e,
            step=torch.zeros((), dtype=torch.long, device=flat.device),
            swap_attempts=zeros,
            swap_accepts=zeros.clone(),
        )

    def step(
        self, state: TemperingState, *, generator: Generator = None
    ) -> tuple[TemperingState, TemperingInfo]:
        """One inner-kernel transition of every replica, then one round of neighbour swaps."""
        r = self.n_replicas
        c = state.x.shape[0]
        inner_sampler = self.inner_sampler(c, state.x)
        inner, info = inner_sampler.step(state.inner, generator=generator)
        t_chain = self._chain_temps(c, inner.x)
        energy = self._raw_energy(inner, t_chain).reshape(r, c)

        # neighbour swaps (even or odd round), all decided with tensors
        step = state.step + 1
        beta = 1.0 / self._temps.to(device=energy.device, dtype=energy.dtype)
        pair = torch.arange(max(r - 1, 0), device=energy.device)
        round_parity = torch.div(step - 1, self.swap_every, rounding_mode="floor") % 2
        proposed = (pair % 2 == round_parity) & (step % self.swap_every == 0)
        e_lo, e_hi = energy[:-1], energy[1:]
        log_ratio = self.swap_log_ratio(beta, e_lo, e_hi)
        finite = torch.isfinite(e_lo) & torch.isfinite(e_hi)
        mh = metropolis_accept(log_ratio, finite, generator=generator)
        swapped = mh.accepted & proposed.unsqueeze(1)

        # permutation: replica k takes the state of its partner when its pair swapped
        src = torch.arange(r, device=energy.device).unsqueeze(1).expand(r, c)
        down = torch.zeros(r, c, dtype=torch.bool, device=energy.device)  # k <- k+1
        up = torch.zeros(r, c, dtype=torch.bool, device=energy.device)  # k <- k-1
        down[:-1] = swapped
        up[1:] = swapped
        src = src + down.long() - up.long()
        new_inner = self._permute(inner, src, t_chain, r, c)
        new_energy = torch.gather(energy, 0, src)

        proposed_f = proposed.to(energy.dtype).unsqueeze(1).expand(-1, c)
        info_r = _by_replica(info, r, c)
        new_state = TemperingState(
            x=new_inner.x[:c],
            energy=new_energy[0],
            inner=new_inner,
            replica_energy=new_energy,
            step=step,
            swap_attempts=state.swap_attempts + proposed_f,
            swap_accepts=state.swap_accepts + swapped.to(energy.dtype),
        )
        out = TemperingInfo(
            accept_prob=info_r["accept_prob"][0],
            accepted=info_r["accepted"][0],
            nonfinite=info_r["nonfinite"].any(0),
            diverged=info_r["diverged"].any(0),
            replica_accept_prob=info_r["accept_prob"],
            swap_prob=mh.accept_prob,
            swap_proposed=proposed,
            swapped=swapped,
        )
        return new_state, out

    @staticmethod
    def swap_log_ratio(beta: Tensor, e_lo: Tensor, e_hi: Tensor) -> Tensor:
        """``(β_i − β_{i+1})(E_i − E_{i+1})`` for every neighbour pair; β (R,), E (R − 1, C)."""
        return (beta[:-1] - beta[1:]).unsqueeze(1) * (e_lo - e_hi)

    @staticmethod
    def swap_rate(state: TemperingState) -> Tensor:
        """Observed swap acceptance rate of each neighbour pair, pooled over chains, (R − 1,)."""
        return state.swap_accepts.sum(1) / state.swap_attempts.sum(1).clamp_min(1.0)

    @staticmethod
    def _permute(inner: Any, src: Tensor, t_chain: Tensor, r: int, c: int) -> Any:
        """Move every per-chain field of the inner state along the replica axis (``src`` (R, C))
        and rescale the cached tempered ``energy`` / ``grad`` (∝ 1/T) to their new temperature."""
        t = t_chain.reshape(r, c)
        factor = torch.gather(t, 0, src) / t  # T_from / T_to
        fields = {}
        for name, value in inner._asdict().items():
            if isinstance(value, Tensor) and value.dim() >= 1 and value.shape[0] == r * c:
                v = value.reshape(r, c, *value.shape[1:])
                idx = src.reshape(r, c, *([1] * (v.dim() - 2))).expand_as(v)
                v = torch.gather(v, 0, idx)
                if name in ("energy", "grad"):
                    v = v * factor.reshape(r, c, *([1] * (v.dim() - 2))).to(v.dtype)
                value = v.reshape(r * c, *value.shape[1:])
            fields[name] = value
        return type(inner)(**fields)


def _by_replica(info: Any, r: int, c: int) -> dict[str, Tensor]:
    out = {}
    for name in ("accept_prob", "accepted", "nonfinite", "diverged"):
        out[name] = getattr(info, name).reshape(r, c)
    return out
