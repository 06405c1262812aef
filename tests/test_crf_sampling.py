"""Forward-filtering backward-sampling against exact tagging probabilities (enumeration)."""

import math

import pytest
import torch
from scipy.stats import norm

from tests.crf_bruteforce import enumerate_taggings, random_crf
from torchenergy.models import LinearChainCRF

K, STEPS, N = 3, 5, 20_000


def _setup():
    g = torch.Generator().manual_seed(2024)
    crf = random_crf(LinearChainCRF, K, g)
    e = torch.randn(3, STEPS, K, generator=g, dtype=torch.float64)
    mask = torch.tensor(
        [[1, 1, 1, 1, 0], [0, 1, 1, 1, 1], [1, 0, 1, 1, 0]], dtype=torch.bool
    )  # padding; a masked first token; a gap
    return crf, e, mask


def _exact(crf, e, mask):
    out = []
    for rows in enumerate_taggings(crf, e, mask):
        s = torch.tensor([r[2] for r in rows], dtype=torch.float64)
        out.append((([r[0] for r in rows]), torch.softmax(s, 0)))
    return out


def _counts(samples, mask, taggings):
    """Counts (over the N draws) of every enumerated tagging, for one sequence."""
    sel = samples[:, mask]  # (N, L); enumeration order is base-K, first position most significant
    length = sel.shape[1]
    assert len(taggings) == K**length and taggings[1] == (0,) * (length - 1) + (1,)
    code = (sel * K ** torch.arange(length - 1, -1, -1)).sum(1)
    return torch.bincount(code, minlength=K**length).to(torch.float64)


def _max_z(counts, probs):
    n = counts.sum()
    sd = (n * probs * (1 - probs)).sqrt().clamp_min(1e-12)
    return float(((counts - n * probs).abs() / sd).max())


def _bonferroni_z(cells):
    return float(norm.isf(1e-3 / (2 * cells)))  # family-wise false-alarm rate 1e-3


def test_sample_frequencies_match_exact_probabilities():
    crf, e, mask = _setup()
    samples = crf.sample(e, mask, N, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (N, 3, STEPS) and samples.dtype == torch.long
    assert (samples[:, ~mask] == -1).all()
    exact = _exact(crf, e, mask)
    cells = sum(len(t) for t, _ in exact)
    for b, (taggings, probs) in enumerate(exact):
        counts = _counts(samples[:, b], mask[b], taggings)
        assert _max_z(counts, probs) <= _bonferroni_z(cells)


def test_power_independent_sampling_from_marginals_fails_the_same_check():
    # A broken sampler that ignores transitions (tags drawn independently from the exact
    # marginals) has the right one-position frequencies but must fail the joint check.
    crf, e, mask = _setup()
    with torch.no_grad():
        crf.transitions.mul_(3.0)  # strong coupling so the independence error is visible
    marg = crf.marginals(e, mask)
    g = torch.Generator().manual_seed(0)
    draws = torch.multinomial(marg.clamp_min(1e-300).reshape(-1, K), N, True, generator=g)
    broken = draws.reshape(3, STEPS, N).permute(2, 0, 1).masked_fill(~mask, -1)
    exact = _exact(crf, e, mask)
    cells = sum(len(t) for t, _ in exact)
    worst = max(_max_z(_counts(broken[:, b], mask[b], t), p) for b, (t, p) in enumerate(exact))
    assert worst > _bonferroni_z(cells)
    good = crf.sample(e, mask, N, generator=torch.Generator().manual_seed(0))
    worst_good = max(_max_z(_counts(good[:, b], mask[b], t), p) for b, (t, p) in enumerate(exact))
    assert worst_good <= _bonferroni_z(cells)


def test_sampling_is_reproducible_with_a_generator():
    crf, e, mask = _setup()
    a = crf.sample(e, mask, 7, generator=torch.Generator().manual_seed(5))
    b = crf.sample(e, mask, 7, generator=torch.Generator().manual_seed(5))
    c = crf.sample(e, mask, 7, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sample_mean_matches_marginals_float32_and_64(dtype):
    crf, e, mask = _setup()
    crf, e = crf.to(dtype), e.to(dtype)
    samples = crf.sample(e, mask, N, generator=torch.Generator().manual_seed(1))
    freq = torch.nn.functional.one_hot(samples.clamp_min(0), K).to(torch.float64).mean(0)
    marg = crf.marginals(e, mask).double()
    sd = (marg * (1 - marg) / N).sqrt()
    z = ((freq - marg).abs() / sd.clamp_min(1e-12))[mask]
    assert float(z.max()) <= _bonferroni_z(int(mask.sum()) * K)
    assert math.isfinite(float(z.max()))
