"""Out-of-distribution detection and calibration.

Scores (higher = in-distribution): :func:`max_softmax_score`, :func:`energy_score`,
:func:`gradient_norm_score`, :func:`energy_as_score`. Metrics (in-distribution positive, exact
ties as scikit-learn): :func:`auroc`, :func:`aupr`, :func:`fpr_at_tpr`. One call over many OOD
sets: :func:`ood_report`. Calibration: :func:`expected_calibration_error`,
:func:`max_calibration_error`, :func:`classwise_calibration_error`, :func:`reliability_bins`.
"""

from torchenergy.ood.calibration import (
    ReliabilityBins,
    classwise_calibration_error,
    expected_calibration_error,
    max_calibration_error,
    reliability_bins,
)
from torchenergy.ood.metrics import aupr, auroc, fpr_at_tpr, roc_points
from torchenergy.ood.report import classifier_scores, format_report, ood_report
from torchenergy.ood.scores import (
    energy_as_score,
    energy_score,
    gradient_norm_score,
    max_softmax_score,
)

__all__ = [
    "ReliabilityBins",
    "aupr",
    "auroc",
    "classifier_scores",
    "classwise_calibration_error",
    "energy_as_score",
    "energy_score",
    "expected_calibration_error",
    "format_report",
    "fpr_at_tpr",
    "gradient_norm_score",
    "max_calibration_error",
    "max_softmax_score",
    "ood_report",
    "reliability_bins",
    "roc_points",
]
