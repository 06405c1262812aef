"""Annealed importance sampling (AIS) and reverse AIS for ``log Z``.

A *path* is a family of unnormalised densities ``p_β(x) ∝ exp(-E_β(x))``, ``β`` from 0 to 1, whose
base ``p_0`` can be sampled exactly and has a known ``log Z_0``, and whose end ``p_1`` is the
target: an :class:`AnnealingPath`, with ``energy(x, beta) -> (C,)``, ``base_sample(n,
generator=)``, ``base_log_partition() -> scalar`` and ``kernel(beta) -> sampler`` (any kernel of
the sampler protocol leaving ``p_β`` invariant; pass ``kernel=`` to :func:`ais` to use another
one). A :class:`FusedAnnealingPath` also offers ``anneal(betas, x, reverse=, generator=)``, a
fused sweep with the same draws and result as the generic loop with its own kernel (the RBM path
does), used when no other kernel is asked for.

Forward AIS (Neal 2001): ``x_1 ~ p_0``; for ``k = 1..K``
``log w += E_{β_{k-1}}(x) - E_{β_k}(x)``, then ``x ← T_{β_k}(x)``. ``E[w] = Z_1/Z_0``, so
``log Ẑ = log Z_0 + logmeanexp(log w)``: unbiased in ``Z``, a *stochastic lower bound* in log space.

Reverse AIS (Burda, Grosse & Salakhutdinov 2015): start from samples of the *target* and anneal
``β`` from 1 down to 0; ``E[w_rev] = Z_0/Z_1``, giving ``log Ẑ = log Z_0 - logmeanexp(log w_rev)``,
a stochastic *upper* bound. Together they bracket ``log Z``.

The standard error is the delta-method one, ``se(log Ẑ) = sd(w) / (mean(w) sqrt(n))``, and the
effective sample size ``(Σw)² / Σw²``.

References:
    Neal (2001), Annealed importance sampling.
    Salakhutdinov & Murray (2008), On the quantitative analysis of deep belief networks.
    Burda, Grosse & Salakhutdinov (2015), Accurate and conservative estimates of MRF
    log-likelihood using reverse annealing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, runtime_checkable

import torch
from torch import Tensor

from torchenergy._checks import check_positive_int, check_tensor
from torchenergy.types import EnergyFn, Generator

__all__ = [
    "AISResult",
    "AnnealingPath",
    "FusedAnnealingPath",
    "GeometricPath",
    "ais",
    "ais_schedule",
    "log_weight_stats",
    "reverse_ais",
]


class AnnealingPath(Protocol):
    """What :func:`ais` needs from a path of densities ``p_β``, β in [0, 1]."""

    def energy(self, x: Tensor, beta: float) -> Tensor: ...

    def base_sample(self, n: int, *, generator: Generator = None) -> Tensor: ...

    def base_log_partition(self) -> Tensor: ...

    def kernel(self, beta: float) -> Any: ...


@runtime_checkable
class FusedAnnealingPath(AnnealingPath, Protocol):
    """An :class:`AnnealingPath` with a fused sweep, the fast path of :func:`ais` / :func:`reverse_ais`.

    Used when no ``kernel=`` is given, ``n_steps == 1`` and ``k == 1`` (the path's kernel makes
    one round per transition). Invariant: ``anneal(betas, x, reverse=, generator=)`` returns
    ``(log_w (C,), x)`` equal to the generic loop with ``kernel(β)``: the same random draws in
    the same order, so the same final states ``x`` bit for bit, and ``log_w`` equal up to the
    rounding of the energy differences (summed in another order); tested in
    ``tests/test_estimate.py``.
    """

    k: int

    def anneal(
        self, betas: list[float], x: Tensor, *, reverse: bool = False, generator: Generator = None
    ) -> tuple[Tensor, Tensor]: ...


class AISResult(NamedTuple):
    """What :func:`ais` and :func:`reverse_ais` return.

    Attributes:
        log_z: the estimate of ``log Z_1``, scalar.
        stderr: its delta-method standard error, scalar.
        ess: effective sample size of the importance weights, scalar.
        log_weights: the per-chain log weights (C,).
        x: the final states (C, *D) (target samples for forward AIS, base ones for reverse).
    """

    log_z: Tensor
    stderr: Tensor
    ess: Tensor
    log_weights: Tensor
    x: Tensor


def log_weight_stats(log_w: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(logmeanexp(log_w), se, ess)`` with the delta-method standard error of the log mean.

    Shapes: ``log_w`` (C,) -> three scalars.

    Example:
        >>> m, se, ess = log_weight_stats(torch.zeros(10))
        >>> float(m), float(se), float(ess)
        (0.0, 0.0, 10.0)
    """
    n = log_w.shape[0]
    lme = torch.logsumexp(log_w, 0) - math.log(n)
    w = torch.exp(log_w - log_w.max())
    mean = w.mean()
    sd = w.std(unbiased=True) if n > 1 else torch.zeros_like(mean)
    se = sd / (mean * math.sqrt(n))
    ess = w.sum() ** 2 / (w * w).sum()
    return lme, se, ess


def ais_schedule(
    n_steps: int, *, kind: str = "sigmoid", dtype: torch.dtype = torch.float64
) -> Tensor:
    """An annealing schedule ``0 = β_0 < ... < β_K = 1`` of ``n_steps + 1`` values.

    ``kind="linear"``; ``"sigmoid"`` (dense at both ends, Grosse et al. 2013); ``"salakhutdinov"``
    (the piecewise-linear proportions of Salakhutdinov & Murray 2008: 500 steps on [0, 0.5],
    4000 on [0.5, 0.9], 10000 on [0.9, 1], scaled to ``n_steps``).

    Example:
        >>> b = ais_schedule(10, kind="linear")
        >>> float(b[0]), float(b[-1]), b.shape[0]
        (0.0, 1.0, 11)
    """
    check_positive_int("n_steps", n_steps)
    if kind == "linear":
        return torch.linspace(0, 1, n_steps + 1, dtype=dtype)
    if kind == "sigmoid":
        s = torch.sigmoid(torch.linspace(-4, 4, n_steps + 1, dtype=dtype))
        return (s - s[0]) / (s[-1] - s[0])
    if kind == "salakhutdinov":
        fr = torch.tensor([500.0, 4000.0, 10000.0]) / 14500.0
        n1 = max(1, round(n_steps * fr[0].item()))
        n2 = max(1, round(n_steps * fr[1].item()))
        n3 = max(1, n_steps - n1 - n2)
        parts = [
            torch.linspace(0, 0.5, n1 + 1, dtype=dtype)[:-1],
            torch.linspace(0.5, 0.9, n2 + 1, dtype=dtype)[:-1],
            torch.linspace(0.9, 1.0, n3 + 1, dtype=dtype),
        ]
        return torch.cat(parts)
    raise ValueError(f"kind must be 'linear', 'sigmoid' or 'salakhutdinov', got {kind!r}")


def _betas(betas: Sequence[float] | Tensor | int) -> list[float]:
    if isinstance(betas, int):
        betas = ais_schedule(betas)
    b = torch.as_tensor(betas, dtype=torch.float64).flatten()
    if b.numel() < 2 or float(b[0]) != 0.0 or float(b[-1]) != 1.0 or bool((b.diff() < 0).any()):
        raise ValueError(
            f"betas must increase from 0 to 1 with at least 2 values, got {b.numel()} values "
            f"from {float(b[0]) if b.numel() else None} to {float(b[-1]) if b.numel() else None}"
        )
    return b.tolist()


class _AtBeta:
    """The energy ``x -> E_β(x)`` of a path at a fixed β (what a generic kernel is built on)."""

    def __init__(self, path: Any, beta: float) -> None:
        self.path, self.beta = path, beta

    def __call__(self, x: Tensor) -> Tensor:
        return self.path.energy(x, self.beta)


def _kernel_at(path: Any, beta: float, kernel: Callable[[EnergyFn], Any] | None) -> Any:
    if kernel is not None:
        return kernel(_AtBeta(path, beta))
    return path.kernel(beta)


def _fast(path: Any, kernel: Any, n_steps: int) -> bool:
    """Use the path's own fused sweep (``path.anneal``) when it runs the same kernel."""
    return (
        kernel is None and n_steps == 1 and getattr(path, "k", 1) == 1 and hasattr(path, "anneal")
    )


def _transition(k: Any, x: Tensor, n_steps: int, generator: Generator) -> Tensor:
    state = k.init(x)
    for _ in range(n_steps):
        state, _ = k.step(state, generator=generator)
    return state.x


def _anneal(
    path: Any,
    bs: list[float],
    x: Tensor,
    *,
    reverse: bool,
    kernel: Callable[[EnergyFn], Any] | None,
    n_steps: int,
    generator: Generator,
) -> tuple[Tensor, Tensor]:
    """One sweep along ``bs`` (``reverse``: from 1 down to 0): ``(log_w (C,), final x)``.

    ``log w += E_{β_prev}(x) - E_{β_next}(x)`` at every step, with ``x ← T_{β_next}(x)`` in
    between (the kernel of the distribution just reached).
    """
    if _fast(path, kernel, n_steps):
        return path.anneal(bs, x, reverse=reverse, generator=generator)
    seq = bs[::-1] if reverse else bs
    log_w = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
    e_prev = path.energy(x, seq[0])
    for k in range(1, len(seq)):
        e_k = path.energy(x, seq[k])
        log_w += (e_prev - e_k).to(torch.float64)
        if k < len(seq) - 1:
            x = _transition(_kernel_at(path, seq[k], kernel), x, n_steps, generator)
            e_prev = path.energy(x, seq[k])
    return log_w, x


def ais(
    path: Any,
    betas: Sequence[float] | Tensor | int,
    n_chains: int,
    *,
    kernel: Callable[[EnergyFn], Any] | None = None,
    n_steps: int = 1,
    generator: Generator = None,
) -> AISResult:
    """Forward annealed importance sampling from ``p_0`` to ``p_1`` along ``path``.

    Args:
        path: an :class:`AnnealingPath`.
        betas: the schedule (increasing from 0 to 1), or a number of steps for
            ``ais_schedule(n, kind="sigmoid")``.
        n_chains: C, the number of independent annealing runs.
        kernel: ``energy_fn -> sampler``; when given it replaces ``path.kernel`` (e.g.
            ``lambda e: MALA(e, 0.05)`` for continuous paths).
        n_steps: kernel transitions per intermediate distribution.
        generator: random stream.

    Returns:
        :class:`AISResult` with ``log Z_1`` estimate, standard error and ESS.

    Example:
        >>> from torchenergy.estimate import RBMAnnealingPath
        >>> from torchenergy.models import BernoulliRBM
        >>> rbm = BernoulliRBM(5, 3, generator=torch.Generator().manual_seed(0))
        >>> r = ais(RBMAnnealingPath(rbm), 100, 50, generator=torch.Generator().manual_seed(1))
        >>> r.log_weights.shape
        torch.Size([50])
    """
    check_positive_int("n_chains", n_chains)
    check_positive_int("n_steps", n_steps)
    bs = _betas(betas)
    with torch.no_grad():
        x = path.base_sample(n_chains, generator=generator)
        log_w, x = _anneal(
            path, bs, x, reverse=False, kernel=kernel, n_steps=n_steps, generator=generator
        )
        lme, se, ess = log_weight_stats(log_w)
        log_z = path.base_log_partition().to(torch.float64) + lme
    return AISResult(log_z, se, ess, log_w, x)


def reverse_ais(
    path: Any,
    betas: Sequence[float] | Tensor | int,
    x_target: Tensor,
    *,
    kernel: Callable[[EnergyFn], Any] | None = None,
    n_steps: int = 1,
    generator: Generator = None,
) -> AISResult:
    """Reverse AIS from target samples ``x_target`` (C, *D) down to the base: an upper estimate.

    ``log w += E_{β_k}(x) - E_{β_{k-1}}(x)`` for ``k = K..1``, with ``x ← T_{β_{k-1}}(x)`` in
    between; ``log Ẑ_1 = log Z_0 - logmeanexp(log w)``. Exact when ``x_target`` are exact samples
    and the kernels are reversible (block Gibbs, Metropolis-Hastings); with approximate target
    samples (long MCMC chains) the bound is approximate too.

    Args:
        path, betas, kernel, n_steps, generator: as :func:`ais`.
        x_target: samples of ``p_1``.

    Returns:
        :class:`AISResult` (``x`` are the final, base-distributed states).
    """
    check_tensor("x_target", x_target, min_dim=1, floating=True)
    check_positive_int("n_steps", n_steps)
    bs = _betas(betas)
    with torch.no_grad():
        log_w, x = _anneal(
            path,
            bs,
            x_target.detach(),
            reverse=True,
            kernel=kernel,
            n_steps=n_steps,
            generator=generator,
        )
        lme, se, ess = log_weight_stats(log_w)
        log_z = path.base_log_partition().to(torch.float64) - lme
    return AISResult(log_z, se, ess, log_w, x)


@dataclass(frozen=True)
class GeometricPath:
    """Geometric path ``E_β = (1 - β) E_0 + β E_1`` between a base and a target energy.

    Args:
        base_energy: ``E_0`` (C, *D) -> (C,), with exact samples and known ``log Z_0``.
        target_energy: ``E_1``.
        base_sampler: ``(n, generator) -> (n, *D)`` exact samples of ``p_0``.
        base_log_z: ``log Z_0`` (float or scalar tensor).
        make_kernel: ``energy_fn -> sampler`` used at each β (e.g. ``lambda e: MALA(e, 0.1)``).

    Example:
        >>> import math
        >>> g = lambda x: 0.5 * (x ** 2).sum(-1)
        >>> path = GeometricPath(g, lambda x: 0.5 * ((x - 1) ** 2).sum(-1),
        ...     lambda n, generator: torch.randn(n, 2, generator=generator, dtype=torch.float64),
        ...     math.log(2 * math.pi), None)
        >>> float(path.energy(torch.zeros(1, 2, dtype=torch.float64), 0.5)[0])
        0.5
    """

    base_energy: EnergyFn
    target_energy: EnergyFn
    base_sampler: Callable[..., Tensor]
    base_log_z: float | Tensor
    make_kernel: Callable[[EnergyFn], Any] | None = None

    def energy(self, x: Tensor, beta: float) -> Tensor:
        if beta == 0.0:
            return self.base_energy(x)
        if beta == 1.0:
            return self.target_energy(x)
        return (1.0 - beta) * self.base_energy(x) + beta * self.target_energy(x)

    def base_sample(self, n: int, *, generator: Generator = None) -> Tensor:
        return self.base_sampler(n, generator)

    def base_log_partition(self) -> Tensor:
        return torch.as_tensor(self.base_log_z, dtype=torch.float64)

    def kernel(self, beta: float) -> Any:
        if self.make_kernel is None:
            raise ValueError("GeometricPath has no make_kernel; pass kernel= to ais()")
        return self.make_kernel(_AtBeta(self, beta))
