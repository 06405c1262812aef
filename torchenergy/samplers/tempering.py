"""Parallel tempering (replica exchange) over a temperature ladder, with any kernel inside.

R replicas of each of C chains run at temperatures ``T_0 < T_1 < ... < T_{R-1}`` (normally
``T_0 = 1``), each targeting ``p_r(x) ∝ exp(−E(x) / T_r)``. All ``C·R`` chains are stacked into
one batch (chain-major: flat chain ``c·R + r`` is replica r of chain c) and advanced by one call
of the inner kernel on the per-chain tempered energy ``E / T_r``. Every ``swap_every`` steps,
neighbouring replicas propose to exchange their states, alternating even pairs (0,1), (2,3), ...
and odd pairs (1,2), (3,4), ... (the deterministic even-odd scheme). A pair (i, j = i + 1)
swaps with probability::

    min(1, exp((β_i − β_j)(E(x_i) − E(x_j)))),   β = 1 / T,

and a pair with a non-finite energy never swaps. The product of the tempered targets is
invariant, so the coldest replica samples ``exp(−E / T_0)``; the hot replicas carry it across
energy barriers.

``State.x`` is the coldest replica, (C, *D), so ``run_chain`` and ``sample`` work as for any
kernel; every replica's state is in the ``inner_*`` fields, shape (C, R, ...) (see
:func:`tempering_state_type`; :meth:`ParallelTempering.inner_state` rebuilds the inner kernel's
state over the C·R chains).

Reference:
    Swendsen & Wang, "Replica Monte Carlo simulation of spin glasses", PRL 57 (1986);
    Geyer, "Markov chain Monte Carlo maximum likelihood" (1991); Earl & Deem, "Parallel
    tempering: theory, applications, and new perspectives", PCCP 7 (2005); Okabe et al. (2001)
    and Syed et al., JRSS-B 84 (2022) for the deterministic even-odd swap scheme.
"""

from __future__ import annotations

import dataclasses
import math
from collections import namedtuple
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from torchenergy._checks import check_energy_shape, check_positive, check_positive_int
from torchenergy.energies import Energy, TemperedEnergy
from torchenergy.samplers.driver import Sampler
from torchenergy.samplers.metropolis import metropolis_accept
from torchenergy.samplers.proposals import check_finite_start
from torchenergy.types import EnergyFn, Generator

__all__ = ["ParallelTempering", "TemperingInfo", "geometric_ladder", "tempering_state_type"]


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


_FIXED_FIELDS = ("x", "energy", "replica_energy", "step", "swap_attempts", "swap_accepts")
_STATE_TYPES: dict[type, type] = {}


def tempering_state_type(inner_type: type) -> type:
    """The State NamedTuple of :class:`ParallelTempering` around an inner kernel's State type.

    Every field is a per-chain tensor with leading dimension C (the sampler protocol):

    * ``x`` (C, *D): the coldest replica; ``energy`` (C,): its untempered ``E(x)``;
    * ``replica_energy`` (C, R): untempered energies of every replica;
    * ``step`` (C,) long: transitions so far (decides even or odd swap rounds);
    * ``swap_attempts``, ``swap_accepts`` (C, R − 1): swap proposals and accepted swaps per
      neighbour pair (i, i + 1) so far;
    * ``inner_<f>`` (C, R, ...): field ``f`` of the inner kernel's state for every replica, e.g.
      ``inner_x`` (C, R, *D) holds all replica positions (the inner kernel runs on the C·R chains
      of ``inner_x.reshape(C * R, *D)``, chain-major).
    """
    st = _STATE_TYPES.get(inner_type)
    if st is None:
        fields = tuple(inner_type._fields)  # type: ignore[attr-defined]
        st = namedtuple("TemperingState", (*_FIXED_FIELDS, *(f"inner_{f}" for f in fields)))
        st.__doc__ = tempering_state_type.__doc__
        st._inner_type = inner_type  # type: ignore[attr-defined]
        st._inner_fields = fields  # type: ignore[attr-defined]
        _STATE_TYPES[inner_type] = st
    return st


class TemperingInfo(NamedTuple):
    """Per-step diagnostics of :class:`ParallelTempering`; every field has leading dimension C.

    ``accept_prob`` and ``accepted`` (C,) are the coldest replica's inner-kernel values;
    ``nonfinite`` and ``diverged`` (C,) are True when any replica of the chain had them.

    Attributes:
        replica_accept_prob: inner-kernel acceptance probability of every replica, (C, R).
        swap_prob: swap acceptance probability ``min(1, exp((β_i − β_j)(E_i − E_j)))`` of every
            neighbour pair (i, i + 1) at the current states, (C, R − 1) (0 for non-finite
            energies), whether or not the pair was proposed this step.
        swap_proposed: pairs proposed this step, (C, R − 1) bool.
        swapped: pairs that exchanged their states, (C, R − 1) bool.
    """

    accept_prob: Tensor
    accepted: Tensor
    nonfinite: Tensor
    diverged: Tensor
    replica_accept_prob: Tensor
    swap_prob: Tensor
    swap_proposed: Tensor
    swapped: Tensor


class _Layout(NamedTuple):
    """Per-C cache: the inner kernel and the index/temperature tensors of the C·R batch."""

    inner: Any
    t_chain: Tensor  # (C·R,) chain-major temperatures
    dbeta: Tensor  # (R − 1,) β_i − β_{i+1}
    pair_parity: Tensor  # (R − 1,) i mod 2
    replica: Tensor  # (R,) 0..R−1
    offset: Tensor  # (C, 1) c·R


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
    :meth:`init_replicas` with (C, R, *D)); ``State.x`` (C, *D) is the coldest replica and every
    State field has leading dimension C (see :func:`tempering_state_type`); the inner kernel runs
    on C·R chains (chain-major: flat chain ``c·R + r`` is replica r of chain c).

    Args:
        energy_fn: the target energy ``(C, *D) -> (C,)`` (at ``T = 1``).
        kernel: the kernel run in every replica: a sampler instance (e.g. ``MALA(energy_fn,
            0.05)``; its ``energy_fn`` is replaced by the per-chain tempered energy with
            ``dataclasses.replace``) or a factory ``kernel(tempered_energy) -> sampler``.
        temperatures: strictly increasing ladder (R,), e.g. :func:`geometric_ladder`.
        swap_every: propose swaps every ``swap_every`` steps (>= 1).
        step_scaling: with ``s != 0`` the replica r uses step size ``ε · T_r^s``: ``s = 1``
            keeps the MALA/Langevin acceptance roughly level across the ladder (their ε scales
            like a variance), ``s = 0.5`` suits HMC (ε scales like a length).
        replica_step_sizes: explicit per-replica step sizes (R,) instead (e.g. from
            :func:`~torchenergy.samplers.adapt`).
        step_size: the T = 1 step size ε, a float or a per-chain (C,) tensor, replacing the
            kernel's (None: the kernel's own). Not together with ``replica_step_sizes``.

    Example:
        >>> from torchenergy.samplers import MALA
        >>> f = lambda x: 0.5 * (x ** 2).sum(-1)
        >>> pt = ParallelTempering(f, MALA(f, 0.1), geometric_ladder(4, 8.0), step_scaling=1.0)
        >>> state, info = pt.step(pt.init(torch.zeros(5, 2)), generator=torch.Generator().manual_seed(0))
        >>> tuple(state.x.shape), tuple(state.inner_x.shape), tuple(info.swap_prob.shape)
        ((5, 2), (5, 4, 2), (5, 3))
    """

    energy_fn: EnergyFn
    kernel: Any
    temperatures: Sequence[float] | Tensor
    swap_every: int = 1
    step_scaling: float = 0.0
    replica_step_sizes: Sequence[float] | Tensor | None = None
    step_size: float | Tensor | None = None
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
        if self.step_size is not None:
            check_positive("step_size", self.step_size)
            if isinstance(self.step_size, Tensor) and self.step_size.dim() > 1:
                raise ValueError(
                    "step_size must be a float or a tensor of shape () or (C,), got shape "
                    f"{tuple(self.step_size.shape)}"
                )
            if self.replica_step_sizes is not None:
                raise ValueError(
                    "give either step_size (the T = 1 step, scaled by T^step_scaling) or "
                    "replica_step_sizes (R,), not both"
                )
        object.__setattr__(self, "_temps", temps)
        object.__setattr__(self, "_cache", {})

    @property
    def n_replicas(self) -> int:
        """R, the number of temperatures."""
        return int(self._temps.numel())

    def _base_step(self) -> float | Tensor | None:
        if self.step_size is not None:
            return self.step_size
        if dataclasses.is_dataclass(self.kernel):
            return getattr(self.kernel, "step_size", None)
        return None

    def current_replica_step_sizes(self) -> Tensor:
        """The step size of each replica, (R,) float64: ``replica_step_sizes`` when given, else
        ``ε · T_r^step_scaling`` with ε the scalar step size (a per-chain ε: its geometric mean)."""
        if self.replica_step_sizes is not None:
            return torch.as_tensor(self.replica_step_sizes, dtype=torch.float64).detach().cpu()
        base = self._base_step()
        if base is None:
            raise ValueError(
                "per-replica step sizes need replica_step_sizes, step_size or a kernel with a "
                f"step_size field, got {type(self.kernel).__name__}"
            )
        if isinstance(base, Tensor):
            base = float(base.detach().double().log().mean().exp())
        return float(base) * self._temps.pow(self.step_scaling)

    # the inner kernel over C*R chains ------------------------------------------------------
    def _chain_temps(self, n_chains: int, like: Tensor) -> Tensor:
        """Per-chain temperatures of the C·R inner chains, chain-major, (C·R,)."""
        return self._temps.to(device=like.device, dtype=like.dtype).repeat(n_chains)

    def _inner_step(self, n_chains: int, like: Tensor) -> float | Tensor | None:
        r = self.n_replicas
        kw = {"device": like.device, "dtype": like.dtype}
        if self.replica_step_sizes is not None:
            rs = torch.as_tensor(self.replica_step_sizes, dtype=torch.float64)
            return rs.to(**kw).repeat(n_chains)
        base = self._base_step()
        if self.step_scaling == 0.0 and not isinstance(self.step_size, Tensor):
            return self.step_size  # a float (or None: the kernel's own)
        if base is None:
            raise ValueError(
                f"step_scaling needs a kernel with a step_size field, got {type(self.kernel).__name__}"
            )
        if isinstance(base, Tensor) and base.dim() == 1:
            if base.shape[0] != n_chains:
                raise ValueError(
                    f"step_size has shape {tuple(base.shape)} but x has C = {n_chains} chains; "
                    "a per-chain step_size must have shape (C,)"
                )
            per_chain = base.to(**kw).repeat_interleave(r)
        elif isinstance(base, Tensor):
            per_chain = base.to(**kw).expand(n_chains * r)
        else:
            per_chain = torch.full((n_chains * r,), float(base), **kw)
        return per_chain * self._chain_temps(n_chains, like).pow(self.step_scaling)

    def inner_sampler(self, n_chains: int, like: Tensor) -> Any:
        """The inner kernel over ``n_chains · R`` chains on the per-chain tempered energy."""
        return self._layout(n_chains, like).inner

    def _layout(self, n_chains: int, like: Tensor) -> _Layout:
        """The inner kernel and the index/temperature tensors for C chains (cached per C)."""
        key = (n_chains, like.device, like.dtype)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        t_chain = self._chain_temps(n_chains, like)
        if isinstance(self.energy_fn, Energy):
            tempered = self.energy_fn.tempered(t_chain)
        else:
            tempered = TemperedEnergy(self.energy_fn, t_chain)
        if dataclasses.is_dataclass(self.kernel) and hasattr(self.kernel, "step"):
            inner = dataclasses.replace(self.kernel, energy_fn=tempered)
        else:
            inner = self.kernel(tempered)
            if not (hasattr(inner, "init") and hasattr(inner, "step")):
                raise TypeError(
                    f"kernel factory must return a sampler with init/step, got {type(inner).__name__}"
                )
        step = self._inner_step(n_chains, like)
        if step is not None:
            inner = dataclasses.replace(inner, step_size=step)
        r = self.n_replicas
        temps = self._temps.to(device=like.device, dtype=like.dtype)
        beta = 1.0 / temps
        layout = _Layout(
            inner=inner,
            t_chain=t_chain,
            dbeta=beta[:-1] - beta[1:],
            pair_parity=torch.arange(max(r - 1, 0), device=like.device) % 2,
            replica=torch.arange(r, device=like.device),
            offset=torch.arange(n_chains, device=like.device).unsqueeze(1) * r,
        )
        self._cache[key] = layout
        return layout

    def _raw_energy(self, inner_state: Any, t_chain: Tensor) -> Tensor:
        """Untempered energies of all C·R chains: from the cache ``E/T`` when the state has it."""
        if hasattr(inner_state, "energy"):
            return inner_state.energy * t_chain
        with torch.no_grad():
            e = self.energy_fn(inner_state.x)
        check_energy_shape(e, inner_state.x)
        return e.detach()

    def inner_state(self, state: Any) -> Any:
        """The inner kernel's state over the C·R chains (chain-major) held by ``state``."""
        c, r = state.x.shape[0], self.n_replicas
        return type(state)._inner_type(
            *(
                getattr(state, f"inner_{f}").reshape(c * r, *getattr(state, f"inner_{f}").shape[2:])
                for f in type(state)._inner_fields
            )
        )

    def _pack(
        self,
        inner: Any,
        energy: Tensor,
        step: Tensor,
        attempts: Tensor,
        accepts: Tensor,
        *,
        check: bool = True,
    ) -> Any:
        c = energy.shape[0]
        st = tempering_state_type(type(inner))
        fields = []
        for name, v in zip(st._inner_fields, inner):
            if check and (
                not isinstance(v, Tensor) or v.dim() < 1 or v.shape[0] != c * self.n_replicas
            ):
                got = tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__
                raise TypeError(
                    f"the kernel's state field {name!r} must be a per-chain tensor with leading "
                    f"dimension C·R = {c * self.n_replicas}, got {got}"
                )
            fields.append(v.reshape(c, self.n_replicas, *v.shape[1:]))
        return st(fields[0][:, 0], energy[:, 0], energy, step, attempts, accepts, *fields)

    # protocol ------------------------------------------------------------------------------
    def init(self, x: Tensor) -> Any:
        """Start every replica at ``x`` (C, *D)."""
        if not isinstance(x, Tensor) or x.dim() < 1:
            raise TypeError(f"x must be a tensor (C, *D), got {type(x).__name__}")
        check_finite_start(x)
        expanded = x.unsqueeze(1).expand(x.shape[0], self.n_replicas, *x.shape[1:])
        return self._init_replicas(expanded, given=x.shape)

    def init_replicas(self, x: Tensor) -> Any:
        """Start from per-replica points ``x`` (C, R, *D) (replica 0 is the coldest)."""
        if not isinstance(x, Tensor) or x.dim() < 2 or x.shape[1] != self.n_replicas:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(
                f"x must have shape (C, R, *D) with R = {self.n_replicas} replicas, got {got}"
            )
        check_finite_start(x)
        return self._init_replicas(x)

    def _init_replicas(self, x: Tensor, given: Any = None) -> Any:
        c, r = x.shape[:2]
        flat = x.reshape(c * r, *x.shape[2:]).detach().clone()
        try:
            inner = self.inner_sampler(c, flat).init(flat)
        except (ValueError, TypeError) as err:
            # the kernel saw the C·R replica chains: say how they map to the caller's x
            shape = tuple(x.shape if given is None else given)
            raise type(err)(
                f"{err} (ParallelTempering ran x of shape {shape} as C·R = {c * r} replica "
                f"chains of shape {tuple(flat.shape)}: chain c, replica r is index c·R + r, "
                f"R = {r})"
            ) from err
        t_chain = self._chain_temps(c, inner.x)
        e = self._raw_energy(inner, t_chain).reshape(c, r)
        zeros = torch.zeros(c, max(r - 1, 0), device=flat.device, dtype=flat.dtype)
        step = torch.zeros(c, dtype=torch.long, device=flat.device)
        return self._pack(inner, e, step, zeros, zeros.clone())

    def step(self, state: Any, *, generator: Generator = None) -> tuple[Any, TemperingInfo]:
        """One inner-kernel transition of every replica, then one round of neighbour swaps."""
        r = self.n_replicas
        c = state.x.shape[0]
        lay = self._layout(c, state.x)
        inner, info = lay.inner.step(self.inner_state(state), generator=generator)
        energy = self._raw_energy(inner, lay.t_chain).reshape(c, r)

        # neighbour swaps (even or odd round), all decided with tensors
        step = state.step + 1  # (C,)
        round_parity = torch.div(step - 1, self.swap_every, rounding_mode="floor") % 2
        due = (step % self.swap_every == 0).unsqueeze(1)
        proposed = (lay.pair_parity == round_parity.unsqueeze(1)) & due  # (C, R - 1)
        e_lo, e_hi = energy[:, :-1], energy[:, 1:]
        log_ratio = self.swap_log_ratio(lay.dbeta, e_lo, e_hi)
        finite = torch.isfinite(e_lo) & torch.isfinite(e_hi)
        mh = metropolis_accept(log_ratio, finite, generator=generator)
        swapped = mh.accepted & proposed

        # permutation: replica k takes the state of replica k+1 (k-1) when pair (k, k+1)
        # ((k-1, k)) swapped; pairs proposed together are disjoint
        sw = swapped.long()
        src = lay.replica + F.pad(sw, (0, 1)) - F.pad(sw, (1, 0))  # (C, R)
        flat = (lay.offset + src).reshape(-1)  # (C·R,) source chain of every inner chain
        new_inner = self._permute(inner, flat, lay.t_chain)
        new_energy = energy.reshape(-1).index_select(0, flat).reshape(c, r)

        acc = info.accept_prob.reshape(c, r)
        new_state = self._pack(
            new_inner,
            new_energy,
            step,
            state.swap_attempts + proposed.to(energy.dtype),
            state.swap_accepts + swapped.to(energy.dtype),
            check=False,
        )
        out = TemperingInfo(
            accept_prob=acc[:, 0],
            accepted=info.accepted.reshape(c, r)[:, 0],
            nonfinite=info.nonfinite.reshape(c, r).any(1),
            diverged=info.diverged.reshape(c, r).any(1),
            replica_accept_prob=acc,
            swap_prob=mh.accept_prob,
            swap_proposed=proposed,
            swapped=swapped,
        )
        return new_state, out

    @staticmethod
    def swap_log_ratio(dbeta: Tensor, e_lo: Tensor, e_hi: Tensor) -> Tensor:
        """``(β_i − β_{i+1})(E_i − E_{i+1})`` for every neighbour pair; ``dbeta`` (R − 1,) holds
        ``β_i − β_{i+1}``, energies (C, R − 1)."""
        return dbeta * (e_lo - e_hi)

    @staticmethod
    def swap_rate(state: Any) -> Tensor:
        """Observed swap acceptance rate of each neighbour pair, pooled over chains, (R − 1,)."""
        return state.swap_accepts.sum(0) / state.swap_attempts.sum(0).clamp_min(1.0)

    @staticmethod
    def _permute(inner: Any, flat: Tensor, t_chain: Tensor) -> Any:
        """Move every per-chain field of the inner state to its new chain (``flat`` (C·R,): the
        source of each chain) and rescale the cached tempered ``energy`` / ``grad`` (∝ 1/T)."""
        n = flat.shape[0]
        factor = t_chain.index_select(0, flat) / t_chain  # T_from / T_to, (C·R,)
        fields = []
        for name, value in zip(inner._fields, inner):
            if isinstance(value, Tensor) and value.dim() >= 1 and value.shape[0] == n:
                value = value.index_select(0, flat)
                if name in ("energy", "grad"):
                    value = value * factor.reshape(-1, *([1] * (value.dim() - 1))).to(value.dtype)
            fields.append(value)
        return type(inner)(*fields)
