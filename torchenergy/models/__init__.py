"""Complete EBMs with their own structure: RBMs, Boltzmann machines, Hopfield networks, CRFs."""

from torchenergy.models.rbm import BernoulliRBM, BlockGibbs, BlockGibbsState, GaussianBernoulliRBM
from torchenergy.models.rbm_train import CDStepResult, cd_gradients, cd_step, fit_rbm

__all__ = [
    "BernoulliRBM",
    "BlockGibbs",
    "BlockGibbsState",
    "CDStepResult",
    "GaussianBernoulliRBM",
    "cd_gradients",
    "cd_step",
    "fit_rbm",
]
