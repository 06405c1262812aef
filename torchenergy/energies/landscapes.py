"""Classical test landscapes as energies, with closed-form gradients.

* :class:`DoubleWellEnergy`: two modes along the first axis, Gaussian in the others.
* :class:`RosenbrockEnergy`: the curved "banana" valley; exact ``log Z`` and sampling for D = 2.
* :class:`RastriginEnergy`: a quadratic bowl with a regular grid of local minima.
* :class:`AckleyEnergy`: a nearly flat plateau with many shallow minima and one deep funnel.

All map ``x`` (C, D) -> (C,) with a fixed ``dim`` D given at construction, and override
``energy_and_grad`` with the analytic gradient. Where the normaliser is a product of 1-D
integrals without a closed form (double well, Rastrigin), ``log_partition`` evaluates the 1-D
integral by Simpson's rule in float64 (accurate to ~1e-10); Ackley has none.

References: H. H. Rosenbrock, *The Computer Journal* 3 (1960); L. A. Rastrigin, *Systems of
Extremal Control* (1974); D. H. Ackley, *A Connectionist Machine for Genetic Hillclimbing* (1987).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from torchenergy._checks import check_positive, check_positive_int
from torchenergy.energies._util import LOG_2PI, check_vector_input, log_integral_1d
from torchenergy.energies.base import Energy
from torchenergy.types import Generator

__all__ = ["AckleyEnergy", "DoubleWellEnergy", "RastriginEnergy", "RosenbrockEnergy"]


class _VectorEnergy(Energy):
    """A target on vectors of a fixed dimension ``dim``; checks (C, dim) input."""

    min_dim = 1

    def __init__(self, dim: int) -> None:
        super().__init__()
        check_positive_int("dim", dim)
        if dim < self.min_dim:
            raise ValueError(f"{type(self).__name__} needs dim >= {self.min_dim}, got {dim}")
        self.dim = dim
        self.event_shape = (dim,)

    def _check(self, x: Tensor) -> None:
        check_vector_input(x, self.dim, type(self).__name__)

    def forward(self, x: Tensor) -> Tensor:
        """Energies (C, D) -> (C,)."""
        return self.energy_and_grad(x)[0]


class DoubleWellEnergy(_VectorEnergy):
    """Double well along ``x_0``: ``E(x) = h ((x_0/a)² − 1)² + ½ Σ_{i≥1} x_i²``.

    Minima at ``x_0 = ±a`` (other coordinates 0) separated by a barrier of height ``h``;
    ``∂E/∂x_0 = 4 h x_0 ((x_0/a)² − 1) / a²`` and ``∂E/∂x_i = x_i`` for ``i ≥ 1``.
    ``log Z = log ∫ exp(−h((t/a)² − 1)²) dt + ((D − 1)/2) log 2π`` (the 1-D integral by
    quadrature).

    Shapes: x (C, D) -> (C,).

    Args:
        dim: event dimension D >= 1.
        barrier: barrier height ``h > 0``.
        separation: half-distance between the modes ``a > 0``.

    Example:
        >>> DoubleWellEnergy(dim=2)(torch.tensor([[1.0, 0.0], [0.0, 0.0]])).tolist()
        [0.0, 2.0]
    """

    def __init__(self, dim: int = 2, barrier: float = 2.0, separation: float = 1.0) -> None:
        super().__init__(dim)
        check_positive("barrier", barrier)
        check_positive("separation", separation)
        self.barrier = float(barrier)
        self.separation = float(separation)

    def energy_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(E(x), ∇E(x))``, shapes (C,) and (C, D); closed form."""
        self._check(x)
        h, a2 = self.barrier, self.separation**2
        x0, rest = x[:, 0], x[:, 1:]
        u = x0.square() / a2 - 1.0
        energy = h * u.square() + 0.5 * rest.square().sum(1)
        grad = torch.cat((((4.0 * h / a2) * x0 * u).unsqueeze(1), rest), dim=1)
        return energy, grad

    def log_partition(self) -> Tensor:
        """``log Z`` (0-dim float64 tensor): quadrature along x_0, Gaussian in the rest."""
        h, a = self.barrier, self.separation
        reach = 1.0 + (60.0 / h) ** 0.25 + 1.0  # in units of a; exp(-60) beyond
        log_1d = log_integral_1d(lambda t: -h * ((t / a) ** 2 - 1.0) ** 2, -reach * a, reach * a)
        return torch.tensor(log_1d + 0.5 * (self.dim - 1) * LOG_2PI, dtype=torch.float64)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, barrier={self.barrier}, separation={self.separation}"


class RosenbrockEnergy(_VectorEnergy):
    """Rosenbrock valley ``E(x) = Σ_{i<D−1} [ b (x_{i+1} − x_i²)² + (a − x_i)² ]``.

    Global minimum ``x = (a, a², …)`` only for a = 1 in D > 2 (``(1, …, 1)``); in D = 2 it is
    ``(a, a²)``. For D = 2, ``p ∝ exp(−E)`` factorises as ``x_0 ~ N(a, 1/2)``,
    ``x_1 | x_0 ~ N(x_0², 1/(2b))``, so ``log Z = log(π/√b)`` and sampling is exact.

    Shapes: x (C, D) -> (C,), D >= 2.

    Args:
        dim: event dimension D >= 2.
        a: location parameter (default 1).
        b: valley stiffness ``b > 0`` (default 100, the classical choice).

    Example:
        >>> RosenbrockEnergy()(torch.tensor([[1.0, 1.0]])).tolist()
        [0.0]
    """

    min_dim = 2

    def __init__(self, dim: int = 2, a: float = 1.0, b: float = 100.0) -> None:
        super().__init__(dim)
        check_positive("b", b)
        if not math.isfinite(a):
            raise ValueError(f"a must be finite, got {a!r}")
        self.a = float(a)
        self.b = float(b)

    def energy_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(E(x), ∇E(x))``, shapes (C,) and (C, D); closed form."""
        self._check(x)
        a, b = self.a, self.b
        head, tail = x[:, :-1], x[:, 1:]
        r = tail - head.square()  # (C, D-1)
        s = a - head
        energy = (b * r.square() + s.square()).sum(1)
        grad = torch.zeros_like(x)
        grad[:, :-1] = -4.0 * b * head * r - 2.0 * s
        grad[:, 1:] += 2.0 * b * r
        return energy, grad

    def _require_2d(self, what: str) -> None:
        if self.dim != 2:
            raise ValueError(
                f"RosenbrockEnergy.{what} is exact only for dim=2 (no closed form beyond), "
                f"got dim={self.dim}"
            )

    def log_partition(self) -> Tensor:
        """``log Z = log(π / √b)`` for D = 2 (0-dim float64 tensor)."""
        self._require_2d("log_partition")
        return torch.tensor(math.log(math.pi) - 0.5 * math.log(self.b), dtype=torch.float64)

    def sample(
        self,
        n: int,
        *,
        generator: Generator = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """Exact draws for D = 2: ``x_0 ~ N(a, ½)``, ``x_1 ~ N(x_0², 1/(2b))``. Shape (n, 2)."""
        self._require_2d("sample")
        check_positive_int("n", n)
        z = torch.randn(n, 2, generator=generator, dtype=dtype, device=device)
        x0 = self.a + z[:, 0] * math.sqrt(0.5)
        x1 = x0.square() + z[:, 1] * math.sqrt(0.5 / self.b)
        return torch.stack((x0, x1), dim=1)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, a={self.a}, b={self.b}"


class RastriginEnergy(_VectorEnergy):
    """Rastrigin function ``E(x) = A·D + Σ_i [x_i² − A cos(2π x_i)]``.

    ``∂E/∂x_i = 2 x_i + 2π A sin(2π x_i)``; global minimum 0 at the origin, local minima near
    the integer grid. Separable, so ``log Z = D · log ∫ exp(−t² + A cos 2πt − A) dt``
    (the 1-D integral by quadrature).

    Shapes: x (C, D) -> (C,).

    Args:
        dim: event dimension D >= 1.
        amplitude: ``A >= 0`` (default 10, the classical choice).

    Example:
        >>> RastriginEnergy()(torch.zeros(2, 2)).tolist()
        [0.0, 0.0]
    """

    def __init__(self, dim: int = 2, amplitude: float = 10.0) -> None:
        super().__init__(dim)
        check_positive("amplitude", amplitude, allow_zero=True)
        self.amplitude = float(amplitude)

    def energy_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(E(x), ∇E(x))``, shapes (C,) and (C, D); closed form."""
        self._check(x)
        amp = self.amplitude
        w = 2.0 * math.pi * x
        energy = (x.square() - amp * torch.cos(w)).sum(1) + amp * self.dim
        grad = 2.0 * x + (2.0 * math.pi * amp) * torch.sin(w)
        return energy, grad

    def log_partition(self) -> Tensor:
        """``log Z`` (0-dim float64 tensor), D times a 1-D quadrature."""
        amp = self.amplitude
        log_1d = log_integral_1d(
            lambda t: -t.square() + amp * torch.cos(2.0 * math.pi * t) - amp, -14.0, 14.0
        )
        return torch.tensor(self.dim * log_1d, dtype=torch.float64)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, amplitude={self.amplitude}"


class AckleyEnergy(_VectorEnergy):
    """Ackley function ``E(x) = −a exp(−b r) − exp(mean_i cos(c x_i)) + a + e``, ``r = √(mean x²)``.

    Gradient ``a b e^{−b r} x_i / (D r) + e^{mean cos(c x)} c sin(c x_i) / D``; at ``r = 0`` (the
    global minimum, a cusp) the first term is taken as 0. No closed-form ``log Z``.

    Shapes: x (C, D) -> (C,).

    Args:
        dim: event dimension D >= 1.
        a: depth of the funnel (default 20). b: its width (default 0.2).
        c: frequency of the ripples (default 2π).

    Example:
        >>> abs(AckleyEnergy()(torch.zeros(1, 2, dtype=torch.float64)).item()) < 1e-12
        True
    """

    def __init__(
        self, dim: int = 2, a: float = 20.0, b: float = 0.2, c: float = 2.0 * math.pi
    ) -> None:
        super().__init__(dim)
        check_positive("a", a, allow_zero=True)
        check_positive("b", b)
        check_positive("c", c)
        self.a, self.b, self.c = float(a), float(b), float(c)

    def energy_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(E(x), ∇E(x))``, shapes (C,) and (C, D); closed form (0 at the cusp r = 0)."""
        self._check(x)
        a, b, c, d = self.a, self.b, self.c, self.dim
        r = torch.sqrt(x.square().mean(1))
        e1 = torch.exp(-b * r)
        cx = c * x
        e2 = torch.exp(torch.cos(cx).mean(1))
        energy = -a * e1 - e2 + (a + math.e)
        safe_r = torch.where(r > 0, r, torch.ones_like(r))
        coef1 = torch.where(r > 0, (a * b / d) * e1 / safe_r, torch.zeros_like(r))
        grad = coef1.unsqueeze(1) * x + (c / d) * e2.unsqueeze(1) * torch.sin(cx)
        return energy, grad

    def extra_repr(self) -> str:
        return f"dim={self.dim}, a={self.a}, b={self.b}, c={self.c:.6g}"
