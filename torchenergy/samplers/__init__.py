"""MCMC samplers: functional ``init``/``step`` kernels, one driver, adaptation, buffers.

Every sampler is a frozen dataclass whose first field is ``energy_fn``; ``init(x) -> State``,
``step(state, *, generator=None) -> (State, Info)``, ``sample(x0, n_steps, *, generator=None)``.
Run any of them with :func:`run_chain`.
"""

from torchenergy.samplers._common import GradState, where_chains
from torchenergy.samplers.adaptation import (
    AdaptResult,
    DualAveraging,
    DualAveragingState,
    Welford,
    WelfordState,
    adapt,
    warmup_windows,
)
from torchenergy.samplers.annealed import AnnealedLangevin, AnnealedState, geometric_schedule
from torchenergy.samplers.base import BaseInfo, DivergenceError, Sampler, unadjusted_info
from torchenergy.samplers.buffer import ReplayBuffer, sample_distribution
from torchenergy.samplers.descent import GradientDescent, Nesterov, NesterovState
from torchenergy.samplers.driver import ChainResult, run_chain
from torchenergy.samplers.gibbs_with_gradients import GibbsWithGradients, GWGState
from torchenergy.samplers.hmc import HMC
from torchenergy.samplers.integrators import (
    LeapfrogResult,
    kinetic_energy,
    leapfrog,
    sample_momentum,
)
from torchenergy.samplers.langevin import Langevin, langevin_proposal
from torchenergy.samplers.mala import MALA, mala_log_proposal
from torchenergy.samplers.mass import DenseMass, WelfordCovariance
from torchenergy.samplers.metropolis import MetropolisResult, metropolis_accept
from torchenergy.samplers.nuts import NUTS, NUTSInfo, nuts_trajectory
from torchenergy.samplers.rwm import RandomWalkMetropolis, RWMState, random_walk_proposal
from torchenergy.samplers.tempering import (
    ParallelTempering,
    TemperingInfo,
    geometric_ladder,
    tempering_state_type,
)

__all__ = [
    "HMC",
    "MALA",
    "NUTS",
    "AdaptResult",
    "AnnealedLangevin",
    "AnnealedState",
    "BaseInfo",
    "ChainResult",
    "DenseMass",
    "DivergenceError",
    "DualAveraging",
    "DualAveragingState",
    "GWGState",
    "GibbsWithGradients",
    "GradState",
    "GradientDescent",
    "Langevin",
    "LeapfrogResult",
    "MetropolisResult",
    "NUTSInfo",
    "Nesterov",
    "NesterovState",
    "ParallelTempering",
    "RWMState",
    "RandomWalkMetropolis",
    "ReplayBuffer",
    "Sampler",
    "TemperingInfo",
    "Welford",
    "WelfordCovariance",
    "WelfordState",
    "adapt",
    "geometric_ladder",
    "geometric_schedule",
    "kinetic_energy",
    "langevin_proposal",
    "leapfrog",
    "mala_log_proposal",
    "metropolis_accept",
    "nuts_trajectory",
    "random_walk_proposal",
    "run_chain",
    "sample_distribution",
    "sample_momentum",
    "tempering_state_type",
    "unadjusted_info",
    "warmup_windows",
    "where_chains",
]
