"""MCMC samplers: functional ``init``/``step`` kernels, one driver, adaptation, buffers.

Every sampler is a frozen dataclass whose first field is ``energy_fn``; ``init(x) -> State``,
``step(state, *, generator=None) -> (State, Info)``, ``sample(x0, n_steps, *, generator=None)``.
Run any of them with :func:`run_chain`.

What is here: the kernels; :func:`run_chain` and :func:`adapt`; the replay buffer and the chain
makers of a training step; and the parts a kernel author composes (the :class:`Sampler` mixin,
the declared :class:`Kernel` protocols, :class:`GradState`, :class:`BaseInfo`, Metropolis
accept, whole-state select, the leapfrog integrator and the Langevin/MALA proposals). Internals
(adaptation states, per-kernel State types) are in their modules, e.g.
:mod:`torchenergy.samplers.adaptation`.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

from torchenergy.samplers.adaptation import adapt
from torchenergy.samplers.annealed import AnnealedLangevin, geometric_schedule
from torchenergy.samplers.base import (
    BaseInfo,
    BlockKernel,
    DivergenceError,
    Kernel,
    NonFiniteStartError,
    UncheckedKernel,
    unadjusted_info,
)
from torchenergy.samplers.buffer import ReplayBuffer
from torchenergy.samplers.chains import (
    DataNegatives,
    PersistentNegatives,
    PersistentStateNegatives,
    ShortRunNegatives,
    uniform_noise,
)
from torchenergy.samplers.descent import GradientDescent, Nesterov
from torchenergy.samplers.driver import ChainResult, Sampler, run_chain
from torchenergy.samplers.gibbs_with_gradients import GibbsWithGradients
from torchenergy.samplers.hmc import HMC
from torchenergy.samplers.integrators import kinetic_energy, leapfrog, sample_momentum
from torchenergy.samplers.langevin import Langevin
from torchenergy.samplers.mala import MALA, mala_log_proposal
from torchenergy.samplers.mass import DenseMass
from torchenergy.samplers.metropolis import metropolis_accept
from torchenergy.samplers.nuts import NUTS
from torchenergy.samplers.proposals import (
    GradState,
    hold_nonfinite,
    langevin_proposal,
    select_state,
    where_chains,
)
from torchenergy.samplers.rwm import RandomWalkMetropolis
from torchenergy.samplers.tempering import ParallelTempering, geometric_ladder

__all__ = [
    "HMC",
    "MALA",
    "NUTS",
    "AnnealedLangevin",
    "BaseInfo",
    "BlockKernel",
    "ChainResult",
    "DataNegatives",
    "DenseMass",
    "DivergenceError",
    "GibbsWithGradients",
    "GradState",
    "GradientDescent",
    "Kernel",
    "Langevin",
    "Nesterov",
    "NonFiniteStartError",
    "ParallelTempering",
    "PersistentNegatives",
    "PersistentStateNegatives",
    "RandomWalkMetropolis",
    "ReplayBuffer",
    "Sampler",
    "ShortRunNegatives",
    "UncheckedKernel",
    "adapt",
    "geometric_ladder",
    "geometric_schedule",
    "hold_nonfinite",
    "kinetic_energy",
    "langevin_proposal",
    "leapfrog",
    "mala_log_proposal",
    "metropolis_accept",
    "run_chain",
    "sample_momentum",
    "select_state",
    "unadjusted_info",
    "uniform_noise",
    "where_chains",
]

# names exported here before 0.2, now only in their modules: still found, with a warning
_MOVED = {
    "AdaptResult": "adaptation",
    "DualAveraging": "adaptation",
    "DualAveragingState": "adaptation",
    "Welford": "adaptation",
    "WelfordState": "adaptation",
    "warmup_windows": "adaptation",
    "AnnealedState": "annealed",
    "GWGState": "gibbs_with_gradients",
    "NesterovState": "descent",
    "TemperingInfo": "tempering",
    "tempering_state_type": "tempering",
    "LeapfrogResult": "integrators",
    "MetropolisResult": "metropolis",
    "sample_distribution": "buffer",
}


def __getattr__(name: str) -> Any:
    module = _MOVED.get(name)
    if module is None:
        raise AttributeError(f"module 'torchenergy.samplers' has no attribute {name!r}")
    warnings.warn(
        f"torchenergy.samplers.{name} is deprecated: import it from "
        f"torchenergy.samplers.{module} (the package exports the kernels and the parts a "
        "kernel author composes; this alias goes in 0.2)",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(f"torchenergy.samplers.{module}"), name)
