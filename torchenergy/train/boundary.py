"""Step boundaries: a checkpoint only ever holds the state between two optimiser steps.

A training step changes several things one after the other: the data stream and the sampler
generators draw, a replay buffer's chains move, batch-norm or spectral-norm buffers update in the
forward pass, and only then does the optimiser write the weights. Saved in the middle, a
checkpoint would hold a model at step k with generators and chains already in step k + 1, and a
resumed run would drift from an uninterrupted one. :class:`~torchenergy.train.Trainer` keeps to
boundaries in two ways:

* **Interrupts wait for the boundary.** While ``fit`` (or ``train_step``) runs in the main thread
  under Python's default SIGINT handler, Ctrl-C only sets a flag (:class:`DeferredInterrupt`);
  ``KeyboardInterrupt`` is raised once the step and its callbacks are done. A second Ctrl-C in
  the same step raises at once (the way out of a step that hangs).
* **Failed steps are rolled back.** Before each step the trainer takes a :class:`StepMark`: every
  random state it checkpoints, a copy of each ``state`` object's ``state_dict`` and of the model's
  buffers. An exception before the optimiser update (a non-finite loss, a diverging sampler, a
  ``KeyboardInterrupt`` raised inside the step) restores the mark, so the trainer, and any
  checkpoint written afterwards, is at the last completed step. The weights, optimiser, EMA and
  scheduler are written only after the last point that can fail, so the mark need not copy them;
  an exception inside that short update itself leaves the trainer *torn*, and it then refuses to
  save (the checkpoint on disk stays the last boundary written).

The mark costs one copy of the random states and of the state objects per step: for the CLI's
smallest PCD run (10,000 x 2 replay buffer, MLP 32, 20 Langevin steps, one thread) about 0.5 ms
of a 23 ms step (2 %; most of it NumPy's legacy ``get_state``), less for any larger model.
"""

from __future__ import annotations

import random
import signal
import threading
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["DeferredInterrupt", "StepMark", "mark_step", "rollback_step"]


class DeferredInterrupt:
    """Hold SIGINT until the end of a step: the first Ctrl-C sets :attr:`pending`, a second one
    raises ``KeyboardInterrupt`` at once. Re-entrant; leaving the outermost level raises the
    pending interrupt (unless an exception is already on its way out).

    Installed only in the main thread and only over Python's default SIGINT handler, so a
    handler of the application's own (or of a notebook) is left alone.
    """

    def __init__(self) -> None:
        self.pending = False
        self._depth = 0
        self._previous: Any = None
        self._installed = False

    def _handle(self, signum: int, frame: Any) -> None:
        if self.pending:
            raise KeyboardInterrupt("interrupted twice: left in the middle of a step")
        self.pending = True

    def __enter__(self) -> DeferredInterrupt:
        self._depth += 1
        if self._depth == 1:
            self.pending = False
            if (
                threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler
            ):
                self._previous = signal.signal(signal.SIGINT, self._handle)
                self._installed = True
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._depth -= 1
        if self._depth:
            return
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False
        if exc_type is None:
            self.raise_if_pending()

    def raise_if_pending(self, step: int | None = None) -> None:
        """Raise the held ``KeyboardInterrupt`` (at a step boundary)."""
        if self.pending:
            self.pending = False
            where = "" if step is None else f" at the end of step {step}"
            raise KeyboardInterrupt(f"interrupted{where}")


class StepMark(NamedTuple):
    """What a step may change before its optimiser update (see :func:`mark_step`)."""

    rng: dict[str, Any]
    state: dict[str, Any]
    buffers: dict[str, Tensor]


def _clone(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.detach().clone()
    if isinstance(value, Mapping):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_clone(v) for v in value)
    return value


def _raw_rng(generators: Mapping[str, torch.Generator]) -> dict[str, Any]:
    """The random states of :func:`~torchenergy.train.checkpoint.rng_state`, kept in memory as
    the libraries return them (no conversion: this runs once per step)."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),  # noqa: NPY002 - the legacy global state, as checkpointed
        "python": random.getstate(),
        "generators": {k: g.get_state() for k, g in generators.items()},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_raw_rng(state: dict[str, Any], generators: Mapping[str, torch.Generator]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    random.setstate(state["python"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])
    for k, g in generators.items():
        g.set_state(state["generators"][k])


def mark_step(
    model: nn.Module, state: Mapping[str, Any], generators: Mapping[str, torch.Generator]
) -> StepMark:
    """Copy the random states, the ``state`` objects and the model's buffers."""
    return StepMark(
        _raw_rng(generators),
        {k: _clone(obj.state_dict()) for k, obj in state.items()},
        {k: b.detach().clone() for k, b in model.named_buffers()},
    )


def rollback_step(
    mark: StepMark,
    model: nn.Module,
    state: Mapping[str, Any],
    generators: Mapping[str, torch.Generator],
) -> None:
    """Put back what :func:`mark_step` copied."""
    _set_raw_rng(mark.rng, generators)
    for k, obj in state.items():
        obj.load_state_dict(mark.state[k])
    with torch.no_grad():
        for k, b in model.named_buffers():
            if k in mark.buffers and b.shape == mark.buffers[k].shape:
                b.copy_(mark.buffers[k])
