"""Hyperparameter schedules for any float hyperparameter, composable and checkpointed.

A schedule is a pure function of the step index ``t = 0, 1, 2, ...`` (``sched(t) -> float``)
plus a counter for loops that advance it (``sched.step()``, ``sched.value``). Use one for a
sampler's step size (``dataclasses.replace(sampler, step_size=sched.value)``), a noise scale, a
loss weight or a temperature. ``state_dict()`` holds the configuration and the counter;
``load_state_dict`` restores the counter and refuses a checkpoint of a different schedule, so a
resumed run continues with exactly the values it would have had.

Schedules (``t`` clamped to ``[0, n_steps]`` where there is an ``n_steps``):

* :class:`Constant`: ``v``.
* :class:`Linear`: ``start + (end − start) · t / n_steps``.
* :class:`Cosine`: ``end + (start − end) · (1 + cos(π t / n_steps)) / 2``.
* :class:`Exponential`: ``max(start · gamma^t, minimum)``.
* :class:`Step`: ``start · gamma^k``, k = milestones passed (or ``t // every``).
* :class:`Warmup`: linear from ``start`` to ``inner(0)`` over ``n_warmup`` steps, then
  ``inner(t − n_warmup)``.
* :class:`Piecewise`: ``schedules[i](t − boundaries[i-1])`` between consecutive boundaries.
* ``a * b`` / ``a * 2.0``: the pointwise product (e.g. a base value times a decay factor).

Example:
    >>> s = Warmup(Cosine(1.0, 0.1, 90), n_warmup=10)
    >>> [round(s(t), 3) for t in (0, 5, 10, 55, 100, 200)]
    [0.0, 0.5, 1.0, 0.55, 0.1, 0.1]
    >>> _ = s.step(); _ = s.step(); s.value
    0.2
    >>> s2 = Warmup(Cosine(1.0, 0.1, 90), n_warmup=10)
    >>> s2.load_state_dict(s.state_dict()); s2.value
    0.2

Reference:
    Loshchilov & Hutter (2017), SGDR: stochastic gradient descent with warm restarts (cosine);
    Goyal et al. (2017), Accurate, large minibatch SGD (linear warm-up).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = [
    "Constant",
    "Cosine",
    "Exponential",
    "Linear",
    "Piecewise",
    "Product",
    "Schedule",
    "Step",
    "Warmup",
]


def _float(name: str, v: Any, *, positive: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise TypeError(f"{name} must be a finite float, got {v!r}")
    if positive and v <= 0:
        raise ValueError(f"{name} must be > 0, got {v!r}")
    return float(v)


def _int(name: str, v: Any, *, minimum: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{name} must be an int, got {v!r}")
    if v < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {v!r}")
    return v


class Schedule:
    """Base class: ``sched(t) -> float`` for a step index t >= 0, a counter, a state dict."""

    def __init__(self) -> None:
        self.last_step = 0

    def __call__(self, t: int) -> float:
        """The value at step ``t`` (an int >= 0)."""
        return self._value(_int("t", t, minimum=0))

    def _value(self, t: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """The schedule's configuration as plain data (nested schedules included)."""
        return {"kind": type(self).__name__, **self._config()}

    def _config(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def value(self) -> float:
        """The value at the current counter ``last_step``."""
        return self._value(self.last_step)

    def step(self, n: int = 1) -> float:
        """Advance the counter by ``n`` steps and return the new current value."""
        self.last_step += _int("n", n, minimum=0)
        return self.value

    def state_dict(self) -> dict[str, Any]:
        """``{"config": ..., "last_step": t}``: enough to resume exactly."""
        return {"config": self.config(), "last_step": self.last_step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the counter; raise ``ValueError`` if the checkpoint is another schedule."""
        if not isinstance(state, dict) or "config" not in state or "last_step" not in state:
            raise ValueError(
                f"expected a schedule state dict with 'config' and 'last_step', got {state!r}"
            )
        if state["config"] != self.config():
            raise ValueError(
                f"the checkpoint holds the schedule {state['config']!r}, but this one is "
                f"{self.config()!r}; build the same schedule before loading"
            )
        self.last_step = _int("last_step", state["last_step"], minimum=0)

    def __mul__(self, other: Schedule | float) -> Product:
        return Product(self, other if isinstance(other, Schedule) else Constant(other))

    __rmul__ = __mul__

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._config().items())
        return f"{type(self).__name__}({args})"


class Constant(Schedule):
    """``v`` at every step.

    Example:
        >>> Constant(0.3)(1000)
        0.3
    """

    def __init__(self, v: float) -> None:
        super().__init__()
        self.v = _float("v", v)

    def _value(self, t: int) -> float:
        return self.v

    def _config(self) -> dict[str, Any]:
        return {"v": self.v}


class Linear(Schedule):
    """``start + (end − start) · min(t, n_steps) / n_steps``.

    Example:
        >>> Linear(0.0, 1.0, 4)(2), Linear(0.0, 1.0, 4)(9)
        (0.5, 1.0)
    """

    def __init__(self, start: float, end: float, n_steps: int) -> None:
        super().__init__()
        self.start, self.end = _float("start", start), _float("end", end)
        self.n_steps = _int("n_steps", n_steps)

    def _value(self, t: int) -> float:
        f = min(t, self.n_steps) / self.n_steps
        return self.start + (self.end - self.start) * f

    def _config(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "n_steps": self.n_steps}


class Cosine(Schedule):
    """``end + (start − end) · (1 + cos(π min(t, n) / n)) / 2`` (cosine annealing).

    Example:
        >>> round(Cosine(1.0, 0.0, 10)(5), 6)
        0.5
    """

    def __init__(self, start: float, end: float, n_steps: int) -> None:
        super().__init__()
        self.start, self.end = _float("start", start), _float("end", end)
        self.n_steps = _int("n_steps", n_steps)

    def _value(self, t: int) -> float:
        f = min(t, self.n_steps) / self.n_steps
        return self.end + (self.start - self.end) * 0.5 * (1.0 + math.cos(math.pi * f))

    def _config(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "n_steps": self.n_steps}


class Exponential(Schedule):
    """``max(start · gamma^t, minimum)`` (gamma > 0; < 1 decays).

    Example:
        >>> Exponential(1.0, 0.5)(3), Exponential(1.0, 0.5, minimum=0.2)(3)
        (0.125, 0.2)
    """

    def __init__(self, start: float, gamma: float, *, minimum: float = 0.0) -> None:
        super().__init__()
        self.start = _float("start", start)
        self.gamma = _float("gamma", gamma, positive=True)
        self.minimum = _float("minimum", minimum)

    def _value(self, t: int) -> float:
        return max(self.start * self.gamma**t, self.minimum)

    def _config(self) -> dict[str, Any]:
        return {"start": self.start, "gamma": self.gamma, "minimum": self.minimum}


class Step(Schedule):
    """``start · gamma^k`` with k the number of ``milestones`` ≤ t (or ``t // every``).

    Example:
        >>> s = Step(1.0, 0.1, milestones=[10, 20])
        >>> s(9), s(10), round(s(25), 6)
        (1.0, 0.1, 0.01)
    """

    def __init__(
        self,
        start: float,
        gamma: float,
        *,
        every: int | None = None,
        milestones: Sequence[int] = (),
    ) -> None:
        super().__init__()
        self.start = _float("start", start)
        self.gamma = _float("gamma", gamma, positive=True)
        if (every is None) == (not milestones):
            raise ValueError(
                f"Step needs exactly one of every= or milestones=, got every={every!r}, "
                f"milestones={list(milestones)!r}"
            )
        self.every = None if every is None else _int("every", every)
        self.milestones = sorted(_int("milestone", m, minimum=0) for m in milestones)

    def _value(self, t: int) -> float:
        k = t // self.every if self.every is not None else sum(m <= t for m in self.milestones)
        return self.start * self.gamma**k

    def _config(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "gamma": self.gamma,
            "every": self.every,
            "milestones": list(self.milestones),
        }


class Warmup(Schedule):
    """Linear warm-up from ``start`` to ``inner(0)`` over ``n_warmup`` steps, then ``inner``.

    ``value(t) = start + (inner(0) − start) · t / n_warmup`` for t < n_warmup, else
    ``inner(t − n_warmup)``.

    Example:
        >>> s = Warmup(Constant(2.0), n_warmup=4)
        >>> [s(t) for t in range(6)]
        [0.0, 0.5, 1.0, 1.5, 2.0, 2.0]
    """

    def __init__(self, inner: Schedule, n_warmup: int, *, start: float = 0.0) -> None:
        super().__init__()
        if not isinstance(inner, Schedule):
            raise TypeError(f"inner must be a Schedule, got {type(inner).__name__}")
        self.inner = inner
        self.n_warmup = _int("n_warmup", n_warmup, minimum=0)
        self.start = _float("start", start)

    def _value(self, t: int) -> float:
        if t < self.n_warmup:
            return self.start + (self.inner(0) - self.start) * t / self.n_warmup
        return self.inner(t - self.n_warmup)

    def _config(self) -> dict[str, Any]:
        return {"inner": self.inner.config(), "n_warmup": self.n_warmup, "start": self.start}


class Piecewise(Schedule):
    """``schedules[i](t − b_i)`` for ``b_i ≤ t < b_{i+1}`` (b_0 = 0, then ``boundaries``).

    Example:
        >>> s = Piecewise([Constant(1.0), Linear(1.0, 0.0, 10)], boundaries=[5])
        >>> s(4), s(5), s(10)
        (1.0, 1.0, 0.5)
    """

    def __init__(self, schedules: Sequence[Schedule], boundaries: Sequence[int]) -> None:
        super().__init__()
        schedules = list(schedules)
        bounds = [_int("boundary", b) for b in boundaries]
        if not schedules or any(not isinstance(s, Schedule) for s in schedules):
            raise TypeError(f"schedules must be a non-empty list of Schedules, got {schedules!r}")
        if len(bounds) != len(schedules) - 1 or bounds != sorted(set(bounds)):
            raise ValueError(
                f"boundaries must be {len(schedules) - 1} increasing ints for "
                f"{len(schedules)} schedules, got {bounds!r}"
            )
        self.schedules, self.boundaries = schedules, bounds

    def _value(self, t: int) -> float:
        start = 0
        for s, b in zip(self.schedules, [*self.boundaries, None], strict=True):
            if b is None or t < b:
                return s(t - start)
            start = b
        raise AssertionError("unreachable")  # pragma: no cover

    def _config(self) -> dict[str, Any]:
        return {"schedules": [s.config() for s in self.schedules], "boundaries": self.boundaries}


class Product(Schedule):
    """The pointwise product ``a(t) · b(t)`` (``a * b``; a float becomes a :class:`Constant`).

    Example:
        >>> (Constant(0.5) * Step(1.0, 0.1, every=10))(10)
        0.05
    """

    def __init__(self, a: Schedule, b: Schedule) -> None:
        super().__init__()
        if not isinstance(a, Schedule) or not isinstance(b, Schedule):
            raise TypeError(
                f"Product needs two Schedules, got {type(a).__name__}, {type(b).__name__}"
            )
        self.a, self.b = a, b

    def _value(self, t: int) -> float:
        return self.a(t) * self.b(t)

    def _config(self) -> dict[str, Any]:
        return {"a": self.a.config(), "b": self.b.config()}
