"""``FlowSampler``: integrate the probability-flow ODE or the reverse SDE from noise to data.

Starting at ``x_0 = σ(0) ε`` (or a given ``x0``), the ODE ``dx/dt = v(x, t)`` or the SDE
``dx = [v + ½ w s] dt + sqrt(w) dW`` (see :mod:`torchenergy.diffusion.sde`) is integrated over a
uniform or Karras grid from t = 0 to t = 1, with the network's prediction (velocity, score, noise
or data) converted exactly by :class:`~torchenergy.diffusion.ModelField`, including at both ends
(no sample epsilon). The one case the field cannot supply at t = 1 (VP with a noise or data
prediction, where the velocity needs the data score) is handled like EDM's last step: the final
interval is taken by the data prediction, ``x' = α(t') x̂ + σ(t') ε̂`` (a DDIM step).

Reference: Song et al. (2021), "Score-based generative modeling through SDEs"; Karras et al.
(2022), "Elucidating the design space of diffusion-based generative models"; Ma et al. (2024), "SiT".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor

from torchenergy._checks import check_positive, check_positive_int
from torchenergy.diffusion.fields import ModelField
from torchenergy.diffusion.grids import time_grid
from torchenergy.diffusion.interpolants import Interpolant, _bc, get_interpolant
from torchenergy.diffusion.ode import _STEPS, ODE_METHODS, _dopri5
from torchenergy.diffusion.sde import SDE_METHODS, diffusion_coefficient, sde_step
from torchenergy.types import Generator

__all__ = ["FlowResult", "FlowSampler", "ddim_step"]


class FlowResult(NamedTuple):
    """What :meth:`FlowSampler.sample` returns.

    Attributes:
        x: samples at t = 1, (C, *D).
        trajectory: states at the grid times (T + 1, C, *D), or None.
        times: the grid (T + 1,).
        n_evals: number of network evaluations (Python int).
    """

    x: Tensor
    trajectory: Tensor | None
    times: Tensor
    n_evals: int


def ddim_step(
    field: ModelField, x: Tensor, t: Tensor, t_next: Tensor, y: Tensor | None = None
) -> Tensor:
    """Deterministic DDIM step ``x' = α(t') x̂(x, t) + σ(t') ε̂(x, t)``, (C, *D) -> (C, *D).

    The exponential integrator of the PF-ODE in the (x̂, ε̂) parameterisation (first order);
    exact in one step when x̂ and ε̂ do not change along the path.

    Reference: Song, Meng & Ermon (2021), "Denoising diffusion implicit models", eq. (12).
    """
    xh, eh, _ = field.denoise(x, t, y)
    c = field.interpolant.coefficients(t_next.to(x).expand(x.shape[0]))
    return _bc(c.alpha, x) * xh + _bc(c.sigma, x) * eh


@dataclass(frozen=True, eq=False)
class FlowSampler:
    """Sample a flow or diffusion model by ODE (probability flow) or reverse SDE.

    ``model(x, t)`` (or ``model(x, t, y)``) predicts ``prediction`` on ``interpolant``; the
    sampler integrates from t = 0 (noise) to t = 1 (data) in ``n_steps`` steps.

    Shapes: samples (C, *D); trajectory (T + 1, C, *D).

    Args:
        model: the network, ``(x (C, *D), t (C,)[, y (C,)]) -> (C, *D)``.
        interpolant: the path (name or instance).
        prediction: ``"velocity"``, ``"score"``, ``"noise"`` or ``"data"``.
        integrator: ODE: ``"euler"``, ``"heun"``, ``"midpoint"``, ``"rk4"``, ``"dopri5"``;
            SDE: ``"euler_maruyama"``, ``"stochastic_heun"``.
        n_steps: number of grid steps T.
        grid: ``"uniform"`` or ``"karras"``.
        diffusion: for SDE integrators, ``"sigma"``, ``"natural"``, ``"constant"`` or ``w(t)``.
        diffusion_scale: multiplies the named diffusion.
        rtol, atol: tolerances of ``"dopri5"``.

    Example:
        >>> from torchenergy.diffusion import GaussianPath
        >>> g = GaussianPath(torch.ones(2), torch.eye(2), "cosine")
        >>> fs = FlowSampler(g.score, "cosine", prediction="score", integrator="heun", n_steps=20)
        >>> out = fs.sample(n=4000, generator=torch.Generator().manual_seed(0))
        >>> abs(out.x.mean().item() - 1.0) < 0.05
        True
    """

    model: Callable[..., Tensor]
    interpolant: Interpolant | str = "linear"
    prediction: str = "velocity"
    integrator: str = "heun"
    n_steps: int = 50
    grid: str = "uniform"
    diffusion: Any = "sigma"
    diffusion_scale: float = 1.0
    rtol: float = 1e-5
    atol: float = 1e-5

    def __post_init__(self) -> None:
        object.__setattr__(self, "interpolant", get_interpolant(self.interpolant))
        object.__setattr__(self, "field", ModelField(self.model, self.interpolant, self.prediction))
        if self.integrator not in ODE_METHODS and self.integrator not in SDE_METHODS:
            raise ValueError(
                f"integrator must be one of {sorted(ODE_METHODS) + list(SDE_METHODS)}, "
                f"got {self.integrator!r}"
            )
        check_positive_int("n_steps", self.n_steps)
        check_positive("rtol", self.rtol)
        check_positive("atol", self.atol)
        if self.is_sde:
            object.__setattr__(
                self,
                "w",
                diffusion_coefficient(self.interpolant, self.diffusion, self.diffusion_scale),
            )

    @property
    def is_sde(self) -> bool:
        """True for the stochastic integrators."""
        return self.integrator in SDE_METHODS

    def times(self, dtype: torch.dtype = torch.float64) -> Tensor:
        """The grid (T + 1,) from 0 to 1."""
        return time_grid(self.n_steps, self.grid, self.interpolant).to(dtype)

    def _last_by_data(self, t_end: float) -> bool:
        f = self.field
        if not f.velocity_identifiable(t_end):
            return True
        if self.is_sde:
            w_end = float(self.w(torch.tensor(t_end, dtype=torch.float64)))
            return w_end > 0 and not f.score_identifiable(t_end)
        return False

    def _drift(self, y: Tensor | None) -> Callable[[Tensor, Tensor], Tensor]:
        field = self.field
        if not self.is_sde:
            return lambda x, t: field.velocity(x, t, y)

        def drift(x: Tensor, t: Tensor) -> Tensor:
            w = self.w(t)
            if bool((w == 0).all()):
                return field.velocity(x, t, y)
            v, s = field.velocity_and_score(x, t, y)
            return v + 0.5 * w * s

        return drift

    def sample(
        self,
        x0: Tensor | None = None,
        *,
        n: int | None = None,
        shape: tuple[int, ...] | None = None,
        y: Tensor | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        generator: Generator = None,
        return_trajectory: bool = False,
    ) -> FlowResult:
        """Draw samples.

        Args:
            x0: start points at t = 0 (C, *D); default ``σ(0) ε`` of shape ``(n, *shape)``.
            n: number of samples when ``x0`` is None.
            shape: event shape D when ``x0`` is None (default ``(2,)``).
            y: labels (C,) passed to a conditional model.
            dtype, device: of the drawn start points.
            generator: random stream (start points and SDE noise).
            return_trajectory: keep the states at every grid time.

        Returns:
            :class:`FlowResult`.
        """
        if x0 is None:
            if n is None:
                raise ValueError("give x0 or n")
            check_positive_int("n", n)
            ev = tuple(shape) if shape is not None else (2,)
            x0 = self.interpolant.sample_prior(
                (n, *ev), dtype=dtype, device=device, generator=generator
            )
        grid = self.times(torch.float64).to(device=x0.device, dtype=x0.dtype)
        drift = self._drift(y)
        by_data = self._last_by_data(float(grid[-1]))
        x, n_eval = x0, 0
        traj = [x0] if return_trajectory else None
        h_prev = None
        last = grid.numel() - 2
        for i in range(grid.numel() - 1):
            t, t1 = grid[i], grid[i + 1]
            if i == last and by_data:
                x, k = ddim_step(self.field, x, t, t1, y), 1
            elif self.integrator == "dopri5":
                x, k, h_prev = _dopri5(drift, x, t, t1, self.rtol, self.atol, h_prev)
            elif self.is_sde:
                z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
                x = sde_step(self.integrator, drift, self.w, x, t, t1 - t, z)
                k = 1 if self.integrator == "euler_maruyama" else 2
            else:
                x, k = _STEPS[self.integrator](drift, x, t, t1 - t)
            n_eval += k
            if traj is not None:
                traj.append(x)
        return FlowResult(x.detach(), torch.stack(traj).detach() if traj else None, grid, n_eval)
