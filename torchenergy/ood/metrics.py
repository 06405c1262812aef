"""Detection metrics for OOD scores: AUROC, AUPR (average precision) and FPR at a fixed TPR.

Convention: in-distribution inputs are the positives and a higher score means "in". Ties are
handled exactly, as scikit-learn does: :func:`auroc` equals ``roc_auc_score`` (a tied
in/out pair counts one half, the Mann–Whitney statistic), :func:`aupr` equals
``average_precision_score`` (precision summed at each distinct threshold, weighted by the recall
gained), and :func:`fpr_at_tpr` is the false-positive rate at the largest threshold whose
true-positive rate reaches ``tpr`` (``s >= t`` is called "in").

Reference: J. Davis and M. Goadrich, *The Relationship Between Precision-Recall and ROC
Curves*, ICML 2006; Hendrycks & Gimpel, ICLR 2017 (FPR at 95 % TPR).
"""

from __future__ import annotations

import torch
from torch import Tensor

from torchenergy._checks import check_probability, check_tensor

__all__ = ["aupr", "auroc", "fpr_at_tpr", "roc_points"]


def _scores(name: str, s: Tensor) -> Tensor:
    if not isinstance(s, Tensor):
        s = torch.as_tensor(s)
    check_tensor(name, s, min_dim=1)
    if s.dim() != 1 or s.numel() == 0:
        raise ValueError(f"{name} must be a non-empty 1-D score tensor (C,), got {tuple(s.shape)}")
    s = s.detach().to(torch.float64)
    if not bool(torch.isfinite(s).all()):
        raise ValueError(f"{name} holds {int((~torch.isfinite(s)).sum())} non-finite score(s)")
    return s


def roc_points(s_in: Tensor, s_out: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Cumulative counts at each distinct threshold, from the highest score down.

    Shapes: ``s_in`` (N,), ``s_out`` (M,) -> ``(thresholds, tp, fp)``, each (T,) (float64): ``tp[i]``
    / ``fp[i]`` count in / out scores ``>= thresholds[i]``.
    """
    a, b = _scores("s_in", s_in), _scores("s_out", s_out)
    scores = torch.cat([a, b])
    label = torch.cat([torch.ones_like(a), torch.zeros_like(b)])
    thr, inv = torch.unique(scores, sorted=True, return_inverse=True)
    pos = torch.zeros_like(thr).index_add_(0, inv, label)
    neg = torch.zeros_like(thr).index_add_(0, inv, 1.0 - label)
    thr, pos, neg = thr.flip(0), pos.flip(0), neg.flip(0)
    return thr, pos.cumsum(0), neg.cumsum(0)


def auroc(s_in: Tensor, s_out: Tensor) -> Tensor:
    """Area under the ROC curve (ties count one half), a 0-dim float64 tensor.

    Example:
        >>> float(auroc(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 1.0])))
        0.875
    """
    _, tp, fp = roc_points(s_in, s_out)
    tpr = torch.cat([tp.new_zeros(1), tp / tp[-1]])
    fpr = torch.cat([fp.new_zeros(1), fp / fp[-1]])
    return torch.trapezoid(tpr, fpr)


def aupr(s_in: Tensor, s_out: Tensor, *, positive: str = "in") -> Tensor:
    """Average precision with in- (``positive="in"``) or out-of-distribution inputs as positives.

    ``AP = sum_t (R_t − R_{t−1}) P_t`` over distinct thresholds (scikit-learn's definition; the
    out-positive version scores with ``−s``). A 0-dim float64 tensor.

    Example:
        >>> float(aupr(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 1.0])))
        0.8333333333333333
    """
    if positive not in ("in", "out"):
        raise ValueError(f"positive must be 'in' or 'out', got {positive!r}")
    if positive == "out":
        s_in, s_out = -_scores("s_out", s_out), -_scores("s_in", s_in)
    _, tp, fp = roc_points(s_in, s_out)
    precision = tp / (tp + fp)
    recall = tp / tp[-1]
    d_recall = torch.diff(recall, prepend=recall.new_zeros(1))
    return (d_recall * precision).sum()


def fpr_at_tpr(s_in: Tensor, s_out: Tensor, tpr: float = 0.95) -> Tensor:
    """False-positive rate at the first threshold (from the top) whose TPR is at least ``tpr``.

    Example:
        >>> float(fpr_at_tpr(torch.tensor([4.0, 3.0, 2.0, 1.0]), torch.tensor([2.5, 0.0]), 0.75))
        0.5
    """
    check_probability("tpr", tpr, open_left=True)
    _, tp, fp = roc_points(s_in, s_out)
    rate = tp / tp[-1]
    i = int(torch.searchsorted(rate, torch.tensor(tpr, dtype=rate.dtype) - 1e-12))
    return fp[min(i, fp.numel() - 1)] / fp[-1]
