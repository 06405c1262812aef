"""torchenergy: energy-based models in PyTorch.

Define an energy ``E(x)`` (shape ``(C, *D) -> (C,)``), sample from ``p(x) ∝ exp(-E(x))``, train
``E`` from data, and use it. Conventions (signs, shapes, the Langevin step-size rule) are stated
once in :mod:`torchenergy.types`.

Subpackages are imported lazily: ``torchenergy.samplers``, ``torchenergy.energies``, ...
"""

from __future__ import annotations

import importlib
import importlib.util
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
    "ood",
    "schedules",
    "metrics",
    "diagnostics",
    "data",
    "train",
    "viz",
)

# ``from torchenergy import *`` imports what this copy of the package has (a submodule planned
# in the design but absent is left out of ``__all__``, and its lookup raises AttributeError)
__all__ = [
    "__version__",
    *(m for m in _SUBMODULES if importlib.util.find_spec(f"torchenergy.{m}") is not None),
]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        try:
            module = importlib.import_module(f"torchenergy.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"torchenergy.{name}":
                raise  # a dependency of the submodule is missing: say which
            # a lookup that fails is an AttributeError (hasattr, getattr with a default)
            raise AttributeError(
                f"module 'torchenergy' has no attribute {name!r} (torchenergy.{name} is not "
                "installed in this copy of the package)"
            ) from err
        globals()[name] = module
        return module
    raise AttributeError(f"module 'torchenergy' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
