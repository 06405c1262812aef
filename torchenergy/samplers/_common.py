"""Small pieces shared by the kernels: validation at the boundary, per-chain broadcasting, the
gradient-caching State and the finiteness test.

Step sizes (and similar per-chain hyperparameters) are a positive float or a tensor of shape ()
or (C,); a (C,) tensor is broadcast over the event dimensions, so ``eps * grad`` works for any
event shape (C, *D).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from torch import Tensor

from torchenergy._checks import check_positive, check_tensor
from torchenergy.energies._util import row_sum
from torchenergy.energies.base import energy_and_grad
from torchenergy.types import EnergyFn

__all__ = [
    "GradState",
    "chain_view",
    "check_energy_fn",
    "check_init_x",
    "check_per_chain",
    "check_step_size",
    "finite_chains",
    "init_grad_state",
    "sqrt_of",
    "where_chains",
]


class GradState(NamedTuple):
    """State of the gradient-based kernels (Langevin, MALA, HMC, gradient descent).

    Attributes:
        x: current points, (C, *D).
        energy: ``E(x)``, (C,), cached so each transition evaluates the energy once.
        grad: ``grad_x E(x)``, (C, *D), cached likewise.
    """

    x: Tensor
    energy: Tensor
    grad: Tensor


def check_energy_fn(energy_fn: Any) -> None:
    """Raise ``TypeError`` unless ``energy_fn`` is callable ``(C, *D) -> (C,)``."""
    if not callable(energy_fn):
        raise TypeError(
            f"energy_fn must be a callable mapping (C, *D) -> (C,), got {type(energy_fn).__name__}"
        )


def check_step_size(name: str, value: Any, *, allow_zero: bool = False) -> None:
    """Raise unless ``value`` is a positive float or a positive tensor of shape () or (C,)."""
    check_positive(name, value, allow_zero=allow_zero)
    if isinstance(value, Tensor):
        if value.dim() > 1:
            raise ValueError(
                f"{name} must be a float or a tensor of shape () or (C,), got shape "
                f"{tuple(value.shape)}"
            )
        if not value.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")


def check_per_chain(name: str, value: Any, x: Tensor) -> None:
    """Raise ``ValueError`` when a (C,) tensor ``value`` does not match the C of ``x`` (C, *D)."""
    if isinstance(value, Tensor) and value.dim() == 1 and value.shape[0] != x.shape[0]:
        raise ValueError(
            f"{name} has shape {tuple(value.shape)} but x has C = {x.shape[0]} chains "
            f"(x of shape {tuple(x.shape)}); a per-chain {name} must have shape (C,)"
        )


def check_init_x(x: Any) -> Tensor:
    """Validate the initial points ``x`` (C, *D): a floating tensor with at least one dimension."""
    check_tensor("x", x, min_dim=1, floating=True)
    if x.shape[0] == 0:
        raise ValueError(f"x must hold at least one chain, got shape {tuple(x.shape)}")
    return x


def chain_view(value: float | Tensor, x: Tensor) -> float | Tensor:
    """``value`` ready to multiply ``x`` (C, *D): a float stays a float; a tensor is moved to
    ``x``'s device/dtype and a (C,) tensor is reshaped to (C, 1, ..., 1)."""
    if not isinstance(value, Tensor):
        return value
    value = value.to(device=x.device, dtype=x.dtype)
    if value.dim() == 1:
        return value.reshape(-1, *([1] * (x.dim() - 1)))
    return value


def sqrt_of(value: float | Tensor) -> float | Tensor:
    """Square root of a float or a tensor."""
    return value.sqrt() if isinstance(value, Tensor) else math.sqrt(value)


def finite_chains(*tensors: Tensor) -> Tensor:
    """(C,) bool: True where every entry of every tensor (each (C,) or (C, *D)) is finite.

    Computed as ``isfinite`` of one per-chain sum of all entries (a NaN or inf anywhere makes the
    sum non-finite): tensors of the same shape are added elementwise first, so the usual
    ``(x, energy, grad)`` check costs one reduction. A chain whose entries are finite but sum
    past the dtype's range (about 1e38 in float32, 1e308 in float64) also counts as non-finite,
    which only happens to a chain that is diverging anyway.
    """
    total: Tensor | None = None
    pending: Tensor | None = None
    for t in tensors:
        if t.dim() <= 1:
            total = t if total is None else total + t
        elif pending is None:
            pending = t
        elif pending.shape == t.shape:
            pending = pending + t
        else:
            s = row_sum(t.flatten(1))
            total = s if total is None else total + s
    if pending is not None:
        s = row_sum(pending.flatten(1))
        total = s if total is None else total + s
    return torch.isfinite(total)  # type: ignore[arg-type]


# a chain's row of 8 or 16 bytes read as one element, for :func:`where_chains`
_ROW_AS = {8: torch.int64, 16: torch.complex128}
_ROW_MIN_CHAINS = 2048


def where_chains(mask: Tensor, new: Tensor, old: Tensor) -> Tensor:
    """Per-chain select: ``new`` where ``mask`` (C,) is True, else ``old``; any trailing shape.

    On CPU ``torch.where`` over many short rows (10,000 chains of 2 float32) runs a slow
    broadcast loop; there each chain's row of 8 or 16 bytes is selected as one int64 / complex128
    element instead: the same bits (NaN and inf included) at about a third of the time.
    """
    if new.dim() == 1:
        return torch.where(mask, new, old)
    c = new.shape[0]
    if (
        c >= _ROW_MIN_CHAINS
        and new.device.type == "cpu"
        and new.dtype == old.dtype
        and new.shape == old.shape
        and new.is_contiguous()
        and old.is_contiguous()
        and not (new.requires_grad or old.requires_grad)  # the row view is not differentiable
    ):
        as_row = _ROW_AS.get(new.numel() // c * new.element_size()) if c else None
        if as_row is not None and new.dtype.is_floating_point:
            picked = torch.where(
                mask, new.view(c, -1).view(as_row).view(c), old.view(c, -1).view(as_row).view(c)
            )
            return picked.view(new.dtype).view(new.shape)
    # An expanded (stride-0) mask is markedly faster than a broadcast one on CPU.
    return torch.where(mask.reshape(-1, *([1] * (new.dim() - 1))).expand_as(new), new, old)


def init_grad_state(energy_fn: EnergyFn, x: Tensor) -> GradState:
    """Validate ``x`` (C, *D) and evaluate (and cache) ``E(x)`` and ``grad_x E(x)``."""
    check_init_x(x)
    x = x.detach()
    energy, grad = energy_and_grad(energy_fn, x)
    return GradState(x, energy, grad)
