"""Log-likelihoods: exact or AIS-estimated RBM test log-likelihood, and pseudo-likelihood.

* :func:`rbm_log_likelihood`: ``log p(v) = -F(v) - log Z`` per sample, given ``log Z``.
* :func:`rbm_ais_log_likelihood`: the average over a data set with ``log Z`` from forward AIS and,
  optionally, a bracket from reverse AIS: forward AIS under-estimates ``log Z`` (stochastically),
  so its average log-likelihood is an *upper* estimate; reverse AIS gives the *lower* one.
* :func:`pseudo_log_likelihood`: ``PL(x) = Σ_i log p(x_i | x_{-i})`` per sample, summed over *all*
  features (Besag 1975). For a binary energy ``log p(x_i | x_{-i}) = log σ(E(x^{(i)}) - E(x))``
  with ``x^{(i)}`` the vector with bit ``i`` flipped. scikit-learn's ``score_samples`` instead
  flips one random bit per sample and multiplies by the number of features.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from torchenergy._checks import check_energy_shape, check_positive_int, check_tensor
from torchenergy.estimate.ais import ais, reverse_ais
from torchenergy.estimate.rbm_paths import RBMAnnealingPath
from torchenergy.models import BernoulliRBM
from torchenergy.types import EnergyFn, Generator

__all__ = [
    "LogLikelihoodEstimate",
    "pseudo_log_likelihood",
    "rbm_ais_log_likelihood",
    "rbm_log_likelihood",
]


def rbm_log_likelihood(rbm: Any, v: Tensor, log_z: Tensor | float) -> Tensor:
    """``log p(v) = -F(v) - log Z`` per row, (C, V) -> (C,) in float64."""
    with torch.no_grad():
        return -rbm(v).double() - torch.as_tensor(log_z, dtype=torch.float64)


class LogLikelihoodEstimate(NamedTuple):
    """Average log-likelihood (nats per sample) with its AIS uncertainty.

    Attributes:
        mean: average log-likelihood using the forward AIS ``log Z``.
        stderr: AIS standard error of ``log Z`` (it shifts every sample alike).
        lower: average log-likelihood using the reverse AIS ``log Z`` (NaN when not run).
        upper: same as ``mean`` (forward AIS), named for the bracket ``[lower, upper]``.
        log_z: forward AIS ``log Z``; log_z_reverse: reverse AIS ``log Z`` (NaN when not run).
        ess: effective sample size of the forward AIS weights.
        stderr_reverse: standard error of the reverse AIS ``log Z`` (NaN when not run).
    """

    mean: float
    stderr: float
    lower: float
    upper: float
    log_z: float
    log_z_reverse: float
    ess: float
    stderr_reverse: float = float("nan")


def rbm_ais_log_likelihood(
    rbm: Any,
    data: Tensor,
    *,
    n_betas: int | Tensor = 10000,
    n_chains: int = 100,
    base_bias: Tensor | None = None,
    reverse_samples: Tensor | None = None,
    generator: Generator = None,
) -> LogLikelihoodEstimate:
    """Average test log-likelihood of an RBM with ``log Z`` from AIS (and reverse AIS).

    Args:
        rbm: the model.
        data: test data (N, V).
        n_betas: number of intermediate distributions (``ais_schedule``), or a schedule.
        n_chains: AIS runs.
        base_bias: base-rate bias (see :func:`~torchenergy.estimate.rbm_paths.base_rate_bias`).
        reverse_samples: samples from the model (M, V) to start reverse AIS from (exact samples,
            or the end of long Gibbs chains); None skips the bracket.
        generator: random stream.
    """
    check_tensor("data", data, min_dim=2, floating=True)
    check_positive_int("n_chains", n_chains)
    path = RBMAnnealingPath(rbm, base_bias)
    fwd = ais(path, n_betas, n_chains, generator=generator)
    with torch.no_grad():
        neg_f = -rbm(data).double().mean()
    mean = float(neg_f - fwd.log_z)
    lower, lz_rev, se_rev = float("nan"), float("nan"), float("nan")
    if reverse_samples is not None:
        rev = reverse_ais(path, n_betas, reverse_samples, generator=generator)
        lz_rev, se_rev = float(rev.log_z), float(rev.stderr)
        lower = float(neg_f) - lz_rev
    return LogLikelihoodEstimate(
        mean, float(fwd.stderr), lower, mean, float(fwd.log_z), lz_rev, float(fwd.ess), se_rev
    )


def _rbm_pl(rbm: Any, v: Tensor, chunk: int) -> Tensor:
    out = []
    for s in range(0, v.shape[0], chunk):
        x = v[s : s + chunk]
        a = torch.addmm(rbm.c, x, rbm.W)  # (n, H)
        f = -(x @ rbm.b) - F.softplus(a).sum(-1)  # (n,)
        sign = 1 - 2 * x  # +1 where the flip turns 0 -> 1
        a_flip = a[:, None, :] + sign[:, :, None] * rbm.W[None]  # (n, V, H)
        f_flip = -(x @ rbm.b)[:, None] - sign * rbm.b - F.softplus(a_flip).sum(-1)
        out.append(F.logsigmoid(f_flip - f[:, None]).sum(-1))
    return torch.cat(out)


def pseudo_log_likelihood(energy_fn: EnergyFn, x: Tensor, *, chunk_size: int = 64) -> Tensor:
    """Pseudo-log-likelihood ``Σ_i log p(x_i | x_{-i})`` of binary rows ``x`` (C, D) -> (C,).

    Exact sum over all D features (D energy evaluations per row; a closed form for a
    :class:`~torchenergy.models.BernoulliRBM`). Values of ``x`` must be 0 or 1.

    Example:
        >>> e = lambda x: -x.sum(-1)  # independent units with p(x_i = 1) = σ(1)
        >>> pl = pseudo_log_likelihood(e, torch.ones(1, 3))
        >>> round(float(pl[0]), 4) == round(3 * float(F.logsigmoid(torch.tensor(1.0))), 4)
        True
    """
    check_tensor("x", x, min_dim=2, floating=True)
    check_positive_int("chunk_size", chunk_size)
    if bool(((x != 0) & (x != 1)).any()):
        raise ValueError("pseudo_log_likelihood needs binary x with values in {0, 1}")
    with torch.no_grad():
        if isinstance(energy_fn, BernoulliRBM):
            return _rbm_pl(energy_fn, energy_fn.flatten_visible(x), chunk_size)
        shape = x.shape
        flat = x.flatten(1)
        d = flat.shape[1]
        out = []
        for s in range(0, flat.shape[0], chunk_size):
            xb = flat[s : s + chunk_size]
            n = xb.shape[0]
            e = energy_fn(xb.reshape(n, *shape[1:]))
            check_energy_shape(e, xb)
            flips = xb[:, None, :].repeat(1, d, 1)
            idx = torch.arange(d, device=x.device)
            flips[:, idx, idx] = 1 - flips[:, idx, idx]
            e_flip = energy_fn(flips.reshape(n * d, *shape[1:])).reshape(n, d)
            out.append(F.logsigmoid(e_flip - e[:, None]).sum(-1))
        return torch.cat(out)
