"""Moved to :mod:`torchenergy.cli.demos` (the demos are part of the application); this alias
stays for one release and warns."""

from __future__ import annotations

import importlib
import warnings
from typing import Any

__all__: list[str] = []


def __getattr__(name: str) -> Any:
    if name == "run_sampler_demo":
        warnings.warn(
            "torchenergy.demos.run_sampler_demo moved to torchenergy.cli.demos.run_sampler_demo "
            "(the old path goes away in the next release)",
            DeprecationWarning,
            stacklevel=2,
        )
        return importlib.import_module("torchenergy.cli.demos").run_sampler_demo
    raise AttributeError(f"module 'torchenergy.demos' has no attribute {name!r}")
