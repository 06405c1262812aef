"""Analytic targets with closed-form gradients: one import point for the Gaussian family and the
classical landscapes (defined in :mod:`~torchenergy.energies.gaussian` and
:mod:`~torchenergy.energies.landscapes`).

Each overrides ``energy_and_grad`` (no autograd on the sampling hot path); where they exist,
``log_partition()`` is exact (``log p = −E − log Z``) and ``sample(n, *, generator=None)`` draws
exact samples.

Example:
    >>> from torchenergy.energies.analytic import GaussianEnergy
    >>> GaussianEnergy(torch.zeros(2), torch.eye(2)).sample(3).shape
    torch.Size([3, 2])
"""

from __future__ import annotations

import torch  # noqa: F401  (used by the doctest)

from torchenergy.energies.gaussian import GaussianEnergy, GaussianMixtureEnergy, HarmonicEnergy
from torchenergy.energies.landscapes import (
    AckleyEnergy,
    DoubleWellEnergy,
    RastriginEnergy,
    RosenbrockEnergy,
)

__all__ = [
    "AckleyEnergy",
    "DoubleWellEnergy",
    "GaussianEnergy",
    "GaussianMixtureEnergy",
    "HarmonicEnergy",
    "RastriginEnergy",
    "RosenbrockEnergy",
]
