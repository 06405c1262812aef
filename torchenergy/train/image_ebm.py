"""IGEBM-style unconditional image EBM: short-run Langevin from a replay buffer (Du & Mordatch 2019).

One step::

    idx, x0 = buffer.sample(B)                       5 % restart from uniform noise on the box
    x⁻ = Langevin(E, ε, s, grad_clip, clamp)^k(x0)   written back to the buffer
    loss = E(x̃) − E(x⁻) + l2_reg · (E(x̃)² + E(x⁻)²),  x̃ = x + data_noise · z

(:func:`~torchenergy.losses.contrastive_divergence` with
:class:`~torchenergy.losses.PersistentNegatives`), run by :class:`~torchenergy.train.Trainer`.
Every ``snapshot_every`` steps the first ``n_snapshot`` buffer chains are kept, for sample grids
and a training animation (:func:`torchenergy.viz.save_image_animation`). A non-finite loss or
chain raises :class:`~torchenergy.models.TrainingDivergedError` with the step number.

Reference: Y. Du and I. Mordatch, *Implicit Generation and Generalization in Energy-Based
Models*, NeurIPS 2019.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from torchenergy._checks import check_positive, check_positive_int, check_probability, check_tensor
from torchenergy.losses import PersistentNegatives, contrastive_divergence
from torchenergy.models import TrainingDivergedError
from torchenergy.samplers import DivergenceError, Langevin, NonFiniteStartError, ReplayBuffer
from torchenergy.train.callbacks import Callback
from torchenergy.train.trainer import Trainer

__all__ = ["ImageEBMConfig", "ImageEBMResult", "fit_image_ebm"]


@dataclass(frozen=True)
class ImageEBMConfig:
    """Hyperparameters of :func:`fit_image_ebm` (ε, s in the library's Langevin convention;
    ``sgld_noise`` is the per-step noise std ``sqrt(2ε)·s``)."""

    steps: int = 2000
    batch_size: int = 64
    lr: float = 1e-4
    betas: tuple[float, float] = (0.0, 0.999)
    sgld_steps: int = 20
    sgld_step_size: float = 10.0
    sgld_noise: float = 0.005
    sgld_grad_clip: float | None = 0.1
    clamp: tuple[float, float] = (-1.0, 1.0)
    buffer_size: int = 10000
    reinit_prob: float = 0.05
    data_noise: float = 0.0
    l2_reg: float = 1.0
    grad_clip: float | None = 1.0
    snapshot_every: int = 100
    n_snapshot: int = 64

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "sgld_steps", "buffer_size", "snapshot_every"):
            check_positive_int(name, getattr(self, name))
        check_positive_int("n_snapshot", self.n_snapshot, allow_zero=True)
        for name in ("lr", "sgld_step_size"):
            check_positive(name, getattr(self, name))
        for name in ("sgld_noise", "data_noise", "l2_reg"):
            check_positive(name, getattr(self, name), allow_zero=True)
        for name in ("sgld_grad_clip", "grad_clip"):
            if getattr(self, name) is not None:
                check_positive(name, getattr(self, name))
        check_probability("reinit_prob", self.reinit_prob)
        if self.batch_size > self.buffer_size or self.n_snapshot > self.buffer_size:
            raise ValueError(
                f"batch_size ({self.batch_size}) and n_snapshot ({self.n_snapshot}) must be <= "
                f"buffer_size ({self.buffer_size})"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-like dict."""
        return asdict(self)


class ImageEBMResult(NamedTuple):
    """The trainer, the replay buffer (its chains are the samples), the sampler, and the buffer
    snapshots ``[(step, (n_snapshot, *D) tensor), ...]``."""

    trainer: Trainer
    buffer: ReplayBuffer
    sampler: Langevin
    snapshots: list[tuple[int, Tensor]]


def _buffer_snapshots(buffer: ReplayBuffer, every: int, n: int) -> Any:
    """A callback keeping ``(step, buffer.data[:n])`` every ``every`` steps in ``.frames``."""

    class _BufferSnapshots(Callback):
        def __init__(self) -> None:
            self.frames: list[tuple[int, Tensor]] = []

        def on_step_end(self, trainer: Trainer, out: Any, logs: dict[str, float]) -> None:
            if n and trainer.step % every == 0:
                self.frames.append((trainer.step, buffer.data[:n].clone()))

    return _BufferSnapshots()


def fit_image_ebm(
    energy: nn.Module,
    images: Tensor,
    config: ImageEBMConfig | None = None,
    *,
    generator: torch.Generator | None = None,
    callbacks: Sequence[Callback] = (),
) -> ImageEBMResult:
    """Train an unconditional image energy (e.g. :class:`~torchenergy.energies.ConvEnergy`).

    Shapes: ``images`` (N, *D) scaled to the ``clamp`` box; the energy maps (C, *D) -> (C,).

    Example:
        >>> from torchenergy.energies import ConvEnergy
        >>> cfg = ImageEBMConfig(steps=2, batch_size=4, sgld_steps=2, buffer_size=8, n_snapshot=4,
        ...                      snapshot_every=1)
        >>> res = fit_image_ebm(ConvEnergy(1, (4,)), torch.rand(16, 1, 6, 6) * 2 - 1, cfg)
        >>> len(res.snapshots), tuple(res.snapshots[0][1].shape)
        (2, (4, 1, 6, 6))
    """
    cfg = config or ImageEBMConfig()
    if not isinstance(energy, nn.Module):
        raise TypeError(f"energy must be an nn.Module, got {type(energy).__name__}")
    check_tensor("images", images, min_dim=2, floating=True)
    if cfg.batch_size > images.shape[0]:
        raise ValueError(f"batch_size ({cfg.batch_size}) exceeds the {images.shape[0]} images")
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    shape = tuple(images.shape[1:])
    lo, hi = cfg.clamp
    buffer = ReplayBuffer(
        cfg.buffer_size,
        shape,
        lambda n, generator=None: lo + (hi - lo) * torch.rand(n, *shape, generator=generator),
        reinit_prob=cfg.reinit_prob,
        dtype=images.dtype,
        generator=g,
    )
    eps = cfg.sgld_step_size
    sampler = Langevin(
        energy,
        step_size=eps,
        noise_scale=cfg.sgld_noise / math.sqrt(2.0 * eps),
        grad_clip=cfg.sgld_grad_clip,
        clamp=cfg.clamp,
    )
    make = PersistentNegatives(sampler, buffer, n_steps=cfg.sgld_steps)
    holder: dict[str, Trainer] = {}

    def step_fn(x: Tensor) -> Any:
        step = holder["t"].step + 1
        if cfg.data_noise > 0:
            x = x + cfg.data_noise * torch.randn(x.shape, generator=g, dtype=x.dtype)
        try:
            x_neg = make(x, generator=g)
            return contrastive_divergence(energy, x, x_neg, l2_reg=cfg.l2_reg)
        except (DivergenceError, NonFiniteStartError) as exc:
            raise TrainingDivergedError(step, f"Langevin chains diverged ({exc})") from None
        except FloatingPointError as exc:  # NonFiniteEnergyError from the loss
            raise TrainingDivergedError(step, str(exc).split(";")[0]) from None

    snaps = _buffer_snapshots(buffer, cfg.snapshot_every, cfg.n_snapshot)
    opt = torch.optim.Adam(energy.parameters(), lr=cfg.lr, betas=cfg.betas)
    data = torch.utils.data.DataLoader(
        images, batch_size=cfg.batch_size, shuffle=True, drop_last=True, generator=g
    )
    trainer = Trainer(
        energy,
        opt,
        step_fn,
        grad_clip=cfg.grad_clip,
        callbacks=[snaps, *callbacks],
        generators={"ebm": g},
        state={"buffer": buffer},
        config=cfg.to_dict(),
    )
    holder["t"] = trainer
    trainer.fit(data, max_steps=cfg.steps)
    return ImageEBMResult(trainer, buffer, sampler, snaps.frames)
