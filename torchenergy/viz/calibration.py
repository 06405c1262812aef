"""Reliability diagrams and OOD score histograms.

Example:
    >>> p = torch.softmax(torch.randn(200, 3, generator=torch.Generator().manual_seed(0)), -1)
    >>> ax = plot_reliability_diagram(p, torch.randint(0, 3, (200,)), n_bins=10)
    >>> ax = plot_score_histograms({"in": torch.randn(100), "out": torch.randn(100) - 2})
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from torchenergy._checks import check_positive_int
from torchenergy.viz.landscape import new_axes

__all__ = ["plot_reliability_diagram", "plot_score_histograms"]


def plot_reliability_diagram(
    probs: Tensor,
    labels: Tensor,
    ax: Any = None,
    *,
    n_bins: int = 15,
    title: str = "reliability",
) -> Any:
    """Accuracy against confidence per bin (bars), the diagonal, and the ECE in the legend.

    Shapes: ``probs`` (N, K) softmax probabilities, ``labels`` (N,).
    """
    from torchenergy.ood import expected_calibration_error, reliability_bins

    b = reliability_bins(probs, labels, n_bins)
    ece = float(expected_calibration_error(probs, labels, n_bins))
    ax = new_axes() if ax is None else ax
    edges = b.edges.numpy()
    centers = 0.5 * (edges[1:] + edges[:-1])
    width = edges[1] - edges[0]
    acc = np.nan_to_num(b.accuracy.numpy())
    conf = np.nan_to_num(b.confidence.numpy(), nan=0.0)
    ax.bar(centers, acc, width=width * 0.95, color="tab:blue", alpha=0.8, label="accuracy")
    gap_bottom = np.minimum(acc, conf)
    ax.bar(
        centers,
        np.abs(conf - acc) * (b.count.numpy() > 0),
        bottom=gap_bottom,
        width=width * 0.95,
        color="tab:red",
        alpha=0.35,
        label="gap",
    )
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{title} (ECE {ece:.3f})")
    ax.legend(loc="upper left", fontsize=8)
    return ax


def plot_score_histograms(
    scores: Mapping[str, Tensor | np.ndarray],
    ax: Any = None,
    *,
    bins: int = 50,
    title: str = "scores",
    xlabel: str = "score (higher = in-distribution)",
) -> Any:
    """Overlaid density histograms of several score sets, e.g. ``{"Fashion test": s_in, ...}``."""
    check_positive_int("bins", bins)
    if not scores:
        raise ValueError("scores must hold at least one named score set")
    arrays = {k: torch.as_tensor(v).detach().double().flatten().numpy() for k, v in scores.items()}
    allv = np.concatenate(list(arrays.values()))
    lo, hi = np.quantile(allv, [0.005, 0.995]) if allv.size > 1 else (allv.min(), allv.max() + 1)
    ax = new_axes() if ax is None else ax
    edges = np.linspace(lo, hi if hi > lo else lo + 1, bins + 1)
    for name, v in arrays.items():
        ax.hist(
            np.clip(v, lo, hi),
            bins=edges,
            density=True,
            histtype="stepfilled",
            alpha=0.35,
            label=name,
        )
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.legend(fontsize=8)
    return ax
