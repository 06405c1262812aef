"""Complete EBMs with their own structure: RBMs, Boltzmann machines, Hopfield networks, CRFs."""

from torchenergy.models.boltzmann import (
    BoltzmannMachine,
    SiteGibbs,
    SiteGibbsState,
    fit_boltzmann,
    moments,
)
from torchenergy.models.hopfield import HopfieldNetwork, ModernHopfield, RecallResult
from torchenergy.models.rbm import BernoulliRBM, BlockGibbs, BlockGibbsState, GaussianBernoulliRBM
from torchenergy.models.rbm_train import CDStepResult, cd_gradients, cd_step, fit_rbm

__all__ = [
    "BernoulliRBM",
    "BlockGibbs",
    "BlockGibbsState",
    "BoltzmannMachine",
    "CDStepResult",
    "GaussianBernoulliRBM",
    "HopfieldNetwork",
    "ModernHopfield",
    "RecallResult",
    "SiteGibbs",
    "SiteGibbsState",
    "cd_gradients",
    "cd_step",
    "fit_boltzmann",
    "fit_rbm",
    "moments",
]
