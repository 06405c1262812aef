"""Test-time composition on images: constraints, inpainting and denoising with any image energy.

* Constraints as energies (C, *D) -> (C,), to add to a model energy (``SumEnergy`` /
  ``PenaltyConstraint``): :func:`brightness_penalty` (mean pixel value near a target) and
  :func:`region_penalty` (pixels in a region near a value). With a JEM class energy,
  ``jem.conditional(y).constrained(brightness_penalty(0.3), weight)`` samples "class y AND dim".
* :class:`InpaintEnergy` / :func:`inpaint`: observed pixels are fixed, the rest is sampled from
  ``p(x_free | x_obs) ∝ exp(−E(x_obs ⊕ x_free))``. The energy reads the observed values through
  ``torch.where``, so its gradient on observed pixels is exactly 0, and the returned images
  carry the observed pixels bit for bit.
* :func:`denoise`: energy descent from the noisy image (noise-free Langevin, i.e. gradient descent
  in the box), optionally on the posterior ``E(x) + ‖x − y‖² / (2σ²)`` so the result stays near
  the observation.

Reference: Y. Du and I. Mordatch, *Implicit Generation and Generalization in Energy-Based
Models*, NeurIPS 2019 (composition, inpainting, denoising with image EBMs).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from torchenergy._checks import check_positive, check_positive_int, check_tensor
from torchenergy.energies import Energy
from torchenergy.samplers import Langevin, run_chain
from torchenergy.types import EnergyFn, Generator

__all__ = ["InpaintEnergy", "brightness_penalty", "denoise", "inpaint", "region_penalty"]


def brightness_penalty(target: float) -> EnergyFn:
    """``x -> (mean pixel of x − target)² · n_pixels``, (C, *D) -> (C,).

    Example:
        >>> brightness_penalty(0.0)(torch.ones(2, 1, 2, 2)).tolist()
        [4.0, 4.0]
    """
    if isinstance(target, bool) or not isinstance(target, (int, float)):
        raise TypeError(f"target must be a number, got {target!r}")

    def penalty(x: Tensor) -> Tensor:
        flat = x.flatten(1)
        return (flat.mean(1) - target).pow(2) * flat.shape[1]

    return penalty


def region_penalty(mask: Tensor, value: float) -> EnergyFn:
    """``x -> sum over mask of (x − value)²``, (C, *D) -> (C,); ``mask`` bool, broadcastable to D.

    Example:
        >>> m = torch.zeros(1, 2, 2, dtype=torch.bool); m[0, 0, 0] = True
        >>> region_penalty(m, 1.0)(torch.zeros(3, 1, 2, 2)).tolist()
        [1.0, 1.0, 1.0]
    """
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor broadcastable to D, got {mask!r:.60}")

    def penalty(x: Tensor) -> Tensor:
        m = mask.to(x.device)
        return torch.where(m, (x - value).pow(2), torch.zeros_like(x)).flatten(1).sum(1)

    return penalty


def _mask_for(mask: Tensor, observed: Tensor) -> Tensor:
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor (True = observed), got {mask!r:.60}")
    try:
        return torch.broadcast_to(mask.to(observed.device), observed.shape)
    except RuntimeError:
        raise ValueError(
            f"mask of shape {tuple(mask.shape)} does not broadcast to the observed images "
            f"{tuple(observed.shape)}"
        ) from None


class InpaintEnergy(Energy):
    """``E_free(z) = E(where(mask, observed, z))``: the energy of the unobserved pixels.

    Shapes: ``observed`` (C, *D); ``mask`` bool broadcastable to (C, *D) (True = observed);
    ``z`` (C, *D) -> (C,). :meth:`fill` gives the full images.
    """

    def __init__(self, energy_fn: EnergyFn, observed: Tensor, mask: Tensor) -> None:
        super().__init__()
        check_tensor("observed", observed, min_dim=2, floating=True)
        self.energy_fn = energy_fn
        self.observed = observed.detach()
        self.mask = _mask_for(mask, observed)

    def fill(self, z: Tensor) -> Tensor:
        """Observed pixels from ``observed``, the others from ``z``; (C, *D)."""
        if z.shape != self.observed.shape:
            raise ValueError(
                f"z must have the observed images' shape {tuple(self.observed.shape)}, got "
                f"{tuple(z.shape)}"
            )
        return torch.where(self.mask, self.observed.to(z.dtype), z)

    def forward(self, z: Tensor) -> Tensor:
        return self.energy_fn(self.fill(z))


def inpaint(
    energy_fn: EnergyFn,
    observed: Tensor,
    mask: Tensor,
    *,
    n_steps: int = 200,
    step_size: float = 1.0,
    noise: float = 0.01,
    grad_clip: float | None = None,
    clamp: tuple[float, float] | None = (-1.0, 1.0),
    init: Tensor | None = None,
    sampler: Any = None,
    generator: Generator = None,
) -> Tensor:
    """Sample the unobserved pixels given the observed ones; observed pixels are returned as given.

    Langevin ``x' = x − ε∇E + noise·z`` (per-step noise std ``noise``, i.e. noise scale
    ``noise / sqrt(2ε)``) on the free pixels, or any ``sampler(energy_fn) -> kernel`` factory.

    Shapes: ``observed`` (C, *D), ``mask`` bool broadcastable (True = observed) -> (C, *D).

    Example:
        >>> obs, m = torch.zeros(2, 1, 4, 4), torch.rand(1, 4, 4) < 0.5
        >>> out = inpaint(lambda x: (x ** 2).flatten(1).sum(1), obs, m, n_steps=5)
        >>> bool((out[:, m] == obs[:, m]).all())
        True
    """
    check_positive_int("n_steps", n_steps)
    check_positive("step_size", step_size)
    check_positive("noise", noise, allow_zero=True)
    e = InpaintEnergy(energy_fn, observed, mask)
    if init is None:
        lo, hi = clamp if clamp is not None else (-1.0, 1.0)
        u = torch.rand(observed.shape, generator=generator, dtype=observed.dtype)
        init = lo + (hi - lo) * u.to(observed.device)
    if sampler is None:
        kernel = Langevin(
            e,
            step_size=step_size,
            noise_scale=noise / (2.0 * step_size) ** 0.5,
            grad_clip=grad_clip,
            clamp=clamp,
        )
    else:
        kernel = sampler(e)
    z = run_chain(kernel, e.fill(init), n_steps, generator=generator, on_divergence="warn").x
    return e.fill(z)


def denoise(
    energy_fn: EnergyFn,
    noisy: Tensor,
    *,
    n_steps: int = 100,
    step_size: float = 0.1,
    sigma: float | None = None,
    grad_clip: float | None = None,
    clamp: tuple[float, float] | None = (-1.0, 1.0),
) -> Tensor:
    """Energy descent from ``noisy`` (C, *D): the prior energy, or the posterior with noise σ.

    With ``sigma`` the descent is on ``E(x) + ‖x − noisy‖² / (2σ²)`` (MAP under Gaussian noise).

    Example:
        >>> y = torch.full((1, 1, 2, 2), 0.5)
        >>> denoise(lambda x: (x ** 2).flatten(1).sum(1), y, n_steps=50).abs().max() < 0.01
        tensor(True)
    """
    check_tensor("noisy", noisy, min_dim=2, floating=True)
    check_positive_int("n_steps", n_steps)
    check_positive("step_size", step_size)
    target = noisy.detach()
    fn: EnergyFn = energy_fn
    if sigma is not None:
        check_positive("sigma", sigma)

        def fn(x: Tensor) -> Tensor:
            return energy_fn(x) + (x - target).pow(2).flatten(1).sum(1) / (2.0 * sigma**2)

    kernel = Langevin(fn, step_size=step_size, noise_scale=0.0, grad_clip=grad_clip, clamp=clamp)
    return run_chain(kernel, target, n_steps, on_divergence="warn").x
