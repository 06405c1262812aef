"""Closed-form fields for Gaussian data ``N(μ, Σ)``: the exact answer every sampler is tested on.

For ``x_t = α x_data + σ ε`` the marginal is ``N(α μ, C_t)`` with ``C_t = α² Σ + σ² I``. With
``Σ = U diag(λ) Uᵀ`` every field is a spectral function of Σ, finite on all of [0, 1]::

    score     s(x, t) = −C_t⁻¹ (x − α μ)
    noise     ε̂ = σ C_t⁻¹ (x − α μ)
    data      x̂ = μ + α Σ C_t⁻¹ (x − α μ)
    velocity  v = α' x̂ + σσ' C_t⁻¹ (x − α μ)
    flow map  Φ_{t0→t1}(x) = α₁ μ + C₁^{1/2} C₀^{-1/2} (x − α₀ μ)

The fields are plain torch functions of (x, t), differentiable in both (so the forward-mode
endpoint limits of :class:`~torchenergy.diffusion.ModelField` apply to them too).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from torchenergy.diffusion.fields import PREDICTIONS
from torchenergy.diffusion.interpolants import Interpolant, _bc, get_interpolant

__all__ = ["GaussianPath"]


class GaussianPath:
    """Exact marginals, fields and flow map of an interpolant applied to ``N(mean, cov)`` data.

    Shapes: ``mean`` (D,), ``cov`` (D, D) symmetric positive definite; points (C, D); t (C,).

    Args:
        mean: μ, (D,).
        cov: Σ, (D, D).
        interpolant: the path (name or :class:`Interpolant`).

    Example:
        >>> g = GaussianPath(torch.zeros(2), torch.eye(2), "linear")
        >>> g.field("score")(torch.ones(1, 2), torch.tensor([0.5])).tolist()  # C = 0.5 I
        [[-2.0, -2.0]]
    """

    def __init__(self, mean: Tensor, cov: Tensor, interpolant: Interpolant | str) -> None:
        mean = torch.as_tensor(mean)
        cov = torch.as_tensor(cov, dtype=mean.dtype)
        if mean.dim() != 1 or cov.shape != (mean.numel(), mean.numel()):
            raise ValueError(
                f"mean must be (D,) and cov (D, D), got {tuple(mean.shape)} and {tuple(cov.shape)}"
            )
        lam, u = torch.linalg.eigh(cov)
        if not bool((lam > 0).all()):
            raise ValueError(f"cov must be positive definite, eigenvalues {lam.tolist()}")
        self.mean, self.cov, self.lam, self.u = mean, cov, lam, u
        self.interpolant = get_interpolant(interpolant)

    def _spec(self, x: Tensor, t: Tensor, fn) -> Tensor:
        """``U diag(fn(λ, coefs)) Uᵀ (x − α μ)`` per row."""
        c = self.interpolant.coefficients(t)
        mu, lam, u = (v.to(x) for v in (self.mean, self.lam, self.u))
        r = x - _bc(c.alpha, x) * mu
        w = fn(lam[None, :], c, self.interpolant.variance(t))  # (C, D)
        return ((r @ u) * w) @ u.T

    @staticmethod
    def _inv(lam: Tensor, c, var: Tensor) -> Tensor:
        return 1.0 / (c.alpha[:, None] ** 2 * lam + var[:, None])

    def score(self, x: Tensor, t: Tensor) -> Tensor:
        """``∇ log p_t(x)``, (C, D)."""
        return -self._spec(x, t, self._inv)

    def noise(self, x: Tensor, t: Tensor) -> Tensor:
        """``E[ε | x_t = x]``, (C, D)."""
        return self._spec(x, t, lambda lam, c, v: c.sigma[:, None] * self._inv(lam, c, v))

    def data(self, x: Tensor, t: Tensor) -> Tensor:
        """``E[x_data | x_t = x]``, (C, D)."""
        mu = self.mean.to(x)
        return mu + self._spec(
            x, t, lambda lam, c, v: c.alpha[:, None] * lam * self._inv(lam, c, v)
        )

    def velocity(self, x: Tensor, t: Tensor) -> Tensor:
        """Probability-flow velocity, (C, D)."""
        c = self.interpolant.coefficients(t)
        return _bc(c.d_alpha, x) * self.data(x, t) + self._spec(
            x, t, lambda lam, cc, v: cc.sigma_d_sigma[:, None] * self._inv(lam, cc, v)
        )

    def energy(self, x: Tensor, t: Tensor) -> Tensor:
        """``E(x, t) = −log p_t(x)`` per row (C,), differentiable in x (its score is :meth:`score`)."""
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device).expand(x.shape[0])
        c = self.interpolant.coefficients(t)
        lam = self.lam.to(x)[None, :]
        var = c.alpha[:, None] ** 2 * lam + self.interpolant.variance(t)[:, None]
        r = (x - c.alpha[:, None] * self.mean.to(x)) @ self.u.to(x)
        d = x.shape[1]
        return (
            0.5 * (r.square() / var).sum(1)
            + 0.5 * torch.log(var).sum(1)
            + 0.5 * d * math.log(2 * math.pi)
        )

    def field(self, prediction: str):
        """The exact ``model(x, t)`` for a prediction type (one of ``PREDICTIONS``)."""
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
        return getattr(self, prediction)

    def marginal(self, t: float) -> tuple[Tensor, Tensor]:
        """Mean (D,) and covariance (D, D) of x_t."""
        c = self.interpolant.coefficients(torch.tensor(float(t), dtype=torch.float64))
        a, s = float(c.alpha), float(c.sigma)
        eye = torch.eye(self.mean.numel(), dtype=self.cov.dtype)
        return a * self.mean, a * a * self.cov + s * s * eye

    def log_prob(self, x: Tensor, t: float = 1.0) -> Tensor:
        """``log p_t(x)``, (C, D) -> (C,)."""
        m, cov = self.marginal(t)
        return torch.distributions.MultivariateNormal(m.to(x), cov.to(x)).log_prob(x)

    def flow_map(self, x: Tensor, t0: float, t1: float) -> Tensor:
        """The exact probability-flow map from time t0 to t1, (C, D) -> (C, D)."""

        def coef(t: float):
            c = self.interpolant.coefficients(torch.tensor(float(t), dtype=torch.float64))
            return float(c.alpha), float(c.sigma)

        a0, s0 = coef(t0)
        a1, s1 = coef(t1)
        lam, u, mu = self.lam.to(x), self.u.to(x), self.mean.to(x)
        ratio = torch.sqrt((a1 * a1 * lam + s1 * s1) / (a0 * a0 * lam + s0 * s0))
        return a1 * mu + (((x - a0 * mu) @ u) * ratio) @ u.T

    def entropy(self) -> float:
        """Differential entropy of the data law (nats)."""
        d = self.mean.numel()
        return 0.5 * (d * (1.0 + math.log(2.0 * math.pi)) + float(torch.log(self.lam).sum()))
