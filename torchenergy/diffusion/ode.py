"""ODE integrators for ``dx/dt = f(x, t)``: Euler, Heun, midpoint, RK4, adaptive Dormand–Prince.

A fixed-grid step maps ``(f, x, t, h) -> x'``; :func:`odeint` runs one over a grid (T + 1,) and
returns the end point and, optionally, the trajectory (T + 1, C, *D). Orders (global error in h):
Euler 1, Heun 2, midpoint 2, RK4 4, Dormand–Prince 5(4) with step-size control.

Update rules (k₁ = f(x, t)):

* Euler: ``x + h k₁``
* Heun: ``k₂ = f(x + h k₁, t + h)``, ``x + h (k₁ + k₂)/2``
* midpoint: ``k₂ = f(x + h k₁/2, t + h/2)``, ``x + h k₂``
* RK4: the classical four-stage rule, ``x + h (k₁ + 2k₂ + 2k₃ + k₄)/6``

Reference: Hairer, Nørsett & Wanner, "Solving Ordinary Differential Equations I" (1993), II.1–II.5;
Dormand & Prince (1980), "A family of embedded Runge-Kutta formulae".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["ODE_METHODS", "ODEResult", "ode_step", "odeint"]

Field = Callable[[Tensor, Tensor], Tensor]

#: Fixed-grid methods and their orders; ``"dopri5"`` is adaptive.
ODE_METHODS = {"euler": 1, "heun": 2, "midpoint": 2, "rk4": 4, "dopri5": 5}


class ODEResult(NamedTuple):
    """What :func:`odeint` returns.

    Attributes:
        x: the end point (C, *D).
        trajectory: states at the grid times (T + 1, C, *D), or None.
        n_evals: number of evaluations of f (a Python int).
    """

    x: Tensor
    trajectory: Tensor | None
    n_evals: int


def _euler(f: Field, x: Tensor, t: Tensor, h: Tensor) -> tuple[Tensor, int]:
    return x + h * f(x, t), 1


def _heun(f: Field, x: Tensor, t: Tensor, h: Tensor) -> tuple[Tensor, int]:
    k1 = f(x, t)
    k2 = f(x + h * k1, t + h)
    return x + 0.5 * h * (k1 + k2), 2


def _midpoint(f: Field, x: Tensor, t: Tensor, h: Tensor) -> tuple[Tensor, int]:
    k1 = f(x, t)
    return x + h * f(x + 0.5 * h * k1, t + 0.5 * h), 2


def _rk4(f: Field, x: Tensor, t: Tensor, h: Tensor) -> tuple[Tensor, int]:
    k1 = f(x, t)
    k2 = f(x + 0.5 * h * k1, t + 0.5 * h)
    k3 = f(x + 0.5 * h * k2, t + 0.5 * h)
    k4 = f(x + h * k3, t + h)
    return x + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4), 4


_STEPS = {"euler": _euler, "heun": _heun, "midpoint": _midpoint, "rk4": _rk4}

# Dormand–Prince 5(4) tableau
_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
)
_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
_B5 = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)
_B4 = (5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40)


def _dopri5(
    f: Field, x: Tensor, t0: Tensor, t1: Tensor, rtol: float, atol: float, h0: float | None
) -> tuple[Tensor, int, float]:
    """Adaptive Dormand–Prince from t0 to t1 (one error norm for the whole batch)."""
    span = float(t1 - t0)
    if span == 0.0:
        return x, 0, h0 or 0.0
    direction = 1.0 if span > 0 else -1.0
    h = abs(h0) if h0 else abs(span) / 20.0
    t = float(t0)
    k1 = f(x, t0.new_tensor(t))
    n = 1
    while direction * (float(t1) - t) > 1e-15 * max(1.0, abs(t)):
        h = min(h, abs(float(t1) - t))
        hs = direction * h
        ks = [k1]
        for i in range(1, 7):
            xi = x
            for a, k in zip(_A[i], ks):
                if a != 0.0:
                    xi = xi + (hs * a) * k
            ks.append(f(xi, t0.new_tensor(t + _C[i] * hs)))
        n += 6
        x5 = xi  # stage 7 point is the 5th-order solution (FSAL)
        err = hs * sum(
            ((b5 - b4) * k for b5, b4, k in zip(_B5, _B4, ks) if b5 != b4), torch.zeros_like(x)
        )
        scale = atol + rtol * torch.maximum(x.abs(), x5.abs())
        norm = float(torch.sqrt(torch.mean((err / scale) ** 2)))
        if norm <= 1.0 or h < 1e-12:
            t = t + hs
            x, k1 = x5, ks[6]
        factor = 10.0 if norm == 0.0 else min(10.0, max(0.2, 0.9 * norm ** (-0.2)))
        if not torch.isfinite(torch.tensor(norm)):
            factor = 0.2
        h = h * factor
    return x, n, h


def ode_step(method: str, f: Field, x: Tensor, t: Tensor, h: Tensor) -> Tensor:
    """One fixed step of ``method`` (``"euler"``, ``"heun"``, ``"midpoint"``, ``"rk4"``).

    Shapes: ``x`` (C, *D); ``t``, ``h`` 0-dim tensors -> (C, *D).

    Example:
        >>> ode_step("rk4", lambda x, t: x, torch.ones(1, 1), torch.tensor(0.0), torch.tensor(0.1))
        tensor([[1.1052]])
    """
    if method not in _STEPS:
        raise ValueError(f"method must be one of {sorted(_STEPS)}, got {method!r}")
    return _STEPS[method](f, x, t, h)[0]


def odeint(
    f: Field,
    x0: Tensor,
    grid: Tensor,
    *,
    method: str = "heun",
    rtol: float = 1e-5,
    atol: float = 1e-5,
    return_trajectory: bool = False,
) -> ODEResult:
    """Integrate ``dx/dt = f(x, t)`` from ``grid[0]`` to ``grid[-1]``.

    Fixed-step methods take one step per grid interval; ``"dopri5"`` adapts its steps inside
    each interval to ``rtol``/``atol`` and reports the state at the grid times. The grid may
    decrease (integration backwards in time). ``f`` receives t as a 0-dim tensor.

    Shapes: ``x0`` (C, *D); ``grid`` (T + 1,); trajectory (T + 1, C, *D).

    Args:
        f: the vector field ``(x (C, *D), t ()) -> (C, *D)``.
        x0: initial state at ``grid[0]``.
        grid: strictly monotone times.
        method: one of :data:`ODE_METHODS`.
        rtol, atol: tolerances of ``"dopri5"``.
        return_trajectory: also return the states at every grid time.

    Example:
        >>> res = odeint(lambda x, t: -x, torch.ones(2, 1), torch.linspace(0, 1, 11), method="rk4")
        >>> round(res.x[0, 0].item(), 6), res.n_evals
        (0.36788, 40)
    """
    if method not in ODE_METHODS:
        raise ValueError(f"method must be one of {sorted(ODE_METHODS)}, got {method!r}")
    grid = torch.as_tensor(grid, dtype=x0.dtype, device=x0.device)
    if grid.dim() != 1 or grid.numel() < 2:
        raise ValueError(f"grid must be 1-D with at least 2 times, got shape {tuple(grid.shape)}")
    d = grid[1:] - grid[:-1]
    if not (bool((d > 0).all()) or bool((d < 0).all())):
        raise ValueError("grid must be strictly monotone")
    x = x0
    traj = [x0] if return_trajectory else None
    n = 0
    h_prev: float | None = None
    for i in range(grid.numel() - 1):
        if method == "dopri5":
            x, k, h_prev = _dopri5(f, x, grid[i], grid[i + 1], rtol, atol, h_prev)
        else:
            x, k = _STEPS[method](f, x, grid[i], grid[i + 1] - grid[i])
        n += k
        if traj is not None:
            traj.append(x)
    return ODEResult(x, torch.stack(traj) if traj is not None else None, n)
