"""Complete EBMs with their own structure: RBMs, Hopfield networks, JEM, linear-chain CRFs."""

from torchenergy.models.crf import Decoded, LinearChainCRF
from torchenergy.models.crf_constraints import TransitionConstraints, bio_constraints
from torchenergy.models.crf_svm import StructuredHingeLoss, structured_hinge_loss

__all__ = [
    "Decoded",
    "LinearChainCRF",
    "StructuredHingeLoss",
    "TransitionConstraints",
    "bio_constraints",
    "structured_hinge_loss",
]
