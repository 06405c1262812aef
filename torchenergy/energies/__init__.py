"""Energies ``E(x)``: the autograd entry point, analytic targets, neural nets and composition."""

from torchenergy.energies.analytic import (
    AckleyEnergy,
    DoubleWellEnergy,
    GaussianEnergy,
    GaussianMixtureEnergy,
    HarmonicEnergy,
    RastriginEnergy,
    RosenbrockEnergy,
)
from torchenergy.energies.autograd import energy_and_grad, grad_energy
from torchenergy.energies.base import (
    Energy,
    HardConstraint,
    PenaltyConstraint,
    ScaledEnergy,
    SumEnergy,
    TemperedEnergy,
)
from torchenergy.energies.discrete import binary_states, numbered_states, sample_bernoulli
from torchenergy.energies.neural import ConvEnergy, FourierFeatures, MLPEnergy

__all__ = [
    "AckleyEnergy",
    "ConvEnergy",
    "DoubleWellEnergy",
    "Energy",
    "FourierFeatures",
    "GaussianEnergy",
    "GaussianMixtureEnergy",
    "HardConstraint",
    "HarmonicEnergy",
    "MLPEnergy",
    "PenaltyConstraint",
    "RastriginEnergy",
    "RosenbrockEnergy",
    "ScaledEnergy",
    "SumEnergy",
    "TemperedEnergy",
    "binary_states",
    "energy_and_grad",
    "grad_energy",
    "numbered_states",
    "sample_bernoulli",
]
