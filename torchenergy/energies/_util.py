"""Small shared helpers for the analytic energies: parameter conversion, shape checks, Cholesky.

Private module: the public names live in :mod:`torchenergy.energies.gaussian` and
:mod:`torchenergy.energies.landscapes`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from torchenergy._checks import check_tensor
from torchenergy._ops import row_sum

LOG_2PI = math.log(2.0 * math.pi)

__all__ = [
    "LOG_2PI",
    "as_float_tensor",
    "check_vector_input",
    "checked_cholesky",
    "log_integral_1d",
    "row_groups",
    "row_sum",
]


def as_float_tensor(name: str, value: Any) -> Tensor:
    """``value`` as a floating tensor (keeps a floating tensor's dtype/device; else default dtype)."""
    if isinstance(value, Tensor):
        t = value.detach()
        if not t.is_floating_point():
            t = t.to(torch.get_default_dtype())
    else:
        try:
            t = torch.as_tensor(value, dtype=torch.get_default_dtype())
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(
                f"{name} must be a tensor or array-like of numbers, got {value!r}"
            ) from err
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be finite, got {t.tolist() if t.numel() <= 8 else t.shape}")
    return t


def check_vector_input(x: Tensor, dim: int | None, where: str) -> None:
    """Raise unless ``x`` is a floating (C, D) tensor (with ``D == dim`` when ``dim`` is given)."""
    check_tensor("x", x, min_dim=1, floating=True)
    if x.dim() != 2 or (dim is not None and x.shape[1] != dim):
        want = f"(C, {dim})" if dim is not None else "(C, D)"
        raise ValueError(f"{where} expects x of shape {want}, got shape {tuple(x.shape)}")


def row_groups(x: Tensor) -> int:
    """How many rows of ``x`` (C, D) to lay side by side for the grouped CPU layout (1: don't).

    On CPU, operations on many short rows are slow: a broadcast over a last dimension of 2 runs
    a non-vectorised loop, and BLAS multiplies a (10,000, 2) by a (2, 2) matrix about 6x slower
    than 8 times the work laid out as (1,250, 16) @ (16, 16). Grouping k rows,
    ``x.view(C/k, k·D)``, with block-diagonal ``I_k ⊗ M`` matrices gives the same per-row values
    at a fraction of the time. Used for contiguous CPU input with D <= 8 and k dividing C.
    """
    c, d = x.shape
    if d > 8 or x.device.type != "cpu" or not x.is_contiguous():
        return 1
    return math.gcd(c, 16 // d)


def checked_cholesky(name: str, cov: Tensor) -> Tensor:
    """Lower Cholesky factor of a batch of symmetric positive-definite matrices (..., D, D).

    Raises:
        ValueError: naming ``name`` if a matrix is not square, not symmetric, or not positive
            definite (singular or indefinite), with its smallest eigenvalue.
    """
    if cov.dim() < 2 or cov.shape[-1] != cov.shape[-2]:
        raise ValueError(f"{name} must be square (..., D, D), got shape {tuple(cov.shape)}")
    scale = cov.abs().amax().clamp_min(1.0)
    tol = 1e-6 if cov.dtype == torch.float64 else 1e-4
    if not bool(((cov - cov.mT).abs() <= tol * scale).all()):
        raise ValueError(
            f"{name} must be symmetric, max |cov - cov^T| = {(cov - cov.mT).abs().max().item():.3g}"
        )
    cov = 0.5 * (cov + cov.mT)
    chol, info = torch.linalg.cholesky_ex(cov)
    # Cholesky can "succeed" in floating point on a numerically singular matrix; also check
    # the conditioning through the factor's diagonal.
    diag = torch.diagonal(chol, dim1=-2, dim2=-1)
    eps = torch.finfo(cov.dtype).eps
    ill = (diag.amin(-1) ** 2) <= eps * (diag.amax(-1) ** 2)
    if bool((info != 0).any()) or bool(ill.any()) or not bool(torch.isfinite(chol).all()):
        eig = torch.linalg.eigvalsh(cov.double()).amin().item()
        raise ValueError(
            f"{name} must be positive definite (non-singular), but its smallest eigenvalue is "
            f"{eig:.3g} (shape {tuple(cov.shape)})"
        )
    return chol


def log_integral_1d(log_f: Any, lo: float, hi: float, n: int = 200_001) -> float:
    """``log ∫_lo^hi exp(log_f(t)) dt`` by Simpson's rule in float64 (for 1-D separable factors).

    The integrands used here are smooth and decay like ``exp(-t^2)`` or faster, so a fine grid
    over a wide interval is accurate to float64 precision.
    """
    t = torch.linspace(lo, hi, n, dtype=torch.float64)
    lf = log_f(t)
    m = lf.max()
    f = torch.exp(lf - m)
    h = (hi - lo) / (n - 1)
    w = torch.ones(n, dtype=torch.float64)
    w[1:-1:2] = 4.0
    w[2:-1:2] = 2.0
    return float(m + torch.log((w * f).sum() * h / 3.0))
