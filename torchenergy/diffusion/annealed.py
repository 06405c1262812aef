"""Annealed Langevin (NCSN) and predictor–corrector sampling with a noise-conditional score.

Both use the library's Langevin convention ``x' = x + ε s(x) + sqrt(2ε) z`` (ε = α/2 in the
papers' ``x + (α/2) s + sqrt(α) z``).

* NCSN annealed Langevin (Song & Ermon 2019, Alg. 1): over noise levels σ₁ > … > σ_L (times on
  the interpolant), ``n_inner`` Langevin steps at each level with ``α_i = lr · σ_i²/σ_L²``, i.e.
  ``ε_i = lr · σ_i² / (2 σ_L²)``; optionally a final denoising step ``x ← x̂(x, t_L)``.
* Predictor–corrector (Song et al. 2021, Alg. 1): per grid step an Euler–Maruyama step of the
  reverse SDE (predictor), then ``n_corrector`` Langevin steps at the new time with the
  signal-to-noise rule ``ε = 2 (r ‖z‖/‖s‖)²``, norms averaged over the batch (corrector).

Reference: Song & Ermon (2019), "Generative modeling by estimating gradients of the data
distribution"; Song et al. (2021), "Score-based generative modeling through SDEs", App. G.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from torchenergy._checks import check_positive, check_positive_int
from torchenergy.diffusion.fields import ModelField
from torchenergy.diffusion.flow_sampler import FlowResult
from torchenergy.diffusion.grids import time_grid
from torchenergy.diffusion.interpolants import Interpolant, _bc, get_interpolant
from torchenergy.diffusion.sde import diffusion_coefficient, sde_step
from torchenergy.types import Generator

__all__ = ["annealed_langevin", "langevin_update", "predictor_corrector", "snr_step_size"]


def langevin_update(x: Tensor, score: Tensor, eps: Tensor | float, z: Tensor) -> Tensor:
    """``x + ε s + sqrt(2ε) z`` with ε a float or per-row (C,); (C, *D) -> (C, *D).

    Example:
        >>> langevin_update(torch.zeros(1, 1), torch.ones(1, 1), 0.5, torch.ones(1, 1)).item()
        1.5
    """
    e = _bc(torch.as_tensor(eps, dtype=x.dtype, device=x.device), x)
    return x + e * score + torch.sqrt(2.0 * e) * z


def snr_step_size(score: Tensor, z: Tensor, snr: float) -> Tensor:
    """The signal-to-noise step ``ε = 2 (r ‖z‖ / ‖s‖)²`` with batch-averaged norms, a 0-dim tensor.

    The norms are averaged over the batch before the ratio (as in the reference implementation):
    a per-sample ratio explodes for samples where ‖s‖ ≈ 0, near a mode.

    Example:
        >>> round(snr_step_size(torch.ones(2, 4), torch.ones(2, 4), 0.1).item(), 6)
        0.02
    """
    gn = score.flatten(1).norm(dim=1).mean()
    zn = z.flatten(1).norm(dim=1).mean()
    return 2.0 * (snr * zn / torch.clamp(gn, min=torch.finfo(score.dtype).tiny)) ** 2


def _start(field: ModelField, x0, n, shape, dtype, generator) -> Tensor:
    if x0 is not None:
        return x0
    if n is None:
        raise ValueError("give x0 or n")
    ev = tuple(shape) if shape is not None else (2,)
    return field.interpolant.sample_prior((n, *ev), dtype=dtype, generator=generator)


def annealed_langevin(
    model: Callable[..., Tensor] | ModelField,
    interpolant: Interpolant | str = "ve",
    prediction: str = "score",
    *,
    times: Tensor | None = None,
    n_levels: int = 10,
    n_inner: int = 100,
    lr: float = 2e-5,
    denoise: bool = True,
    x0: Tensor | None = None,
    n: int | None = None,
    shape: tuple[int, ...] | None = None,
    y: Tensor | None = None,
    dtype: torch.dtype = torch.float32,
    generator: Generator = None,
    return_trajectory: bool = False,
) -> FlowResult:
    """NCSN annealed Langevin dynamics with Song & Ermon's step rule.

    Shapes: samples (C, *D); trajectory (L + 1, C, *D) (one state per level).

    Args:
        model: noise-conditional network or a :class:`ModelField`.
        interpolant: the path whose σ(t) are the noise levels (VE in the paper).
        prediction: what the model predicts (converted to a score).
        times: the levels as times (L,), increasing towards the data; default ``n_levels``
            levels uniform in t on (0, 1] (geometric σ on the VE path).
        n_inner: Langevin steps per level (T in the paper).
        lr: the paper's ε: ``α_i = lr σ_i²/σ_L²``.
        denoise: return ``x̂(x, t_L)`` after the last level (Jolicoeur-Martineau et al. 2021).
        x0, n, shape, y, dtype, generator, return_trajectory: as in FlowSampler.sample.

    Example:
        >>> from torchenergy.diffusion import GaussianPath, VEInterpolant
        >>> ve = VEInterpolant(0.05, 5.0)
        >>> g = GaussianPath(torch.ones(2), torch.eye(2), ve)
        >>> out = annealed_langevin(g.score, ve, n=2000, n_inner=50, lr=0.01,
        ...                         generator=torch.Generator().manual_seed(0))
        >>> abs(out.x.mean().item() - 1.0) < 0.1
        True
    """
    check_positive_int("n_inner", n_inner)
    check_positive("lr", lr)
    interp = get_interpolant(interpolant)
    field = model if isinstance(model, ModelField) else ModelField(model, interp, prediction)
    if times is None:
        check_positive_int("n_levels", n_levels)
        times = torch.linspace(0.0, 1.0, n_levels + 1, dtype=torch.float64)[1:]
    times = torch.as_tensor(times, dtype=torch.float64)
    sig = field.interpolant.coefficients(times).sigma
    if not bool((sig > 0).all()):
        raise ValueError(f"annealed Langevin needs sigma(t) > 0 at every level, got {sig.tolist()}")
    eps_levels = lr * sig**2 / (2.0 * sig[-1] ** 2)
    x = _start(field, x0, n, shape, dtype, generator)
    traj = [x] if return_trajectory else None
    for i in range(times.numel()):
        t = times[i].to(x)
        for _ in range(n_inner):
            s = field.score(x, t, y)
            z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            x = langevin_update(x, s, float(eps_levels[i]), z)
        if traj is not None:
            traj.append(x)
    if denoise:
        x = field.data(x, times[-1].to(x), y)
    return FlowResult(
        x.detach(), torch.stack(traj).detach() if traj else None, times, times.numel() * n_inner
    )


def predictor_corrector(
    model: Callable[..., Tensor] | ModelField,
    interpolant: Interpolant | str = "ve",
    prediction: str = "score",
    *,
    n_steps: int = 100,
    n_corrector: int = 1,
    snr: float = 0.16,
    diffusion: str | Callable[[Tensor], Tensor] = "natural",
    grid: str = "uniform",
    x0: Tensor | None = None,
    n: int | None = None,
    shape: tuple[int, ...] | None = None,
    y: Tensor | None = None,
    dtype: torch.dtype = torch.float32,
    generator: Generator = None,
    return_trajectory: bool = False,
) -> FlowResult:
    """Predictor–corrector sampling: reverse-SDE Euler–Maruyama + Langevin with the SNR rule.

    The corrector runs at every new time where σ > 0 (at σ = 0, the data end, it is skipped).

    Args:
        n_steps: predictor steps over the grid.
        n_corrector: Langevin corrector steps after each predictor step.
        snr: the signal-to-noise ratio r (0.16 for VE on CIFAR-10 in the paper).
        diffusion: the predictor's diffusion coefficient (see :mod:`~torchenergy.diffusion.sde`).
        (others as in :func:`annealed_langevin`)

    Example:
        >>> from torchenergy.diffusion import GaussianPath, VEInterpolant
        >>> ve = VEInterpolant(0.01, 5.0)
        >>> g = GaussianPath(torch.ones(2), torch.eye(2), ve)
        >>> out = predictor_corrector(g.score, ve, n=2000, n_steps=100,
        ...                           generator=torch.Generator().manual_seed(0))
        >>> abs(out.x.mean().item() - 1.0) < 0.1
        True
    """
    check_positive_int("n_steps", n_steps)
    check_positive_int("n_corrector", n_corrector, allow_zero=True)
    check_positive("snr", snr)
    interp = get_interpolant(interpolant)
    field = model if isinstance(model, ModelField) else ModelField(model, interp, prediction)
    w = diffusion_coefficient(field.interpolant, diffusion)
    grid_t = time_grid(n_steps, grid, field.interpolant)
    x = _start(field, x0, n, shape, dtype, generator)
    grid_t = grid_t.to(x)
    traj = [x] if return_trajectory else None

    def drift(xx: Tensor, t: Tensor) -> Tensor:
        v, s = field.velocity_and_score(xx, t, y)
        return v + 0.5 * w(t) * s

    n_eval = 0
    for i in range(grid_t.numel() - 1):
        t, t1 = grid_t[i], grid_t[i + 1]
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        x = sde_step("euler_maruyama", drift, w, x, t, t1 - t, z)
        n_eval += 1
        if float(field.interpolant.coefficients(t1).sigma) > 0:
            for _ in range(n_corrector):
                s = field.score(x, t1, y)
                z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
                x = langevin_update(x, s, snr_step_size(s, z, snr), z)
                n_eval += 1
        if traj is not None:
            traj.append(x)
    return FlowResult(x.detach(), torch.stack(traj).detach() if traj else None, grid_t, n_eval)
