"""MCMC samplers: functional ``init``/``step`` kernels, one driver, adaptation, buffers."""

from torchenergy.samplers.base import BaseInfo, DivergenceError, Sampler, unadjusted_info
from torchenergy.samplers.driver import ChainResult, run_chain
from torchenergy.samplers.gibbs_with_gradients import GibbsWithGradients, GWGState

__all__ = [
    "BaseInfo",
    "ChainResult",
    "DivergenceError",
    "GWGState",
    "GibbsWithGradients",
    "Sampler",
    "run_chain",
    "unadjusted_info",
]
