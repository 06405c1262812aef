"""The optional training loop: ``Trainer``, callbacks, EMA, checkpoints, logging and
data-parallel helpers (:mod:`torchenergy.train.distributed`).

The config-driven runs of the command line (``TrainConfig``, ``build_run``, ``train_to_folder``,
``EBM``, ``Run``, ``draw_samples``, ``evaluate_run``, ``load_run``) live in
:mod:`torchenergy.cli`; importing them from here still works for one release and warns.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

from torchenergy.train.callbacks import (
    Callback,
    CheckpointEvery,
    CSVLogger,
    EveryN,
    LambdaCallback,
    ProgressBar,
    TensorBoardLogger,
    TrainerView,
)
from torchenergy.train.checkpoint import (
    CheckpointError,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from torchenergy.train.ema import EMA
from torchenergy.train.image_ebm import ImageEBMConfig, ImageEBMResult, fit_image_ebm
from torchenergy.train.jem import JEMResult, fit_jem
from torchenergy.train.outputs import scalar_logs
from torchenergy.train.scheduling import Scheduled
from torchenergy.train.trainer import Trainer

__all__ = [
    "EMA",
    "CSVLogger",
    "Callback",
    "CheckpointError",
    "CheckpointEvery",
    "EveryN",
    "ImageEBMConfig",
    "ImageEBMResult",
    "JEMResult",
    "LambdaCallback",
    "ProgressBar",
    "Scheduled",
    "TensorBoardLogger",
    "Trainer",
    "TrainerView",
    "fit_image_ebm",
    "fit_jem",
    "load_checkpoint",
    "rng_state",
    "save_checkpoint",
    "scalar_logs",
    "set_rng_state",
]

#: Names that moved to :mod:`torchenergy.cli` (the application), kept here for one release.
_MOVED_TO_CLI = (
    "EBM",
    "Run",
    "TrainConfig",
    "build_run",
    "draw_samples",
    "evaluate_run",
    "load_run",
    "train_to_folder",
)


def __getattr__(name: str) -> Any:
    if name in _MOVED_TO_CLI:
        warnings.warn(
            f"torchenergy.train.{name} moved to torchenergy.cli.{name}; import it from "
            "torchenergy.cli (the old path goes away in the next release)",
            DeprecationWarning,
            stacklevel=2,
        )
        # by name, at call time: the library (train) never imports the application (cli)
        return getattr(importlib.import_module("torchenergy.cli"), name)
    raise AttributeError(f"module 'torchenergy.train' has no attribute {name!r}")
