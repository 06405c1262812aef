"""DDPM ancestral sampling and DDIM, on any interpolant and any prediction type.

From a noisier time t to a cleaner t' > t, with ``a = α_t/α_t'`` and ``b² = σ_t² − a² σ_t'²``
(the forward kernel ``x_t | x_t' ~ N(a x_t', b² I)``) and ``x̂ = E[x_data | x_t]``:

* DDPM ancestral: ``x_t' ~ q(x_t' | x_t, x̂) = N((a σ_t'² x_t + b² α_t' x̂)/σ_t², σ_t'² b²/σ_t² I)``
* DDIM(η): ``x_t' = α_t' x̂ + sqrt(σ_t'² − c²) ε̂ + c z`` with ``c = η σ_t' b/σ_t``
  (η = 0 deterministic, the PF-ODE's exponential integrator; η = 1 has DDPM's variance).

Both are finite at the ends: σ_t > 0 at every start, and α_t = 0 (t = 0 on linear/cosine) gives
a = 0 with x̂ taken by :class:`~torchenergy.diffusion.ModelField`'s exact limit.

Reference: Ho, Jain & Abbeel (2020), "Denoising diffusion probabilistic models", eq. (6)–(7);
Song, Meng & Ermon (2021), "Denoising diffusion implicit models", eq. (12), (16).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from torchenergy._checks import check_positive_int
from torchenergy.diffusion.fields import ModelField
from torchenergy.diffusion.flow_sampler import FlowResult
from torchenergy.diffusion.grids import time_grid
from torchenergy.diffusion.interpolants import Interpolant, _bc, get_interpolant
from torchenergy.types import Generator

__all__ = ["ddim_sample", "ddim_update", "ddpm_sample", "ddpm_update"]


def _kernel(interp: Interpolant, t: Tensor, t1: Tensor, like: Tensor):
    c0 = interp.coefficients(t.to(like).expand(like.shape[0]))
    c1 = interp.coefficients(t1.to(like).expand(like.shape[0]))
    a = c0.alpha / c1.alpha
    b2 = torch.clamp(c0.sigma**2 - a * a * c1.sigma**2, min=0.0)
    return c0, c1, a, b2


def ddpm_update(
    field: ModelField, x: Tensor, t: Tensor, t1: Tensor, z: Tensor, y: Tensor | None = None
) -> Tensor:
    """One DDPM ancestral step t -> t1 (t < t1) with explicit noise z; (C, *D) -> (C, *D).

    Example:
        >>> from torchenergy.diffusion import GaussianPath
        >>> f = ModelField(GaussianPath(torch.zeros(1), torch.eye(1), "vp").noise, "vp", "noise")
        >>> ddpm_update(f, torch.zeros(3, 1), torch.tensor(0.5), torch.tensor(1.0), torch.ones(3, 1)).tolist()
        [[0.0], [0.0], [0.0]]
    """
    xh = field.data(x, t, y)
    c0, c1, a, b2 = _kernel(field.interpolant, t, t1, x)
    s0sq = c0.sigma**2
    mean = (_bc(a * c1.sigma**2, x) * x + _bc(b2 * c1.alpha, x) * xh) / _bc(s0sq, x)
    std = torch.sqrt(c1.sigma**2 * b2 / s0sq)
    return mean + _bc(std, x) * z


def ddim_update(
    field: ModelField,
    x: Tensor,
    t: Tensor,
    t1: Tensor,
    z: Tensor | None = None,
    *,
    eta: float = 0.0,
    y: Tensor | None = None,
) -> Tensor:
    """One DDIM(η) step t -> t1 with explicit noise z (ignored when η = 0); (C, *D) -> (C, *D).

    Example:
        >>> from torchenergy.diffusion import GaussianPath
        >>> f = ModelField(GaussianPath(torch.zeros(1), torch.eye(1), "linear").data, "linear", "data")
        >>> ddim_update(f, torch.ones(1, 1), torch.tensor(0.0), torch.tensor(1.0)).tolist()
        [[0.0]]
    """
    xh, eh, _ = field.denoise(x, t, y)
    c0, c1, _a, b2 = _kernel(field.interpolant, t, t1, x)
    c = eta * c1.sigma * torch.sqrt(b2) / c0.sigma
    out = _bc(c1.alpha, x) * xh + _bc(torch.sqrt(torch.clamp(c1.sigma**2 - c * c, min=0.0)), x) * eh
    if eta != 0.0:
        if z is None:
            raise ValueError("ddim_update with eta > 0 needs the noise z")
        out = out + _bc(c, x) * z
    return out


def _run(
    update: Callable[[Tensor, Tensor, Tensor, Tensor | None], Tensor],
    field: ModelField,
    x0: Tensor | None,
    n: int | None,
    shape: tuple[int, ...] | None,
    grid: Tensor,
    stochastic: bool,
    generator: Generator,
    dtype: torch.dtype,
    return_trajectory: bool,
) -> FlowResult:
    if x0 is None:
        if n is None:
            raise ValueError("give x0 or n")
        ev = tuple(shape) if shape is not None else (2,)
        x0 = field.interpolant.sample_prior((n, *ev), dtype=dtype, generator=generator)
    grid = grid.to(dtype=x0.dtype, device=x0.device)
    x = x0
    traj = [x] if return_trajectory else None
    for i in range(grid.numel() - 1):
        z = None
        if stochastic:
            z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        x = update(x, grid[i], grid[i + 1], z)
        if traj is not None:
            traj.append(x)
    return FlowResult(
        x.detach(), torch.stack(traj).detach() if traj else None, grid, grid.numel() - 1
    )


def ddpm_sample(
    model: Callable[..., Tensor] | ModelField,
    interpolant: Interpolant | str = "vp",
    prediction: str = "noise",
    *,
    n_steps: int = 100,
    grid: str = "uniform",
    x0: Tensor | None = None,
    n: int | None = None,
    shape: tuple[int, ...] | None = None,
    y: Tensor | None = None,
    dtype: torch.dtype = torch.float32,
    generator: Generator = None,
    return_trajectory: bool = False,
) -> FlowResult:
    """DDPM ancestral sampling over a grid of ``n_steps`` from t = 0 to t = 1.

    The last step lands on ``α(1) x̂`` (σ(1) = 0: no noise is added there).

    Example:
        >>> from torchenergy.diffusion import GaussianPath
        >>> g = GaussianPath(torch.full((2,), 2.0), torch.eye(2), "vp")
        >>> out = ddpm_sample(g.noise, n_steps=50, n=4000, generator=torch.Generator().manual_seed(0))
        >>> abs(out.x.mean().item() - 2.0) < 0.1
        True
    """
    check_positive_int("n_steps", n_steps)
    interp = get_interpolant(interpolant)
    field = model if isinstance(model, ModelField) else ModelField(model, interp, prediction)
    times = time_grid(n_steps, grid, field.interpolant)
    return _run(
        lambda x, t, t1, z: ddpm_update(field, x, t, t1, z, y),
        field,
        x0,
        n,
        shape,
        times,
        True,
        generator,
        dtype,
        return_trajectory,
    )


def ddim_sample(
    model: Callable[..., Tensor] | ModelField,
    interpolant: Interpolant | str = "vp",
    prediction: str = "noise",
    *,
    n_steps: int = 50,
    eta: float = 0.0,
    grid: str = "uniform",
    x0: Tensor | None = None,
    n: int | None = None,
    shape: tuple[int, ...] | None = None,
    y: Tensor | None = None,
    dtype: torch.dtype = torch.float32,
    generator: Generator = None,
    return_trajectory: bool = False,
) -> FlowResult:
    """DDIM sampling (η = 0: deterministic) over a grid of ``n_steps`` from t = 0 to t = 1.

    Example:
        >>> from torchenergy.diffusion import GaussianPath
        >>> g = GaussianPath(torch.full((2,), 2.0), torch.eye(2), "cosine")
        >>> out = ddim_sample(g.score, "cosine", "score", n=2000, generator=torch.Generator().manual_seed(0))
        >>> abs(out.x.mean().item() - 2.0) < 0.1
        True
    """
    check_positive_int("n_steps", n_steps)
    if not eta >= 0.0:
        raise ValueError(f"eta must be >= 0, got {eta!r}")
    interp = get_interpolant(interpolant)
    field = model if isinstance(model, ModelField) else ModelField(model, interp, prediction)
    times = time_grid(n_steps, grid, field.interpolant)
    return _run(
        lambda x, t, t1, z: ddim_update(field, x, t, t1, z, eta=eta, y=y),
        field,
        x0,
        n,
        shape,
        times,
        eta > 0,
        generator,
        dtype,
        return_trajectory,
    )
