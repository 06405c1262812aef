"""The one driver every sampler runs through: burn-in, thinning, tracing, statistics, progress.

Statistics stay tensors during the run (no host synchronisation per step). The reference path
calls ``step`` at every transition; unadjusted kernels that declare the
:class:`~torchenergy.samplers.base.UncheckedKernel` fast path run in blocks with one finiteness
check (one host sync) per block (:mod:`torchenergy.samplers._blocks`), and a failed block is
replayed with ``step``, so both paths give the same chains. Divergence is reported at the end
of the run, never returned as silent NaNs. :class:`Sampler` is the mixin that gives every
kernel ``sample`` through this driver.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor

from torchenergy._checks import check_positive_int, check_tensor
from torchenergy.samplers._blocks import block_stream, run_blocks
from torchenergy.samplers.base import DivergenceError
from torchenergy.types import Generator

__all__ = ["ChainResult", "Sampler", "run_chain"]


class ChainResult(NamedTuple):
    """What :func:`run_chain` returns.

    Attributes:
        x: final states, (C, *D).
        trace: recorded states, (T // thin, C, *D), or None when not traced.
        energy_trace: recorded energies, (T // thin, C), when traced and the state has them.
        state: the final kernel state (resume with ``run_chain(sampler, state, ...)``).
        accept_rate: mean acceptance over the ``n_steps`` post-burn-in steps, (C,).
        mean_accept_prob: mean Metropolis acceptance probability over those steps, (C,).
        n_nonfinite: rejected non-finite proposals per chain over all steps, (C,) long.
        diverged: chains an unadjusted kernel had to hold at a non-finite value, (C,) bool.
    """

    x: Tensor
    trace: Tensor | None
    energy_trace: Tensor | None
    state: Any
    accept_rate: Tensor
    mean_accept_prob: Tensor
    n_nonfinite: Tensor
    diverged: Tensor


class _Progress:
    """A tqdm bar when ``enabled`` and tqdm is installed, else a no-op."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.bar = None
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:  # pragma: no cover - optional
                return
            self.bar = tqdm(total=total, desc="sampling", leave=False)

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_chain(
    sampler: Any,
    x0: Any,
    n_steps: int,
    *,
    burn_in: int = 0,
    thin: int = 1,
    trace: bool | None = None,
    generator: Generator = None,
    progress: bool = False,
    on_divergence: str = "raise",
) -> ChainResult:
    """Run ``burn_in + n_steps`` transitions of ``sampler`` from ``x0``.

    Shapes: ``x0`` (C, *D) (or a State from a previous run); ``trace`` (n_steps // thin, C, *D).

    Args:
        sampler: any object with ``init(x)`` and ``step(state, *, generator)``.
        x0: initial points (C, *D), or a kernel State to resume from.
        n_steps: number of recorded-phase transitions (>= 0).
        burn_in: transitions run first and not recorded.
        thin: keep every ``thin``-th state of the recorded phase.
        trace: record states (and energies, when the State carries ``energy``).
        generator: the random stream; the same seed gives the same chains.
        progress: show a progress bar (tqdm) when installed.
        on_divergence: ``"raise"`` (default) raises :class:`DivergenceError` when an unadjusted
            chain produced non-finite values; ``"warn"`` warns and returns the held states.

    Returns:
        :class:`ChainResult`.

    Example:
        >>> from torchenergy.energies import HarmonicEnergy
        >>> from torchenergy.samplers import MALA
        >>> res = run_chain(MALA(HarmonicEnergy(), 0.1), torch.zeros(4, 2), 10, trace=True)
        >>> tuple(res.trace.shape)
        (10, 4, 2)
    """
    check_positive_int("n_steps", n_steps, allow_zero=True)
    check_positive_int("burn_in", burn_in, allow_zero=True)
    check_positive_int("thin", thin)
    if on_divergence not in ("raise", "warn"):
        raise ValueError(f"on_divergence must be 'raise' or 'warn', got {on_divergence!r}")

    if isinstance(x0, Tensor):
        check_tensor("x0", x0, min_dim=1, floating=True)
        state = sampler.init(x0)
    elif hasattr(x0, "x"):
        state = x0
    else:
        raise TypeError(f"x0 must be a tensor (C, *D) or a sampler State, got {type(x0).__name__}")

    run = _Run(sampler, state, burn_in, n_steps, thin, bool(trace), generator)
    total = burn_in + n_steps
    rng = block_stream(sampler, generator, state.x.device)
    bar = _Progress(total, progress)
    t = 0
    if rng is not None:  # the fast path, until done or a replay finds a diverged chain
        t = run_blocks(sampler, run, t, total, rng, generator, bar.update)
    while t < total:  # the reference path
        run.checked_step(t)
        t += 1
        bar.update(1)
    bar.close()
    state, xs, es, has_energy = run.state, run.xs, run.es, run.has_energy
    if run.adjusted:
        accepted, accept_prob = run.accepted, run.accept_prob
    else:
        accepted = n_steps - run.held
        accept_prob = accepted

    diverged = run.first_div < run.never
    if bool(diverged.any()):
        idx = torch.nonzero(diverged).flatten()
        first = int(run.first_div[idx].min())
        err = DivergenceError(int(idx.numel()), state.x.shape[0], first, idx.cpu())
        if on_divergence == "raise":
            raise err
        warnings.warn(str(err), RuntimeWarning, stacklevel=2)

    denom = max(n_steps, 1)
    if trace:
        trace_x = torch.stack(xs) if xs else state.x.new_empty((0, *state.x.shape))
    return ChainResult(
        x=state.x,
        trace=trace_x if trace else None,
        energy_trace=torch.stack(es) if (trace and has_energy and es) else None,
        state=state,
        accept_rate=accepted / denom,
        mean_accept_prob=accept_prob / denom,
        n_nonfinite=run.n_nonfinite,
        diverged=diverged,
    )


class _Run:
    """One run's bookkeeping: the reference step and the records (the driver's half of the
    :class:`~torchenergy.samplers._blocks.Bookkeeping` protocol).

    Per-step bookkeeping is a handful of in-place ops on (C,) tensors (no host sync). Kernels
    without accept/reject (``adjusted = False``) accept every move they do not hold, so their
    acceptance statistics follow from the held-step count and are not accumulated.
    """

    def __init__(
        self,
        sampler: Any,
        state: Any,
        burn_in: int,
        n_steps: int,
        thin: int,
        trace: bool,
        generator: Generator,
    ) -> None:
        x = state.x
        c, device = x.shape[0], x.device
        self.sampler, self.state = sampler, state
        self.burn_in, self.thin, self.trace = burn_in, thin, trace
        self.adjusted = bool(getattr(sampler, "adjusted", True))
        self.accepted = torch.zeros(c, device=device, dtype=x.dtype)
        self.accept_prob = torch.zeros(c, device=device, dtype=x.dtype)
        self.held = torch.zeros(c, device=device, dtype=x.dtype)
        self.n_nonfinite = torch.zeros(c, device=device, dtype=torch.long)
        self.never = burn_in + n_steps
        self.first_div = torch.full((c,), self.never, device=device, dtype=torch.long)
        self.n_rec = n_steps // thin
        self.xs: list[Tensor] = []
        self.es: list[Tensor] = []
        self.has_energy = hasattr(state, "energy")
        self.generator = generator

    def traced(self, t: int) -> bool:
        """Whether step ``t``'s state goes into the trace (before the ``n_rec`` cap)."""
        return self.trace and t >= self.burn_in and (t - self.burn_in + 1) % self.thin == 0

    def record(self, t: int) -> None:
        if self.traced(t) and len(self.xs) < self.n_rec:
            self.xs.append(self.state.x)
            if self.has_energy:
                self.es.append(self.state.energy)

    def checked_step(self, t: int) -> None:
        """The reference transition: ``step``, its statistics and its record."""
        self.state, info = self.sampler.step(self.state, generator=self.generator)
        self.n_nonfinite.add_(info.nonfinite)
        torch.minimum(self.first_div, torch.where(info.diverged, t, self.never), out=self.first_div)
        if t >= self.burn_in:
            if self.adjusted:
                self.accepted.add_(info.accepted)
                self.accept_prob.add_(info.accept_prob)
            else:
                self.held.add_(info.diverged)
        self.record(t)

    def any_diverged(self) -> bool:
        return bool((self.first_div < self.never).any())


class Sampler:
    """Mixin for the frozen-dataclass samplers: ``sample`` through the one driver.

    Subclasses define ``init`` and ``step`` (the :class:`~torchenergy.samplers.base.Kernel`
    protocol). Kernels without an accept/reject step (Langevin, gradient descent, ...) set the
    class attribute ``adjusted = False``: the driver then derives their acceptance statistics
    from ``Info.diverged`` instead of accumulating them.
    """

    adjusted: ClassVar[bool] = True

    def init(self, x: Tensor) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def step(
        self, state: Any, *, generator: Generator = None
    ) -> tuple[Any, Any]:  # pragma: no cover
        raise NotImplementedError

    def sample(self, x0: Tensor, n_steps: int, *, generator: Generator = None) -> Tensor:
        """Run ``n_steps`` transitions from ``x0`` (C, *D) and return the final states (C, *D)."""
        return run_chain(self, x0, n_steps, generator=generator).x
