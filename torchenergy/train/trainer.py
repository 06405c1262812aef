"""``Trainer``: optional sugar over a plain PyTorch loop, with exact resumption.

One step is the plain loop you would write by hand::

    optimizer.zero_grad(); out = step_fn(batch); out.loss.backward()
    clip_grad_norm_(params, grad_clip); optimizer.step(); scheduler.step(); ema.update(model)

``step_fn(batch)`` returns a NamedTuple with ``.loss`` (every ``torchenergy.losses`` function
does) or a scalar tensor. Negatives, replay buffers and samplers stay inside ``step_fn``; the
trainer only needs to know the stateful objects so it can checkpoint them: pass them as
``state={"buffer": buffer}`` (anything with ``state_dict``/``load_state_dict``) and the
generators they use as ``generators={"sampler": g}``.

Data: a re-iterable (``DataLoader``, list of batches) walked epoch by epoch, or a zero-argument
callable returning one batch per step (an endless stream, e.g. ``lambda: sample_toy("moons", 256,
generator=g)``). Resumption is bit-identical: the checkpoint holds the step, the position in the
epoch and the random states at the epoch's start, and a resumed fit rebuilds the epoch's
iterator under those states and skips the batches already used.

Example:
    >>> net = torch.nn.Linear(2, 1)
    >>> opt = torch.optim.SGD(net.parameters(), lr=0.1)
    >>> trainer = Trainer(net, opt, lambda x: net(x).pow(2).mean())
    >>> _ = trainer.fit([torch.ones(4, 2)] * 3, max_epochs=2)
    >>> trainer.step, trainer.epoch
    (6, 2)
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from torchenergy._checks import check_positive, check_positive_int
from torchenergy.train.boundary import DeferredInterrupt, StepMark, mark_step, rollback_step
from torchenergy.train.callbacks import Callback
from torchenergy.train.checkpoint import (
    CheckpointError,
    check_state_fits,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from torchenergy.train.ddp import wrap_step
from torchenergy.train.distributed import (
    backward_on_all_ranks,
    merge_rank_checkpoint,
    rank,
    rank_checkpoint,
    rank_path,
)
from torchenergy.train.ema import EMA
from torchenergy.train.fsdp import is_fsdp
from torchenergy.train.outputs import loss_of, nonfinite_loss, scalar_logs

__all__ = ["Trainer", "scalar_logs"]

_LOADER_GEN = "__data_loader__"
_EPOCH_END = object()  # what _next_batch returns when the epoch's iterator is exhausted


class Trainer:
    """Run ``step_fn`` over data with an optimiser; callbacks, clipping, EMA, checkpoints.

    Args:
        model: the energy network (``nn.Module``); its ``state_dict`` is checkpointed.
        optimizer: any ``torch.optim.Optimizer`` over the model's parameters.
        step_fn: ``batch -> out`` with ``out.loss`` a differentiable scalar (or a scalar tensor).
        scheduler: optional learning-rate scheduler, stepped after every optimiser step.
        grad_clip: clip the global gradient norm to this value (``None``: no clipping).
        ema: an EMA decay in [0, 1) or an :class:`EMA`; ``None`` keeps no average.
        callbacks: :class:`Callback` instances, called in order.
        generators: a ``torch.Generator`` or named generators used inside ``step_fn`` (their
            states are checkpointed and restored).
        state: named objects with ``state_dict``/``load_state_dict`` (a ``ReplayBuffer``...).
        config: JSON-like description of the run, stored in checkpoints (the CLI uses it).
        distributed: data-parallel training inside an initialised ``torch.distributed``
            process group (see :mod:`torchenergy.train.distributed`): the step runs inside
            ``DistributedDataParallel``, logging callbacks run on rank 0 only, a
            ``DistributedSampler``'s epoch is set, rank 0 checkpoints the weights and every
            rank its own sampler state.
        ddp_options: keyword arguments for ``DistributedDataParallel`` (default
            ``find_unused_parameters=True``; see :mod:`torchenergy.train.ddp`).

    Attributes:
        step: optimiser steps taken so far; epoch: completed passes over re-iterable data.
        max_steps: the step budget of the current :meth:`fit` (``None`` when by epochs).
        should_stop: set it to True in a callback to end :meth:`fit` after this step.
        completed: True once :meth:`fit` has reached its budget (False while it runs and when it
            left on an exception).
        at_boundary: False only when an exception hit the optimiser update itself (the trainer
            is then torn and refuses to :meth:`save`).
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        step_fn: Callable[[Any], Any],
        *,
        scheduler: Any | None = None,
        grad_clip: float | None = None,
        ema: float | EMA | None = None,
        callbacks: Sequence[Callback] = (),
        generators: torch.Generator | Mapping[str, torch.Generator] | None = None,
        state: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
        distributed: bool = False,
        ddp_options: Mapping[str, Any] | None = None,
    ) -> None:
        if distributed and not (
            torch.distributed.is_available() and torch.distributed.is_initialized()
        ):
            raise RuntimeError(
                "distributed=True needs an initialised torch.distributed process group "
                "(torch.distributed.init_process_group, e.g. under torchrun)"
            )
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer)}")
        if not callable(step_fn):
            raise TypeError(f"step_fn must be callable, got {type(step_fn).__name__}")
        if grad_clip is not None:
            check_positive("grad_clip", grad_clip)
        self.model = model
        self.optimizer = optimizer
        self.step_fn = step_fn
        self.scheduler = scheduler
        self.grad_clip = grad_clip
        self.ema = EMA(model, ema) if isinstance(ema, (int, float)) else ema
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be Callback instances, got {type(cb).__name__}")
        self.distributed = bool(distributed)
        # --- DDP (torchenergy.train.ddp): the whole step is one DistributedDataParallel call
        fsdp = is_fsdp(model)  # FSDP2 shards reduce-scatter themselves: no DDP around them
        self._ddp = (
            wrap_step(model, step_fn, **(ddp_options or {})) if distributed and not fsdp else None
        )
        self.callbacks = [cb for cb in callbacks if self.is_main or not cb.main_only]
        if isinstance(generators, torch.Generator):
            generators = {"generator": generators}
        self.generators: dict[str, torch.Generator] = dict(generators or {})
        self.state = dict(state or {})
        for name, obj in self.state.items():
            if not (hasattr(obj, "state_dict") and hasattr(obj, "load_state_dict")):
                raise TypeError(f"state[{name!r}] needs state_dict/load_state_dict methods")
        self.config = dict(config or {})
        self.step = 0
        self.epoch = 0
        self.max_steps: int | None = None
        self.should_stop = False
        self.completed = False
        self._torn = False
        self._interrupts = DeferredInterrupt()
        self._resumed_threads: int | None = None
        self._batch_in_epoch = 0
        self._epoch_rng: dict[str, Any] | None = None
        self._iter: Iterator[Any] | None = None
        self._iter_source: Any = None
        self._loader_gen: torch.Generator | None = None
        self._pending_loader_state: Tensor | None = None

    # ------------------------------------------------------------------ stepping
    def train_step(self, batch: Any) -> tuple[Any, dict[str, float]]:
        """One optimiser step on ``batch``; returns ``(out, logs)`` and advances ``step``.

        The step is all or nothing: if it raises before the optimiser update, the random states,
        the ``state`` objects and the model's buffers are put back as they were (Ctrl-C waits
        for the end of the step).

        Raises:
            FloatingPointError: the loss or the gradient norm is not finite (the optimiser is
                not stepped, so the weights stay as they were).
        """
        with self._interrupts:
            mark = self._mark()
            try:
                return self._step(batch)
            except BaseException:
                self._rollback(mark)
                raise

    def _mark(self, data: Any = None) -> StepMark:
        return mark_step(self.model, self.state, self._all_generators(data))

    def _rollback(self, mark: StepMark, data: Any = None) -> None:
        if not self._torn:  # a torn update cannot be undone; save() refuses then
            rollback_step(mark, self.model, self.state, self._all_generators(data))

    @property
    def at_boundary(self) -> bool:
        """True unless an exception hit the optimiser update (see :mod:`~torchenergy.train.boundary`)."""
        return not self._torn

    def _step(self, batch: Any) -> tuple[Any, dict[str, Any]]:
        if self._torn:
            raise RuntimeError(
                f"the trainer was interrupted inside the optimiser update of step {self.step + 1} "
                "and its state is torn; load a checkpoint before training on"
            )
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        if self.distributed:
            out, rank_loss = backward_on_all_ranks(
                self._ddp if self._ddp is not None else self.step_fn, batch, params, self.step + 1
            )
        else:
            out = self.step_fn(batch)
            loss = loss_of(out)
            if not bool(torch.isfinite(loss.detach())):
                raise nonfinite_loss(loss, f"at step {self.step + 1}")
            loss.backward()
        logs: dict[str, Any] = {"step": self.step + 1, **scalar_logs(out)}
        if self.distributed:
            logs["loss"] = float(rank_loss)  # averaged over ranks
        if self.grad_clip is not None:
            norm = torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
            if not bool(torch.isfinite(norm)):
                raise FloatingPointError(
                    f"gradient norm is {float(norm)} at step {self.step + 1}; the weights were "
                    "not updated"
                )
            logs["param_grad_norm"] = float(norm)
        # the update: nothing below raises in a sound run; if it does, the state is torn
        self._torn = True
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model)
        self.step += 1
        self._torn = False
        logs["lr"] = float(self.optimizer.param_groups[0]["lr"])
        return out, logs

    @property
    def is_main(self) -> bool:
        """True on the process that logs: rank 0, or the only process."""
        return not self.distributed or rank() == 0

    def _after_step(self, out: Any, logs: dict[str, float]) -> None:
        for cb in self.callbacks:
            cb.on_step_end(self, out, logs)

    def _all_generators(self, data: Any = None) -> dict[str, torch.Generator]:
        gens = dict(self.generators)
        loader_gen = getattr(data, "generator", None) if data is not None else self._loader_gen
        if isinstance(loader_gen, torch.Generator):
            gens[_LOADER_GEN] = loader_gen
        return gens

    def _epoch_iterator(self, data: Iterable[Any]) -> Iterator[Any]:
        gens = self._all_generators(data)
        if self._iter is not None and self._iter_source is data:
            return self._iter
        sampler = getattr(data, "sampler", None)
        if self.distributed and hasattr(sampler, "set_epoch"):
            sampler.set_epoch(self.epoch)  # a DistributedSampler reshuffles per epoch
        if self._batch_in_epoch == 0:
            self._epoch_rng = rng_state(gens)
            it = iter(data)
        else:  # resumed mid-epoch: replay the epoch's start, skip the used batches
            if self._epoch_rng is None:
                raise CheckpointError("resuming mid-epoch needs the epoch's random state")
            now = rng_state(gens)
            set_rng_state(self._epoch_rng, gens)
            it = iter(data)
            for i in range(self._batch_in_epoch):
                try:
                    next(it)
                except StopIteration:
                    if i < self._batch_in_epoch:
                        raise CheckpointError(
                            f"the data has fewer batches ({i}) than the checkpoint had used "
                            f"({self._batch_in_epoch}) in this epoch; is it the same data?"
                        ) from None
            set_rng_state(now, gens)
        self._iter, self._iter_source = it, data
        return it

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        data: Iterable[Any] | Callable[[], Any],
        *,
        max_steps: int | None = None,
        max_epochs: int | None = None,
    ) -> Trainer:
        """Train until ``step == max_steps`` or ``epoch == max_epochs`` (totals, so a resumed
        trainer given the same budget stops where an uninterrupted one would).

        Args:
            data: a re-iterable of batches, or a zero-argument callable returning a batch.
            max_steps: total optimiser steps (required for a callable).
            max_epochs: total passes over re-iterable data.

        Returns:
            ``self``.
        """
        stream = callable(data) and not isinstance(data, Iterable)
        if max_steps is None and max_epochs is None:
            raise ValueError("fit needs max_steps or max_epochs, got neither")
        if max_steps is not None:
            check_positive_int("max_steps", max_steps, allow_zero=True)
        if max_epochs is not None:
            check_positive_int("max_epochs", max_epochs, allow_zero=True)
            if stream:
                raise ValueError(
                    "max_epochs needs re-iterable data; a callable is an endless stream"
                )
        if not stream and not isinstance(data, Iterable):
            raise TypeError(f"data must be iterable or a callable, got {type(data).__name__}")
        self.max_steps = max_steps
        self.should_stop = False
        loader_gen = None if stream else getattr(data, "generator", None)
        self._loader_gen = loader_gen if isinstance(loader_gen, torch.Generator) else None
        if self._loader_gen is not None and self._pending_loader_state is not None:
            self._loader_gen.set_state(self._pending_loader_state)  # saved with the checkpoint
        self._pending_loader_state = None

        def done() -> bool:
            return (
                self.should_stop
                or (max_steps is not None and self.step >= max_steps)
                or (max_epochs is not None and self.epoch >= max_epochs)
            )

        self.completed = False
        threads, self._resumed_threads = self._resumed_threads, None
        if threads is not None and threads != torch.get_num_threads():
            warnings.warn(
                f"the checkpoint was written with {threads} torch threads, this process has "
                f"{torch.get_num_threads()}: the resumed run will not be bit-identical to an "
                f"uninterrupted one (call torch.set_num_threads({threads}) first)",
                RuntimeWarning,
                stacklevel=2,
            )
        for cb in self.callbacks:
            cb.on_fit_start(self)
        try:
            with self._interrupts as interrupts:  # Ctrl-C waits for the step boundary
                while not done():
                    mark = self._mark(None if stream else data)
                    try:  # one step, all or nothing: a failure puts the mark back
                        batch = data() if stream else self._next_batch(data)  # type: ignore[operator,arg-type]
                        if batch is not _EPOCH_END:
                            out, logs = self._step(batch)
                    except BaseException:
                        self._rollback(mark, None if stream else data)
                        raise
                    if batch is _EPOCH_END:
                        self._end_epoch()
                    else:
                        if not stream:
                            self._batch_in_epoch += 1
                        self._after_step(out, logs)
                    interrupts.raise_if_pending(self.step)
            self.completed = True
        except BaseException:
            self._iter = None  # it may have handed out a batch that was rolled back
            raise
        finally:
            for cb in self.callbacks:
                cb.on_fit_end(self)
        return self

    def _next_batch(self, data: Iterable[Any]) -> Any:
        try:
            return next(self._epoch_iterator(data))
        except StopIteration:
            return _EPOCH_END

    def _end_epoch(self) -> None:
        if self._batch_in_epoch == 0:
            raise ValueError("data yielded no batches")
        self.epoch += 1
        self._batch_in_epoch = 0
        self._epoch_rng = None
        self._iter = None
        for cb in self.callbacks:
            cb.on_epoch_end(self)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything a bit-identical resumption needs (safe for :func:`save_checkpoint`)."""
        return {
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self._batch_in_epoch,
            "epoch_rng": self._epoch_rng,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "ema": None if self.ema is None else self.ema.state_dict(),
            "state": {k: v.state_dict() for k, v in self.state.items()},
            "rng": rng_state(
                {**self.generators, **({_LOADER_GEN: self._loader_gen} if self._loader_gen else {})}
            ),
            "config": self.config,
            # intra-op threads change the order of float reductions: a run is bit-identical to
            # its resumption only with the same count
            "num_threads": torch.get_num_threads(),
        }

    def load_state_dict(self, ckpt: Mapping[str, Any], *, restore_rng: bool = True) -> None:
        """Restore :meth:`state_dict` (model, optimiser, EMA, state objects, RNGs, counters).

        Raises:
            CheckpointError: a missing entry, or weights of another model (the message names the
                tensor and both shapes).

        The next :meth:`fit` warns (RuntimeWarning) when the checkpoint was written with
        another torch thread count: the resumed run is then not bit-identical to an
        uninterrupted one.
        """
        try:
            check_state_fits("model", self.model, ckpt["model"])
            if self.ema is not None and isinstance(ckpt.get("ema"), Mapping):
                check_state_fits("EMA", self.ema.module, ckpt["ema"].get("module", {}))
            self.model.load_state_dict(ckpt["model"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
            if self.scheduler is not None and ckpt.get("scheduler") is not None:
                self.scheduler.load_state_dict(ckpt["scheduler"])
            if self.ema is not None:
                if ckpt.get("ema") is None:
                    raise CheckpointError("the trainer keeps an EMA but the checkpoint has none")
                self.ema.load_state_dict(ckpt["ema"])
            saved = ckpt.get("state", {})
            for name, obj in self.state.items():
                if name not in saved:
                    raise CheckpointError(
                        f"checkpoint has no state for {name!r} (it has {sorted(saved)})"
                    )
                obj.load_state_dict(saved[name])
            if restore_rng:
                set_rng_state(ckpt["rng"], self.generators)
                # the data loader's own generator is restored when fit() meets the loader
                self._pending_loader_state = ckpt["rng"].get("generators", {}).get(_LOADER_GEN)
            self.step = int(ckpt["step"])
            self.epoch = int(ckpt["epoch"])
            self._batch_in_epoch = int(ckpt["batch_in_epoch"])
            self._epoch_rng = ckpt.get("epoch_rng")
        except KeyError as exc:
            raise CheckpointError(f"checkpoint lacks the entry {exc.args[0]!r}") from None
        except RuntimeError as exc:  # shape / key mismatch from load_state_dict
            first = str(exc).strip().splitlines()[0]
            raise CheckpointError(f"checkpoint does not fit this model: {first}") from None
        self._iter = None
        self._iter_source = None
        self._torn = False
        threads = ckpt.get("num_threads")
        self._resumed_threads = threads if isinstance(threads, int) else None

    def save(self, path: str | os.PathLike[str], **extra: Any) -> Path:
        """Write a checkpoint atomically; ``extra`` keys are stored beside the trainer state.
        Distributed: each rank writes its own file, :func:`~torchenergy.train.distributed.rank_path`.

        Raises:
            CheckpointError: the trainer is torn (an exception hit the optimiser update), so no
                step boundary is there to save.
        """
        if self._torn:
            raise CheckpointError(
                f"not saving: an exception hit the optimiser update of step {self.step + 1}, so "
                "the weights are between two steps (the checkpoint on disk is the last boundary)"
            )
        if self.distributed:  # rank 0: weights + its state; rank r: its own state only
            return save_checkpoint(
                rank_path(path), rank_checkpoint({**self.state_dict(), "extra": extra})
            )
        return save_checkpoint(path, {**self.state_dict(), "extra": extra})

    def load(self, path: str | os.PathLike[str], *, restore_rng: bool = True) -> dict[str, Any]:
        """Resume from a checkpoint written by :meth:`save`; returns the raw checkpoint."""
        ckpt = merge_rank_checkpoint(path)  # checks the world size, merges rank 0's weights
        self.load_state_dict(ckpt, restore_rng=restore_rng)
        return ckpt

    def __repr__(self) -> str:
        return (
            f"Trainer(model={type(self.model).__name__}, step={self.step}, epoch={self.epoch}, "
            f"grad_clip={self.grad_clip}, ema={self.ema!r})"
        )
