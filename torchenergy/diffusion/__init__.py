"""The score-based and flow bridge: interpolants, integrators, samplers, losses, likelihood.

Time convention, once: **t = 1 is data, t = 0 is noise**; ``x_t = α(t) x_data + σ(t) ε``.
Models are ``model(x, t) -> (C, *D)`` (or ``model(x, t, y)`` with labels) predicting a velocity,
score, noise or data; :class:`ModelField` converts between them exactly on all of [0, 1].
"""

from torchenergy.diffusion.fields import PREDICTIONS, ModelField, as_field, convert
from torchenergy.diffusion.flow_sampler import FlowResult, FlowSampler, ddim_step
from torchenergy.diffusion.gaussian import GaussianPath
from torchenergy.diffusion.grids import karras_grid, time_grid, uniform_grid
from torchenergy.diffusion.interpolants import (
    CosineInterpolant,
    Interpolant,
    InterpolantCoefficients,
    LinearInterpolant,
    VEInterpolant,
    VPInterpolant,
    get_interpolant,
)
from torchenergy.diffusion.ode import ODE_METHODS, ODEResult, ode_step, odeint
from torchenergy.diffusion.sde import SDE_METHODS, diffusion_coefficient, sde_step

__all__ = [
    "ODE_METHODS",
    "PREDICTIONS",
    "SDE_METHODS",
    "CosineInterpolant",
    "FlowResult",
    "FlowSampler",
    "GaussianPath",
    "Interpolant",
    "InterpolantCoefficients",
    "LinearInterpolant",
    "ModelField",
    "ODEResult",
    "VEInterpolant",
    "VPInterpolant",
    "as_field",
    "convert",
    "ddim_step",
    "diffusion_coefficient",
    "get_interpolant",
    "karras_grid",
    "ode_step",
    "odeint",
    "sde_step",
    "time_grid",
    "uniform_grid",
]
