"""Train a config into a folder: ``config.json``, ``log.csv``, ``checkpoint.pt`` (+ TensorBoard).

``train_to_folder(cfg, out, resume=True)`` continues an interrupted run from
``out/checkpoint.pt`` bit-identically (the checkpoint holds the step, weights, optimiser, EMA,
replay buffer and random states).

Example:
    >>> import tempfile
    >>> cfg = TrainConfig(data="moons", hidden=[8], steps=3, batch_size=16, buffer_size=32,
    ...                   n_sampler_steps=1, n_test=50)
    >>> res = train_to_folder(cfg, tempfile.mkdtemp(), progress=False)
    >>> res["step"]
    3
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torchenergy.cli.config import TrainConfig
from torchenergy.cli.recipe import Run, build_run
from torchenergy.train import (
    Callback,
    CheckpointError,
    CheckpointEvery,
    CSVLogger,
    ProgressBar,
    TensorBoardLogger,
)
from torchenergy.train.distributed import merge_rank_checkpoint

__all__ = ["train_to_folder"]


def train_to_folder(
    cfg: TrainConfig,
    out: str | os.PathLike[str],
    *,
    resume: bool = False,
    progress: bool = True,
    tensorboard: bool = False,
    callbacks: Sequence[Callback] = (),
) -> dict[str, Any]:
    """Train ``cfg`` writing into ``out``; returns ``{"step", "checkpoint", "run"}``.

    Raises:
        CheckpointError: ``resume`` without a checkpoint, or a checkpoint of another config.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.pt"
    cbs: list[Callback] = [CSVLogger(out / "log.csv", every=cfg.log_every)]
    if tensorboard:
        cbs.append(TensorBoardLogger(out / "tensorboard", every=cfg.log_every))
    if cfg.checkpoint_every:
        cbs.append(CheckpointEvery(ckpt_path, cfg.checkpoint_every))
    if progress:
        cbs.append(ProgressBar(desc=f"{cfg.loss} on {cfg.data}"))
    cbs.extend(callbacks)
    run: Run = build_run(cfg, callbacks=cbs)
    if resume:  # distributed: rank 0's weights + this rank's own state, same world size
        ckpt = merge_rank_checkpoint(ckpt_path)  # also checks the world size
        saved = ckpt.get("config", {})
        differs = {
            k: (saved.get(k), v)
            for k, v in cfg.to_dict().items()
            if k != "steps" and saved.get(k) != v
        }
        if differs:
            raise CheckpointError(
                f"{str(ckpt_path)!r} was trained with another config: {differs} (saved, now)"
            )
        run.trainer.load_state_dict(ckpt)
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    run.trainer.fit(run.data, max_steps=cfg.steps)
    run.trainer.save(ckpt_path)
    return {"step": run.trainer.step, "checkpoint": ckpt_path, "run": run}
