"""The optional training loop: ``Trainer``, callbacks, EMA, checkpoints and logging."""

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
from torchenergy.train.ema import EMA
from torchenergy.train.trainer import Trainer, scalar_logs

__all__ = [
    "EMA",
    "CSVLogger",
    "Callback",
    "CheckpointError",
    "CheckpointEvery",
    "EveryN",
    "LambdaCallback",
    "ProgressBar",
    "TensorBoardLogger",
    "Trainer",
    "load_checkpoint",
    "rng_state",
    "save_checkpoint",
    "scalar_logs",
    "set_rng_state",
]
