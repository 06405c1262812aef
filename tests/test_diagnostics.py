"""MCMC diagnostics: ESS on AR(1) chains with known autocorrelation, R-hat, MCSE, direct check."""

import math

import numpy as np
import pytest
import torch
from scipy.signal import lfilter

from torchenergy.diagnostics import (
    autocorrelation,
    autocovariance,
    effective_sample_size,
    ess_bulk,
    ess_tail,
    mcse_mean,
    rank_normalize,
    rhat,
    split_rhat,
    summary,
)

Z = 4.0


def _ar1(rho, t, c, m, seed):
    """Stationary AR(1) chains x_t = ρ x_{t−1} + sqrt(1 − ρ²) ε_t, shape (T, C, M), unit variance."""
    g = torch.Generator().manual_seed(seed)
    eps = torch.randn(t, c, m, generator=g, dtype=torch.float64).numpy()
    s = math.sqrt(1.0 - rho * rho)
    eps[0] /= s  # so that x_0 = ε_0 ~ N(0, 1): started in the stationary law
    return torch.from_numpy(lfilter([s], [1.0, -rho], eps, axis=0))


@pytest.mark.parametrize("rho", [-0.3, 0.0, 0.5, 0.9])
def test_ess_matches_ar1_closed_form(rho):
    t, c, m = 4000, 8, 16
    x = _ar1(rho, t, c, m, seed=1)
    n = t * c
    truth = n * (1 - rho) / (1 + rho)
    tau = (1 + rho) / (1 - rho)
    # Sokal's asymptotic relative s.d. of an autocorrelation-time estimate with window W:
    # sqrt(2 (2W + 1) / N); W = max(10, 5 τ) is at least the window Geyer's rule ends up using.
    window = max(10.0, 5.0 * tau)
    rel_sd = math.sqrt(2 * (2 * window + 1) / n)
    ratio = effective_sample_size(x) / truth
    assert ratio.shape == (m,)
    assert bool(((ratio - 1).abs() <= Z * rel_sd).all()), (ratio, rel_sd)
    # the average over the 16 independent coordinates is tighter
    assert abs(float(ratio.mean()) - 1) <= Z * rel_sd / math.sqrt(m)
    bulk = ess_bulk(x) / truth  # rank normalisation leaves a Gaussian AR(1) nearly unchanged
    assert abs(float(bulk.mean()) - 1) <= Z * rel_sd / math.sqrt(m)
    # MCSE of the mean: sqrt(var / ESS) with unit variance
    mc = mcse_mean(x)
    torch.testing.assert_close(
        mc.mean(),
        torch.tensor(math.sqrt(1 / truth), dtype=torch.float64),
        rtol=Z * rel_sd / 2 / math.sqrt(m),
        atol=0,
    )


def test_ignoring_autocorrelation_would_fail_the_same_test():
    """Power check: the naive ESS (= T·C) is far outside the tolerance for ρ = 0.9."""
    t, c = 4000, 8
    x = _ar1(0.9, t, c, 4, seed=2)
    truth = t * c * 0.1 / 1.9
    rel_sd = math.sqrt(2 * (2 * 95 + 1) / (t * c))
    naive = torch.full((4,), float(t * c), dtype=torch.float64)
    assert bool(((naive / truth - 1).abs() > Z * rel_sd).all())
    assert bool(((effective_sample_size(x) / truth - 1).abs() <= Z * rel_sd).all())


def test_mcse_covers_the_true_mean():
    """Standardised errors mean / MCSE over 128 independent coordinates have s.d. ≈ 1."""
    x = _ar1(0.8, 1000, 4, 128, seed=3)
    zs = x.mean((0, 1)) / mcse_mean(x)
    sd = float(zs.std())
    assert abs(sd - 1) <= Z / math.sqrt(2 * 128), sd


def test_rhat_iid_shifted_and_scaled_chains():
    g = torch.Generator().manual_seed(4)
    iid = torch.randn(1000, 4, 6, generator=g, dtype=torch.float64)
    assert bool((split_rhat(iid) < 1.01).all()) and bool((rhat(iid) < 1.01).all())
    shifted = iid.clone()
    shifted[:, 3] += 2.0  # one chain two s.d. away
    # 8 half-chains with means (0 ×6, 2 ×2): var⁺/W ≈ 1 + 4 · 1.5/7, R-hat ≈ 1.36
    expected = math.sqrt(1 + 4 * 1.5 / 7)
    assert bool(((split_rhat(shifted) - expected).abs() < 0.05).all())
    assert bool((split_rhat(shifted) > 1.1).all()) and bool((rhat(shifted) > 1.1).all())
    scaled = iid.clone()
    scaled[:, 3] *= 4.0  # same location, different scale: classic R-hat misses, folded catches
    assert bool((split_rhat(scaled) < 1.1).all())
    assert bool((rhat(scaled) > 1.1).all())
    drift = iid[:, :1] + torch.linspace(0, 3, 1000, dtype=torch.float64)[:, None, None]
    assert bool((split_rhat(drift) > 1.1).all())  # splitting catches a trend within one chain


def _np_autocov(x):
    n = len(x)
    xc = x - x.mean()
    return np.array([np.sum(xc[: n - t] * xc[t:]) / n for t in range(n)])


def _np_ess(chains):
    """Direct implementation: chains (n, m) already split; Geyer initial monotone sequence."""
    n, m = chains.shape
    acov = np.stack([_np_autocov(chains[:, j]) for j in range(m)], 1)  # (n, m)
    s2 = np.array([np.var(chains[:, j], ddof=1) for j in range(m)])
    w = s2.mean()
    var_plus = w * (n - 1) / n + (np.var(chains.mean(0), ddof=1) if m > 1 else 0.0)
    rho = [1.0] + [1.0 - (w - acov[t].mean()) / var_plus for t in range(1, n)]
    gammas = []
    for k in range(n // 2):
        gk = rho[2 * k] + rho[2 * k + 1]
        if gk <= 0:
            break
        gammas.append(min(gk, gammas[-1]) if gammas else gk)
    tau = -1.0 + 2.0 * sum(gammas)
    tau = max(tau, 1.0 / math.log10(n * m))
    return n * m / tau


def _np_rhat(chains):
    n = chains.shape[0]
    w = np.mean([np.var(chains[:, j], ddof=1) for j in range(chains.shape[1])])
    b_over_n = np.var(chains.mean(0), ddof=1)
    return math.sqrt(((n - 1) / n * w + b_over_n) / w)


def test_agreement_with_direct_numpy_computation():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(11, 3, 2, generator=g, dtype=torch.float64).cumsum(0) * 0.3 + torch.randn(
        11, 3, 2, generator=g, dtype=torch.float64
    )
    xn = x.numpy()
    acov = autocovariance(x)
    for j in range(3):
        for d in range(2):
            np.testing.assert_allclose(acov[:, j, d].numpy(), _np_autocov(xn[:, j, d]), atol=1e-12)
    np.testing.assert_allclose(
        autocorrelation(x, max_lag=3)[:, 0, 0].numpy(),
        _np_autocov(xn[:, 0, 0])[:4] / _np_autocov(xn[:, 0, 0])[0],
    )
    ess = effective_sample_size(x)
    rh = split_rhat(x)
    ess_nosplit = effective_sample_size(x, split=False)
    for d in range(2):
        split = np.concatenate([xn[:5, :, d], xn[6:, :, d]], axis=1)  # odd T: middle draw dropped
        np.testing.assert_allclose(float(ess[d]), _np_ess(split), rtol=1e-10)
        np.testing.assert_allclose(float(rh[d]), _np_rhat(split), rtol=1e-10)
        np.testing.assert_allclose(float(ess_nosplit[d]), _np_ess(xn[:, :, d]), rtol=1e-10)


def test_rank_normalize_average_ranks_and_shapes():
    x = torch.tensor([[[1.0], [3.0]], [[2.0], [3.0]]])  # (T=2, C=2, D=1) with a tie
    z = rank_normalize(x)
    ranks = torch.tensor([1.0, 3.5, 2.0, 3.5]).reshape(2, 2, 1)
    expected = torch.special.ndtri((ranks.double() - 0.375) / (4 + 0.25))
    torch.testing.assert_close(z, expected)
    tr = torch.randn(50, 2, 3, 2)
    s = summary(tr)
    assert all(v.shape == (3, 2) for v in s)
    assert ess_tail(tr).shape == (3, 2)
    assert split_rhat(torch.randn(20, 3)).shape == ()


def test_bad_traces_are_clear_errors():
    with pytest.raises(ValueError, match=r"\(T, C, \*D\) with T >= 4"):
        effective_sample_size(torch.randn(3, 2))
    with pytest.raises(ValueError, match="at least 2 dimension"):
        split_rhat(torch.randn(10))
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        rhat([[1.0, 2.0]])
    with pytest.raises(ValueError, match="max_lag"):
        autocorrelation(torch.randn(10, 2), max_lag=-1)
    assert bool(torch.isnan(effective_sample_size(torch.ones(10, 2, 1))).all())
