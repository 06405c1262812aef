"""MCMC samplers: functional ``init``/``step`` kernels, one driver, adaptation, buffers."""

from torchenergy.samplers.base import BaseInfo, DivergenceError, Sampler, unadjusted_info
from torchenergy.samplers.driver import ChainResult, run_chain

__all__ = ["BaseInfo", "ChainResult", "DivergenceError", "Sampler", "run_chain", "unadjusted_info"]
