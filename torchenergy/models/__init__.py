"""Complete EBMs with their own structure: RBMs, Boltzmann machines, Hopfield networks, CRFs."""

from torchenergy.models.boltzmann import (
    BoltzmannMachine,
    SiteGibbs,
    SiteGibbsState,
    fit_boltzmann,
    moments,
)
from torchenergy.models.crf import (
    Decoded,
    LinearChainCRF,
    StructuredHingeLoss,
    TransitionConstraints,
    bio_constraints,
    structured_hinge_loss,
)
from torchenergy.models.hopfield import HopfieldNetwork, ModernHopfield, RecallResult
from torchenergy.models.rbm import (
    BernoulliRBM,
    BlockGibbs,
    BlockGibbsState,
    CDStepResult,
    GaussianBernoulliRBM,
    cd_gradients,
    cd_step,
    fit_rbm,
)

__all__ = [
    "BernoulliRBM",
    "BlockGibbs",
    "BlockGibbsState",
    "BoltzmannMachine",
    "CDStepResult",
    "Decoded",
    "GaussianBernoulliRBM",
    "HopfieldNetwork",
    "LinearChainCRF",
    "ModernHopfield",
    "RecallResult",
    "SiteGibbs",
    "SiteGibbsState",
    "StructuredHingeLoss",
    "TransitionConstraints",
    "bio_constraints",
    "cd_gradients",
    "cd_step",
    "fit_boltzmann",
    "fit_rbm",
    "moments",
    "structured_hinge_loss",
]
