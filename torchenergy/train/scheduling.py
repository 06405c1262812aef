"""Hyperparameter schedules advanced by the :class:`~torchenergy.train.Trainer`.

:class:`Scheduled` is a callback that holds named :mod:`torchenergy.schedules` schedules and
keeps each one at the trainer's step: before step ``t + 1`` runs, ``values[name]`` is
``schedule(t)`` (and ``apply(name, value)`` is called when given, e.g. to set a sampler's step
size or an optimiser's learning rate). The counters are derived from the trainer's own step
counter, which every checkpoint holds at a step boundary, so a resumed, rolled-back or
interrupted run sees exactly the values of an uninterrupted one. Also passed as trainer
``state`` (``state={"schedules": sched}``), its ``state_dict`` is checkpointed and a resume
with a different schedule is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from torchenergy.schedules import Schedule
from torchenergy.train.callbacks import Callback, TrainerView

__all__ = ["Scheduled"]


class Scheduled(Callback):
    """Named schedules kept at the trainer's step (a :class:`Callback`).

    Args:
        schedules: ``{name: Schedule}``, e.g. ``{"step_size": Cosine(0.05, 0.005, 1000)}``.
        apply: optional ``apply(name, value)`` called whenever a value is set (before the first
            step and after every step), e.g. ``lambda n, v: opt.param_groups[0].update(lr=v)``.
        log: add each value to the step's logs (before callbacks listed after this one).

    Attributes:
        values: ``{name: float}``, the values for the next step.

    Example:
        >>> import torch
        >>> from torchenergy.schedules import Linear
        >>> from torchenergy.train import Trainer
        >>> net = torch.nn.Linear(1, 1)
        >>> sched = Scheduled({"w": Linear(1.0, 0.0, 4)})
        >>> seen = []
        >>> def step(batch):
        ...     seen.append(sched.values["w"])
        ...     return sched.values["w"] * net(batch).pow(2).mean()
        >>> trainer = Trainer(net, torch.optim.SGD(net.parameters(), 0.1), step, callbacks=[sched])
        >>> _ = trainer.fit(lambda: torch.ones(2, 1), max_steps=5)
        >>> seen
        [1.0, 0.75, 0.5, 0.25, 0.0]
    """

    main_only: ClassVar[bool] = False  # every rank needs the values

    def __init__(
        self,
        schedules: Mapping[str, Schedule],
        *,
        apply: Callable[[str, float], None] | None = None,
        log: bool = True,
    ) -> None:
        if not isinstance(schedules, Mapping) or not schedules:
            raise ValueError(f"schedules must be a non-empty {{name: Schedule}}, got {schedules!r}")
        for name, s in schedules.items():
            if not isinstance(s, Schedule):
                raise TypeError(
                    f"schedules[{name!r}] must be a torchenergy.schedules.Schedule, got "
                    f"{type(s).__name__}"
                )
        if apply is not None and not callable(apply):
            raise TypeError(f"apply must be callable (name, value) -> None, got {apply!r}")
        self.schedules = dict(schedules)
        self.apply = apply
        self.log = log
        self.values: dict[str, float] = {}
        self._set(0)

    def _set(self, step: int) -> None:
        for name, s in self.schedules.items():
            s.last_step = step
            self.values[name] = s.value
            if self.apply is not None:
                self.apply(name, self.values[name])

    def on_fit_start(self, trainer: TrainerView) -> None:
        self._set(trainer.step)  # a resumed trainer starts at its checkpoint's step

    def on_step_end(self, trainer: TrainerView, out: Any, logs: dict[str, float]) -> None:
        if self.log:
            logs.update(self.values)  # the values this step used
        self._set(trainer.step)

    def state_dict(self) -> dict[str, Any]:
        """Each schedule's ``state_dict`` (configuration and counter), by name."""
        return {name: s.state_dict() for name, s in self.schedules.items()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the counters; ``ValueError`` for other names or other schedules."""
        if set(state) != set(self.schedules):
            raise ValueError(
                f"the checkpoint holds schedules {sorted(state)}, this run has "
                f"{sorted(self.schedules)}"
            )
        for name, s in self.schedules.items():
            s.load_state_dict(state[name])
        self._set(next(iter(self.schedules.values())).last_step)
