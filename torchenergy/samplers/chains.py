"""Chain makers: where the model samples of a training step (the CD negatives) come from.

They make chains, not losses, so they live beside :class:`~torchenergy.samplers.ReplayBuffer`
(``torchenergy.losses`` re-exports them for the losses that take negatives).

Every maker is a callable ``make(x_pos, *, generator=None) -> x_neg`` returning detached negatives
(C, *D), so a training step reads::

    x_neg = make(x_pos, generator=g)
    out = contrastive_divergence(energy_fn, x_pos, x_neg, l2_reg=1.0)

* :class:`DataNegatives` (CD-k): ``k`` sampler steps started at the data batch (Hinton 2002).
* :class:`ShortRunNegatives`: ``k`` steps started from fresh noise every time (Nijkamp et al. 2019).
* :class:`PersistentNegatives` (PCD): chains kept in a :class:`~torchenergy.samplers.ReplayBuffer`;
  each call draws distinct slots (5% restart from noise), advances them ``k`` steps and writes them
  back to the same slots, so every slot is one unbroken chain (Tieleman 2008; Du & Mordatch 2019).
* :class:`PersistentStateNegatives`: keeps a sampler *State* across calls (e.g. parallel tempering,
  whose state holds all temperatures) and returns ``extract(state)`` (the cold chain).

The sampler is any object of the sampler protocol bound to the energy being trained
(``sampler.energy_fn``); as the parameters change in place, the chains follow the current model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from torchenergy._checks import check_positive_int, check_tensor
from torchenergy.samplers.driver import run_chain
from torchenergy.types import Generator

__all__ = [
    "DataNegatives",
    "PersistentNegatives",
    "PersistentStateNegatives",
    "ShortRunNegatives",
    "uniform_noise",
]


def uniform_noise(low: float = -1.0, high: float = 1.0) -> Callable[..., Tensor]:
    """A noise maker ``noise(n, shape, *, generator, device, dtype) -> (n, *shape)`` on [low, high]."""
    if not high > low:
        raise ValueError(f"uniform_noise needs low < high, got low={low!r}, high={high!r}")

    def noise(
        n: int,
        shape: tuple[int, ...],
        *,
        generator: Generator = None,
        device: Any = None,
        dtype: Any = None,
    ) -> Tensor:
        u = torch.rand((n, *shape), generator=generator, device=device, dtype=dtype)
        return low + (high - low) * u

    return noise


def _check_sampler(sampler: Any) -> None:
    if not (hasattr(sampler, "init") and hasattr(sampler, "step")):
        raise TypeError(
            "sampler must follow the sampler protocol (init(x), step(state, *, generator)), "
            f"got {type(sampler).__name__}"
        )


def _check_steps_and_chains(n_steps: Any, n_chains: Any) -> None:
    check_positive_int("n_steps", n_steps)
    if n_chains is not None:
        check_positive_int("n_chains", n_chains)


@dataclass(frozen=True)
class DataNegatives:
    """CD-k: ``n_steps`` sampler steps started at the data batch.

    Shapes: ``x_pos`` (C, *D) -> negatives (C, *D).

    Usage: ``x_neg = DataNegatives(Langevin(energy, step_size=1e-2), n_steps=1)(x_batch)``.
    """

    sampler: Any
    n_steps: int = 1

    def __post_init__(self) -> None:
        _check_sampler(self.sampler)
        check_positive_int("n_steps", self.n_steps)

    def __call__(self, x_pos: Tensor, *, generator: Generator = None) -> Tensor:
        check_tensor("x_pos", x_pos, min_dim=1, floating=True)
        return run_chain(self.sampler, x_pos.detach(), self.n_steps, generator=generator).x


@dataclass(frozen=True)
class ShortRunNegatives:
    """Short-run chains: ``n_steps`` sampler steps from fresh noise on every call.

    Shapes: ``x_pos`` (C, *D) -> negatives (n_chains or C, *D).

    Args:
        sampler: the sampler bound to the energy.
        n_steps: steps per call.
        noise: ``noise(n, shape, *, generator, device, dtype) -> (n, *shape)``; uniform on
            [-1, 1] when None.
        n_chains: number of negatives (default: the batch size).
    """

    sampler: Any
    n_steps: int = 20
    noise: Callable[..., Tensor] | None = None
    n_chains: int | None = None

    def __post_init__(self) -> None:
        _check_sampler(self.sampler)
        _check_steps_and_chains(self.n_steps, self.n_chains)

    def __call__(self, x_pos: Tensor, *, generator: Generator = None) -> Tensor:
        check_tensor("x_pos", x_pos, min_dim=1, floating=True)
        n = x_pos.shape[0] if self.n_chains is None else self.n_chains
        noise = self.noise if self.noise is not None else uniform_noise()
        x0 = noise(
            n, tuple(x_pos.shape[1:]), generator=generator, device=x_pos.device, dtype=x_pos.dtype
        )
        return run_chain(self.sampler, x0, self.n_steps, generator=generator).x


@dataclass(frozen=True)
class PersistentNegatives:
    """Persistent CD through a replay buffer of chains (true persistent chains, noise restarts).

    Each call: ``idx, x = buffer.sample(n)`` (distinct slots; a fraction ``buffer.reinit_prob``
    restarted from noise), ``x = sampler.sample(x, n_steps)``, ``buffer.update(idx, x)``. The buffer
    object is mutated in place (checkpoint it with ``buffer.state_dict()``).

    Shapes: ``x_pos`` (C, *D) -> negatives (n_chains or C, *D); buffer ``(capacity, *D)``.

    Args:
        sampler: the sampler bound to the energy.
        buffer: an object with ``sample(n, *, generator) -> (idx, x)`` and ``update(idx, x)``
            (:class:`torchenergy.samplers.ReplayBuffer`).
        n_steps: sampler steps per call.
        n_chains: chains advanced per call (default: the batch size).
    """

    sampler: Any
    buffer: Any
    n_steps: int = 20
    n_chains: int | None = None

    def __post_init__(self) -> None:
        _check_sampler(self.sampler)
        if not (hasattr(self.buffer, "sample") and hasattr(self.buffer, "update")):
            raise TypeError(
                "buffer must provide sample(n, *, generator) -> (idx, x) and update(idx, x) "
                f"(a ReplayBuffer), got {type(self.buffer).__name__}"
            )
        _check_steps_and_chains(self.n_steps, self.n_chains)

    def __call__(self, x_pos: Tensor, *, generator: Generator = None) -> Tensor:
        check_tensor("x_pos", x_pos, min_dim=1, floating=True)
        n = x_pos.shape[0] if self.n_chains is None else self.n_chains
        idx, x0 = self.buffer.sample(n, generator=generator)
        x0 = x0.to(device=x_pos.device, dtype=x_pos.dtype)
        x = run_chain(self.sampler, x0, self.n_steps, generator=generator).x
        self.buffer.update(idx, x)
        return x


class PersistentStateNegatives:
    """Negatives from one persistent sampler state carried across calls (e.g. parallel tempering).

    The first call initialises the sampler from ``init(x_pos)`` (or ``x0`` given here); every call
    advances the *same* state ``n_steps`` and returns ``extract(state)`` (default ``state.x``).
    Parallel-tempering CD: pass a :class:`~torchenergy.samplers.ParallelTempering` kernel; its
    ``state.x`` is the coldest replica (the negatives) and every replica persists across calls.
    Before each call the state's cached energies are recomputed for the current parameters
    (tempering states from all replica positions).

    Shapes: negatives (C, *D) as ``extract`` returns them.

    Args:
        sampler: a sampler (``init``/``step``) bound to the energy.
        n_steps: steps per call.
        extract: ``state -> (C, *D)`` negatives; default ``state.x``.
        x0: optional starting points for the chains (default: the first data batch).
    """

    def __init__(
        self,
        sampler: Any,
        n_steps: int = 20,
        *,
        extract: Callable[[Any], Tensor] | None = None,
        x0: Tensor | None = None,
    ) -> None:
        _check_sampler(sampler)
        check_positive_int("n_steps", n_steps)
        self.sampler = sampler
        self.n_steps = n_steps
        self.extract = extract if extract is not None else (lambda state: state.x)
        self.x0 = x0
        self.state: Any = None

    def __call__(self, x_pos: Tensor, *, generator: Generator = None) -> Tensor:
        check_tensor("x_pos", x_pos, min_dim=1, floating=True)
        start = self.state
        if start is None:
            start = (self.x0 if self.x0 is not None else x_pos).detach()
        # A resumed State may cache energies/gradients of the parameters before the last
        # optimiser step: rebuild it from its positions (every replica, for tempering).
        if not isinstance(start, Tensor):
            start = _refresh(self.sampler, start)
        self.state = run_chain(self.sampler, start, self.n_steps, generator=generator).state
        return self.extract(self.state).detach()

    def reset(self) -> None:
        """Forget the chains; the next call starts again from ``x0`` or the data batch."""
        self.state = None


def _refresh(sampler: Any, state: Any) -> Any:
    """Recompute a State's cached energies/gradients for the current parameters.

    Parallel tempering (a sampler with ``init_replicas`` and a state with ``inner_x``) is rebuilt
    from every replica's position (C, R, *D); a state caching ``energy``/``grad`` from ``x``;
    any other state is returned as it is.
    """
    if hasattr(sampler, "init_replicas") and hasattr(state, "inner_x"):
        return sampler.init_replicas(state.inner_x)
    fields = getattr(state, "_fields", ())
    if "energy" in fields or "grad" in fields:
        return sampler.init(state.x)
    return state
