"""Complete EBMs with their own structure: RBMs, Boltzmann machines, Hopfield networks, CRFs,
JEM (its training runs are :func:`torchenergy.train.fit_jem` / ``fit_image_ebm``)."""

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
from torchenergy.models.jem import JEM, ConditionalEnergy, ConvClassifier
from torchenergy.models.jem_train import JEMConfig, JEMOutput, TrainingDivergedError, jem_loss
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
    "JEM",
    "BernoulliRBM",
    "BlockGibbs",
    "BlockGibbsState",
    "BoltzmannMachine",
    "CDStepResult",
    "ConditionalEnergy",
    "ConvClassifier",
    "Decoded",
    "GaussianBernoulliRBM",
    "HopfieldNetwork",
    "JEMConfig",
    "JEMOutput",
    "LinearChainCRF",
    "ModernHopfield",
    "RecallResult",
    "SiteGibbs",
    "SiteGibbsState",
    "StructuredHingeLoss",
    "TrainingDivergedError",
    "TransitionConstraints",
    "bio_constraints",
    "cd_gradients",
    "cd_step",
    "fit_boltzmann",
    "fit_rbm",
    "jem_loss",
    "moments",
    "structured_hinge_loss",
]
