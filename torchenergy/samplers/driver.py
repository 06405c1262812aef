"""The one driver every sampler runs through: burn-in, thinning, tracing, statistics, progress.

Statistics stay tensors during the run (no host synchronisation per step). Unadjusted kernels
that offer ``step_unchecked`` run in blocks with one finiteness check (one host sync) per block,
and a failed block is replayed with ``step``; divergence is reported at the end of the run,
never returned as silent NaNs.
"""

from __future__ import annotations

import warnings
from operator import attrgetter
from typing import Any, NamedTuple

import torch
from torch import Tensor

from torchenergy._checks import check_positive_int, check_tensor
from torchenergy.samplers.base import DivergenceError
from torchenergy.types import Generator

__all__ = ["ChainResult", "run_chain"]


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


_BLOCK = 32  # steps between finiteness checks of an unadjusted kernel's fast path


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


def _replay_generator(generator: Generator, device: torch.device) -> torch.Generator | None:
    """The generator whose state is saved and restored to replay a block: the caller's, else the
    device's default one (None where it can't be found: those runs use ``step`` throughout)."""
    if generator is not None:
        return generator
    if device.type == "cpu":
        return torch.default_generator
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return torch.cuda.default_generators[index]
    return None


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
    x = state.x
    n_chains = x.shape[0]
    device = x.device

    # Per-step bookkeeping is a handful of in-place ops on (C,) tensors (no host sync). Kernels
    # without accept/reject (``adjusted = False``) accept every move they do not hold, so their
    # acceptance statistics follow from the held-step count and are not accumulated.
    adjusted = bool(getattr(sampler, "adjusted", True))
    accepted = torch.zeros(n_chains, device=device, dtype=x.dtype)
    accept_prob = torch.zeros(n_chains, device=device, dtype=x.dtype)
    held = torch.zeros(n_chains, device=device, dtype=x.dtype)
    n_nonfinite = torch.zeros(n_chains, device=device, dtype=torch.long)
    never = burn_in + n_steps
    first_div = torch.full((n_chains,), never, device=device, dtype=torch.long)
    n_rec = n_steps // thin
    xs: list[Tensor] = []
    es: list[Tensor] = []
    has_energy = hasattr(state, "energy")

    total = burn_in + n_steps

    def traced(t: int) -> bool:
        """Whether step ``t``'s state goes into the trace (before the n_rec cap)."""
        return bool(trace) and t >= burn_in and (t - burn_in + 1) % thin == 0

    def record(t: int) -> None:
        if traced(t) and len(xs) < n_rec:
            xs.append(state.x)
            if has_energy:
                es.append(state.energy)

    def checked_step(t: int) -> None:
        nonlocal state
        state, info = sampler.step(state, generator=generator)
        n_nonfinite.add_(info.nonfinite)
        torch.minimum(first_div, torch.where(info.diverged, t, never), out=first_div)
        if t >= burn_in:
            if adjusted:
                accepted.add_(info.accepted)
                accept_prob.add_(info.accept_prob)
            else:
                held.add_(info.diverged)
        record(t)

    # Unadjusted kernels that offer ``step_unchecked`` (the same move without the per-chain hold)
    # run in blocks: the block's steps skip the hold and the per-step bookkeeping, and one host
    # sync at the end of the block tests the finiteness of every ``finite_fields`` sum (and of the
    # ``finite_fields_at_end`` sums of the block's last state: fields in which a non-finite value
    # can't become finite again, so a last-state check sees every earlier one). A block
    # with a non-finite sum is replayed with ``step`` from its saved state and random-stream
    # state, so the result is the same as stepping with ``step`` throughout; after a replay that
    # finds diverged chains the rest of the run uses ``step`` (the held chains would fail every
    # block again).
    unchecked = getattr(sampler, "step_unchecked", None) if not adjusted else None
    fields: tuple[str, ...] = tuple(getattr(sampler, "finite_fields", ()))
    # fields whose non-finite values persist (a kernel says which): checked once, at block end
    end_fields: tuple[str, ...] = tuple(getattr(sampler, "finite_fields_at_end", ()))
    per_step = attrgetter(*fields) if fields else None
    # a kernel may run a whole unchecked block itself: ``run_block(state, k, *, generator,
    # keep)`` -> ``(state, check, kept)`` with ``check`` a 0-dim tensor that is finite only if
    # every step was, and ``kept`` the (x, energy) of the steps in ``keep``; or None to decline
    run_block = getattr(sampler, "run_block", None) if unchecked is not None else None
    rng = _replay_generator(generator, device) if (unchecked is not None and fields) else None
    bar = _Progress(total, progress)
    t = 0
    while t < total:
        if rng is None:
            checked_step(t)
            t += 1
            bar.update(1)
            continue
        k = min(_BLOCK, total - t)
        saved_state, saved_rng, n_saved = state, rng.get_state(), len(xs)
        out = None
        if run_block is not None:  # the kernel's own block (e.g. Langevin, gradient only)
            keep = [i for i in range(k) if traced(t + i)][: max(n_rec - len(xs), 0)]
            out = run_block(state, k, generator=generator, keep=keep)
        if out is not None:
            state, check, kept = out
            for x_i, e_i in kept:
                xs.append(x_i)
                if has_energy:
                    es.append(e_i)
        else:
            sums: list[Tensor] = []
            for i in range(k):
                state = unchecked(state, generator=generator)
                if len(fields) == 1:
                    sums.append(per_step(state).sum())
                else:
                    sums.extend(v.sum() for v in per_step(state))
                record(t + i)
            sums.extend(getattr(state, f).sum() for f in end_fields)
            check = torch.stack(sums).sum()
        if not bool(torch.isfinite(check)):
            state = saved_state
            rng.set_state(saved_rng)
            del xs[n_saved:], es[n_saved:]
            for i in range(k):
                checked_step(t + i)
            if bool((first_div < never).any()):
                rng = None
        t += k
        bar.update(k)
    bar.close()
    if not adjusted:
        accepted = n_steps - held
        accept_prob = accepted

    diverged = first_div < never
    if bool(diverged.any()):
        idx = torch.nonzero(diverged).flatten()
        err = DivergenceError(int(idx.numel()), n_chains, int(first_div[idx].min()), idx.cpu())
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
        n_nonfinite=n_nonfinite,
        diverged=diverged,
    )
