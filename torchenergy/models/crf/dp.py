"""Dynamic programs of the linear-chain CRF on packed (left-aligned) batches.

These are the functional kernels behind :class:`torchenergy.models.LinearChainCRF`. They all
work on *packed* inputs: every sequence occupies positions ``0 .. L_b - 1`` of its row and
``mask[b, t] = t < L_b`` with ``L_b >= 1``; the module packs arbitrary masks (a masked first
token, gaps, padding) into this form and scatters the results back.

Shapes: emissions (T, B, K) time-major, mask (T, B) bool, transitions (K, K) where
``transitions[i, j]`` scores the step from tag ``i`` to tag ``j``, start and end (K,).

Forward algorithm (log space): ``α_0 = start + e_0``,
``α_t[j] = logsumexp_i(α_{t-1}[i] + A[i, j]) + e_t[j]``, ``log Z = logsumexp_j(α_{L-1}[j] + end[j])``.
Positions past a sequence's end keep ``α`` unchanged, so one loop over ``T`` serves the batch.

Forbidden transitions must be passed as a large *finite* negative number (``NEG``) to the
differentiable routines (``forward_alphas``) so that gradients through unreachable states are 0
rather than NaN; ``exp(NEG)`` is exactly 0 in float32 and float64. The max-product routines
(Viterbi, k-best) accept ``-inf`` as well.

Reference: L. Rabiner, "A tutorial on hidden Markov models", Proc. IEEE 77(2), 1989;
J. Lafferty, A. McCallum, F. Pereira, "Conditional random fields", ICML 2001.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["NEG", "forward_alphas", "kbest_viterbi", "sample_backward", "viterbi"]

#: Finite stand-in for ``-inf`` scores of forbidden transitions (exp(NEG) == 0 in float32/64).
NEG = -1.0e30


def forward_alphas(
    emissions: Tensor,
    mask: Tensor,
    transitions: Tensor,
    start: Tensor,
    end: Tensor,
    *,
    keep_all: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """Log partition function by the forward algorithm (differentiable).

    Args:
        emissions: (T, B, K) packed emission scores.
        mask: (T, B) packed bool mask (a prefix of each column, first row all True).
        transitions: (K, K) scores ``i -> j`` (forbidden entries finite ``NEG``), or (B, K, K)
            per-sequence scores.
        start: (K,) or (B, K) scores of the first tag.
        end: (K,) or (B, K) scores of the last tag.
        keep_all: also return every ``α_t`` (needed by forward-filtering backward-sampling).

    Returns:
        ``(log_z, alphas)``: log Z of shape (B,) and, when ``keep_all``, the (T, B, K) forward
        variables (frozen past each sequence's end), else ``None``.

    Example:
        >>> e = torch.zeros(2, 1, 3); m = torch.ones(2, 1, dtype=torch.bool)
        >>> z, _ = forward_alphas(e, m, torch.zeros(3, 3), torch.zeros(3), torch.zeros(3))
        >>> round(float(z), 4) == round(2 * torch.log(torch.tensor(3.0)).item(), 4)
        True
    """
    alpha = start + emissions[0]
    alphas = [alpha] if keep_all else None
    trans = transitions if transitions.dim() == 3 else transitions.unsqueeze(0)  # (B|1, K, K)
    for t in range(1, emissions.shape[0]):
        nxt = torch.logsumexp(alpha.unsqueeze(2) + trans, dim=1) + emissions[t]
        alpha = torch.where(mask[t].unsqueeze(1), nxt, alpha)
        if alphas is not None:
            alphas.append(alpha)
    log_z = torch.logsumexp(alpha + end, dim=1)
    return log_z, (torch.stack(alphas) if alphas is not None else None)


def _backtrace(pointers: list[Tensor], last: Tensor) -> Tensor:
    """Follow (T-1) back-pointer tables (B, S) from ``last`` (B, R) indices; returns (T, B, R)."""
    out = [last]
    cur = last
    for bp in reversed(pointers):
        cur = bp.gather(1, cur)
        out.append(cur)
    out.reverse()
    return torch.stack(out)


def viterbi(
    emissions: Tensor, mask: Tensor, transitions: Tensor, start: Tensor, end: Tensor
) -> tuple[Tensor, Tensor]:
    """Best tagging of each sequence (max-product forward pass, tensor back-trace, no ``.item``).

    ``δ_0 = start + e_0``, ``δ_t[j] = max_i(δ_{t-1}[i] + A[i, j]) + e_t[j]``, with back-pointers
    ``ψ_t[j] = argmax_i``; past a sequence's end ``δ`` is frozen and ``ψ`` is the identity, so the
    back-trace from ``T - 1`` lands on the last real tag.

    Args:
        emissions: (T, B, K) packed emissions. mask: (T, B). transitions: (K, K). start, end: (K,).

    Returns:
        ``(tags, scores)``: (T, B) long tags (positions past the end repeat the last tag; the
        caller pads them) and (B,) best scores.

    Example:
        >>> e = torch.tensor([[[0.0, 1.0]], [[2.0, 0.0]]]); m = torch.ones(2, 1, dtype=torch.bool)
        >>> viterbi(e, m, torch.zeros(2, 2), torch.zeros(2), torch.zeros(2))[0][:, 0].tolist()
        [1, 0]
    """
    num_steps, batch, k = emissions.shape
    delta = start + emissions[0]
    ident = torch.arange(k, device=emissions.device).expand(batch, k)
    pointers = []
    trans = transitions.unsqueeze(0)
    for t in range(1, num_steps):
        best, arg = (delta.unsqueeze(2) + trans).max(dim=1)
        m = mask[t].unsqueeze(1)
        delta = torch.where(m, best + emissions[t], delta)
        pointers.append(torch.where(m, arg, ident))
    scores, last = (delta + end).max(dim=1)
    tags = _backtrace(pointers, last.unsqueeze(1)).squeeze(2)
    return tags, scores


def kbest_viterbi(
    emissions: Tensor,
    mask: Tensor,
    transitions: Tensor,
    start: Tensor,
    end: Tensor,
    k: int,
) -> tuple[Tensor, Tensor]:
    """The ``k`` highest-scoring taggings of each sequence (list Viterbi).

    Each state keeps its ``k`` best partial paths ``δ_t[j, r]``; a step takes the top ``k`` of
    ``δ_{t-1}[i, r] + A[i, j]`` over the ``K·k`` pairs ``(i, r)``, so the kept paths are distinct.
    Slots with no path hold ``-inf``.

    Args:
        emissions: (T, B, K). mask: (T, B). transitions: (K, K). start, end: (K,). k: paths.

    Returns:
        ``(tags, scores)``: (T, B, k) tags and (B, k) scores sorted best first (``-inf`` where a
        sequence has fewer than ``k`` allowed taggings; the caller pads those tags).
    """
    num_steps, batch, num_tags = emissions.shape
    fill = torch.full(
        (batch, num_tags, k - 1), float("-inf"), dtype=emissions.dtype, device=emissions.device
    )
    delta = torch.cat([(start + emissions[0]).unsqueeze(2), fill], dim=2)  # (B, K, k)
    ident = torch.arange(num_tags * k, device=emissions.device).expand(batch, num_tags * k)
    trans = transitions.unsqueeze(0).unsqueeze(3)  # (1, K, K, 1)
    pointers = []
    for t in range(1, num_steps):
        cand = (delta.unsqueeze(2) + trans).permute(0, 2, 1, 3)  # (B, Kj, Ki, k)
        cand = cand.reshape(batch, num_tags, num_tags * k)
        val, arg = cand.topk(k, dim=2)  # arg indexes (i, r) as i * k + r
        m = mask[t].view(batch, 1, 1)
        delta = torch.where(m, val + emissions[t].unsqueeze(2), delta)
        pointers.append(torch.where(m.view(batch, 1), arg.reshape(batch, -1), ident))
    scores, last = (delta + end.view(1, -1, 1)).reshape(batch, -1).topk(k, dim=1)
    flat = _backtrace(pointers, last)  # (T, B, k) indices j * k + r
    return torch.div(flat, k, rounding_mode="floor"), scores


def sample_backward(
    alphas: Tensor,
    mask: Tensor,
    transitions: Tensor,
    end: Tensor,
    num_samples: int,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Backward sampling after the forward filter: exact draws from ``p(y | x)``.

    ``y_{L-1} ~ softmax(α_{L-1} + end)``, then ``y_t ~ softmax(α_t + A[:, y_{t+1}])`` for
    ``t = L-2 .. 0``. Categorical draws use the Gumbel-max trick with ``torch.rand(generator=)``.

    Args:
        alphas: (T, B, K) forward variables from :func:`forward_alphas` (``keep_all=True``).
        mask: (T, B) packed mask. transitions: (K, K). end: (K,).
        num_samples: draws per sequence (N).
        generator: random generator.

    Returns:
        (T, N, B) sampled tags (past a sequence's end the last tag repeats; the caller pads).
    """
    num_steps, batch, k = alphas.shape

    def draw(logits: Tensor) -> Tensor:  # logits (N, B, K)
        u = torch.rand(logits.shape, generator=generator, dtype=logits.dtype, device=logits.device)
        tiny = torch.finfo(logits.dtype).tiny
        gumbel = -torch.log(-torch.log(u.clamp(min=tiny, max=1.0 - 1e-7)))
        return (logits + gumbel).argmax(dim=2)

    shape = (num_samples, batch, k)
    cur = draw((alphas[-1] + end).expand(shape))  # (N, B)
    out = [cur]
    for t in range(num_steps - 2, -1, -1):
        # logits_i = α_t[i] + A[i, y_{t+1}]
        col = transitions.t()[cur]  # (N, B, K)
        nxt = draw(alphas[t].expand(shape) + col)
        cur = torch.where(mask[t + 1].unsqueeze(0), nxt, cur)
        out.append(cur)
    out.reverse()
    return torch.stack(out)
