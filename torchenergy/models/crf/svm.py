"""Structured SVM loss for a linear-chain scorer: margin rescaling with Hamming cost.

For a gold tagging ``y*`` and the CRF's scores (emissions plus transitions, no partition
function), the margin-rescaled hinge is

    ℓ(x, y*) = max_y [score(x, y) + c·Δ(y, y*)] − score(x, y*) >= 0,

with ``Δ`` the Hamming distance over the selected positions. The inner max is a *loss-augmented*
Viterbi: adding ``c`` to every emission that disagrees with the gold tag makes
``score + c·Δ`` decompose over positions. Its subgradient raises the gold score and lowers the
score of the most violating tagging, so ``E(x, y*) + c·Δ(y, y*) <= E(x, y)`` is pushed to hold
for every ``y``.

Reference: I. Tsochantaridis, T. Joachims, T. Hofmann, Y. Altun, "Large margin methods for
structured and interdependent output variables", JMLR 6, 2005; B. Taskar, C. Guestrin,
D. Koller, "Max-margin Markov networks", NIPS 2003.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from torchenergy._checks import check_positive
from torchenergy.models.crf.batch import check_reduction, check_tags, reduce_loss, unpack
from torchenergy.models.crf.dp import viterbi
from torchenergy.models.crf.model import LinearChainCRF

__all__ = ["StructuredHingeLoss", "structured_hinge_loss"]


class StructuredHingeLoss(NamedTuple):
    """Output of :func:`structured_hinge_loss`.

    Attributes:
        loss: the hinge (scalar, or (B,) with ``reduction="none"``), differentiable.
        predicted: (B, T) the loss-augmented argmax ``ŷ`` (``-1`` outside the sequences), detached.
        hamming: (B,) Hamming distance ``Δ(ŷ, y*)``, detached.
    """

    loss: Tensor
    predicted: Tensor
    hamming: Tensor


def structured_hinge_loss(
    crf: LinearChainCRF,
    emissions: Tensor,
    tags: Tensor,
    mask: Tensor | None = None,
    *,
    lengths: Tensor | None = None,
    cost: float = 1.0,
    reduction: str = "mean",
) -> StructuredHingeLoss:
    """Margin-rescaled structured hinge loss with Hamming cost (loss-augmented Viterbi).

    Shapes: emissions (B, T, K), tags (B, T), mask (B, T) bool or lengths (B,).

    Args:
        crf: the scorer (its transition, start and end scores and constraints are used).
        emissions: emission scores from any network.
        tags: gold tags (any value at unselected positions).
        mask: selected positions (see :class:`LinearChainCRF`), or ``lengths``.
        cost: ``c``, the cost of one wrong tag (> 0).
        reduction: ``"mean"`` over sequences, ``"sum"``, ``"none"`` or ``"token_mean"``.

    Returns:
        :class:`StructuredHingeLoss` ``(loss, predicted, hamming)``.

    Example:
        >>> crf = LinearChainCRF(3)
        >>> out = structured_hinge_loss(crf, torch.zeros(1, 4, 3), torch.zeros(1, 4, dtype=torch.long))
        >>> float(out.loss.detach()), int(out.hamming)  # all scores tie: a wrong tagging violates by 4
        (4.0, 4)
    """
    check_positive("cost", cost)
    check_reduction(reduction)
    p = crf._pack(emissions, mask, lengths)
    gold = check_tags(tags, p, crf.num_tags)  # (T', B)
    with torch.no_grad():
        e = p.emissions.detach()
        wrong = torch.ones_like(e).scatter_(2, gold.unsqueeze(2), 0.0)
        trans, start, end = crf.potentials(e.dtype, forbidden=float("-inf"))
        pred, _ = viterbi(e + cost * wrong, p.mask, trans, start, end)
        hamming = ((pred != gold) & p.mask).sum(0)
    violation = crf._score_packed(p, pred) + cost * hamming.to(e.dtype)
    loss = (violation - crf._score_packed(p, gold)).clamp_min(0.0)
    return StructuredHingeLoss(
        reduce_loss(loss, reduction, p.lengths), unpack(pred.t(), p), hamming
    )
