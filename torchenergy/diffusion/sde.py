"""The reverse SDE and its integrators: Euler–Maruyama and stochastic Heun (additive noise).

Towards the data (t increasing), for any diffusion coefficient ``w(t) ≥ 0``::

    dx = [v(x, t) + ½ w(t) s(x, t)] dt + sqrt(w(t)) dW

has the same marginals p_t as the probability-flow ODE ``dx = v dt`` (the added part is a Langevin
diffusion that leaves p_t invariant; in the library's step convention ε = w·dt/2). Choices of w:

* ``"natural"``: ``g² = 2(α' σ²/α − σσ')``, the forward SDE's diffusion (β(τ) for VP,
  ``2σ² log(σ_max/σ_min)`` for VE): the reverse-time SDE of Song et al. (2021). Infinite where
  α = 0 (linear/cosine at t = 0), which is refused.
* ``"sigma"``: ``w = scale·σ(t)`` (finite everywhere, 0 at the data end), the SiT default form.
* ``"constant"``: ``w = scale``; or any callable ``w(t) -> tensor``.

Steps take the Gaussian increment z (C, *D) explicitly (pure functions of their inputs):

* Euler–Maruyama: ``x' = x + h b(x, t) + sqrt(w(t) h) z``
* stochastic Heun (Runge–Kutta for additive noise, strong order 1):
  ``x̃ = x + h b(x, t) + sqrt(w(t) h) z``,
  ``x' = x + h (b(x, t) + b(x̃, t + h))/2 + sqrt(h) (sqrt(w(t)) + sqrt(w(t + h)))/2 · z``

Reference: Song et al. (2021), "Score-based generative modeling through SDEs", eq. (6);
Kloeden & Platen (1992), "Numerical solution of SDEs", ch. 11; Ma et al. (2024), "SiT".
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from torchenergy.diffusion.interpolants import Interpolant

__all__ = ["SDE_METHODS", "diffusion_coefficient", "sde_step"]

#: SDE integrators.
SDE_METHODS = ("euler_maruyama", "stochastic_heun")

Drift = Callable[[Tensor, Tensor], Tensor]


def diffusion_coefficient(
    interpolant: Interpolant, kind: str | Callable[[Tensor], Tensor] = "sigma", scale: float = 1.0
) -> Callable[[Tensor], Tensor]:
    """The function ``t -> w(t)`` (a 0-dim tensor in, same out) for a named choice.

    Example:
        >>> from torchenergy.diffusion import VPInterpolant
        >>> w = diffusion_coefficient(VPInterpolant(), "natural")
        >>> round(w(torch.tensor(1.0)).item(), 6)  # β_min at the data end
        0.1
    """
    if callable(kind):
        return kind
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale >= 0):
        raise ValueError(f"scale must be a finite number >= 0, got {scale!r}")
    if kind == "natural":

        def w(t: Tensor) -> Tensor:
            c = interpolant.coefficients(t)
            if bool((c.alpha <= 0).any()):
                raise ValueError(
                    f"the natural diffusion is infinite where alpha(t) = 0 ({interpolant!r} at "
                    f"t = {t.tolist()}); use diffusion='sigma' or 'constant'"
                )
            return scale * 2.0 * (c.d_alpha * c.sigma**2 / c.alpha - c.sigma_d_sigma)

        return w
    if kind == "sigma":
        return lambda t: scale * interpolant.coefficients(t).sigma
    if kind == "constant":
        return lambda t: torch.full_like(t, float(scale))
    raise ValueError(
        f"diffusion must be 'natural', 'sigma', 'constant' or a callable, got {kind!r}"
    )


def sde_step(
    method: str,
    drift: Drift,
    w: Callable[[Tensor], Tensor],
    x: Tensor,
    t: Tensor,
    h: Tensor,
    z: Tensor,
) -> Tensor:
    """One step of the SDE ``dx = b(x, t) dt + sqrt(w(t)) dW`` with increment noise z ~ N(0, I).

    Shapes: ``x``, ``z`` (C, *D); ``t``, ``h`` 0-dim tensors -> (C, *D).

    Example:
        >>> x = sde_step("euler_maruyama", lambda x, t: -x, lambda t: t * 0 + 2.0,
        ...              torch.ones(1, 1), torch.tensor(0.0), torch.tensor(0.5), torch.ones(1, 1))
        >>> x.item()  # 1 - 0.5 + sqrt(2 * 0.5)
        1.5
    """
    if method not in SDE_METHODS:
        raise ValueError(f"method must be one of {SDE_METHODS}, got {method!r}")
    w0 = torch.sqrt(torch.clamp(w(t), min=0.0))
    b0 = drift(x, t)
    pred = x + h * b0 + torch.sqrt(h) * w0 * z
    if method == "euler_maruyama":
        return pred
    w1 = torch.sqrt(torch.clamp(w(t + h), min=0.0))
    b1 = drift(pred, t + h)
    return x + 0.5 * h * (b0 + b1) + torch.sqrt(h) * 0.5 * (w0 + w1) * z
