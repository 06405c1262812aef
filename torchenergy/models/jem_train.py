"""The JEM hybrid objective (run by :func:`torchenergy.train.fit_jem`): the hybrid objective ``log p(y|x) + log p(x)`` with SGLD negatives.

One step (Grathwohl et al. 2020, Algorithm 1), with the stabilisers that keep it from diverging::

    x̃ = x + data_noise · z                              noise on the data
    idx, x0 = buffer.sample(n_neg)                       persistent chains, reinit_prob from noise
    x⁻ = Langevin(E, ε, noise, grad_clip, clamp)^k (x0)  short-run SGLD, written back to the buffer
    loss = CE(f(x̃), y) + gen_weight · (E(x̃) − E(x⁻)) + l2_reg · (E(x̃)² + E(x⁻)²)

with ``E(x) = −logsumexp f(x)``. The generative term starts after ``ce_only_steps`` (a warm start
from a plain classifier) and may stop ``ce_only_final_steps`` before the end, the learning rate warms up linearly over ``lr_warmup_steps``, the
parameter gradient is clipped (``grad_clip``) and the classifier may be spectrally normalised.
A step whose loss, energies (``|E| > max_abs_energy``) or chains are not finite raises
:class:`TrainingDivergedError` with the step number; with ``on_divergence="rollback"`` the run is
restored to the last good snapshot (weights, optimiser, buffer, random streams), the learning rate
is scaled by ``rollback_lr_factor`` and training continues, at most ``max_rollbacks`` times.

SGLD in the library's convention: ``x' = x − ε ∇E + sqrt(2ε)·s·z``; JEM's "step size 1, noise
0.01" is ε = 1 with per-step noise std ``sqrt(2ε)·s = sgld_noise`` (here ``sgld_noise`` is that std).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from torchenergy._checks import check_positive, check_positive_int, check_probability, check_tensor
from torchenergy.models.jem import JEM

__all__ = ["JEMConfig", "JEMOutput", "TrainingDivergedError", "jem_loss"]


class JEMOutput(NamedTuple):
    """What :func:`jem_loss` returns (all but ``loss`` detached).

    Attributes:
        loss: scalar, differentiable in the parameters.
        ce: cross-entropy ``−mean log p(y|x)``.
        gap: ``mean E(x) − mean E(x⁻)`` (the contrastive term; near 0 when healthy).
        accuracy: batch accuracy of the classifier.
        pos_energy: data energies (C,).
        neg_energy: negative-sample energies (C⁻,), empty when no negatives were used.
    """

    loss: Tensor
    ce: Tensor
    gap: Tensor
    accuracy: Tensor
    pos_energy: Tensor
    neg_energy: Tensor


def jem_loss(
    jem: JEM,
    x: Tensor,
    y: Tensor,
    x_neg: Tensor | None = None,
    *,
    gen_weight: float = 1.0,
    l2_reg: float = 0.0,
) -> JEMOutput:
    """Hybrid JEM loss ``CE(f(x), y) + gen_weight·(E(x) − E(x⁻)) + l2_reg·(E(x)² + E(x⁻)²)``.

    Shapes: ``x`` (C, *D), ``y`` (C,) long, ``x_neg`` (C⁻, *D) or None (classifier only).
    One forward pass of the data gives both the logits and ``E(x) = −logsumexp f(x)``.

    Example:
        >>> jem = JEM(torch.nn.Linear(2, 3))
        >>> out = jem_loss(jem, torch.randn(4, 2), torch.tensor([0, 1, 2, 0]), torch.randn(4, 2))
        >>> out.loss.shape, out.neg_energy.shape
        (torch.Size([]), torch.Size([4]))
    """
    check_tensor("x", x, min_dim=1, floating=True)
    check_positive("gen_weight", gen_weight, allow_zero=True)
    check_positive("l2_reg", l2_reg, allow_zero=True)
    f = jem.logits(x)
    if not isinstance(y, Tensor) or y.shape != (x.shape[0],):
        raise ValueError(f"y must be a (C,) = ({x.shape[0]},) label tensor, got {y!r:.60}")
    ce = F.cross_entropy(f, y)
    e_pos = -torch.logsumexp(f, dim=-1)
    loss = ce
    gap = torch.zeros((), dtype=f.dtype, device=f.device)
    e_neg = f.new_empty(0)
    if x_neg is not None and (gen_weight > 0 or l2_reg > 0):
        e_neg = jem.energy(x_neg.detach())
        gap = e_pos.mean() - e_neg.mean()
        loss = loss + gen_weight * gap
        if l2_reg > 0:
            loss = loss + l2_reg * (e_pos.pow(2).mean() + e_neg.pow(2).mean())
    acc = (f.argmax(-1) == y).float().mean()
    return JEMOutput(loss, ce.detach(), gap.detach(), acc.detach(), e_pos.detach(), e_neg.detach())


class TrainingDivergedError(FloatingPointError):
    """A training step (JEM or image EBM) diverged; ``step`` is the 1-based optimiser step."""

    def __init__(self, step: int, reason: str) -> None:
        self.step = int(step)
        self.reason = reason
        super().__init__(
            f"training diverged at step {self.step}: {reason}. Lower lr or sgld_step_size, "
            "raise l2_reg, set sgld_grad_clip/grad_clip, use spectral norm, or pass "
            "on_divergence='rollback'"
        )


@dataclass(frozen=True)
class JEMConfig:
    """Hyperparameters of :func:`fit_jem` (defaults: a CPU-sized version of the paper's recipe).

    Attributes:
        steps: optimiser steps in total. batch_size: labelled images per step.
        n_neg: SGLD chains per step (default: batch_size).
        lr, betas, weight_decay: Adam. lr_warmup_steps: linear learning-rate warm-up.
        ce_only_steps: first steps with the classifier loss only (warm start).
        ce_only_final_steps: last steps with the classifier loss only (a short repair of accuracy
            and calibration after the hybrid phase); the optimiser's moment estimates are reset
            when it starts (those of the generative phase would make its steps tiny).
        gen_weight: weight of the generative term ``E(x) − E(x⁻)``.
        sgld_steps, sgld_step_size (ε), sgld_noise (per-step noise std), sgld_grad_clip: SGLD.
        clamp: box the chains stay in (the data range), or None.
        buffer_size, reinit_prob: the replay buffer (reinitialised from uniform noise on the box).
        data_noise: std of the Gaussian noise added to the data.
        l2_reg: energy L2 weight. grad_clip: parameter gradient-norm clip (None: off).
        max_abs_energy: an energy beyond this magnitude counts as divergence.
        on_divergence: "raise" or "rollback". max_rollbacks, rollback_lr_factor: rollback policy.
        snapshot_every: steps between in-memory snapshots of the last good state.
    """

    steps: int = 2000
    batch_size: int = 64
    n_neg: int | None = None
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    lr_warmup_steps: int = 0
    ce_only_steps: int = 0
    ce_only_final_steps: int = 0
    gen_weight: float = 1.0
    sgld_steps: int = 20
    sgld_step_size: float = 1.0
    sgld_noise: float = 0.01
    sgld_grad_clip: float | None = None
    clamp: tuple[float, float] | None = (-1.0, 1.0)
    buffer_size: int = 10000
    reinit_prob: float = 0.05
    data_noise: float = 0.03
    l2_reg: float = 0.0
    grad_clip: float | None = None
    max_abs_energy: float = 1e4
    on_divergence: str = "raise"
    max_rollbacks: int = 3
    rollback_lr_factor: float = 0.5
    snapshot_every: int = 100

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "sgld_steps", "buffer_size", "snapshot_every"):
            check_positive_int(name, getattr(self, name))
        for name in ("lr_warmup_steps", "ce_only_steps", "ce_only_final_steps", "max_rollbacks"):
            check_positive_int(name, getattr(self, name), allow_zero=True)
        if self.n_neg is not None:
            check_positive_int("n_neg", self.n_neg)
        for name in ("lr", "sgld_step_size", "max_abs_energy"):
            check_positive(name, getattr(self, name))
        for name in ("weight_decay", "gen_weight", "sgld_noise", "data_noise", "l2_reg"):
            check_positive(name, getattr(self, name), allow_zero=True)
        for name in ("sgld_grad_clip", "grad_clip"):
            if getattr(self, name) is not None:
                check_positive(name, getattr(self, name))
        check_probability("reinit_prob", self.reinit_prob)
        check_probability("rollback_lr_factor", self.rollback_lr_factor, open_left=True)
        if self.on_divergence not in ("raise", "rollback"):
            raise ValueError(
                f"on_divergence must be 'raise' or 'rollback', got {self.on_divergence!r}"
            )
        if (self.n_neg or self.batch_size) > self.buffer_size:
            raise ValueError(
                f"n_neg ({self.n_neg or self.batch_size}) must be <= buffer_size ({self.buffer_size})"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-like dict (for checkpoints and logs)."""
        return asdict(self)
