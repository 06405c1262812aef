"""A replay buffer of persistent chains for training energy-based models (PCD / JEM style).

Each slot of the buffer holds the current state of one persistent Markov chain. A training step
draws a batch of *distinct* slots, runs a few sampler steps from the states it got, and writes the
results back to the *same* slots, so every slot is one chain with an unbroken lineage::

    idx, x = buffer.sample(64, generator=g)        # (B,), (B, *D)
    x = sampler.sample(x, 20, generator=g)         # continue those chains
    buffer.update(idx, x)                          # chain read from slot i goes back to slot i

With probability ``reinit_prob`` (5% by default, as in Du & Mordatch 2019) a drawn slot is
re-initialised from the noise distribution instead: that chain restarts, in place, from a fresh
noise draw (the slot is overwritten when it is drawn, so the buffer always holds each chain's
current state).

Reference:
    Tieleman, "Training restricted Boltzmann machines using approximations to the likelihood
    gradient", ICML 2008 (persistent chains); Du & Mordatch, "Implicit generation and
    generalization in energy-based models", NeurIPS 2019 (replay buffer with 5% re-initialisation).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from torchenergy._checks import (
    check_finite_tensor,
    check_positive_int,
    check_probability,
    check_tensor,
)
from torchenergy.types import Generator

__all__ = ["ReplayBuffer", "sample_distribution"]

NoiseFn = Callable[..., Tensor]


def sample_distribution(
    dist: torch.distributions.Distribution, n: int, *, generator: Generator = None
) -> Tensor:
    """Draw ``n`` samples from a ``torch.distributions`` object, reproducibly from ``generator``.

    ``torch.distributions`` samples from the global random stream; to honour an explicit
    generator this uses the inverse CDF of uniform draws for distributions that have one
    (Normal, Uniform, Laplace, Cauchy, ..., and ``Independent`` of those), ``loc + L z`` for
    ``MultivariateNormal``, and otherwise samples inside ``torch.random.fork_rng`` seeded from
    ``generator`` (the global stream is left untouched).

    Shapes: returns ``(n, *batch_shape, *event_shape)``.

    Example:
        >>> d = torch.distributions.Normal(torch.zeros(2), torch.ones(2))
        >>> g = torch.Generator().manual_seed(0)
        >>> sample_distribution(d, 3, generator=g).shape
        torch.Size([3, 2])
    """
    shape = (n, *dist.batch_shape, *dist.event_shape)
    if generator is None:
        return dist.sample((n,))
    base = dist.base_dist if isinstance(dist, torch.distributions.Independent) else dist
    if isinstance(base, torch.distributions.MultivariateNormal):
        loc = base.loc
        z = torch.randn(shape, generator=generator, device=loc.device, dtype=loc.dtype)
        return loc + (base.scale_tril @ z.unsqueeze(-1)).squeeze(-1)
    probe = getattr(base, "mean", None)
    if isinstance(probe, Tensor) and probe.is_floating_point():
        u = torch.rand(shape, generator=generator, device=probe.device, dtype=probe.dtype)
        u = u.clamp(torch.finfo(u.dtype).tiny, 1 - torch.finfo(u.dtype).eps)
        try:
            return base.icdf(u)
        except NotImplementedError:
            pass
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
    devices = [generator.device] if generator.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return dist.sample((n,))


class ReplayBuffer:
    """Persistent chains stored in ``capacity`` slots, with a re-initialisation fraction.

    Shapes: the buffer holds ``(capacity, *D)``; :meth:`sample` returns ``idx`` (B,) long and
    ``x`` (B, *D); :meth:`update` takes the same.

    Args:
        capacity: number of persistent chains (slots).
        sample_shape: event shape ``D`` of one chain, e.g. ``(2,)`` or ``(1, 28, 28)``. May be
            omitted when ``noise`` is a distribution (its batch and event shape are used) or when
            ``initial`` is given.
        noise: the re-initialisation distribution: a callable ``noise(n, generator=...)`` returning
            ``(n, *D)``, a ``torch.distributions.Distribution`` whose sample shape is ``D``, or
            None for uniform noise on ``[-1, 1]`` (the usual image-EBM choice).
        reinit_prob: probability that a drawn slot restarts from noise (default 0.05).
        initial: optional ``(capacity, *D)`` tensor to fill the buffer with instead of noise.
        device, dtype: where the buffer lives (default: CPU and the default dtype, or those of
            ``initial``).
        generator: random stream for the initial fill from noise.

    Attributes:
        data: the chains, ``(capacity, *D)``.
        age: per-slot number of updates since the chain was (re-)initialised, ``(capacity,)``.
        n_drawn, n_reinit: running counts (0-dim long tensors) of drawn and re-initialised slots.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> buf = ReplayBuffer(100, (2,), generator=g)
        >>> idx, x = buf.sample(8, generator=g)
        >>> buf.update(idx, x + 1.0)
        >>> bool((buf.data[idx] == x + 1.0).all())
        True
    """

    def __init__(
        self,
        capacity: int,
        sample_shape: Sequence[int] | None = None,
        noise: NoiseFn | torch.distributions.Distribution | None = None,
        *,
        reinit_prob: float = 0.05,
        initial: Tensor | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        generator: Generator = None,
    ) -> None:
        check_positive_int("capacity", capacity)
        check_probability("reinit_prob", reinit_prob)
        if noise is not None and not (
            callable(noise) or isinstance(noise, torch.distributions.Distribution)
        ):
            raise TypeError(
                "noise must be a callable noise(n, generator=...) -> (n, *D), a "
                f"torch.distributions.Distribution or None, got {type(noise).__name__}"
            )
        if initial is not None:
            check_tensor("initial", initial, min_dim=1, floating=True)
            check_finite_tensor("initial", initial)
            if initial.shape[0] != capacity:
                raise ValueError(
                    f"initial must have shape (capacity, *D) = ({capacity}, ...), "
                    f"got {tuple(initial.shape)}"
                )
            device = initial.device if device is None else device
            dtype = initial.dtype if dtype is None else dtype
        if sample_shape is None:
            if initial is not None:
                sample_shape = tuple(initial.shape[1:])
            elif isinstance(noise, torch.distributions.Distribution):
                sample_shape = (*noise.batch_shape, *noise.event_shape)
            else:
                raise ValueError(
                    "sample_shape is required when noise is not a distribution and no initial "
                    "tensor is given, got sample_shape=None"
                )
        try:
            shape = tuple(int(s) for s in sample_shape)
        except TypeError as err:
            raise TypeError(
                f"sample_shape must be a sequence of ints, got {sample_shape!r}"
            ) from err
        if any(s <= 0 for s in shape):
            raise ValueError(f"sample_shape must hold positive ints, got {shape}")
        if initial is not None and tuple(initial.shape[1:]) != shape:
            raise ValueError(
                f"initial has event shape {tuple(initial.shape[1:])}, expected sample_shape {shape}"
            )
        self.capacity = capacity
        self.sample_shape = shape
        self.noise = noise
        self.reinit_prob = float(reinit_prob)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.dtype = dtype if dtype is not None else torch.get_default_dtype()
        if initial is not None:
            self.data = initial.detach().to(self.device, self.dtype).clone()
        else:
            self.data = self.draw_noise(capacity, generator=generator)
        self.age = torch.zeros(capacity, dtype=torch.long, device=self.device)
        self.n_drawn = torch.zeros((), dtype=torch.long, device=self.device)
        self.n_reinit = torch.zeros((), dtype=torch.long, device=self.device)

    def __len__(self) -> int:
        return self.capacity

    def __repr__(self) -> str:
        return (
            f"ReplayBuffer(capacity={self.capacity}, sample_shape={self.sample_shape}, "
            f"reinit_prob={self.reinit_prob}, device={self.device}, dtype={self.dtype})"
        )

    # noise -------------------------------------------------------------------------------
    def draw_noise(self, n: int, *, generator: Generator = None) -> Tensor:
        """``n`` fresh draws ``(n, *D)`` from the noise distribution, on the buffer's device/dtype."""
        kw: dict[str, Any] = {"device": self.device, "dtype": self.dtype}
        if self.noise is None:
            u = torch.rand((n, *self.sample_shape), generator=generator, **kw)
            return 2.0 * u - 1.0
        if isinstance(self.noise, torch.distributions.Distribution):
            out = sample_distribution(self.noise, n, generator=generator)
        else:
            out = self.noise(n, generator=generator)
        if not isinstance(out, Tensor) or tuple(out.shape) != (n, *self.sample_shape):
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(
                f"noise must return a tensor of shape (n, *D) = {(n, *self.sample_shape)}, got {got}"
            )
        return out.detach().to(**kw)

    # chains ------------------------------------------------------------------------------
    def sample(self, batch_size: int, *, generator: Generator = None) -> tuple[Tensor, Tensor]:
        """Draw ``batch_size`` distinct slots; restart each from noise with prob. ``reinit_prob``.

        Returns:
            ``(idx, x)``: slot indices (B,) long and the chains' current states (B, *D) (a copy;
            write the advanced states back with :meth:`update`).
        """
        check_positive_int("batch_size", batch_size)
        if batch_size > self.capacity:
            raise ValueError(
                f"batch_size must be <= capacity = {self.capacity} (slots are drawn without "
                f"replacement so that each chain is advanced once), got {batch_size}"
            )
        perm = torch.randperm(self.capacity, generator=generator, device=self.device)
        idx = perm[:batch_size]
        u = torch.rand(batch_size, generator=generator, device=self.device)
        reinit = u < self.reinit_prob
        fresh = self.draw_noise(batch_size, generator=generator)
        mask = reinit.reshape(-1, *([1] * len(self.sample_shape)))
        x = torch.where(mask, fresh, self.data[idx])
        self.data[idx] = x
        self.age[idx] = torch.where(reinit, torch.zeros_like(self.age[idx]), self.age[idx])
        self.n_drawn += batch_size
        self.n_reinit += reinit.sum()
        return idx, x.clone()

    def update(self, idx: Tensor, x: Tensor) -> None:
        """Write the advanced chains ``x`` (B, *D) back to their slots ``idx`` (B,)."""
        check_tensor("idx", idx, min_dim=1)
        check_tensor("x", x, min_dim=1, floating=True)
        if idx.dim() != 1 or idx.dtype not in (torch.int64, torch.int32):
            raise TypeError(
                f"idx must be a 1-D integer tensor (B,), got dtype {idx.dtype}, shape {tuple(idx.shape)}"
            )
        if tuple(x.shape) != (idx.shape[0], *self.sample_shape):
            raise ValueError(
                f"x must have shape (B, *D) = {(idx.shape[0], *self.sample_shape)} to match idx, "
                f"got {tuple(x.shape)}"
            )
        idx = idx.to(self.device, torch.long)
        if idx.numel() and bool((idx < 0).any() or (idx >= self.capacity).any()):
            raise ValueError(f"idx must lie in [0, {self.capacity}), got values outside")
        if torch.unique(idx).numel() != idx.numel():
            raise ValueError(
                "idx holds repeated slots; each persistent chain must be written back once"
            )
        self.data[idx] = x.detach().to(self.device, self.dtype)
        self.age[idx] += 1

    def reset(self, *, generator: Generator = None) -> None:
        """Refill every slot from the noise distribution and zero the ages and counters."""
        self.data = self.draw_noise(self.capacity, generator=generator)
        self.age.zero_()
        self.n_drawn.zero_()
        self.n_reinit.zero_()

    # persistence -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Tensor]:
        """Tensors only (safe for ``safetensors`` and ``torch.load(weights_only=True)``)."""
        return {
            "data": self.data.detach().clone(),
            "age": self.age.clone(),
            "n_drawn": self.n_drawn.clone(),
            "n_reinit": self.n_reinit.clone(),
            "reinit_prob": torch.tensor(self.reinit_prob, dtype=torch.float64),
        }

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Restore from :meth:`state_dict`; shapes must match this buffer's capacity and ``D``."""
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict of tensors, got {type(state).__name__}")
        missing = {"data", "age", "n_drawn", "n_reinit"} - set(state)
        if missing:
            raise ValueError(f"state_dict is missing keys {sorted(missing)}")
        data = state["data"]
        expected = (self.capacity, *self.sample_shape)
        if not isinstance(data, Tensor) or tuple(data.shape) != expected:
            got = tuple(data.shape) if isinstance(data, Tensor) else type(data).__name__
            raise ValueError(f"state_dict['data'] must have shape {expected}, got {got}")
        if tuple(state["age"].shape) != (self.capacity,):
            raise ValueError(
                f"state_dict['age'] must have shape ({self.capacity},), got {tuple(state['age'].shape)}"
            )
        self.data = data.detach().to(self.device, self.dtype).clone()
        self.age = state["age"].to(self.device, torch.long).clone()
        self.n_drawn = state["n_drawn"].to(self.device, torch.long).reshape(()).clone()
        self.n_reinit = state["n_reinit"].to(self.device, torch.long).reshape(()).clone()
        if "reinit_prob" in state:
            p = float(state["reinit_prob"])
            check_probability("reinit_prob", p)
            self.reinit_prob = p
