"""One call for an OOD table: every score against every OOD set (AUROC, AUPR, FPR at 95 % TPR).

A score function maps inputs (C, *D) to scores (C,) (higher = in-distribution); it is evaluated in
batches. :func:`classifier_scores` gives the usual three for a logit model (max softmax, energy,
gradient norm of ``E(x) = −logsumexp f(x)``).

Example:
    >>> f = lambda x: torch.cat([x, -x], 1)
    >>> x_in, x_out = torch.randn(50, 1) + 3, torch.randn(40, 1)
    >>> rep = ood_report(classifier_scores(f), x_in, {"shifted": x_out})
    >>> sorted(rep["energy"]["shifted"])
    ['aupr', 'auroc', 'fpr95']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from torchenergy._checks import check_positive_int, check_tensor
from torchenergy.ood.metrics import aupr, auroc, fpr_at_tpr
from torchenergy.ood.scores import energy_score, gradient_norm_score, max_softmax_score

__all__ = ["classifier_scores", "format_report", "ood_report"]

ScoreFn = Callable[[Tensor], Tensor]


def classifier_scores(logits_fn: Callable[[Tensor], Tensor]) -> dict[str, ScoreFn]:
    """``{"max_softmax", "energy", "grad_norm"}`` score functions of a logits model (C, *D) -> (C, K)."""
    if not callable(logits_fn):
        raise TypeError(f"logits_fn must be callable (C, *D) -> (C, K), got {logits_fn!r}")

    def msp(x: Tensor) -> Tensor:
        with torch.no_grad():
            return max_softmax_score(logits_fn(x))

    def energy(x: Tensor) -> Tensor:
        with torch.no_grad():
            return energy_score(logits_fn(x))

    def grad(x: Tensor) -> Tensor:
        return gradient_norm_score(lambda z: -torch.logsumexp(logits_fn(z), dim=-1), x)

    return {"max_softmax": msp, "energy": energy, "grad_norm": grad}


def _score_all(fn: ScoreFn, x: Tensor, batch_size: int) -> Tensor:
    out = [fn(c).detach().flatten() for c in x.split(batch_size)]
    s = torch.cat(out)
    if s.shape != (x.shape[0],):
        raise ValueError(f"a score function must map (C, *D) to (C,), got {tuple(s.shape)}")
    return s


def ood_report(
    scores: Mapping[str, ScoreFn],
    x_in: Tensor,
    ood_sets: Mapping[str, Tensor],
    *,
    tpr: float = 0.95,
    batch_size: int = 500,
    return_scores: bool = False,
) -> dict[str, dict[str, dict[str, float]]]:
    """AUROC, AUPR (in-positive) and FPR@``tpr`` of every score against every OOD set.

    Shapes: ``x_in`` (N, *D); each OOD set (M, *D).

    Returns:
        ``report[score][ood_set] = {"auroc", "aupr", "fpr95"}`` (floats). With
        ``return_scores`` the raw scores are added as ``report["_scores"][score][set]`` lists
        (``"in"`` for the in-distribution set).
    """
    check_tensor("x_in", x_in, min_dim=1, floating=True)
    check_positive_int("batch_size", batch_size)
    if not scores or not ood_sets:
        raise ValueError("ood_report needs at least one score and one OOD set")
    rep: dict[str, Any] = {}
    raw: dict[str, dict[str, list[float]]] = {}
    for name, fn in scores.items():
        s_in = _score_all(fn, x_in, batch_size)
        rep[name] = {}
        raw[name] = {"in": s_in.tolist()}
        for set_name, x_out in ood_sets.items():
            check_tensor(f"ood_sets[{set_name!r}]", x_out, min_dim=1, floating=True)
            s_out = _score_all(fn, x_out, batch_size)
            raw[name][set_name] = s_out.tolist()
            rep[name][set_name] = {
                "auroc": float(auroc(s_in, s_out)),
                "aupr": float(aupr(s_in, s_out)),
                "fpr95": float(fpr_at_tpr(s_in, s_out, tpr)),
            }
    if return_scores:
        rep["_scores"] = raw
    return rep


def format_report(report: Mapping[str, Any], *, title: str = "") -> str:
    """A Markdown table ``score | set | AUROC | AUPR | FPR95`` of :func:`ood_report`'s result."""
    lines = [f"### {title}", ""] if title else []
    lines += ["| score | OOD set | AUROC | AUPR | FPR95 |", "|---|---|---|---|---|"]
    for score, sets in report.items():
        if score.startswith("_"):
            continue
        for set_name, m in sets.items():
            lines.append(
                f"| {score} | {set_name} | {m['auroc']:.3f} | {m['aupr']:.3f} | {m['fpr95']:.3f} |"
            )
    return "\n".join(lines)
