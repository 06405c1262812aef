"""Partition functions and likelihoods: exact enumeration, AIS and reverse AIS, pseudo-likelihood."""

from torchenergy.estimate.ais import (
    AISResult,
    AnnealingPath,
    FusedAnnealingPath,
    GeometricPath,
    ais,
    ais_schedule,
    log_weight_stats,
    reverse_ais,
)
from torchenergy.estimate.enumerate import (
    binary_states,
    exact_distribution,
    log_partition_enumerate,
    rbm_exact_sample,
    rbm_log_partition,
)
from torchenergy.estimate.likelihood import (
    LogLikelihoodEstimate,
    pseudo_log_likelihood,
    rbm_ais_log_likelihood,
    rbm_log_likelihood,
)
from torchenergy.estimate.rbm_paths import RBMAnnealingPath, base_rate_bias

__all__ = [
    "AISResult",
    "AnnealingPath",
    "FusedAnnealingPath",
    "GeometricPath",
    "LogLikelihoodEstimate",
    "RBMAnnealingPath",
    "ais",
    "ais_schedule",
    "base_rate_bias",
    "binary_states",
    "exact_distribution",
    "log_partition_enumerate",
    "log_weight_stats",
    "pseudo_log_likelihood",
    "rbm_ais_log_likelihood",
    "rbm_exact_sample",
    "rbm_log_likelihood",
    "rbm_log_partition",
    "reverse_ais",
]
