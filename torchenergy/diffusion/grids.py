"""Time grids from noise (t = 0) to data (t = 1): uniform, or EDM-style (Karras) spacing.

The Karras grid spaces the noise-to-signal ratio ``r = σ/α`` as
``r_i = (r_max^(1/ρ) + i/(N−1) (r_min^(1/ρ) − r_max^(1/ρ)))^ρ`` and maps each ``r_i`` back to t
on the given interpolant (bisection on the monotone ``σ/α``). The ladder runs from
``min(r(t_start), r_max)`` to ``max(r(t_end), r_min)`` (EDM's 80 and 0.002); an end outside it
(r = ∞ at α = 0, r = 0 at σ = 0) is kept as an extra node, so the grid always spans [t_start, t_end].

Reference: Karras et al. (2022), "Elucidating the design space of diffusion-based generative
models", eq. (5).
"""

from __future__ import annotations

import torch
from torch import Tensor

from torchenergy._checks import check_positive, check_positive_int
from torchenergy.diffusion.interpolants import Interpolant, get_interpolant

__all__ = ["karras_grid", "time_grid", "uniform_grid"]


def uniform_grid(
    n_steps: int, t_start: float = 0.0, t_end: float = 1.0, *, dtype: torch.dtype = torch.float64
) -> Tensor:
    """``n_steps + 1`` equally spaced times from ``t_start`` to ``t_end``, (T + 1,).

    Example:
        >>> uniform_grid(4).tolist()
        [0.0, 0.25, 0.5, 0.75, 1.0]
    """
    check_positive_int("n_steps", n_steps)
    return torch.linspace(t_start, t_end, n_steps + 1, dtype=dtype)


def _ratio(interp: Interpolant, t: Tensor) -> Tensor:
    c = interp.coefficients(t)
    return c.sigma / c.alpha


def karras_grid(
    n_steps: int,
    interpolant: Interpolant | str,
    *,
    rho: float = 7.0,
    r_max: float = 80.0,
    r_min: float = 0.002,
    t_start: float = 0.0,
    t_end: float = 1.0,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """Karras/EDM spacing of the noise-to-signal ratio, as times on ``interpolant``, (T + 1,).

    Args:
        n_steps: number of steps T (>= 1).
        interpolant: the path whose ``σ/α`` is spaced.
        rho: the EDM exponent ρ (> 0; 7 in the paper).
        r_max, r_min: the ladder's ends (EDM's 80 and 0.002); where ``σ/α`` at ``t_start``
            (``t_end``) lies outside them, that end is added as an extra first (last) node.
        t_start, t_end: the ends of the grid (noise side first).

    Example:
        >>> g = karras_grid(8, "vp")
        >>> bool((g[1:] > g[:-1]).all()), g[0].item(), g[-1].item()
        (True, 0.0, 1.0)
    """
    check_positive_int("n_steps", n_steps)
    check_positive("rho", rho)
    check_positive("r_max", r_max)
    check_positive("r_min", r_min)
    interp = get_interpolant(interpolant)
    t0 = torch.tensor(float(t_start), dtype=torch.float64)
    t1 = torch.tensor(float(t_end), dtype=torch.float64)
    r0, r1 = float(_ratio(interp, t0)), float(_ratio(interp, t1))
    lead, tail = r0 > r_max, r1 < r_min
    hi, lo = min(r0, r_max), max(r1, r_min)
    n_ladder = n_steps + 1 - int(lead) - int(tail)
    if n_ladder < 2 or hi <= lo:
        return uniform_grid(n_steps, t_start, t_end, dtype=dtype)
    i = torch.linspace(0.0, 1.0, n_ladder, dtype=torch.float64)
    r = (hi ** (1.0 / rho) + i * (lo ** (1.0 / rho) - hi ** (1.0 / rho))) ** rho
    # bisection for t with ratio(t) = r (the ratio decreases in t)
    lo_t = torch.full_like(r, float(t_start))
    hi_t = torch.full_like(r, float(t_end))
    for _ in range(80):
        mid = 0.5 * (lo_t + hi_t)
        above = _ratio(interp, mid) > r
        lo_t = torch.where(above, mid, lo_t)
        hi_t = torch.where(above, hi_t, mid)
    t = 0.5 * (lo_t + hi_t)
    if not lead:
        t[0] = float(t_start)
    if not tail:
        t[-1] = float(t_end)
    parts = [t0.reshape(1)] if lead else []
    parts.append(t)
    if tail:
        parts.append(t1.reshape(1))
    return torch.cat(parts).to(dtype)


def time_grid(
    n_steps: int,
    kind: str = "uniform",
    interpolant: Interpolant | str | None = None,
    **kwargs: float,
) -> Tensor:
    """A grid by name: ``"uniform"`` or ``"karras"`` (the latter needs ``interpolant``).

    Example:
        >>> time_grid(2).tolist()
        [0.0, 0.5, 1.0]
    """
    if kind == "uniform":
        return uniform_grid(n_steps, **kwargs)
    if kind == "karras":
        if interpolant is None:
            raise ValueError("the 'karras' grid needs an interpolant")
        return karras_grid(n_steps, interpolant, **kwargs)
    raise ValueError(f"grid must be 'uniform' or 'karras', got {kind!r}")
