"""Interpolants ``x_t = α(t)·x_data + σ(t)·ε`` between noise (t = 0) and data (t = 1).

One time convention for the whole subpackage: **t = 1 is data, t = 0 is noise**, ``ε ~ N(0, I)``.
Every interpolant gives ``α, σ`` and their time derivatives ``α', σ'`` exactly (closed forms, no
finite differences), plus ``σσ' = ½ d(σ²)/dt``, which stays finite where σ' does not (the VP path
at the data end, where ``σ ~ sqrt(1 − t)``).

=============  ======================================  =========================================
path           α(t)                                    σ(t)
=============  ======================================  =========================================
linear         t                                       1 − t
cosine         sin(πt/2)                               sin(π(1 − t)/2)  (exactly 0 at t = 1)
vp             exp(−B(1 − t)/2)                        sqrt(1 − α²),  B(τ) = β₀τ + (β₁ − β₀)τ²/2
ve             1                                       σ_min (σ_max/σ_min)^(1 − t)
=============  ======================================  =========================================

The cosine σ is written as a sine of ``π(1 − t)/2`` so that ``σ(1)`` and ``α'(1)`` are exactly 0 in
floating point (``cos(π/2) = 6.1e-17`` is what makes ``α'/α`` explode in peers' conversions).

Reference: Albergo, Boffi & Vanden-Eijnden (2023), "Stochastic interpolants: a unifying framework
for flows and diffusions"; Song et al. (2021), "Score-based generative modeling through SDEs".
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from torchenergy._checks import check_positive

__all__ = [
    "CosineInterpolant",
    "Interpolant",
    "InterpolantCoefficients",
    "LinearInterpolant",
    "VEInterpolant",
    "VPInterpolant",
    "get_interpolant",
]


class InterpolantCoefficients(NamedTuple):
    """``α, σ, α', σ', σσ'`` at times t, each shaped like t."""

    alpha: Tensor
    sigma: Tensor
    d_alpha: Tensor
    d_sigma: Tensor
    sigma_d_sigma: Tensor


class Interpolant:
    """Base class: ``x_t = α(t) x_data + σ(t) ε`` with t = 1 data, t = 0 noise.

    Subclasses implement :meth:`coefficients`. Shapes: ``t`` (C,) (or any shape) -> same shape.
    """

    name: str = "interpolant"

    def coefficients(self, t: Tensor) -> InterpolantCoefficients:
        """``α, σ, α', σ', σσ'`` at ``t``."""
        raise NotImplementedError

    def variance(self, t: Tensor) -> Tensor:
        """σ(t)², written so it is smooth in t where σ is not (override where needed)."""
        return self.coefficients(t).sigma ** 2

    def alpha(self, t: Tensor) -> Tensor:
        """α(t), the data coefficient."""
        return self.coefficients(t).alpha

    def sigma(self, t: Tensor) -> Tensor:
        """σ(t), the noise coefficient."""
        return self.coefficients(t).sigma

    def prior_std(self) -> float:
        """Standard deviation σ(0) of the noise end (the prior ``N(0, σ(0)² I)``)."""
        return float(self.coefficients(torch.zeros((), dtype=torch.float64)).sigma)

    def prior_is_exact(self) -> bool:
        """True when ``x_0 = σ(0) ε`` exactly (α(0) = 0), so the prior is the true t = 0 law."""
        return float(self.coefficients(torch.zeros((), dtype=torch.float64)).alpha) == 0.0

    def sample_prior(
        self,
        shape: tuple[int, ...],
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Draw ``σ(0) ε`` with ε ~ N(0, I), shape (C, *D)."""
        z = torch.randn(shape, generator=generator, dtype=dtype, device=device)
        return self.prior_std() * z

    def prior_log_prob(self, x: Tensor) -> Tensor:
        """``log N(x; 0, σ(0)² I)`` per row, (C, *D) -> (C,)."""
        s = self.prior_std()
        d = x[0].numel()
        sq = x.flatten(1).square().sum(1) / (s * s)
        return -0.5 * sq - 0.5 * d * math.log(2.0 * math.pi * s * s)

    def interpolate(self, x_data: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        """``x_t = α(t) x_data + σ(t) ε``; ``x_data``, ``noise`` (C, *D), ``t`` (C,)."""
        c = self.coefficients(t)
        return _bc(c.alpha, x_data) * x_data + _bc(c.sigma, noise) * noise

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _bc(coef: Tensor, x: Tensor) -> Tensor:
    """Reshape a per-row coefficient (C,) (or scalar) to broadcast against (C, *D)."""
    if coef.dim() == 0:
        return coef
    return coef.reshape(coef.shape + (1,) * (x.dim() - coef.dim()))


class LinearInterpolant(Interpolant):
    """``α = t, σ = 1 − t`` (rectified flow / conditional OT path); velocity ``x_data − ε``.

    Example:
        >>> c = LinearInterpolant().coefficients(torch.tensor([0.0, 1.0]))
        >>> c.alpha.tolist(), c.sigma.tolist()
        ([0.0, 1.0], [1.0, 0.0])

    Reference: Lipman et al. (2023), "Flow matching for generative modeling"; Liu et al. (2023),
    "Flow straight and fast".
    """

    name = "linear"

    def coefficients(self, t: Tensor) -> InterpolantCoefficients:
        one = torch.ones_like(t)
        return InterpolantCoefficients(t, 1.0 - t, one, -one, -(1.0 - t))


class CosineInterpolant(Interpolant):
    """``α = sin(πt/2), σ = sin(π(1 − t)/2)`` (trigonometric / GVP path, α² + σ² = 1).

    Example:
        >>> c = CosineInterpolant().coefficients(torch.tensor([1.0], dtype=torch.float64))
        >>> c.sigma.item(), c.d_alpha.item()  # exactly 0 at the data end
        (0.0, 0.0)

    Reference: Albergo & Vanden-Eijnden (2023), "Building normalizing flows with stochastic
    interpolants"; Ma et al. (2024), "SiT".
    """

    name = "cosine"

    def coefficients(self, t: Tensor) -> InterpolantCoefficients:
        h = 0.5 * math.pi
        a = torch.sin(h * t)
        s = torch.sin(h * (1.0 - t))
        da = h * s  # cos(πt/2) = sin(π(1−t)/2): exactly 0 at t = 1
        ds = -h * a
        return InterpolantCoefficients(a, s, da, ds, s * ds)


class VPInterpolant(Interpolant):
    """Variance-preserving path of the VP-SDE with linear β schedule (DDPM in continuous time).

    With τ = 1 − t (diffusion time), ``B(τ) = β₀τ + (β₁ − β₀)τ²/2``, ``α = exp(−B/2)``,
    ``σ = sqrt(1 − α²)`` (computed as ``sqrt(−expm1(−B))``), ``α' = ½β(τ)α``,
    ``σσ' = −½β(τ)α²`` and ``σ' = σσ'/σ`` (−inf at t = 1, where σ ~ sqrt(1 − t)).
    The noise end is only approximately the prior: α(0) = exp(−B(1)/2) ≈ 6.7e-3 for the defaults.

    Args:
        beta_min: β₀ > 0 (default 0.1).
        beta_max: β₁ ≥ β₀ (default 20).

    Example:
        >>> c = VPInterpolant().coefficients(torch.tensor([1.0]))
        >>> c.alpha.item(), c.sigma.item()
        (1.0, 0.0)

    Reference: Ho et al. (2020), "Denoising diffusion probabilistic models"; Song et al. (2021).
    """

    name = "vp"

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0) -> None:
        check_positive("beta_min", beta_min)
        check_positive("beta_max", beta_max)
        if beta_max < beta_min:
            raise ValueError(f"beta_max must be >= beta_min={beta_min}, got {beta_max}")
        self.beta_min = float(beta_min)
        self.beta_max = float(beta_max)

    def beta(self, t: Tensor) -> Tensor:
        """β at diffusion time τ = 1 − t."""
        return self.beta_min + (self.beta_max - self.beta_min) * (1.0 - t)

    def _big_b(self, t: Tensor) -> Tensor:
        tau = 1.0 - t
        return self.beta_min * tau + 0.5 * (self.beta_max - self.beta_min) * tau * tau

    def variance(self, t: Tensor) -> Tensor:
        """σ² = 1 − exp(−B), smooth at t = 1 (σ itself is not)."""
        return -torch.expm1(-self._big_b(t))

    def coefficients(self, t: Tensor) -> InterpolantCoefficients:
        tau = 1.0 - t
        big_b = self.beta_min * tau + 0.5 * (self.beta_max - self.beta_min) * tau * tau
        a = torch.exp(-0.5 * big_b)
        var = -torch.expm1(-big_b)
        s = torch.sqrt(var)
        beta = self.beta(t)
        da = 0.5 * beta * a
        sds = -0.5 * beta * a * a
        ds = torch.where(s > 0, sds / torch.where(s > 0, s, torch.ones_like(s)), -math.inf)
        return InterpolantCoefficients(a, s, da, ds, sds)

    def __repr__(self) -> str:
        return f"VPInterpolant(beta_min={self.beta_min}, beta_max={self.beta_max})"


class VEInterpolant(Interpolant):
    """Variance-exploding path ``α = 1, σ = σ_min (σ_max/σ_min)^(1 − t)`` (NCSN / VE-SDE).

    The prior ``N(0, σ_max² I)`` is approximate (the true t = 0 law is the data convolved with
    it); choose σ_max about the largest pairwise data distance (Song & Ermon 2020).

    Args:
        sigma_min: σ at t = 1 (> 0, default 0.01).
        sigma_max: σ at t = 0 (> sigma_min, default 50).

    Example:
        >>> s = VEInterpolant(0.01, 10.0).sigma(torch.tensor([0.0, 1.0], dtype=torch.float64))
        >>> [round(v, 9) for v in s.tolist()]
        [10.0, 0.01]

    Reference: Song & Ermon (2019, 2020); Song et al. (2021).
    """

    name = "ve"

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0) -> None:
        check_positive("sigma_min", sigma_min)
        check_positive("sigma_max", sigma_max)
        if sigma_max <= sigma_min:
            raise ValueError(f"sigma_max must be > sigma_min={sigma_min}, got {sigma_max}")
        self.sigma_min = float(sigma_min)
        self.sigma_max = float(sigma_max)

    def coefficients(self, t: Tensor) -> InterpolantCoefficients:
        log_ratio = math.log(self.sigma_max / self.sigma_min)
        s = self.sigma_min * torch.exp(log_ratio * (1.0 - t))
        one = torch.ones_like(t)
        ds = -log_ratio * s
        return InterpolantCoefficients(one, s, torch.zeros_like(t), ds, s * ds)

    def __repr__(self) -> str:
        return f"VEInterpolant(sigma_min={self.sigma_min}, sigma_max={self.sigma_max})"


_BY_NAME = {
    "linear": LinearInterpolant,
    "cosine": CosineInterpolant,
    "vp": VPInterpolant,
    "ve": VEInterpolant,
}


def get_interpolant(name: str | Interpolant) -> Interpolant:
    """An interpolant by name (``"linear"``, ``"cosine"``, ``"vp"``, ``"ve"``) or pass-through.

    Example:
        >>> get_interpolant("cosine")
        CosineInterpolant()
    """
    if isinstance(name, Interpolant):
        return name
    if not isinstance(name, str) or name not in _BY_NAME:
        raise ValueError(
            f"interpolant must be one of {sorted(_BY_NAME)} or an Interpolant, got {name!r}"
        )
    return _BY_NAME[name]()
