"""Sample quality on features: the Fréchet distance between Gaussian fits and the kernel distance.

* :func:`frechet_distance` - ``‖μa − μb‖² + tr(Σa + Σb − 2 (Σa^{1/2} Σb Σa^{1/2})^{1/2})``, the
  2-Wasserstein distance (squared) between the Gaussians fitted to two feature sets. The matrix
  square roots come from symmetric eigendecompositions in float64 (eigenvalues clipped at 0), so
  the result is real and stable even for singular covariances (no complex ``sqrtm``). On
  Inception features this is FID; here the features are those of a small classifier trained by
  the project (:mod:`torchenergy.features`), so it is **not** FID and not comparable to it.
* :func:`kernel_distance` - the kernel inception distance formula (KID): the unbiased MMD² with
  the cubic polynomial kernel ``k(a, b) = (a·b / d + 1)³``, averaged over random subsets.

References: M. Heusel et al., *GANs Trained by a Two Time-Scale Update Rule Converge to a Local
Nash Equilibrium*, NeurIPS 2017; D. C. Dowson and B. V. Landau, *The Fréchet distance between
multivariate normal distributions*, J. Multivariate Anal. 1982; M. Bińkowski et al.,
*Demystifying MMD GANs*, ICLR 2018.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

# no torchenergy imports: this module sits below ``metrics``, which re-exports it


def check_tensor(name: str, value: object, *, min_dim: int = 0, floating: bool = False) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.dim() < min_dim or (floating and not value.is_floating_point()):
        raise ValueError(
            f"{name} must be a floating tensor with >= {min_dim} dims, got dtype {value.dtype}, "
            f"shape {tuple(value.shape)}"
        )
    return value


def check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")


def check_positive(name: str, value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not 0 < value < float("inf")
    ):
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")


__all__ = [
    "KernelDistance",
    "frechet_distance",
    "frechet_distance_gaussians",
    "kernel_distance",
    "polynomial_mmd2",
    "sqrtm_psd",
]


def _feats(name: str, f: Tensor) -> Tensor:
    check_tensor(name, f, min_dim=2, floating=True)
    if f.dim() != 2 or f.shape[0] < 2:
        raise ValueError(f"{name} must have shape (N, F) with N >= 2, got {tuple(f.shape)}")
    return f.detach().to(torch.float64)


def sqrtm_psd(m: Tensor) -> Tensor:
    """Symmetric square root of a symmetric positive semi-definite matrix (F, F), float64.

    Example:
        >>> sqrtm_psd(torch.diag(torch.tensor([4.0, 9.0]))).diag().tolist()
        [2.0, 3.0]
    """
    m = m.to(torch.float64)
    m = 0.5 * (m + m.T)
    vals, vecs = torch.linalg.eigh(m)
    return (vecs * vals.clamp_min(0).sqrt()) @ vecs.T


def frechet_distance_gaussians(mu_a: Tensor, cov_a: Tensor, mu_b: Tensor, cov_b: Tensor) -> Tensor:
    """Closed-form squared Fréchet (2-Wasserstein) distance between N(μa, Σa) and N(μb, Σb).

    Shapes: means (F,), covariances (F, F) -> 0-dim float64.

    Example:
        >>> i = torch.eye(2)
        >>> float(frechet_distance_gaussians(torch.zeros(2), i, torch.ones(2), 4 * i))
        4.0
    """
    mu_a, mu_b = mu_a.to(torch.float64), mu_b.to(torch.float64)
    cov_a, cov_b = cov_a.to(torch.float64), cov_b.to(torch.float64)
    if mu_a.shape != mu_b.shape or cov_a.shape != cov_b.shape or cov_a.shape != (*mu_a.shape,) * 2:
        raise ValueError(
            f"means must be (F,) and covariances (F, F) alike, got {tuple(mu_a.shape)}, "
            f"{tuple(cov_a.shape)}, {tuple(mu_b.shape)}, {tuple(cov_b.shape)}"
        )
    s = sqrtm_psd(cov_a)
    cross = torch.linalg.eigvalsh(0.5 * ((s @ cov_b @ s) + (s @ cov_b @ s).T)).clamp_min(0).sqrt()
    d2 = (mu_a - mu_b).pow(2).sum() + torch.trace(cov_a) + torch.trace(cov_b) - 2 * cross.sum()
    return d2.clamp_min(0)


def frechet_distance(feat_a: Tensor, feat_b: Tensor) -> Tensor:
    """Fréchet distance between Gaussian fits (mean, unbiased covariance) of two feature sets.

    Shapes: ``feat_a`` (N, F), ``feat_b`` (M, F) -> 0-dim float64 (a squared distance, as FID).

    Example:
        >>> f = torch.randn(100, 3, generator=torch.Generator().manual_seed(0))
        >>> float(frechet_distance(f, f)) < 1e-10
        True
    """
    a, b = _feats("feat_a", feat_a), _feats("feat_b", feat_b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sets differ in width: {a.shape[1]} and {b.shape[1]}")
    return frechet_distance_gaussians(a.mean(0), torch.cov(a.T), b.mean(0), torch.cov(b.T))


def polynomial_mmd2(
    feat_a: Tensor,
    feat_b: Tensor,
    *,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1.0,
) -> Tensor:
    """Unbiased MMD² with ``k(a, b) = (γ a·b + coef0)^degree`` (γ = 1/F by default), 0-dim.

    Shapes: (N, F) and (M, F), N, M >= 2. The diagonal terms are left out of the within-set sums.
    """
    a, b = _feats("feat_a", feat_a), _feats("feat_b", feat_b)
    check_positive_int("degree", degree)
    g = 1.0 / a.shape[1] if gamma is None else gamma
    check_positive("gamma", g)
    n, m = a.shape[0], b.shape[0]
    kaa = (g * a @ a.T + coef0).pow(degree)
    kbb = (g * b @ b.T + coef0).pow(degree)
    kab = (g * a @ b.T + coef0).pow(degree)
    within_a = (kaa.sum() - kaa.diagonal().sum()) / (n * (n - 1))
    within_b = (kbb.sum() - kbb.diagonal().sum()) / (m * (m - 1))
    return within_a + within_b - 2 * kab.mean()


class KernelDistance(NamedTuple):
    """:func:`kernel_distance`'s result: the mean over subsets and its standard deviation."""

    mean: Tensor
    std: Tensor


def kernel_distance(
    feat_a: Tensor,
    feat_b: Tensor,
    *,
    n_subsets: int = 10,
    subset_size: int = 1000,
    degree: int = 3,
    generator: torch.Generator | None = None,
) -> KernelDistance:
    """Kernel distance (the KID formula): unbiased polynomial MMD² averaged over random subsets.

    Each of ``n_subsets`` draws ``min(subset_size, N, M)`` rows of each set without replacement;
    every subset's estimate is unbiased, so their mean is too.

    Shapes: (N, F) and (M, F) -> two 0-dim float64 tensors.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> a, b = torch.randn(200, 4, generator=g), torch.randn(200, 4, generator=g) + 1
        >>> kernel_distance(a, b, n_subsets=3, subset_size=100, generator=g).mean > 0
        tensor(True)
    """
    a, b = _feats("feat_a", feat_a), _feats("feat_b", feat_b)
    check_positive_int("n_subsets", n_subsets)
    check_positive_int("subset_size", subset_size)
    k = min(subset_size, a.shape[0], b.shape[0])
    vals = []
    for _ in range(n_subsets):
        ia = torch.randperm(a.shape[0], generator=generator)[:k]
        ib = torch.randperm(b.shape[0], generator=generator)[:k]
        vals.append(polynomial_mmd2(a[ia], b[ib], degree=degree))
    v = torch.stack(vals)
    return KernelDistance(v.mean(), v.std() if n_subsets > 1 else torch.zeros((), dtype=v.dtype))
