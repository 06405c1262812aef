"""The score-based and flow bridge: interpolants, integrators, samplers, losses, likelihood.

Time convention, once: **t = 1 is data, t = 0 is noise**; ``x_t = α(t) x_data + σ(t) ε``.
Models are ``model(x, t) -> (C, *D)`` (or ``model(x, t, y)`` with labels) predicting a velocity,
score, noise or data; :class:`ModelField` converts between them exactly on all of [0, 1].

============================  ==========================================================
module                        contents
============================  ==========================================================
``interpolants``              Linear, Cosine, VP (β schedule), VE paths: α, σ, α', σ', σσ'
``fields``                    ``ModelField`` / ``convert``: exact conversions, finite at both ends
``gaussian``                  ``GaussianPath``: closed-form fields, flow map, energies for N(μ, Σ)
``grids``, ``ode``, ``sde``   uniform/Karras grids; Euler/Heun/midpoint/RK4/Dormand–Prince;
                              Euler–Maruyama and stochastic Heun with a selectable diffusion
``flow_sampler``              ``FlowSampler`` (PF-ODE or reverse SDE), ``ddim_step``
``discrete``                  DDPM ancestral and DDIM(η) on any path and prediction
``annealed``                  NCSN annealed Langevin, predictor–corrector (SNR rule)
``losses``                    flow matching (independent / exact minibatch OT), DSM, DDPM loss
``likelihood``                ``pf_ode_log_likelihood`` (exact or Hutchinson), bits/dim
``energy``                    E(x, t) models with score −∇ₓE, products, MALA/HMC annealing
``nets``, ``guidance``        TimeMLP, DiT (adaLN-Zero), classifier-free guidance
``train``                     ``fit_flow`` / ``fit_score`` / ``fit_diffusion``
============================  ==========================================================
"""

from torchenergy.diffusion.annealed import (
    annealed_langevin,
    langevin_update,
    predictor_corrector,
    snr_step_size,
)
from torchenergy.diffusion.discrete import ddim_sample, ddim_update, ddpm_sample, ddpm_update
from torchenergy.diffusion.energy import EnergyScoreModel, ProductEnergy, annealed_mcmc
from torchenergy.diffusion.fields import PREDICTIONS, ModelField, as_field, convert
from torchenergy.diffusion.flow_sampler import FlowResult, FlowSampler, ddim_step
from torchenergy.diffusion.gaussian import GaussianPath
from torchenergy.diffusion.grids import karras_grid, time_grid, uniform_grid
from torchenergy.diffusion.guidance import ClassifierFreeGuidance
from torchenergy.diffusion.interpolants import (
    CosineInterpolant,
    Interpolant,
    InterpolantCoefficients,
    LinearInterpolant,
    VEInterpolant,
    VPInterpolant,
    get_interpolant,
)
from torchenergy.diffusion.likelihood import (
    LikelihoodResult,
    bits_per_dim,
    divergence,
    pf_ode_log_likelihood,
)
from torchenergy.diffusion.losses import (
    COUPLINGS,
    WEIGHTINGS,
    DiffusionLossOutput,
    ddpm_loss,
    drop_labels,
    dsm_loss,
    flow_matching_loss,
    interpolant_loss,
    ot_pairing,
)
from torchenergy.diffusion.nets import DiT, TimeMLP, sinusoidal_embedding
from torchenergy.diffusion.ode import ODE_METHODS, ODEResult, ode_step, odeint
from torchenergy.diffusion.sde import SDE_METHODS, diffusion_coefficient, sde_step
from torchenergy.diffusion.train import FitResult, fit_diffusion, fit_flow, fit_score

__all__ = [
    "COUPLINGS",
    "ODE_METHODS",
    "PREDICTIONS",
    "SDE_METHODS",
    "WEIGHTINGS",
    "ClassifierFreeGuidance",
    "CosineInterpolant",
    "DiT",
    "DiffusionLossOutput",
    "EnergyScoreModel",
    "FitResult",
    "FlowResult",
    "FlowSampler",
    "GaussianPath",
    "Interpolant",
    "InterpolantCoefficients",
    "LikelihoodResult",
    "LinearInterpolant",
    "ModelField",
    "ODEResult",
    "ProductEnergy",
    "TimeMLP",
    "VEInterpolant",
    "VPInterpolant",
    "annealed_langevin",
    "annealed_mcmc",
    "as_field",
    "bits_per_dim",
    "convert",
    "ddim_sample",
    "ddim_step",
    "ddim_update",
    "ddpm_loss",
    "ddpm_sample",
    "ddpm_update",
    "diffusion_coefficient",
    "divergence",
    "drop_labels",
    "dsm_loss",
    "fit_diffusion",
    "fit_flow",
    "fit_score",
    "flow_matching_loss",
    "get_interpolant",
    "interpolant_loss",
    "karras_grid",
    "langevin_update",
    "ode_step",
    "odeint",
    "ot_pairing",
    "pf_ode_log_likelihood",
    "predictor_corrector",
    "sde_step",
    "sinusoidal_embedding",
    "snr_step_size",
    "time_grid",
    "uniform_grid",
]
