"""Analytic demo targets with exact reference draws.

Each target is 2-D, has a closed-form gradient and exact samples (the double well by inverse
CDF along its first coordinate on a fine grid), so every sampler can be scored against the truth.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from torchenergy.energies import (
    DoubleWellEnergy,
    Energy,
    GaussianEnergy,
    GaussianMixtureEnergy,
    RosenbrockEnergy,
)
from torchenergy.types import Generator

__all__ = ["DemoTarget", "demo_targets", "sample_double_well"]


@dataclass(frozen=True)
class DemoTarget:
    """A 2-D target of the demo.

    Attributes:
        name: short identifier (file names, table rows).
        title: plot title.
        energy: the energy ``(C, 2) -> (C,)``.
        sample: exact draws ``(n, *, generator) -> (n, 2)``.
        modes: the energy minima (M, 2), for the mode finders and mode weights.
        split: optional ``x -> (C,) bool`` marking the first mode's region (mode weights).
        box: plotting window ``(xmin, xmax, ymin, ymax)``.
        max_temperature: top of the parallel-tempering ladder (about the barrier height).
    """

    name: str
    title: str
    energy: Energy
    sample: Callable[..., Tensor]
    modes: Tensor
    split: Callable[[Tensor], Tensor] | None
    box: tuple[float, float, float, float]
    max_temperature: float


def sample_double_well(
    energy: DoubleWellEnergy, n: int, *, generator: Generator = None, grid: int = 200_001
) -> Tensor:
    """Exact-to-grid-precision draws from a 2-D :class:`DoubleWellEnergy`, shape (n, 2).

    ``x_0`` by inverse CDF of ``exp(−h((t/a)² − 1)²)`` tabulated on ``grid`` points (linear
    interpolation between them); ``x_1 ~ N(0, 1)`` independently.

    Example:
        >>> from torchenergy.energies import DoubleWellEnergy
        >>> x = sample_double_well(DoubleWellEnergy(2), 4, generator=torch.Generator().manual_seed(0))
        >>> tuple(x.shape)
        (4, 2)
    """
    h, a = energy.barrier, energy.separation
    reach = a * (2.0 + (60.0 / h) ** 0.25)
    t = torch.linspace(-reach, reach, grid, dtype=torch.float64)
    dens = torch.exp(-h * ((t / a) ** 2 - 1.0) ** 2)
    cdf = torch.cumsum(0.5 * (dens[1:] + dens[:-1]) * (t[1:] - t[:-1]), 0)
    cdf = torch.cat((torch.zeros(1, dtype=torch.float64), cdf / cdf[-1]))
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    k = torch.searchsorted(cdf, u).clamp(1, grid - 1)
    w = (u - cdf[k - 1]) / (cdf[k] - cdf[k - 1]).clamp_min(1e-300)
    x0 = t[k - 1] + w * (t[k] - t[k - 1])
    x1 = torch.randn(n, generator=generator, dtype=torch.float64)
    return torch.stack((x0, x1), 1)


def demo_targets(dtype: torch.dtype = torch.float64) -> list[DemoTarget]:
    """The four demo targets: a 0.8/0.2 Gaussian mixture, a double well, a Rosenbrock valley
    (b = 10) and a correlated Gaussian (ρ = 0.9)."""
    means = torch.tensor([[-4.0, 0.0], [4.0, 0.0]], dtype=dtype)
    mixture = GaussianMixtureEnergy(
        means, torch.eye(2, dtype=dtype), torch.tensor([0.8, 0.2], dtype=dtype)
    )
    well = DoubleWellEnergy(dim=2, barrier=4.0, separation=1.5)
    rosen = RosenbrockEnergy(dim=2, a=1.0, b=10.0)
    cov = torch.tensor([[1.0, 0.9], [0.9, 1.0]], dtype=dtype)
    mean = torch.tensor([1.0, -1.0], dtype=dtype)
    gauss = GaussianEnergy(mean, cov)
    left = lambda x: x[:, 0] < 0  # noqa: E731
    return [
        DemoTarget(
            "gaussian_mixture",
            "Gaussian mixture, weights 0.8 / 0.2, modes at (±4, 0)",
            mixture,
            lambda n, *, generator=None: mixture.sample(n, generator=generator),
            means,
            left,
            (-8.0, 8.0, -4.0, 4.0),
            30.0,
        ),
        DemoTarget(
            "double_well",
            "Double well, barrier 4, modes at (±1.5, 0)",
            well,
            lambda n, *, generator=None: sample_double_well(well, n, generator=generator).to(dtype),
            torch.tensor([[-1.5, 0.0], [1.5, 0.0]], dtype=dtype),
            left,
            (-3.0, 3.0, -3.0, 3.0),
            8.0,
        ),
        DemoTarget(
            "rosenbrock",
            "Rosenbrock valley, a = 1, b = 10",
            rosen,
            lambda n, *, generator=None: rosen.sample(n, generator=generator, dtype=dtype),
            torch.tensor([[1.0, 1.0]], dtype=dtype),
            None,
            (-2.0, 4.0, -2.0, 10.0),
            5.0,
        ),
        DemoTarget(
            "correlated_gaussian",
            "Correlated Gaussian, ρ = 0.9",
            gauss,
            lambda n, *, generator=None: gauss.sample(n, generator=generator),
            mean.unsqueeze(0),
            None,
            (-3.0, 5.0, -5.0, 3.0),
            5.0,
        ),
    ]
