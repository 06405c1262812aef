"""``fit_jem``: JEM training on :class:`~torchenergy.train.Trainer` (see
:mod:`torchenergy.models.jem_train` for the objective, the stabilisers and :class:`JEMConfig`).

A step draws SGLD negatives from a persistent replay buffer, evaluates
:func:`~torchenergy.models.jem_loss`, and reports divergence (non-finite loss or chains, or
``|E| > max_abs_energy``) as :class:`~torchenergy.models.TrainingDivergedError` with the step
number; with ``on_divergence="rollback"`` the last good in-memory snapshot (weights, optimiser,
buffer, random streams) is restored and the learning rate scaled by ``rollback_lr_factor``.

Reference: W. Grathwohl et al., *Your Classifier is Secretly an Energy Based Model and You Should
Treat it Like One*, ICLR 2020.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from torchenergy._checks import check_tensor
from torchenergy.models import JEM, JEMConfig, JEMOutput, TrainingDivergedError, jem_loss
from torchenergy.samplers import (
    DivergenceError,
    Langevin,
    NonFiniteStartError,
    ReplayBuffer,
    run_chain,
)
from torchenergy.train.callbacks import Callback
from torchenergy.train.trainer import Trainer

__all__ = ["JEMResult", "fit_jem"]


class JEMResult(NamedTuple):
    """What :func:`fit_jem` returns: the trainer (``.model`` is the JEM, ``.step`` the steps
    done), the replay buffer, the sampler, and the divergences met (``{"step", "reason",
    "restored_step", "lr"}`` dicts; empty when none)."""

    trainer: Trainer
    buffer: ReplayBuffer
    sampler: Langevin
    divergences: list[dict[str, Any]]


def _snapshot_callback(every: int) -> Any:
    """A callback keeping a deep copy of the trainer's state every ``every`` steps (the last good
    state); ``take(trainer)`` snapshots now."""

    class _Snapshot(Callback):
        def __init__(self) -> None:
            self.state: dict[str, Any] | None = None

        def take(self, trainer: Trainer) -> None:
            self.state = copy.deepcopy(trainer.state_dict())

        def on_step_end(self, trainer: Trainer, out: Any, logs: dict[str, float]) -> None:
            if trainer.step % every == 0:
                self.take(trainer)

    return _Snapshot()


def _make_sampler(jem: JEM, cfg: JEMConfig) -> Langevin:
    eps = cfg.sgld_step_size
    return Langevin(
        jem,
        step_size=eps,
        noise_scale=cfg.sgld_noise / math.sqrt(2.0 * eps),
        grad_clip=cfg.sgld_grad_clip,
        clamp=cfg.clamp,
    )


def fit_jem(
    jem: JEM,
    images: Tensor,
    labels: Tensor,
    config: JEMConfig | None = None,
    *,
    generator: torch.Generator | None = None,
    callbacks: Sequence[Callback] = (),
    buffer: ReplayBuffer | None = None,
) -> JEMResult:
    """Train ``jem`` on labelled images with the hybrid JEM objective (see the module docstring).

    Shapes: ``images`` (N, *D) scaled to the ``clamp`` box (e.g. [-1, 1]), ``labels`` (N,) long.

    Args:
        jem: the model (its classifier may already be trained: a warm start).
        images, labels: the training set.
        config: :class:`JEMConfig` (default: its defaults).
        generator: the one random stream (data order, data noise, buffer, chains).
        callbacks: Trainer callbacks (e.g. ``CSVLogger``); logs hold ``ce``, ``gap``,
            ``accuracy``, ``pos_energy``, ``neg_energy``, ``lr``.
        buffer: an existing replay buffer to continue (default: a new one from uniform noise).

    Returns:
        :class:`JEMResult`.

    Raises:
        TrainingDivergedError: a step diverged (``on_divergence="raise"``), or more than
            ``max_rollbacks`` did; the message names the step.

    Example:
        >>> jem = JEM(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2)))
        >>> x, y = torch.rand(32, 1, 2, 2) * 2 - 1, torch.randint(0, 2, (32,))
        >>> cfg = JEMConfig(steps=3, batch_size=8, sgld_steps=2, buffer_size=16)
        >>> fit_jem(jem, x, y, cfg, generator=torch.Generator().manual_seed(0)).trainer.step
        3
    """
    cfg = config or JEMConfig()
    if not isinstance(jem, JEM):
        raise TypeError(f"jem must be a JEM, got {type(jem).__name__}")
    check_tensor("images", images, min_dim=2, floating=True)
    if not isinstance(labels, Tensor) or labels.shape != (images.shape[0],):
        raise ValueError(f"labels must have shape (N,) = ({images.shape[0]},), got {labels!r:.60}")
    if cfg.batch_size > images.shape[0]:
        raise ValueError(f"batch_size ({cfg.batch_size}) exceeds the {images.shape[0]} images")
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    shape = tuple(images.shape[1:])
    lo, hi = cfg.clamp if cfg.clamp is not None else (-1.0, 1.0)
    if buffer is None:
        buffer = ReplayBuffer(
            cfg.buffer_size,
            shape,
            lambda n, generator=None: lo + (hi - lo) * torch.rand(n, *shape, generator=generator),
            reinit_prob=cfg.reinit_prob,
            dtype=images.dtype,
            generator=g,
        )
    sampler = _make_sampler(jem, cfg)
    n_neg = cfg.n_neg or cfg.batch_size
    holder: dict[str, Trainer] = {}

    def step_fn(batch: Any) -> JEMOutput:
        x, y = batch
        step = holder["t"].step + 1
        if cfg.data_noise > 0:
            x = x + cfg.data_noise * torch.randn(x.shape, generator=g, dtype=x.dtype)
        x_neg = None
        hybrid = cfg.ce_only_steps < step <= cfg.steps - cfg.ce_only_final_steps
        if cfg.ce_only_final_steps and step == cfg.steps - cfg.ce_only_final_steps + 1:
            opt.state.clear()  # fresh Adam moments: the generative phase's would shrink the repair
        if hybrid and cfg.gen_weight > 0:
            idx, x0 = buffer.sample(n_neg, generator=g)
            try:
                x_neg = run_chain(sampler, x0.to(x.dtype), cfg.sgld_steps, generator=g).x
            except (DivergenceError, NonFiniteStartError) as exc:
                raise TrainingDivergedError(step, f"SGLD chains diverged ({exc})") from None
            buffer.update(idx, x_neg)
        out = jem_loss(jem, x, y, x_neg, gen_weight=cfg.gen_weight, l2_reg=cfg.l2_reg)
        if not bool(torch.isfinite(out.loss.detach())):
            raise TrainingDivergedError(step, f"the loss is {float(out.loss.detach())}")
        biggest = max(
            float(out.pos_energy.abs().max()),
            float(out.neg_energy.abs().max()) if out.neg_energy.numel() else 0.0,
        )
        if not biggest <= cfg.max_abs_energy:
            raise TrainingDivergedError(
                step, f"|energy| reached {biggest:.4g} > max_abs_energy = {cfg.max_abs_energy:g}"
            )
        return out

    opt = torch.optim.Adam(
        jem.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay
    )
    warm = cfg.lr_warmup_steps
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) if warm else 1.0
    )
    snap = _snapshot_callback(cfg.snapshot_every)
    data = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(images, labels),
        batch_size=cfg.batch_size,
        shuffle=True,
        drop_last=True,
        generator=g,
    )
    trainer = Trainer(
        jem,
        opt,
        step_fn,
        scheduler=sched,
        grad_clip=cfg.grad_clip,
        callbacks=[snap, *callbacks],
        generators={"jem": g},
        state={"buffer": buffer},
        config=cfg.to_dict(),
    )
    holder["t"] = trainer
    snap.take(trainer)
    divergences: list[dict[str, Any]] = []
    base_lrs, lr_scale = list(sched.base_lrs), 1.0
    while trainer.step < cfg.steps:
        try:
            trainer.fit(data, max_steps=cfg.steps)
            break  # done, or a callback set trainer.should_stop (e.g. a time budget)
        except FloatingPointError as exc:
            step = exc.step if isinstance(exc, TrainingDivergedError) else trainer.step + 1
            reason = exc.reason if isinstance(exc, TrainingDivergedError) else str(exc)
            if cfg.on_divergence == "raise" or len(divergences) >= cfg.max_rollbacks:
                if isinstance(exc, TrainingDivergedError):
                    raise
                raise TrainingDivergedError(step, reason) from exc
            if snap.state is None:  # pragma: no cover - a snapshot is taken before fitting
                raise TrainingDivergedError(step, reason) from exc
            trainer.load_state_dict(snap.state)
            lr_scale *= cfg.rollback_lr_factor
            sched.base_lrs = [b * lr_scale for b in base_lrs]
            for group, base in zip(opt.param_groups, sched.base_lrs):
                group["lr"] = base * sched.lr_lambdas[0](sched.last_epoch)
            divergences.append(
                {
                    "step": step,
                    "reason": reason,
                    "restored_step": trainer.step,
                    "lr": sched.base_lrs[0],
                }
            )
    return JEMResult(trainer, buffer, sampler, divergences)
