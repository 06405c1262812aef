"""Restricted Boltzmann machines: the models, block Gibbs, and CD / PCD training.

Modules, lowest first (a module imports only those above it):

* :mod:`~torchenergy.models.rbm.gibbs`: :class:`BlockGibbs`, the ``v → h → v'`` sampler kernel.
* :mod:`~torchenergy.models.rbm.model`: :class:`BernoulliRBM`, :class:`GaussianBernoulliRBM`
  (energies ``F(v)``, conditionals, sampling; ``rbm.fit`` through :func:`register_trainer`).
* :mod:`~torchenergy.models.rbm.cd`: :func:`cd_gradients` and :func:`cd_step`, the reference
  CD-k / PCD-k update.
* :mod:`~torchenergy.models.rbm.protocols`: the declared fast path (:class:`CDTrainer`,
  :class:`BernoulliSource`, :class:`RBMProducts`), its invariants and the reference parts; the
  accelerators are ``_fused`` (the in-place trainer), ``_onednn`` (fused oneDNN products) and
  ``_uniforms`` (numpy SFC64 draws).
* :mod:`~torchenergy.models.rbm.training`: :func:`fit_rbm` and the reference trainer
  :class:`CDStepTrainer`. Importing this package registers :func:`fit_rbm` as ``rbm.fit``.
"""

from torchenergy.models.rbm.cd import CDStepResult, cd_gradients, cd_step
from torchenergy.models.rbm.gibbs import BlockGibbs, BlockGibbsState
from torchenergy.models.rbm.model import BernoulliRBM, GaussianBernoulliRBM, register_trainer
from torchenergy.models.rbm.protocols import BernoulliSource, CDTrainer, RBMProducts
from torchenergy.models.rbm.training import CDStepTrainer, fit_rbm

__all__ = [
    "BernoulliRBM",
    "BernoulliSource",
    "BlockGibbs",
    "BlockGibbsState",
    "CDStepResult",
    "CDStepTrainer",
    "CDTrainer",
    "GaussianBernoulliRBM",
    "RBMProducts",
    "cd_gradients",
    "cd_step",
    "fit_rbm",
    "register_trainer",
]
