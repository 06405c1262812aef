"""Linear-chain conditional random fields: the model, its dynamic programs and losses.

* :mod:`~torchenergy.models.crf.model`: :class:`LinearChainCRF` (exact, batched inference) and
  :class:`Decoded`.
* :mod:`~torchenergy.models.crf.dp`: the forward algorithm, Viterbi, list Viterbi and
  backward sampling on packed (left-aligned, time-major) batches.
* :mod:`~torchenergy.models.crf.batch`: validation and packing of masks, lengths and tags;
  loss reductions.
* :mod:`~torchenergy.models.crf.constraints`: hard transition constraints (BIO).
* :mod:`~torchenergy.models.crf.svm`: the structured hinge loss (loss-augmented Viterbi).

Layers inside the package: ``batch``, ``constraints``, ``dp`` < ``model`` < ``svm``.
"""

from torchenergy.models.crf.constraints import TransitionConstraints, bio_constraints
from torchenergy.models.crf.model import Decoded, LinearChainCRF
from torchenergy.models.crf.svm import StructuredHingeLoss, structured_hinge_loss

__all__ = [
    "Decoded",
    "LinearChainCRF",
    "StructuredHingeLoss",
    "TransitionConstraints",
    "bio_constraints",
    "structured_hinge_loss",
]
