"""Validation helpers used at the library's boundaries (constructors, ``init``, loaders, CLI).

Every error names the offending value and what was expected. No ``assert`` for user input.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "check_energy_shape",
    "check_finite_tensor",
    "check_positive",
    "check_positive_int",
    "check_probability",
    "check_tensor",
    "no_event_hint",
]


def _describe(value: Any) -> str:
    if isinstance(value, Tensor):
        if value.numel() <= 6:
            return f"tensor {value.tolist()!r} (shape {tuple(value.shape)})"
        return f"tensor of shape {tuple(value.shape)}, dtype {value.dtype}"
    return repr(value)


def no_event_hint(name: str, x: Tensor) -> str:
    """What an ``x`` of shape (C,) means, and the two shapes the user probably meant."""
    n = x.shape[0]
    return (
        f"{name} of shape ({n},) is {n} chains with no event dimensions D (one point of "
        f"dimension {n} is {name}.unsqueeze(0), shape (1, {n}); {n} scalar points are "
        f"{name}.unsqueeze(-1), shape ({n}, 1))"
    )


def check_positive(name: str, value: Any, *, allow_zero: bool = False) -> None:
    """Raise ``ValueError`` unless ``value`` (float or tensor) is finite and > 0 (or >= 0)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Tensor)):
        raise TypeError(f"{name} must be a number or a tensor, got {_describe(value)}")
    if isinstance(value, Tensor):
        if value.is_floating_point() or value.dtype in (torch.int32, torch.int64):
            v = value.detach()
            ok = bool(torch.isfinite(v).all()) and bool(
                (v >= 0).all() if allow_zero else (v > 0).all()
            )
        else:
            ok = False
    else:
        ok = math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}, got {_describe(value)}")


def check_positive_int(name: str, value: Any, *, allow_zero: bool = False) -> None:
    """Raise unless ``value`` is a Python int > 0 (or >= 0)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {_describe(value)}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else ">= 1"
        raise ValueError(f"{name} must be an int {bound}, got {value!r}")


def check_probability(
    name: str, value: Any, *, open_left: bool = False, open_right: bool = False
) -> None:
    """Raise unless ``value`` is a float in [0, 1] (ends optionally open)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float in [0, 1], got {_describe(value)}")
    lo_ok = value > 0 if open_left else value >= 0
    hi_ok = value < 1 if open_right else value <= 1
    if not (math.isfinite(value) and lo_ok and hi_ok):
        lo = "(" if open_left else "["
        hi = ")" if open_right else "]"
        raise ValueError(f"{name} must lie in {lo}0, 1{hi}, got {value!r}")


def check_tensor(name: str, value: Any, *, min_dim: int = 0, floating: bool = False) -> Tensor:
    """Raise ``TypeError``/``ValueError`` unless ``value`` is a tensor with at least ``min_dim`` dims."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.dim() < min_dim:
        hint = f": {no_event_hint(name, value)}" if value.dim() == 1 and min_dim >= 2 else ""
        raise ValueError(
            f"{name} must have at least {min_dim} dimension(s) (C, *D), got shape "
            f"{tuple(value.shape)}{hint}"
        )
    if floating and not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
    return value


def check_finite_tensor(name: str, value: Tensor) -> None:
    """Raise ``ValueError`` if ``value`` holds NaN or inf (counts them in the message)."""
    bad = ~torch.isfinite(value)
    if bool(bad.any()):
        raise ValueError(
            f"{name} holds {int(bad.sum())} non-finite value(s) out of {value.numel()}"
        )


def check_energy_shape(energy: Tensor, x: Tensor, where: str = "energy_fn") -> None:
    """Raise ``ValueError`` unless ``energy`` has shape ``(C,)`` for ``x`` of shape ``(C, *D)``."""
    if not isinstance(energy, Tensor):
        raise TypeError(f"{where} must return a tensor of shape (C,), got {type(energy).__name__}")
    if energy.shape != x.shape[:1]:
        hint = f"; {no_event_hint('x', x)}" if x.dim() == 1 else ""
        raise ValueError(
            f"{where} must map x of shape (C, *D) = {tuple(x.shape)} to energies of shape (C,) = "
            f"({x.shape[0]},), got shape {tuple(energy.shape)}{hint}"
        )
