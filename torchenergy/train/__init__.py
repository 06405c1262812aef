"""The optional training loop: ``Trainer``, callbacks, EMA, checkpoints and logging; and the
config-driven runs behind the command line (``TrainConfig``, ``build_run``, ``train_to_folder``)."""

from torchenergy.train.callbacks import (
    Callback,
    CheckpointEvery,
    CSVLogger,
    EveryN,
    LambdaCallback,
    ProgressBar,
    TensorBoardLogger,
)
from torchenergy.train.checkpoint import (
    CheckpointError,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from torchenergy.train.config import TrainConfig
from torchenergy.train.ema import EMA
from torchenergy.train.recipe import EBM, Run, build_run, draw_samples, evaluate_run, load_run
from torchenergy.train.run_io import train_to_folder
from torchenergy.train.trainer import Trainer, scalar_logs

__all__ = [
    "EBM",
    "EMA",
    "CSVLogger",
    "Callback",
    "CheckpointError",
    "CheckpointEvery",
    "EveryN",
    "LambdaCallback",
    "ProgressBar",
    "Run",
    "TensorBoardLogger",
    "TrainConfig",
    "Trainer",
    "build_run",
    "draw_samples",
    "evaluate_run",
    "load_checkpoint",
    "load_run",
    "rng_state",
    "save_checkpoint",
    "scalar_logs",
    "set_rng_state",
    "train_to_folder",
]
