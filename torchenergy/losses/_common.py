"""Shared helpers for the losses: phase-named finiteness checks and event-dim reductions."""

from __future__ import annotations

import torch
from torch import Tensor

from torchenergy._checks import check_energy_shape
from torchenergy.energies.autograd import call_energy

__all__ = [
    "NonFiniteEnergyError",
    "check_phase_finite",
    "flat_sum",
    "frozen_call",
    "phase_energy",
]


class NonFiniteEnergyError(FloatingPointError):
    """Raised when a loss meets NaN/inf energies; names the phase and how many.

    Attributes:
        phase: ``"positive"`` (data), ``"negative"`` (samples), ``"noise"`` ...
        n_bad: number of non-finite energies.
        n_total: number of energies checked.
    """

    def __init__(self, phase: str, n_bad: int, n_total: int) -> None:
        self.phase = phase
        self.n_bad = n_bad
        self.n_total = n_total
        super().__init__(
            f"{n_bad} of {n_total} {phase}-phase energies are non-finite (NaN or inf); the loss "
            "would poison the optimiser with NaN gradients. Lower the learning rate or the sampler "
            "step size, clip gradients, or add an energy regulariser (l2_reg)."
        )


def check_phase_finite(energy: Tensor, phase: str) -> None:
    """Raise :class:`NonFiniteEnergyError` if ``energy`` (C,) holds NaN/inf."""
    bad = ~torch.isfinite(energy.detach())
    if bool(bad.any()):
        raise NonFiniteEnergyError(phase, int(bad.sum()), energy.numel())


def phase_energy(energy_fn, x: Tensor, phase: str) -> Tensor:
    """``energy_fn(x)`` (C,) checked for its shape and finiteness, errors naming ``phase``."""
    energy = call_energy(energy_fn, x)
    check_energy_shape(energy, x)
    check_phase_finite(energy, phase)
    return energy


def flat_sum(t: Tensor) -> Tensor:
    """Sum over all non-batch dimensions: (C, *D) -> (C,)."""
    return t.reshape(t.shape[0], -1).sum(-1)


def frozen_call(energy_fn, x: Tensor) -> Tensor:
    """``energy_fn(x)`` with the parameters of an ``nn.Module`` energy treated as constants.

    Gradients still flow to ``x`` (and through ``x`` to whatever produced it), never to the
    parameters directly. Plain callables without parameters are called as they are.
    """
    if isinstance(energy_fn, torch.nn.Module):
        params = {k: v.detach() for k, v in energy_fn.named_parameters()}
        buffers = dict(energy_fn.named_buffers())
        return torch.func.functional_call(energy_fn, {**params, **buffers}, (x,))
    return energy_fn(x)
