"""Losses that fit an energy ``E(x)`` to data: pure functions returning small NamedTuples.

| loss | function | needs |
|---|---|---|
| contrastive divergence | :func:`contrastive_divergence` | negatives (see the makers) |
| improved CD | :func:`improved_contrastive_divergence` | chains before their last step |
| exact score matching | :func:`score_matching` | small D (Hessian trace) |
| sliced score matching | :func:`sliced_score_matching` | random projections |
| denoising score matching | :func:`denoising_score_matching` | a noise level sigma |
| multi-scale DSM (NCSN) | :func:`multiscale_denoising_score_matching` | ``energy_fn(x, sigma)`` |
| noise-contrastive estimation | :func:`noise_contrastive_estimation` | a noise distribution, ``log_z`` |
| equilibrium matching | :func:`equilibrium_matching` | nothing else (sample by descent) |

Negative makers for CD (from :mod:`torchenergy.samplers.chains`): :class:`DataNegatives` (CD-k), :class:`ShortRunNegatives`,
:class:`PersistentNegatives` (replay buffer), :class:`PersistentStateNegatives` (e.g. tempering).
Regularisers: :func:`energy_l2`, :func:`gradient_penalty`.
"""

from torchenergy.losses._common import NonFiniteEnergyError
from torchenergy.losses.contrastive_divergence import CDOutput, contrastive_divergence
from torchenergy.losses.denoising import (
    DenoisingOutput,
    denoising_score_matching,
    multiscale_denoising_score_matching,
)
from torchenergy.losses.equilibrium_matching import (
    EqMOutput,
    equilibrium_matching,
    equilibrium_target,
    truncated_decay,
)
from torchenergy.losses.improved_cd import (
    ICDOutput,
    improved_contrastive_divergence,
    nearest_neighbour_entropy,
)
from torchenergy.losses.nce import NCEOutput, noise_contrastive_estimation
from torchenergy.losses.regularizers import energy_l2, gradient_penalty
from torchenergy.losses.score_matching import (
    ScoreMatchingOutput,
    score_matching,
    sliced_score_matching,
)

# the chain makers live beside the replay buffer (they make chains, not losses); re-exported
# here because the CD losses take their output
from torchenergy.samplers import (
    DataNegatives,
    PersistentNegatives,
    PersistentStateNegatives,
    ShortRunNegatives,
    uniform_noise,
)

__all__ = [
    "CDOutput",
    "DataNegatives",
    "DenoisingOutput",
    "EqMOutput",
    "ICDOutput",
    "NCEOutput",
    "NonFiniteEnergyError",
    "PersistentNegatives",
    "PersistentStateNegatives",
    "ScoreMatchingOutput",
    "ShortRunNegatives",
    "contrastive_divergence",
    "denoising_score_matching",
    "energy_l2",
    "equilibrium_matching",
    "equilibrium_target",
    "gradient_penalty",
    "improved_contrastive_divergence",
    "multiscale_denoising_score_matching",
    "nearest_neighbour_entropy",
    "noise_contrastive_estimation",
    "score_matching",
    "sliced_score_matching",
    "truncated_decay",
    "uniform_noise",
]
