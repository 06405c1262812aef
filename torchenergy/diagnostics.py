"""MCMC convergence diagnostics on multi-chain traces: ESS, split R-hat, MCSE, autocorrelation.

Every function takes a trace of shape ``(T, C, *D)`` (T draws of C chains, e.g. ``run_chain(...,
trace=True).trace``) and returns one value per event coordinate, shape ``D`` (a 0-dim tensor for
scalar traces of shape (T, C)). Computation is in float64 on the trace's device.

* :func:`autocorrelation` / :func:`autocovariance`: per-chain, by FFT.
* :func:`effective_sample_size`: the multi-chain estimator of Stan with Geyer's initial monotone
  sequence; :func:`ess_bulk` (rank-normalised, split) and :func:`ess_tail` (5% / 95% quantile
  indicators) as in Vehtari et al. (2021).
* :func:`split_rhat` (classic, Gelman et al. BDA3) and :func:`rhat` (rank-normalised split R-hat,
  maximum of bulk and folded, Vehtari et al. 2021).
* :func:`mcse_mean`: Monte Carlo standard error of the mean, ``sd / sqrt(ESS)``.

Estimator (for m chains of n draws, after splitting each chain in halves when ``split=True``)::

    W = mean_j s_j²,  var⁺ = (n−1)/n · W + var_j(mean_j)
    ρ_t = 1 − (W − mean_j acov_j(t)) / var⁺          (ρ_0 = 1)
    Γ_k = ρ_{2k} + ρ_{2k+1}, kept while Γ_k > 0, then made non-increasing (running minimum)
    τ = −1 + 2 Σ_k Γ_k,   ESS = m n / max(τ, 1 / log10(m n))

References:
    A. Vehtari, A. Gelman, D. Simpson, B. Carpenter, P.-C. Bürkner, *Rank-normalization, folding,
    and localization: an improved R-hat for assessing convergence of MCMC*, Bayesian Analysis 16
    (2021). C. J. Geyer, *Practical Markov chain Monte Carlo*, Statistical Science 7 (1992).

Example:
    >>> g = torch.Generator().manual_seed(0)
    >>> trace = torch.randn(500, 4, 2, generator=g)   # iid draws: ESS ≈ 2000, R-hat ≈ 1
    >>> ess = effective_sample_size(trace)
    >>> bool(((ess > 1500) & (ess < 2600)).all()), bool((rhat(trace) < 1.01).all())
    (True, True)
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from torchenergy._checks import check_tensor

__all__ = [
    "ChainSummary",
    "autocorrelation",
    "autocovariance",
    "effective_sample_size",
    "ess_bulk",
    "ess_tail",
    "mcse_mean",
    "rank_normalize",
    "rhat",
    "split_rhat",
    "summary",
]


def _as_trace(trace: Tensor, min_draws: int = 4) -> Tensor:
    check_tensor("trace", trace, min_dim=2)
    if trace.shape[0] < min_draws:
        raise ValueError(
            f"trace must be shaped (T, C, *D) with T >= {min_draws} draws, "
            f"got shape {tuple(trace.shape)}"
        )
    if trace.shape[1] < 1:
        raise ValueError(f"trace must hold at least one chain, got shape {tuple(trace.shape)}")
    return trace.detach().to(torch.float64)


def _split(x: Tensor) -> Tensor:
    """(T, C, ...) -> (T//2, 2C, ...): each chain's first and second halves (odd T: middle dropped)."""
    n = x.shape[0] // 2
    return torch.cat((x[:n], x[x.shape[0] - n :]), dim=1)


def autocovariance(trace: Tensor) -> Tensor:
    """Per-chain autocovariance by FFT, ``acov[t] = (1/T) Σ_s (x_s − x̄)(x_{s+t} − x̄)``.

    Shapes: trace (T, C, *D) -> (T, C, *D) (lags 0..T−1, biased estimator as in Stan).
    """
    x = _as_trace(trace, min_draws=1)
    t = x.shape[0]
    xc = (x - x.mean(0, keepdim=True)).movedim(0, -1).contiguous()  # time last: fast FFT
    nfft = 1 << (2 * t - 1).bit_length()
    f = torch.fft.rfft(xc, n=nfft, dim=-1)
    acov = torch.fft.irfft(f.real.square() + f.imag.square(), n=nfft, dim=-1)[..., :t]
    return acov.movedim(-1, 0) / t


def autocorrelation(trace: Tensor, max_lag: int | None = None) -> Tensor:
    """Per-chain autocorrelation ``ρ_t = acov[t] / acov[0]`` by FFT.

    Shapes: trace (T, C, *D) -> (L, C, *D) with ``L = max_lag + 1`` (default all T lags).
    A constant chain gives NaN.
    """
    acov = autocovariance(trace)
    if max_lag is not None:
        if isinstance(max_lag, bool) or not isinstance(max_lag, int) or max_lag < 0:
            raise ValueError(f"max_lag must be an int >= 0, got {max_lag!r}")
        acov = acov[: max_lag + 1]
    return acov / acov[:1]


def rank_normalize(trace: Tensor) -> Tensor:
    """Rank-normalise over all draws of all chains, per coordinate (Vehtari et al. 2021).

    ``z = Φ⁻¹((r − 3/8) / (S − 1/4 + 1/2))`` with average ranks ``r`` over the ``S = T·C`` draws.
    Shapes: (T, C, *D) -> (T, C, *D), float64.
    """
    x = _as_trace(trace, min_draws=1)
    t, c = x.shape[:2]
    flat = x.reshape(t * c, -1).T.contiguous()  # (M, S)
    srt = flat.sort(dim=1).values
    below = torch.searchsorted(srt, flat, right=False)
    upto = torch.searchsorted(srt, flat, right=True)
    ranks = (below + upto + 1).to(torch.float64) / 2.0  # average rank, 1-based
    s = t * c
    z = torch.special.ndtri((ranks - 0.375) / (s + 0.25))
    return z.T.reshape(x.shape)


def _ess(x: Tensor) -> Tensor:
    """Multi-chain ESS for (n, m, M) float64 chains (already split when wanted) -> (M,)."""
    n, m = x.shape[:2]
    acov = autocovariance(x)  # (n, m, M)
    chain_var = acov[0] * n / (n - 1.0)  # s_j²
    w = chain_var.mean(0)
    var_plus = w * (n - 1.0) / n
    if m > 1:
        var_plus = var_plus + x.mean(0).var(0, unbiased=True)
    rho = 1.0 - (w - acov.mean(1)) / var_plus  # (n, M)
    rho[0] = 1.0
    n_pairs = n // 2
    gamma = rho[: 2 * n_pairs].reshape(n_pairs, 2, -1).sum(1)  # (K, M)
    keep = torch.cumprod((gamma > 0).to(torch.float64), dim=0)
    mono = torch.cummin(gamma, dim=0).values  # initial monotone sequence
    tau = -1.0 + 2.0 * (mono * keep).sum(0)
    total = float(n * m)
    tau = tau.clamp_min(1.0 / math.log10(total))
    ess = total / tau
    return torch.where(var_plus > 0, ess, torch.full_like(ess, float("nan")))


def _per_coordinate(trace: Tensor, fn, *, split: bool) -> Tensor:
    x = _as_trace(trace)
    event = x.shape[2:]
    flat = x.reshape(x.shape[0], x.shape[1], -1)
    if split:
        flat = _split(flat)
    return fn(flat).reshape(event)


def effective_sample_size(
    trace: Tensor, *, split: bool = True, rank_normalized: bool = False
) -> Tensor:
    """Multi-chain effective sample size with Geyer's initial monotone sequence.

    See the module docstring for the estimator. ``split=True`` splits every chain in halves
    first (detects drift within chains); ``rank_normalized=True`` gives the bulk ESS.

    Shapes: trace (T, C, *D), T >= 4 -> (*D) float64. A constant coordinate gives NaN.

    Example:
        >>> effective_sample_size(torch.randn(200, 4, 3)).shape
        torch.Size([3])
    """
    x = rank_normalize(trace) if rank_normalized else trace
    return _per_coordinate(x, _ess, split=split)


def ess_bulk(trace: Tensor) -> Tensor:
    """Bulk ESS: rank-normalised split-chain ESS (Vehtari et al. 2021). (T, C, *D) -> (*D)."""
    return effective_sample_size(trace, split=True, rank_normalized=True)


def ess_tail(trace: Tensor) -> Tensor:
    """Tail ESS: the smaller ESS of the 5% and 95% quantile indicators. (T, C, *D) -> (*D)."""
    x = _as_trace(trace)
    flat = x.reshape(x.shape[0] * x.shape[1], -1)
    out = []
    for q in (0.05, 0.95):
        cut = torch.quantile(flat, q, dim=0)  # (M,)
        ind = (x <= cut.reshape(x.shape[2:])).to(torch.float64)
        out.append(effective_sample_size(ind, split=True))
    return torch.minimum(out[0], out[1])


def _rhat(x: Tensor) -> Tensor:
    """Classic R-hat for (n, m, M) chains -> (M,)."""
    n = x.shape[0]
    w = x.var(0, unbiased=True).mean(0)
    b_over_n = x.mean(0).var(0, unbiased=True)
    var_plus = (n - 1.0) / n * w + b_over_n
    return torch.sqrt(var_plus / w)


def split_rhat(trace: Tensor, *, rank_normalized: bool = False) -> Tensor:
    """Split-chain potential scale reduction factor R-hat (Gelman et al., BDA3, §11.4).

    ``R = sqrt(var⁺ / W)`` over the 2C half-chains; values near 1 indicate mixing, > 1.01 is
    suspicious (Vehtari et al. 2021), > 1.1 signals chains that have not converged.

    Shapes: trace (T, C, *D), T >= 4 -> (*D) float64.
    """
    x = rank_normalize(trace) if rank_normalized else trace
    return _per_coordinate(x, _rhat, split=True)


def rhat(trace: Tensor) -> Tensor:
    """Rank-normalised split R-hat: max of the bulk and the folded (|x − median|) versions.

    Catches chains that differ in location (bulk) and in scale (folded), following
    Vehtari et al. (2021). Shapes: (T, C, *D) -> (*D).
    """
    x = _as_trace(trace)
    flat = x.reshape(x.shape[0] * x.shape[1], -1)
    med = flat.median(dim=0).values.reshape(x.shape[2:])
    bulk = split_rhat(x, rank_normalized=True)
    folded = split_rhat((x - med).abs(), rank_normalized=True)
    return torch.maximum(bulk, folded)


def mcse_mean(trace: Tensor) -> Tensor:
    """Monte Carlo standard error of the mean, ``sd / sqrt(ESS)`` (split, not rank-normalised).

    Shapes: (T, C, *D) -> (*D).
    """
    x = _as_trace(trace)
    sd = x.reshape(x.shape[0] * x.shape[1], *x.shape[2:]).std(0, unbiased=True)
    return sd / torch.sqrt(effective_sample_size(x, split=True))


class ChainSummary(NamedTuple):
    """Per-coordinate summary of a trace; every field has shape D."""

    mean: Tensor
    sd: Tensor
    mcse_mean: Tensor
    ess_bulk: Tensor
    ess_tail: Tensor
    rhat: Tensor


def summary(trace: Tensor) -> ChainSummary:
    """Mean, sd, MCSE of the mean, bulk/tail ESS and rank-normalised R-hat. (T, C, *D) -> D each."""
    x = _as_trace(trace)
    flat = x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])
    return ChainSummary(
        mean=flat.mean(0),
        sd=flat.std(0, unbiased=True),
        mcse_mean=mcse_mean(x),
        ess_bulk=ess_bulk(x),
        ess_tail=ess_tail(x),
        rhat=rhat(x),
    )
