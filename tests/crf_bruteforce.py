"""Brute-force reference for linear-chain CRFs: enumerate all K^L taggings (tests only)."""

from __future__ import annotations

import itertools
import math

import torch


def enumerate_taggings(crf, emissions, mask):
    """For each sequence b: list of (tags_at_selected_positions, positions, score) over all K^L."""
    trans = crf.transitions.detach().double()
    start = crf.start_scores.detach().double()
    end = crf.end_scores.detach().double()
    ok_t, ok_s, ok_e = crf.allowed_transitions, crf.allowed_start, crf.allowed_end
    out = []
    for b in range(emissions.shape[0]):
        pos = mask[b].nonzero().flatten().tolist()
        rows = []
        for y in itertools.product(range(crf.num_tags), repeat=len(pos)):
            s = float(start[y[0]]) if ok_s[y[0]] else -math.inf
            for l, t in enumerate(pos):
                s += float(emissions[b, t, y[l]])
                if l > 0:
                    s += float(trans[y[l - 1], y[l]]) if ok_t[y[l - 1], y[l]] else -math.inf
            s += float(end[y[-1]]) if ok_e[y[-1]] else -math.inf
            rows.append((y, pos, s))
        out.append(rows)
    return out


def brute_log_z(rows):
    return torch.logsumexp(torch.tensor([s for _, _, s in rows], dtype=torch.float64), 0)


def brute_marginals(rows, steps, k):
    log_z = brute_log_z(rows)
    m = torch.zeros(steps, k, dtype=torch.float64)
    for y, pos, s in rows:
        p = math.exp(s - float(log_z))
        for l, t in enumerate(pos):
            m[t, y[l]] += p
    return m


def full_tags(y, pos, steps):
    out = [-1] * steps
    for l, t in enumerate(pos):
        out[t] = y[l]
    return out


def random_masks(batch, steps, generator):
    """Masks with a masked first token, gaps and padding, every row non-empty."""
    masks = torch.rand(batch, steps, generator=generator) < 0.7
    masks[0] = True  # full row
    masks[1, 0] = False  # [CLS]-style first token
    masks[1, 1:] = True
    if batch > 2:
        masks[2] = False
        masks[2, :2] = True  # padding at the end
    if batch > 3:
        masks[3] = False
        masks[3, steps // 2] = True  # a single selected token in the middle
    empty = ~masks.any(1)
    masks[empty, -1] = True
    return masks


def random_crf(crf_cls, k, generator, scale=1.0, **kwargs):
    crf = crf_cls(k, **kwargs).double()
    with torch.no_grad():
        crf.transitions.copy_(scale * torch.randn(k, k, generator=generator, dtype=torch.float64))
        crf.start_scores.copy_(scale * torch.randn(k, generator=generator, dtype=torch.float64))
        crf.end_scores.copy_(scale * torch.randn(k, generator=generator, dtype=torch.float64))
    return crf
