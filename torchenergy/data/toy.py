"""Two-dimensional toy densities as seeded generators and a ``Dataset``.

``sample_toy(name, n, *, generator=None) -> (n, 2)``; the same generator seed gives the same points.
Every density lives roughly inside ``[-4, 4]^2`` (the convention of the EBM/flow literature):

=================  ==========================================================================
name               construction
=================  ==========================================================================
two_moons          two interleaved half circles (noise 0.1), centred and scaled by 2
eight_gaussians    8 Gaussians (std 0.35) on a circle of radius 2*sqrt(2)
swiss_roll         ``t (cos t, sin t) / 5`` for ``t`` in [1.5 pi, 4.5 pi], noise 0.2
checkerboard       uniform on 8 of the 16 unit-2 squares of [-4, 4]^2
pinwheel           5 arms: radial N(1, 0.3), tangential N(0, 0.1), rotated by 0.25 * radius; x2
circles            two concentric rings of radius 3 and 1.5, noise 0.24
spirals            two interleaved Archimedean spirals, noise 0.1
grid               5 x 5 Gaussians (std 0.15) on {-3, -1.5, 0, 1.5, 3}^2
=================  ==========================================================================

Reference: the toy set of Grathwohl et al. (2019), "FFJORD", reimplemented here with explicit
generators (no global seeding).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor
from torch.utils.data import Dataset

from torchenergy._checks import check_positive_int
from torchenergy.types import Generator

__all__ = ["TOY_DENSITIES", "ToyDataset", "sample_toy"]


def _randn(n: int, d: int, g: Generator) -> Tensor:
    return torch.randn(n, d, generator=g, dtype=torch.float64)


def _rand(n: int, g: Generator) -> Tensor:
    return torch.rand(n, generator=g, dtype=torch.float64)


def _two_moons(n: int, g: Generator) -> Tensor:
    upper = torch.rand(n, generator=g) < 0.5
    t = math.pi * _rand(n, g)
    x = torch.where(upper, torch.cos(t), 1.0 - torch.cos(t))
    y = torch.where(upper, torch.sin(t), 0.5 - torch.sin(t))
    pts = torch.stack([x, y], -1) + 0.1 * _randn(n, 2, g)
    return 2.0 * (pts - torch.tensor([0.5, 0.25], dtype=torch.float64))


def _eight_gaussians(n: int, g: Generator) -> Tensor:
    k = torch.randint(8, (n,), generator=g).double()
    angle = k * math.pi / 4
    centres = 2.0 * math.sqrt(2.0) * torch.stack([torch.cos(angle), torch.sin(angle)], -1)
    return centres + 0.35 * _randn(n, 2, g)


def _swiss_roll(n: int, g: Generator) -> Tensor:
    t = 1.5 * math.pi * (1.0 + 2.0 * _rand(n, g))
    pts = torch.stack([t * torch.cos(t), t * torch.sin(t)], -1) / 5.0
    return pts + 0.2 * _randn(n, 2, g)


def _checkerboard(n: int, g: Generator) -> Tensor:
    x1 = 4.0 * _rand(n, g) - 2.0
    x2 = _rand(n, g) - 2.0 * torch.randint(2, (n,), generator=g).double()
    x2 = x2 + torch.floor(x1) % 2
    return 2.0 * torch.stack([x1, x2], -1)


def _pinwheel(n: int, g: Generator) -> Tensor:
    arms, rate = 5, 0.25
    k = torch.randint(arms, (n,), generator=g).double()
    radial = 1.0 + 0.3 * _randn(n, 1, g).squeeze(1)
    tangential = 0.1 * _randn(n, 1, g).squeeze(1)
    angle = 2 * math.pi * k / arms + rate * torch.exp(radial)
    c, s = torch.cos(angle), torch.sin(angle)
    x = radial * c - tangential * s
    y = radial * s + tangential * c
    return 2.0 * torch.stack([x, y], -1)


def _circles(n: int, g: Generator) -> Tensor:
    radius = torch.where(torch.rand(n, generator=g) < 0.5, 3.0, 1.5).double()
    t = 2 * math.pi * _rand(n, g)
    pts = radius[:, None] * torch.stack([torch.cos(t), torch.sin(t)], -1)
    return pts + 0.24 * _randn(n, 2, g)


def _spirals(n: int, g: Generator) -> Tensor:
    t = torch.sqrt(_rand(n, g)) * 3 * math.pi
    sign = torch.where(torch.rand(n, generator=g) < 0.5, 1.0, -1.0).double()
    pts = sign[:, None] * torch.stack([-t * torch.cos(t), t * torch.sin(t)], -1) / 3.0
    return pts + 0.1 * _randn(n, 2, g)


def _grid(n: int, g: Generator) -> Tensor:
    levels = torch.tensor([-3.0, -1.5, 0.0, 1.5, 3.0], dtype=torch.float64)
    i = torch.randint(5, (n,), generator=g)
    j = torch.randint(5, (n,), generator=g)
    return torch.stack([levels[i], levels[j]], -1) + 0.15 * _randn(n, 2, g)


_GENERATORS: dict[str, Callable[[int, Generator], Tensor]] = {
    "two_moons": _two_moons,
    "eight_gaussians": _eight_gaussians,
    "swiss_roll": _swiss_roll,
    "checkerboard": _checkerboard,
    "pinwheel": _pinwheel,
    "circles": _circles,
    "spirals": _spirals,
    "grid": _grid,
}
_ALIASES = {
    "moons": "two_moons",
    "8gaussians": "eight_gaussians",
    "8_gaussians": "eight_gaussians",
    "swissroll": "swiss_roll",
    "2spirals": "spirals",
    "two_spirals": "spirals",
    "rings": "circles",
}

#: The canonical names accepted by :func:`sample_toy` (aliases such as ``"moons"`` also work).
TOY_DENSITIES: tuple[str, ...] = tuple(_GENERATORS)


def _resolve(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {type(name).__name__}")
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    key = _ALIASES.get(key, key)
    if key not in _GENERATORS:
        raise ValueError(f"unknown toy density {name!r}; choose one of {', '.join(TOY_DENSITIES)}")
    return key


def sample_toy(
    name: str,
    n: int,
    *,
    generator: Generator = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Draw ``n`` points (n, 2) from a named 2-D density.

    The points are generated in float64 on the CPU from ``generator`` and then cast, so the same
    seed gives the same points on every device and dtype.

    Args:
        name: one of :data:`TOY_DENSITIES` (or an alias such as ``"moons"``, ``"8gaussians"``).
        n: number of points (>= 1).
        generator: a CPU ``torch.Generator``; None uses the global stream.
        dtype: output dtype (default: ``torch.get_default_dtype()``).
        device: output device (default CPU).

    Returns:
        Tensor of shape (n, 2).

    Raises:
        ValueError: unknown name (the message lists the choices) or ``n < 1``.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> sample_toy("two_moons", 5, generator=g).shape
        torch.Size([5, 2])
    """
    key = _resolve(name)
    check_positive_int("n", n)
    if generator is not None and generator.device.type != "cpu":
        raise ValueError(f"generator must be a CPU generator, got device {generator.device}")
    pts = _GENERATORS[key](n, generator)
    return pts.to(dtype=dtype or torch.get_default_dtype(), device=device)


class ToyDataset(Dataset):
    """A fixed sample of a 2-D toy density as a map-style ``Dataset`` of (2,) tensors.

    Args:
        name: density name (see :data:`TOY_DENSITIES`).
        n: number of points.
        seed: seed of the generator the points are drawn with (same seed, same points).
        dtype: dtype of the stored points.

    Attributes:
        data: the points, (n, 2).
        name: the canonical density name.

    Example:
        >>> ds = ToyDataset("checkerboard", 100, seed=0)
        >>> len(ds), tuple(ds[0].shape)
        (100, (2,))
    """

    def __init__(
        self, name: str, n: int = 10_000, *, seed: int = 0, dtype: torch.dtype | None = None
    ) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {seed!r}")
        self.name = _resolve(name)
        g = torch.Generator().manual_seed(seed)
        self.data = sample_toy(self.name, n, generator=g, dtype=dtype)

    def __len__(self) -> int:
        return self.data.shape[0]

    def __getitem__(self, index: int) -> Tensor:
        return self.data[index]

    def __repr__(self) -> str:
        return f"ToyDataset(name={self.name!r}, n={len(self)})"
