"""torchenergy: energy-based models in PyTorch.

Define an energy ``E(x)`` (shape ``(C, *D) -> (C,)``), sample from ``p(x) ∝ exp(-E(x))``, train
``E`` from data, and use it. Conventions (signs, shapes, the Langevin step-size rule) are stated
once in :mod:`torchenergy.types`.

Subpackages are imported lazily: ``torchenergy.samplers``, ``torchenergy.energies``, ...
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = (
    "types",
    "energies",
    "samplers",
    "losses",
    "models",
    "estimate",
    "diffusion",
    "metrics",
    "diagnostics",
    "data",
    "train",
    "viz",
)

__all__ = ["__version__", *_SUBMODULES]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"torchenergy.{name}")
    raise AttributeError(f"module 'torchenergy' has no attribute {name!r}")
