"""Callbacks for :class:`~torchenergy.train.Trainer`: logging, progress, periodic work.

A callback subclasses :class:`Callback` and overrides any of ``on_fit_start(trainer)``,
``on_step_end(trainer, out, logs)``, ``on_epoch_end(trainer)``, ``on_fit_end(trainer)``.
``out`` is what the step function returned (a NamedTuple with ``.loss``); ``logs`` is a dict of
floats (``step``, ``loss``, the scalar diagnostics of ``out``, ``param_grad_norm`` when
clipping, ``lr``). Setting
``trainer.should_stop = True`` ends :meth:`Trainer.fit` after the current step.

Example:
    >>> seen = []
    >>> cb = LambdaCallback(on_step_end=lambda trainer, out, logs: seen.append(logs["step"]))
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Protocol

from torch import nn

from torchenergy._checks import check_positive_int

__all__ = [
    "CSVLogger",
    "Callback",
    "CheckpointEvery",
    "EveryN",
    "LambdaCallback",
    "ProgressBar",
    "TensorBoardLogger",
    "TrainerView",
]


class TrainerView(Protocol):
    """What a callback sees of the trainer (:class:`~torchenergy.train.Trainer` is one).

    Callbacks read the counters, the model, the EMA, the config and the named state objects,
    may set ``should_stop``, and may :meth:`save` a checkpoint; they never import the trainer.
    """

    model: nn.Module
    step: int
    epoch: int
    max_steps: int | None
    should_stop: bool
    completed: bool
    ema: Any
    config: dict[str, Any]
    state: dict[str, Any]

    @property
    def at_boundary(self) -> bool:
        """False only when an exception hit an optimiser update (nothing can be saved then)."""
        ...

    def save(self, path: str | os.PathLike[str], **extra: Any) -> Path:
        """Write a checkpoint of the last completed step to ``path``."""
        ...


class Callback:
    """Base class: every hook is a no-op.

    ``main_only = True`` (the loggers and the progress bar) runs the callback on rank 0 only
    when the trainer is distributed; the others run on every rank.
    """

    main_only: ClassVar[bool] = False

    def on_fit_start(self, trainer: TrainerView) -> None:
        """Called at the start of :meth:`Trainer.fit`."""

    def on_step_end(self, trainer: TrainerView, out: Any, logs: dict[str, float]) -> None:
        """Called after each optimiser step (``trainer.step`` already counts it)."""

    def on_epoch_end(self, trainer: TrainerView) -> None:
        """Called when a pass over a re-iterable data source ends."""

    def on_fit_end(self, trainer: TrainerView) -> None:
        """Called when :meth:`Trainer.fit` returns (also after an exception)."""


class LambdaCallback(Callback):
    """Build a callback from plain functions, e.g. ``LambdaCallback(on_step_end=f)``."""

    def __init__(
        self,
        *,
        on_fit_start: Callable[..., None] | None = None,
        on_step_end: Callable[..., None] | None = None,
        on_epoch_end: Callable[..., None] | None = None,
        on_fit_end: Callable[..., None] | None = None,
    ) -> None:
        self._fns = {
            "on_fit_start": on_fit_start,
            "on_step_end": on_step_end,
            "on_epoch_end": on_epoch_end,
            "on_fit_end": on_fit_end,
        }

    def on_fit_start(self, trainer: TrainerView) -> None:
        if self._fns["on_fit_start"]:
            self._fns["on_fit_start"](trainer)

    def on_step_end(self, trainer: TrainerView, out: Any, logs: dict[str, float]) -> None:
        if self._fns["on_step_end"]:
            self._fns["on_step_end"](trainer, out, logs)

    def on_epoch_end(self, trainer: TrainerView) -> None:
        if self._fns["on_epoch_end"]:
            self._fns["on_epoch_end"](trainer)

    def on_fit_end(self, trainer: TrainerView) -> None:
        if self._fns["on_fit_end"]:
            self._fns["on_fit_end"](trainer)


class EveryN(Callback):
    """Call ``fn(trainer)`` every ``every`` steps (and at step 0 when ``at_start``); keep results.

    The return values are appended to ``self.history`` as ``(step, value)`` pairs, e.g. energy
    grids for a training animation.
    """

    def __init__(
        self, every: int, fn: Callable[[TrainerView], Any], *, at_start: bool = True
    ) -> None:
        check_positive_int("every", every)
        self.every = every
        self.fn = fn
        self.at_start = at_start
        self.history: list[tuple[int, Any]] = []

    def on_fit_start(self, trainer: TrainerView) -> None:
        if self.at_start and trainer.step == 0 and not self.history:
            self.history.append((0, self.fn(trainer)))

    def on_step_end(self, trainer: TrainerView, out: Any, logs: dict[str, float]) -> None:
        if trainer.step % self.every == 0:
            self.history.append((trainer.step, self.fn(trainer)))


class CheckpointEvery(Callback):
    """Save ``trainer.save(path)`` every ``every`` steps and when fitting ends, also when it
    ends on an exception or Ctrl-C: the trainer is then at the last completed step (a torn
    trainer, see :mod:`torchenergy.train.boundary`, is not saved and the last file stays)."""

    def __init__(self, path: str | os.PathLike[str], every: int) -> None:
        check_positive_int("every", every)
        self.path = Path(path)
        self.every = every

    def on_step_end(self, trainer: TrainerView, out: Any, logs: dict[str, float]) -> None:
        if trainer.step % self.every == 0:
            trainer.save(self.path)

    def on_fit_end(self, trainer: TrainerView) -> None:
        if trainer.at_boundary:
            trainer.save(self.path)


class CSVLogger(Callback):
    """Append ``logs`` to a CSV file every ``every`` steps.

    The last step of a fit's budget is always logged (also when ``should_stop`` or
    ``max_epochs`` ends it), an interrupted fit's last step is not (an uninterrupted run has no
    row there). On a resumed run, rows logged after the checkpoint's step are dropped first, so
    the file reads as one uninterrupted run. Columns are fixed by the first row written.
    """

    main_only: ClassVar[bool] = True

    def __init__(self, path: str | os.PathLike[str], every: int = 1) -> None:
        check_positive_int("every", every)
        self.path = Path(path)
        self.every = every
        self._fields: list[str] | None = None
        self._pending: dict[str, float] | None = None

    def on_fit_start(self, trainer: TrainerView) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fields = None
        self._pending = None
        if self.path.exists():
            with open(self.path, newline="") as f:
                reader = csv.DictReader(f)
                fields = reader.fieldnames
                rows = [r for r in reader if float(r.get("step", 0)) <= trainer.step]
            if fields and trainer.step > 0:
                self._fields = list(fields)
                with open(self.path, "w", newline="") as f:
                    writer = csv.DictWriter(f, fieldnames=self._fields)
                    writer.writeheader()
                    writer.writerows(rows)
            else:
                self.path.unlink()

    def on_step_end(self, trainer: TrainerView, out: Any, logs: dict[str, float]) -> None:
        if trainer.step % self.every and trainer.step != trainer.max_steps:
            self._pending = logs
            return
        self._pending = None
        self._write(logs)

    def on_fit_end(self, trainer: TrainerView) -> None:
        if self._pending is not None and trainer.completed:
            self._write(self._pending)
        self._pending = None

    def _write(self, logs: dict[str, float]) -> None:
        new = self._fields is None
        if new:
            self._fields = list(logs)
        with open(self.path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self._fields, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(logs)


class TensorBoardLogger(Callback):
    """Write ``logs`` as TensorBoard scalars (``torch.utils.tensorboard``) every ``every`` steps."""

    main_only: ClassVar[bool] = True

    def __init__(self, log_dir: str | os.PathLike[str], every: int = 1) -> None:
        check_positive_int("every", every)
        self.log_dir = str(log_dir)
        self.every = every
        self._writer: Any = None

    def on_fit_start(self, trainer: TrainerView) -> None:
        from torch.utils.tensorboard import SummaryWriter

        purge = trainer.step + 1 if trainer.step > 0 else None
        self._writer = SummaryWriter(self.log_dir, purge_step=purge)

    def on_step_end(self, trainer: TrainerView, out: Any, logs: dict[str, float]) -> None:
        if self._writer is None or trainer.step % self.every:
            return
        for key, value in logs.items():
            if key != "step":
                self._writer.add_scalar(key, value, trainer.step)

    def on_fit_end(self, trainer: TrainerView) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class ProgressBar(Callback):
    """A tqdm progress bar over steps showing the latest loss."""

    main_only: ClassVar[bool] = True

    def __init__(self, desc: str = "training", every: int = 10) -> None:
        check_positive_int("every", every)
        self.desc = desc
        self.every = every
        self._bar: Any = None

    def on_fit_start(self, trainer: TrainerView) -> None:
        from tqdm.auto import tqdm

        self._bar = tqdm(
            total=trainer.max_steps, initial=trainer.step, desc=self.desc, dynamic_ncols=True
        )

    def on_step_end(self, trainer: TrainerView, out: Any, logs: dict[str, float]) -> None:
        if self._bar is None:
            return
        self._bar.update(1)
        if trainer.step % self.every == 0:
            self._bar.set_postfix(loss=f"{logs['loss']:.4g}", refresh=False)

    def on_fit_end(self, trainer: TrainerView) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
