"""Mass matrices for the Hamiltonian and Langevin kernels: diagonal (a tensor) or dense.

An inverse mass ``M⁻¹`` is given to HMC, NUTS, MALA and random-walk Metropolis as one of

* ``None``: the identity;
* a positive float or a tensor of event shape D or (C, *D): a diagonal ``M⁻¹`` (elementwise);
* :class:`DenseMass`: a dense symmetric positive-definite ``M⁻¹`` of shape (d, d) over the
  flattened event, d = prod(D), shared by all chains.

A good ``M⁻¹`` is the target's covariance (this is what window adaptation estimates). With the
lower Cholesky factor ``M⁻¹ = L Lᵀ`` (rows ``p`` of shape (C, d))::

    velocity  M⁻¹ p      = p @ M⁻¹
    momentum  p ~ N(0, M) = z @ L⁻¹          (cov L⁻ᵀ L⁻¹ = M)
    noise     N(0, M⁻¹)   = z @ Lᵀ
    K(p)      = 0.5 pᵀ M⁻¹ p

Reference:
    Neal (2011), MCMC using Hamiltonian dynamics, section 5.4.1 (linear transformations);
    Girolami & Calderhead (2011), Riemann manifold Langevin and Hamiltonian Monte Carlo.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import Tensor

from torchenergy._checks import check_positive

__all__ = [
    "CovarianceState",
    "DenseMass",
    "InverseMass",
    "WelfordCovariance",
    "check_inverse_mass",
    "check_inverse_mass_shape",
    "inverse_mass_apply",
    "is_dense",
]


def _checked_cholesky(name: str, m: Tensor) -> Tensor:
    """Lower Cholesky factor of a symmetric positive-definite (d, d) matrix, or ``ValueError``."""
    if m.shape[0] != m.shape[1]:
        raise ValueError(f"{name} must be square (d, d), got shape {tuple(m.shape)}")
    tol = (1e-6 if m.dtype == torch.float64 else 1e-4) * float(m.abs().amax().clamp_min(1.0))
    asym = float((m - m.T).abs().amax())
    if asym > tol:
        raise ValueError(f"{name} must be symmetric, max |M - M^T| = {asym:.3g}")
    chol, info = torch.linalg.cholesky_ex(0.5 * (m + m.T))
    diag = torch.diagonal(chol)
    ill = float(diag.amin() ** 2) <= torch.finfo(m.dtype).eps * float(diag.amax() ** 2)
    if int(info) != 0 or ill or not bool(torch.isfinite(chol).all()):
        eig = float(torch.linalg.eigvalsh(0.5 * (m + m.T).double()).amin())
        raise ValueError(
            f"{name} must be positive definite, but its smallest eigenvalue is {eig:.3g} "
            f"(shape {tuple(m.shape)})"
        )
    return chol


@dataclass(frozen=True, eq=False)
class DenseMass:
    """A dense inverse mass matrix ``M⁻¹`` (d, d), d = prod(D), with its Cholesky factors.

    Args:
        inverse: symmetric positive-definite ``M⁻¹`` (d, d) (e.g. the target covariance).

    Raises:
        ValueError: if ``inverse`` is not square, symmetric and positive definite.

    Example:
        >>> m = DenseMass(torch.tensor([[2.0, 0.5], [0.5, 1.0]]))
        >>> torch.allclose(m.chol @ m.chol.T, m.inverse)
        True
        >>> m.velocity(torch.ones(3, 2)).shape
        torch.Size([3, 2])
    """

    inverse: Tensor
    chol: Tensor = field(init=False, repr=False)
    chol_inv: Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        m = self.inverse
        if not isinstance(m, Tensor) or not m.is_floating_point():
            raise TypeError(
                f"DenseMass.inverse must be a floating tensor (d, d), got {type(m).__name__}"
            )
        if m.dim() != 2:
            raise ValueError(f"DenseMass.inverse must have shape (d, d), got {tuple(m.shape)}")
        m = m.detach()
        chol = _checked_cholesky("DenseMass.inverse", m)
        eye = torch.eye(m.shape[0], dtype=m.dtype, device=m.device)
        chol_inv = torch.linalg.solve_triangular(chol, eye, upper=False)
        object.__setattr__(self, "inverse", 0.5 * (m + m.T))
        object.__setattr__(self, "chol", chol)
        object.__setattr__(self, "chol_inv", chol_inv)

    @property
    def dim(self) -> int:
        """d, the flattened event size."""
        return self.inverse.shape[0]

    def _get(self, name: str, x: Tensor) -> Tensor:
        return getattr(self, name).to(device=x.device, dtype=x.dtype)

    def check(self, x: Tensor) -> None:
        """Raise ``ValueError`` unless d = prod(D) of ``x`` (C, *D)."""
        d = x[0].numel()
        if d != self.dim:
            raise ValueError(
                f"DenseMass is {self.dim} x {self.dim} but the event of x (shape "
                f"{tuple(x.shape)}) has d = prod(D) = {d} entries"
            )

    def velocity(self, p: Tensor) -> Tensor:
        """``M⁻¹ p`` per chain; ``p`` (C, *D) -> (C, *D)."""
        return (p.flatten(1) @ self._get("inverse", p)).view(p.shape)

    def momentum(self, z: Tensor) -> Tensor:
        """``N(0, M)`` draws from standard normals ``z`` (C, *D): ``z @ L⁻¹``."""
        return (z.flatten(1) @ self._get("chol_inv", z)).view(z.shape)

    def noise(self, z: Tensor) -> Tensor:
        """``N(0, M⁻¹)`` draws from standard normals ``z`` (C, *D): ``z @ Lᵀ``."""
        return (z.flatten(1) @ self._get("chol", z).T).view(z.shape)

    def whiten(self, r: Tensor) -> Tensor:
        """``L⁻¹ r`` per chain (so ``|L⁻¹ r|² = rᵀ M r``); ``r`` (C, *D) -> (C, d)."""
        return r.flatten(1) @ self._get("chol_inv", r).T

    def log_det(self) -> Tensor:
        """``log det M⁻¹``, a 0-dim tensor."""
        return 2.0 * torch.diagonal(self.chol).log().sum()


InverseMass = float | Tensor | DenseMass | None


def is_dense(inverse_mass: object) -> bool:
    """Whether ``inverse_mass`` is a :class:`DenseMass`."""
    return isinstance(inverse_mass, DenseMass)


def inverse_mass_apply(p: Tensor, inverse_mass: InverseMass) -> Tensor:
    """``M⁻¹ p`` for any inverse mass (None, float, diagonal tensor, :class:`DenseMass`).

    Shapes: ``p`` (C, *D) -> (C, *D).

    Example:
        >>> inverse_mass_apply(torch.ones(2, 2), torch.tensor([1.0, 3.0])).tolist()
        [[1.0, 3.0], [1.0, 3.0]]
    """
    if inverse_mass is None:
        return p
    if isinstance(inverse_mass, DenseMass):
        return inverse_mass.velocity(p)
    if isinstance(inverse_mass, Tensor):
        return p * inverse_mass.to(device=p.device, dtype=p.dtype)
    return p * inverse_mass


def check_inverse_mass(inverse_mass: object) -> None:
    """Constructor check: None, a positive float or tensor (diagonal), or a :class:`DenseMass`."""
    if inverse_mass is None or isinstance(inverse_mass, DenseMass):
        return
    check_positive("inverse_mass", inverse_mass)


def check_inverse_mass_shape(inverse_mass: InverseMass, x: Tensor) -> None:
    """``init`` check against the points ``x`` (C, *D): a diagonal tensor must have shape D or
    (C, *D); a :class:`DenseMass` must be (d, d) with d = prod(D)."""
    if isinstance(inverse_mass, DenseMass):
        inverse_mass.check(x)
        return
    if isinstance(inverse_mass, Tensor) and inverse_mass.dim() > 0:
        event = tuple(x.shape[1:])
        if tuple(inverse_mass.shape) not in (event, tuple(x.shape)):
            hint = ""
            d = x[0].numel()
            if tuple(inverse_mass.shape) == (d, d):
                hint = "; for a dense (d, d) inverse mass pass DenseMass(matrix)"
            raise ValueError(
                f"inverse_mass must have the event shape D = {event} or (C, *D) = "
                f"{tuple(x.shape)}, got shape {tuple(inverse_mass.shape)}{hint}"
            )


class CovarianceState(NamedTuple):
    """Streaming mean and co-moment of flattened draws (pooled over chains).

    Attributes:
        count: number of draws so far, shape ().
        mean: running mean (d,).
        m2: sum of outer products of deviations (d, d).
    """

    count: Tensor
    mean: Tensor
    m2: Tensor


class WelfordCovariance:
    """Streaming (Welford / Chan et al.) covariance of draws ``x`` (C, *D), pooled over chains.

    Each update merges the C draws of one step as a batch; :meth:`covariance` gives the
    (d, d) sample covariance of the flattened event, regularised like Stan:
    ``n/(n+5) · Σ + 1e-3 · 5/(n+5) · I``.

    Example:
        >>> w = WelfordCovariance()
        >>> s = w.init(torch.zeros(8, 3))
        >>> s = w.update(s, torch.randn(8, 3))
        >>> w.covariance(s).shape
        torch.Size([3, 3])
    """

    def init(self, like: Tensor) -> CovarianceState:
        """Empty state for draws shaped like ``like`` (C, *D)."""
        d = like[0].numel()
        kw = {"device": like.device, "dtype": like.dtype}
        return CovarianceState(torch.zeros((), **kw), torch.zeros(d, **kw), torch.zeros(d, d, **kw))

    def update(self, state: CovarianceState, x: Tensor) -> CovarianceState:
        """Add the draws ``x`` (C, *D), one per chain."""
        f = x.detach().flatten(1).to(state.mean)
        n_b = f.shape[0]
        mean_b = f.mean(0)
        c = f - mean_b
        n = state.count + n_b
        delta = mean_b - state.mean
        m2 = state.m2 + c.T @ c + torch.outer(delta, delta) * (state.count * n_b / n)
        return CovarianceState(n, state.mean + delta * (n_b / n), m2)

    def covariance(self, state: CovarianceState, *, regularize: bool = True) -> Tensor:
        """Sample covariance ``m2 / (n − 1)`` (d, d), Stan-regularised when ``regularize``."""
        n = state.count
        cov = state.m2 / (n - 1.0).clamp_min(1.0)
        if regularize:
            eye = torch.eye(cov.shape[0], dtype=cov.dtype, device=cov.device)
            cov = (n / (n + 5.0)) * cov + 1e-3 * (5.0 / (n + 5.0)) * eye
        return 0.5 * (cov + cov.T)
