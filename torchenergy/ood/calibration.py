"""Calibration of a classifier's probabilities: expected / maximum / classwise calibration error.

Confidence ``c_i = max_k p_ik`` and correctness ``a_i = [argmax_k p_ik = y_i]`` are grouped into
``n_bins`` equal-width bins of (0, 1] (bin b holds ``(b−1)/B < c <= b/B``; a confidence of exactly 0
falls in the first bin)::

    ECE = sum_b (|B_b| / N) · |acc(B_b) − conf(B_b)|        MCE = max_b |acc(B_b) − conf(B_b)|

over non-empty bins. The classwise ECE bins each class's probability ``p_ik`` against
``[y_i = k]`` and averages over the K classes.

Reference: M. P. Naeini, G. Cooper and M. Hauskrecht, *Obtaining Well Calibrated Probabilities
Using Bayesian Binning*, AAAI 2015; C. Guo et al., *On Calibration of Modern Neural Networks*,
ICML 2017; M. Kull et al., *Beyond temperature scaling*, NeurIPS 2019 (classwise ECE).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from torchenergy._checks import check_positive_int, check_tensor

__all__ = [
    "ReliabilityBins",
    "classwise_calibration_error",
    "expected_calibration_error",
    "max_calibration_error",
    "reliability_bins",
]


class ReliabilityBins(NamedTuple):
    """Per-bin statistics (each (B,), float64; empty bins have count 0 and NaN accuracy/confidence).

    Attributes:
        edges: bin edges (B + 1,). count: items per bin. accuracy: mean correctness.
        confidence: mean confidence.
    """

    edges: Tensor
    count: Tensor
    accuracy: Tensor
    confidence: Tensor


def _check(probs: Tensor, labels: Tensor, n_bins: int) -> tuple[Tensor, Tensor]:
    check_tensor("probs", probs, floating=True)
    if probs.dim() != 2 or probs.shape[0] == 0:
        raise ValueError(f"probs must have shape (N, K) with N >= 1, got {tuple(probs.shape)}")
    if not isinstance(labels, Tensor) or labels.shape != (probs.shape[0],):
        got = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
        raise ValueError(f"labels must have shape (N,) = ({probs.shape[0]},), got {got}")
    if labels.is_floating_point():
        raise TypeError(f"labels must be integers, got dtype {labels.dtype}")
    check_positive_int("n_bins", n_bins)
    p = probs.detach().to(torch.float64)
    if bool(((p < 0) | (p > 1) | ~torch.isfinite(p)).any()):
        raise ValueError("probs must lie in [0, 1] (pass softmax probabilities, not logits)")
    return p, labels.detach().long().to(p.device)


def _bins(conf: Tensor, correct: Tensor, n_bins: int) -> ReliabilityBins:
    edges = torch.linspace(0.0, 1.0, n_bins + 1, dtype=torch.float64, device=conf.device)
    # bin b (0-based) holds edges[b] < c <= edges[b + 1]; c = 0 goes to bin 0
    idx = (torch.ceil(conf * n_bins).long() - 1).clamp(0, n_bins - 1)
    count = torch.zeros(n_bins, dtype=torch.float64, device=conf.device).index_add_(
        0, idx, torch.ones_like(conf)
    )
    acc = torch.zeros_like(count).index_add_(0, idx, correct)
    cs = torch.zeros_like(count).index_add_(0, idx, conf)
    return ReliabilityBins(edges, count, acc / count, cs / count)


def reliability_bins(probs: Tensor, labels: Tensor, n_bins: int = 15) -> ReliabilityBins:
    """Top-label reliability statistics. Shapes: ``probs`` (N, K), ``labels`` (N,)."""
    p, y = _check(probs, labels, n_bins)
    conf, pred = p.max(dim=1)
    return _bins(conf, (pred == y).to(torch.float64), n_bins)


def _ece(b: ReliabilityBins) -> Tensor:
    keep = b.count > 0
    gap = (b.accuracy[keep] - b.confidence[keep]).abs()
    return (b.count[keep] / b.count.sum() * gap).sum()


def expected_calibration_error(probs: Tensor, labels: Tensor, n_bins: int = 15) -> Tensor:
    """Top-label ECE (0-dim float64). Shapes: ``probs`` (N, K), ``labels`` (N,).

    Example:
        >>> p = torch.tensor([[0.9, 0.1], [0.6, 0.4]])
        >>> round(float(expected_calibration_error(p, torch.tensor([0, 1]), n_bins=10)), 4)
        0.35
    """
    return _ece(reliability_bins(probs, labels, n_bins))


def max_calibration_error(probs: Tensor, labels: Tensor, n_bins: int = 15) -> Tensor:
    """Maximum calibration error over non-empty bins (0-dim float64)."""
    b = reliability_bins(probs, labels, n_bins)
    keep = b.count > 0
    return (b.accuracy[keep] - b.confidence[keep]).abs().max()


def classwise_calibration_error(probs: Tensor, labels: Tensor, n_bins: int = 15) -> Tensor:
    """Classwise ECE: mean over classes k of the ECE of ``p_k`` against ``[y = k]`` (0-dim)."""
    p, y = _check(probs, labels, n_bins)
    total = p.new_zeros(())
    for k in range(p.shape[1]):
        total = total + _ece(_bins(p[:, k], (y == k).to(p.dtype), n_bins))
    return total / p.shape[1]
