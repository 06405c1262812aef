"""Warm-up adaptation as its own layer: dual-averaging step size and a Welford diagonal mass matrix.

Nothing here lives inside a sampler State. Adaptation reads the kernels' ``Info.accept_prob``
and writes new hyperparameters with ``dataclasses.replace(sampler, step_size=...,
inverse_mass=...)``; many chains are adapted at once in one call, either pooled (one step size
for all chains) or per chain (state tensors of shape (C,)).

Dual averaging (Hoffman & Gelman 2014, Algorithm 5), iteration m = 1, 2, ...::

    H̄_m     = (1 − 1/(m + t0)) H̄_{m−1} + (δ − α_m) / (m + t0)
    log ε_m  = μ − sqrt(m) / γ · H̄_m
    log ε̄_m  = m^(−κ) log ε_m + (1 − m^(−κ)) log ε̄_{m−1}

with target acceptance δ, observed acceptance probability α_m, μ = log(10 ε_0). During warm-up
the chain runs at ε_m; afterwards at ε̄ (the averaged iterate).

Mass matrix: Welford's streaming mean/variance of the draws during Stan-style slow windows
(an initial fast buffer, doubling windows, a terminal fast buffer). At the end of each window the
HMC inverse mass is set to the regularised variance ``n/(n+5) var + 1e-3 · 5/(n+5)`` and the
step-size adaptation restarts. With ``dense_mass=True`` the pooled streaming covariance of the
flattened draws (:class:`~torchenergy.samplers.mass.WelfordCovariance`, regularised the same
way towards ``1e-3 I``) becomes a :class:`~torchenergy.samplers.DenseMass`.

References:
    Hoffman & Gelman, "The No-U-Turn Sampler", JMLR 15 (2014), section 3.2.
    Welford, "Note on a method for calculating corrected sums of squares and products",
    Technometrics 4 (1962); Chan, Golub & LeVeque (1979) for merging batches.
    Stan Reference Manual, "HMC algorithm parameters: automatic parameter tuning".
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor

from torchenergy._checks import check_positive, check_positive_int, check_probability
from torchenergy.samplers.mass import DenseMass, WelfordCovariance
from torchenergy.types import Generator

__all__ = [
    "AdaptResult",
    "DualAveraging",
    "DualAveragingState",
    "Welford",
    "WelfordState",
    "adapt",
    "warmup_windows",
]


class DualAveragingState(NamedTuple):
    """Dual-averaging state; tensors of shape () (pooled) or (C,) (per chain).

    Attributes:
        count: iterations so far, m (shape (), float).
        log_step: log ε_m, the step size to use next.
        log_step_avg: log ε̄_m, the averaged iterate (the final step size).
        h_bar: H̄_m, the running mean of (δ − α).
        mu: μ = log(10 ε_0), the shrinkage point.
    """

    count: Tensor
    log_step: Tensor
    log_step_avg: Tensor
    h_bar: Tensor
    mu: Tensor


@dataclass(frozen=True)
class DualAveraging:
    """Step-size adaptation to a target acceptance probability (Hoffman & Gelman 2014).

    Args:
        target_accept: δ in (0, 1), e.g. 0.574 for MALA, 0.65 to 0.8 for HMC.
        gamma, t0, kappa: the algorithm's constants (defaults as in Stan: 0.05, 10, 0.75).

    Example:
        >>> da = DualAveraging(0.6)
        >>> s = da.init(torch.full((3,), 0.1))
        >>> s = da.update(s, torch.tensor([0.9, 0.5, 0.1]))
        >>> da.step_size(s).shape
        torch.Size([3])
    """

    target_accept: float = 0.65
    gamma: float = 0.05
    t0: float = 10.0
    kappa: float = 0.75

    def __post_init__(self) -> None:
        check_probability("target_accept", self.target_accept, open_left=True, open_right=True)
        check_positive("gamma", self.gamma)
        check_positive("t0", self.t0, allow_zero=True)
        check_positive("kappa", self.kappa)

    def init(self, step_size: float | Tensor) -> DualAveragingState:
        """Start from ``step_size`` (float or 0-dim: pooled; (C,) tensor: per chain)."""
        check_positive("step_size", step_size)
        eps = torch.as_tensor(step_size, dtype=torch.float64)
        if isinstance(step_size, Tensor):
            eps = step_size.detach().to(torch.float64)
        log_eps = eps.log()
        zero = torch.zeros_like(log_eps)
        return DualAveragingState(
            count=torch.zeros((), dtype=torch.float64, device=eps.device),
            log_step=log_eps,
            log_step_avg=zero,
            h_bar=zero,
            mu=math.log(10.0) + log_eps,
        )

    def update(self, state: DualAveragingState, accept_prob: Tensor) -> DualAveragingState:
        """One dual-averaging iteration from the acceptance probabilities ``accept_prob`` (C,).

        Pooled states average ``accept_prob`` over the chains; NaN counts as 0 (rejected).
        """
        a = torch.nan_to_num(accept_prob.detach().to(state.h_bar), nan=0.0).clamp(0.0, 1.0)
        if state.h_bar.dim() == 0:
            a = a.mean()
        elif a.shape != state.h_bar.shape:
            raise ValueError(
                f"accept_prob has shape {tuple(a.shape)}, the per-chain state has "
                f"{tuple(state.h_bar.shape)}"
            )
        m = state.count + 1.0
        w = 1.0 / (m + self.t0)
        h_bar = (1.0 - w) * state.h_bar + w * (self.target_accept - a)
        log_step = state.mu - m.sqrt() / self.gamma * h_bar
        eta = m.pow(-self.kappa)
        log_step_avg = eta * log_step + (1.0 - eta) * state.log_step_avg
        return DualAveragingState(m, log_step, log_step_avg, h_bar, state.mu)

    @staticmethod
    def step_size(state: DualAveragingState) -> Tensor:
        """ε_m, the step size for the next warm-up iteration, shape () or (C,)."""
        return state.log_step.exp()

    @staticmethod
    def final_step_size(state: DualAveragingState) -> Tensor:
        """ε̄, the averaged step size to sample with after warm-up, shape () or (C,)."""
        return state.log_step_avg.exp()


class WelfordState(NamedTuple):
    """Streaming mean and sum of squared deviations.

    Attributes:
        count: number of draws so far: shape () when pooled, (C,) per chain.
        mean: running mean, ``D`` (pooled) or ``(C, *D)`` (per chain).
        m2: sum of squared deviations from the mean, same shape as ``mean``.
    """

    count: Tensor
    mean: Tensor
    m2: Tensor


@dataclass(frozen=True)
class Welford:
    """Welford's streaming variance of draws ``x`` (C, *D), pooled over chains or per chain.

    Pooled: every update merges the C draws as one batch (Chan et al.); the variance has shape
    ``D``. Per chain: each chain keeps its own running variance, shape (C, *D).

    Example:
        >>> w = Welford()
        >>> s = w.init(torch.zeros(4, 2))
        >>> for _ in range(3):
        ...     s = w.update(s, torch.randn(4, 2))
        >>> w.variance(s, regularize=False).shape
        torch.Size([2])
    """

    per_chain: bool = False

    def init(self, like: Tensor) -> WelfordState:
        """Empty state for draws shaped like ``like`` (C, *D)."""
        shape = like.shape if self.per_chain else like.shape[1:]
        kw = {"device": like.device, "dtype": like.dtype}
        count_shape = like.shape[:1] if self.per_chain else ()
        return WelfordState(
            torch.zeros(count_shape, **kw), torch.zeros(shape, **kw), torch.zeros(shape, **kw)
        )

    def update(self, state: WelfordState, x: Tensor) -> WelfordState:
        """Add the draws ``x`` (C, *D): one per chain."""
        x = x.detach().to(state.mean)
        if self.per_chain:
            n = state.count + 1.0
            delta = x - state.mean
            mean = state.mean + delta / n.reshape(-1, *([1] * (x.dim() - 1)))
            return WelfordState(n, mean, state.m2 + delta * (x - mean))
        n_b = x.shape[0]
        mean_b = x.mean(0)
        m2_b = (x - mean_b).pow(2).sum(0)
        n = state.count + n_b
        delta = mean_b - state.mean
        mean = state.mean + delta * (n_b / n)
        m2 = state.m2 + m2_b + delta.pow(2) * (state.count * n_b / n)
        return WelfordState(n, mean, m2)

    def variance(self, state: WelfordState, *, regularize: bool = True) -> Tensor:
        """Sample variance ``m2 / (n − 1)``; regularised like Stan when ``regularize``.

        Regularised: ``n/(n+5) · var + 1e-3 · 5/(n+5)`` (shrinks towards a small constant so a
        short window cannot produce a zero or huge inverse mass).
        """
        n = state.count
        if self.per_chain:
            n = n.reshape(-1, *([1] * (state.mean.dim() - 1)))
        var = state.m2 / (n - 1.0).clamp_min(1.0)
        if regularize:
            var = (n / (n + 5.0)) * var + 1e-3 * (5.0 / (n + 5.0))
        return var


def warmup_windows(
    n_warmup: int, *, init_buffer: int = 75, term_buffer: int = 50, base_window: int = 25
) -> list[tuple[int, int]]:
    """Stan's slow-adaptation windows for the mass matrix, as ``[(start, end), ...)`` iterations.

    An initial fast buffer (step size only), windows of doubling size starting at
    ``base_window`` (the last one stretched to the terminal buffer), then a terminal fast buffer.
    When the buffers do not fit, they shrink to 15% / 10% of the warm-up as in Stan; below 20
    iterations there is no mass adaptation.

    Example:
        >>> warmup_windows(1000)
        [(75, 100), (100, 150), (150, 250), (250, 450), (450, 950)]
    """
    check_positive_int("n_warmup", n_warmup, allow_zero=True)
    if n_warmup < 20:
        return []
    if init_buffer + base_window + term_buffer > n_warmup:
        init_buffer = int(0.15 * n_warmup)
        term_buffer = int(0.1 * n_warmup)
        base_window = n_warmup - init_buffer - term_buffer
    end_slow = n_warmup - term_buffer
    windows = []
    start, size = init_buffer, base_window
    while start < end_slow:
        end = start + size
        if end + 2 * size > end_slow:  # the next window would not fit: stretch this one
            end = end_slow
        windows.append((start, end))
        start, size = end, 2 * size
    return windows


class AdaptResult(NamedTuple):
    """What :func:`adapt` returns: the tuned sampler and the kernel state after warm-up."""

    sampler: Any
    state: Any


def _default_target(sampler: Any) -> float:
    inner = getattr(sampler, "kernel", sampler)  # parallel tempering: the kernel inside
    if hasattr(inner, "max_depth"):  # NUTS: the acceptance statistic of Stan / BlackJAX
        return 0.8
    return 0.65 if hasattr(inner, "n_leapfrog") else 0.574


def adapt(
    sampler: Any,
    x0: Any,
    n_warmup: int,
    *,
    target_accept: float | None = None,
    adapt_step_size: bool = True,
    adapt_mass: bool | None = None,
    per_chain: bool = False,
    dense_mass: bool = False,
    dual_averaging: DualAveraging | None = None,
    init_buffer: int = 75,
    term_buffer: int = 50,
    base_window: int = 25,
    generator: Generator = None,
) -> AdaptResult:
    """Warm up ``sampler`` from ``x0`` (C, *D) for ``n_warmup`` steps, tuning ε (and the mass).

    Step size: dual averaging to ``target_accept`` on the kernels' ``Info.accept_prob``, pooled
    over chains (one float) or per chain (a (C,) tensor). Mass (samplers with an
    ``inverse_mass`` field, e.g. HMC): the pooled Welford variance of the draws in Stan's slow
    windows (:func:`warmup_windows`) becomes the diagonal inverse mass (shape ``D``); after
    each window the dual averaging restarts from the current step size.

    For :class:`~torchenergy.samplers.ParallelTempering` (a sampler with a
    ``replica_step_sizes`` field) one step size per replica is tuned, each to the target
    acceptance of its own replica (``Info.replica_accept_prob`` pooled over chains); the result
    has ``replica_step_sizes`` of shape (R,).

    Shapes: ``x0`` (C, *D) (or a State); returned step size float or (C,); inverse mass ``D``.

    Only Metropolis-adjusted kernels have an acceptance rate to aim at; adapting an unadjusted
    one (every ``accept_prob`` 1) warns.

    Args:
        sampler: a frozen-dataclass kernel with a ``step_size`` field (MALA, HMC, ...).
        x0: initial points (C, *D) or a kernel State.
        n_warmup: warm-up transitions (the returned state is after them).
        target_accept: δ; default 0.8 for NUTS, 0.65 for kernels with ``n_leapfrog`` (HMC),
            else 0.574 (MALA, random-walk Metropolis: aim lower, e.g. 0.3, for the latter).
        adapt_step_size: tune ε (otherwise only the mass).
        adapt_mass: tune the inverse mass; default True for HMC and NUTS (kernels with an
            ``inverse_mass`` and ``n_leapfrog`` / ``max_depth``); pass True for the
            preconditioner of MALA or random-walk Metropolis.
        dense_mass: estimate a dense ``M⁻¹`` (:class:`~torchenergy.samplers.DenseMass`, the
            pooled covariance) instead of the diagonal one.
        per_chain: one step size per chain (C,) instead of one pooled float.
        dual_averaging: constants for :class:`DualAveraging` (``target_accept`` overrides).
        init_buffer, term_buffer, base_window: Stan's window sizes.
        generator: random stream; the same seed gives the same tuned sampler.

    Returns:
        :class:`AdaptResult` ``(sampler, state)``: the tuned sampler (``dataclasses.replace``)
        and the state after warm-up, ready for ``run_chain(tuned, state, n)``.

    Example:
        >>> from torchenergy.samplers import MALA
        >>> f = lambda x: 0.5 * (x ** 2).sum(-1)
        >>> g = torch.Generator().manual_seed(0)
        >>> tuned, state = adapt(MALA(f, 0.01), torch.zeros(64, 2), 200, generator=g)
        >>> 0.3 < tuned.step_size < 3.0
        True
    """
    check_positive_int("n_warmup", n_warmup, allow_zero=True)
    if not dataclasses.is_dataclass(sampler) or not hasattr(sampler, "step"):
        raise TypeError(
            f"sampler must be a frozen-dataclass kernel with init/step, got {type(sampler).__name__}"
        )
    names = {f.name for f in dataclasses.fields(sampler)}
    if "replica_step_sizes" in names:
        if per_chain or adapt_mass:
            raise ValueError(
                "parallel tempering adapts one step size per replica (pooled over chains) and "
                f"no mass matrix; got per_chain={per_chain}, adapt_mass={adapt_mass}"
            )
        return _adapt_replicas(
            sampler, x0, n_warmup, target_accept, dual_averaging, adapt_step_size, generator
        )
    if adapt_step_size and "step_size" not in names:
        raise ValueError(
            f"{type(sampler).__name__} has no step_size field to adapt (fields: {sorted(names)})"
        )
    if adapt_mass is None:
        # Hamiltonian kernels (HMC, NUTS) by default; MALA / random-walk Metropolis opt in
        hamiltonian = "n_leapfrog" in names or "max_depth" in names
        adapt_mass = "inverse_mass" in names and hamiltonian
    elif adapt_mass and "inverse_mass" not in names:
        raise ValueError(
            f"adapt_mass=True needs a sampler with an inverse_mass field; "
            f"{type(sampler).__name__} has {sorted(names)}"
        )
    if dense_mass and not adapt_mass:
        raise ValueError(
            f"dense_mass=True needs mass adaptation (adapt_mass={adapt_mass}) on a sampler with "
            f"an inverse_mass field; {type(sampler).__name__} has {sorted(names)}"
        )
    delta = _default_target(sampler) if target_accept is None else target_accept
    da_cfg = dual_averaging if dual_averaging is not None else DualAveraging()
    da_cfg = dataclasses.replace(da_cfg, target_accept=delta)

    state = sampler.init(x0) if isinstance(x0, Tensor) else x0
    if not hasattr(state, "x"):
        raise TypeError(f"x0 must be a tensor (C, *D) or a sampler State, got {type(x0).__name__}")
    x = state.x
    n_chains = x.shape[0]

    def as_step(eps: Tensor) -> Tensor:
        eps = eps.to(device=x.device, dtype=x.dtype)
        return eps if per_chain else eps.expand(n_chains)

    da = None
    if adapt_step_size:
        eps0 = sampler.step_size
        if isinstance(eps0, Tensor) and eps0.dim() == 1 and not per_chain:
            eps0 = eps0.detach().double().log().mean().exp()
        if per_chain:
            eps0 = torch.as_tensor(eps0, dtype=torch.float64).expand(n_chains).clone()
        da = da_cfg.init(eps0)
    windows = (
        warmup_windows(
            n_warmup, init_buffer=init_buffer, term_buffer=term_buffer, base_window=base_window
        )
        if adapt_mass
        else []
    )
    ends = {end for _, end in windows}
    slow = (windows[0][0], windows[-1][1]) if windows else (0, 0)
    welford: Any = WelfordCovariance() if dense_mass else Welford()
    wstate = welford.init(x)

    current = sampler
    always_accepted = torch.ones((), dtype=torch.bool, device=x.device)
    for t in range(n_warmup):
        if da is not None:
            current = dataclasses.replace(current, step_size=as_step(DualAveraging.step_size(da)))
        state, info = current.step(state, generator=generator)
        if da is not None:
            da = da_cfg.update(da, info.accept_prob)
            always_accepted = always_accepted & (info.accept_prob == 1).all()
        if slow[0] <= t < slow[1]:
            wstate = welford.update(wstate, state.x)
        if (t + 1) in ends:
            if dense_mass:
                inv_mass: Any = DenseMass(welford.covariance(wstate))
            else:
                inv_mass = welford.variance(wstate)
            current = dataclasses.replace(current, inverse_mass=inv_mass)
            state = current.init(state.x)
            wstate = welford.init(state.x)
            if da is not None:  # restart the step-size search around the current step size
                da = da_cfg.init(DualAveraging.step_size(da))

    if da is not None and n_warmup > 0:
        if bool(always_accepted):
            warnings.warn(
                f"{type(sampler).__name__} accepted every proposal during the {n_warmup} warm-up "
                "steps (accept_prob == 1): an unadjusted kernel (Langevin, gradient descent) "
                "gives dual averaging nothing to aim at, and the step size only grows. Adapt a "
                "Metropolis-adjusted kernel (MALA, HMC) instead.",
                RuntimeWarning,
                stacklevel=2,
            )
        eps = DualAveraging.final_step_size(da)
        final: float | Tensor = eps.to(device=x.device, dtype=x.dtype) if per_chain else float(eps)
        current = dataclasses.replace(current, step_size=final)
    return AdaptResult(current, state)


def _adapt_replicas(
    sampler: Any,
    x0: Any,
    n_warmup: int,
    target_accept: float | None,
    dual_averaging: DualAveraging | None,
    adapt_step_size: bool,
    generator: Generator,
) -> AdaptResult:
    """Per-replica dual averaging for parallel tempering: state (R,), one target for all."""
    delta = _default_target(sampler) if target_accept is None else target_accept
    da_cfg = dataclasses.replace(dual_averaging or DualAveraging(), target_accept=delta)
    state = sampler.init(x0) if isinstance(x0, Tensor) else x0
    if not adapt_step_size or n_warmup == 0:
        return AdaptResult(sampler, state)
    da = da_cfg.init(sampler.current_replica_step_sizes())
    current = sampler
    for _ in range(n_warmup):
        eps = DualAveraging.step_size(da)
        current = dataclasses.replace(current, replica_step_sizes=eps, step_size=None)
        state, info = current.step(state, generator=generator)
        da = da_cfg.update(da, info.replica_accept_prob.mean(0))  # (C, R) -> (R,)
    final = DualAveraging.final_step_size(da)
    return AdaptResult(dataclasses.replace(current, replica_step_sizes=final), state)
