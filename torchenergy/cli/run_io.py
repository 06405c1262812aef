"""Train a config into a folder: ``config.json``, ``log.csv``, ``checkpoint.pt`` (+ TensorBoard).

``train_to_folder(cfg, out, resume=True)`` continues an interrupted run from
``out/checkpoint.pt`` bit-identically: the checkpoint holds a step boundary (weights, optimiser,
EMA, replay buffer, every random state, the step) and the torch thread count the float
reductions depend on, and the resumed ``log.csv`` reads as the uninterrupted one. Ctrl-C saves
the last completed step (also when ``checkpoint_every`` is 0) and raises
:class:`TrainingInterrupted`.

Output paths are checked before any work: a file where a folder is expected or a folder that
cannot be written is an :class:`OutputPathError` (a ``ValueError``), and nothing is created
until the config, the data set and a resumed checkpoint have been checked.

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
import signal
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
    load_checkpoint,
    rng_state,
    set_rng_state,
)
from torchenergy.train.distributed import merge_rank_checkpoint

__all__ = [
    "OutputPathError",
    "TrainingInterrupted",
    "check_output_dir",
    "check_output_file",
    "saved_config",
    "train_to_folder",
]

#: Run settings that may change on ``--resume`` (they do not touch the trained numbers).
RESUMABLE_CHANGES = ("steps", "checkpoint_every")

#: Test-only: ``"k"`` raises KeyboardInterrupt inside step k (after its negatives are drawn),
#: ``"k:signal"`` sends this process SIGINT there (a real Ctrl-C in the middle of the step).
TEST_INTERRUPT_ENV = "_TORCHENERGY_TEST_INTERRUPT"


class OutputPathError(ValueError):
    """An output path that cannot be written (a file where a folder is expected, no permission)."""


class TrainingInterrupted(KeyboardInterrupt):
    """Training was interrupted; ``checkpoint`` holds the last completed ``step`` (None when the
    interrupt tore an optimiser update and the file on disk was left as it was)."""

    def __init__(self, step: int, checkpoint: Path | None, out: Path) -> None:
        self.step, self.checkpoint, self.out = step, checkpoint, out
        if checkpoint is not None:
            text = (
                f"interrupted after step {step}; {str(checkpoint)!r} holds that step "
                f"(continue with `torchenergy train --out {out} --resume`)"
            )
        else:
            text = (
                f"interrupted twice, inside the optimiser update of step {step + 1}; the "
                f"checkpoint in {str(out)!r} (if any) is the last one saved"
            )
        super().__init__(text)


def _blocker(path: Path) -> str | None:
    """Why ``path`` cannot become a writable folder (None when it can)."""
    target = path
    while not target.exists() and target != target.parent:
        target = target.parent  # the missing folders would be created in here
    if not target.is_dir():
        return f"{str(target)!r} is a file, not a folder"
    if not os.access(target, os.W_OK | os.X_OK):
        return f"no permission to write in {str(target)!r}"
    return None


def check_output_dir(path: str | os.PathLike[str], what: str = "--out") -> Path:
    """Check, without creating anything, that ``path`` is or can become a writable folder.

    Raises:
        OutputPathError: a file is in the way, or the folder (or its nearest existing parent,
            where the missing ones would be created) cannot be written.
    """
    p = Path(path)
    why = _blocker(p)
    if why:
        raise OutputPathError(f"{what} {str(p)!r}: {why}")
    return p


def check_output_file(path: str | os.PathLike[str], what: str = "--out") -> Path:
    """Check that ``path`` can be written as a file (missing folders above it may be created).

    Raises:
        OutputPathError: ``path`` is a folder, or its folder cannot be written.
    """
    p = Path(path)
    why = "it is a folder" if p.is_dir() else _blocker(p.parent)
    if why:
        raise OutputPathError(f"{what} {str(p)!r}: {why}")
    return p


def saved_config(out: str | os.PathLike[str]) -> dict[str, Any]:
    """The config of the run in ``out``: ``config.json``, else the one in ``checkpoint.pt``.

    Raises:
        CheckpointError: neither is there, or ``config.json`` does not parse.
    """
    out = Path(out)
    path = out / "config.json"
    if path.is_file():
        try:
            values = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{str(path)!r} does not parse: {exc}") from None
        if not isinstance(values, dict):
            raise CheckpointError(f"{str(path)!r} must hold an object of config keys")
        return values
    if (out / "checkpoint.pt").is_file():
        values = load_checkpoint(out / "checkpoint.pt").get("config")
        if isinstance(values, dict) and values:
            return values
    raise CheckpointError(
        f"nothing to resume in {str(out)!r}: no config.json or checkpoint.pt there"
    )


def _check_resumable(ckpt: dict[str, Any], cfg: TrainConfig, path: Path) -> None:
    import torch

    saved = ckpt.get("config", {})
    now = cfg.to_dict()
    differs = [
        f"{k} {saved.get(k)!r} then, {v!r} now"
        for k, v in now.items()
        if k not in RESUMABLE_CHANGES and saved.get(k) != v
    ]
    if differs:
        raise CheckpointError(
            f"{str(path)!r} was trained with another config: {'; '.join(differs)} (on --resume "
            f"only {' and '.join(RESUMABLE_CHANGES)} may change)"
        )
    threads = ckpt.get("num_threads")
    if isinstance(threads, int) and threads != torch.get_num_threads():
        raise CheckpointError(
            f"{str(path)!r} was trained with {threads} torch threads and this process has "
            f"{torch.get_num_threads()}; a resumed run is bit-identical only with the same "
            f"count: add --threads {threads}"
        )
    done = int(ckpt.get("step", 0))
    if cfg.steps < done:
        raise CheckpointError(
            f"the run in {str(path.parent)!r} has done {done} steps and steps={cfg.steps} asks "
            f"for fewer; nothing was changed (resume with steps={done} or more)"
        )


def _test_interrupt(trainer: Any) -> None:
    spec = os.environ.get(TEST_INTERRUPT_ENV)
    if not spec:
        return
    at_text, _, how = spec.partition(":")
    at = int(at_text)
    inner = trainer.step_fn

    def step_fn(batch: Any) -> Any:
        out = inner(batch)  # the data, the buffer and the generators have moved into this step
        if trainer.step + 1 == at:
            if how == "signal":
                signal.raise_signal(signal.SIGINT)
            else:
                raise KeyboardInterrupt(f"test interrupt inside step {at}")
        return out

    trainer.step_fn = step_fn


def train_to_folder(
    cfg: TrainConfig,
    out: str | os.PathLike[str],
    *,
    resume: bool = False,
    progress: bool = True,
    tensorboard: bool = False,
    callbacks: Sequence[Callback] = (),
) -> dict[str, Any]:
    """Train ``cfg`` writing into ``out``; returns ``{"step", "trained", "checkpoint", "run"}``
    (``trained``: the steps this call took, 0 when a resumed run was already done).

    Raises:
        OutputPathError: ``out`` cannot be a writable folder (checked before anything is done).
        CheckpointError: ``resume`` without a checkpoint, a checkpoint of another config or
            thread count, or fewer ``steps`` than the checkpoint has done (nothing is written).
        ValueError: an unknown data set (no folder is created).
        TrainingInterrupted: Ctrl-C; the last completed step was saved to ``checkpoint``.
    """
    out = check_output_dir(out)
    outer = rng_state()  # the caller's global random states, put back on the way out
    try:
        return _train(cfg, out, resume, progress, tensorboard, callbacks)
    finally:
        set_rng_state(outer)


def _seed_globals(seed: int) -> None:
    """Seed torch's, NumPy's and Python's global generators (a run's own draws use its seeded
    ``torch.Generator``; this makes any global draw, and the checkpointed states, repeatable)."""
    import random

    import numpy as np
    import torch

    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - the legacy global state is what is checkpointed
    random.seed(seed)


def _train(
    cfg: TrainConfig,
    out: Path,
    resume: bool,
    progress: bool,
    tensorboard: bool,
    callbacks: Sequence[Callback],
) -> dict[str, Any]:
    _seed_globals(cfg.seed)
    ckpt_path = out / "checkpoint.pt"
    ckpt = None
    if resume:
        ckpt = merge_rank_checkpoint(ckpt_path)  # distributed: + rank 0's weights; world size
        _check_resumable(ckpt, cfg, ckpt_path)
    cbs: list[Callback] = [CSVLogger(out / "log.csv", every=cfg.log_every)]
    if tensorboard:
        cbs.append(TensorBoardLogger(out / "tensorboard", every=cfg.log_every))
    if cfg.checkpoint_every:
        cbs.append(CheckpointEvery(ckpt_path, cfg.checkpoint_every))
    if progress:
        cbs.append(ProgressBar(desc=f"{cfg.loss} on {cfg.data}"))
    cbs.extend(callbacks)
    run: Run = build_run(cfg, callbacks=cbs)  # an unknown data set stops here, before mkdir
    start = 0
    if ckpt is not None:
        run.trainer.load_state_dict(ckpt)
        start = run.trainer.step
        if start == cfg.steps:  # nothing to do: rewrite nothing
            return {"step": start, "trained": 0, "checkpoint": ckpt_path, "run": run}
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    _test_interrupt(run.trainer)
    try:
        run.trainer.fit(run.data, max_steps=cfg.steps)
    except KeyboardInterrupt:
        saved = run.trainer.at_boundary
        if saved:
            run.trainer.save(ckpt_path)
        raise TrainingInterrupted(run.trainer.step, ckpt_path if saved else None, out) from None
    run.trainer.save(ckpt_path)
    step = run.trainer.step
    return {"step": step, "trained": step - start, "checkpoint": ckpt_path, "run": run}
