"""Fit a flow or diffusion model: one small loop an application (or the CLI) can call.

``fit_diffusion`` draws batches from a tensor data set (or a sampler callable), applies the
chosen regression loss (:func:`~torchenergy.diffusion.interpolant_loss`), steps Adam, and keeps
an exponential moving average of the weights (the copy to sample with). ``fit_flow`` and
``fit_score`` fix the usual choices: velocity on the linear path, and score on VP with σ²
weighting. Optional labels train a conditional model with label dropout for classifier-free
guidance.

Reference: Lipman et al. (2023); Song et al. (2021); Ho & Salimans (2021).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor, nn

from torchenergy._checks import check_positive, check_positive_int
from torchenergy.diffusion.interpolants import Interpolant, get_interpolant
from torchenergy.diffusion.losses import drop_labels, interpolant_loss
from torchenergy.types import Generator

__all__ = ["FitResult", "fit_diffusion", "fit_flow", "fit_score"]

DataSource = Tensor | Callable[[int, Generator], Tensor]


class FitResult(NamedTuple):
    """What the fit functions return.

    Attributes:
        model: the trained network (last weights), in eval mode.
        ema: the exponential-moving-average copy (sample with this), in eval mode.
        losses: the loss per step (T,), detached.
        seconds: wall time of the loop.
    """

    model: nn.Module
    ema: nn.Module
    losses: Tensor
    seconds: float


@torch.no_grad()
def _ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.lerp_(pm.detach(), 1.0 - decay)


def fit_diffusion(
    model: nn.Module,
    data: DataSource,
    interpolant: Interpolant | str = "linear",
    prediction: str = "velocity",
    *,
    weighting: str = "none",
    coupling: str = "independent",
    n_steps: int = 2000,
    batch_size: int = 256,
    lr: float = 1e-3,
    ema_decay: float = 0.999,
    labels: Tensor | None = None,
    label_dropout: float = 0.1,
    null_label: int | None = None,
    lr_warmup: int = 0,
    cosine_decay: bool = True,
    generator: Generator = None,
    callback: Callable[[int, float], None] | None = None,
) -> FitResult:
    """Train ``model`` by the interpolant regression loss with Adam and EMA.

    Shapes: ``data`` (N, *D) (or ``data(n, generator) -> (n, *D)``); ``labels`` (N,).

    Args:
        model: ``(x, t[, y]) -> (C, *D)``.
        data: a tensor of examples or a batch sampler.
        interpolant, prediction, weighting, coupling: see :func:`interpolant_loss`.
        n_steps: optimiser steps.
        batch_size: examples per step.
        lr: Adam learning rate (cosine-decayed to 0 when ``cosine_decay``).
        ema_decay: EMA decay per step.
        labels: class labels of ``data`` for a conditional model (tensor data only).
        label_dropout: probability of replacing a label by ``null_label`` (CFG training).
        null_label: K (defaults to ``labels.max() + 1``).
        lr_warmup: linear warm-up steps.
        cosine_decay: cosine learning-rate decay over ``n_steps``.
        generator: random stream for batches, times, noise and label dropout.
        callback: called as ``callback(step, loss)`` every step.

    Returns:
        :class:`FitResult`.

    Example:
        >>> from torchenergy.diffusion import TimeMLP
        >>> res = fit_flow(TimeMLP(2, 16, 1), torch.randn(64, 2), n_steps=5, batch_size=8,
        ...                generator=torch.Generator().manual_seed(0))
        >>> res.losses.shape
        torch.Size([5])
    """
    check_positive_int("n_steps", n_steps)
    check_positive_int("batch_size", batch_size)
    check_positive("lr", lr)
    if not 0.0 <= ema_decay < 1.0:
        raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay!r}")
    interp = get_interpolant(interpolant)
    if isinstance(data, Tensor):
        if data.dim() < 2:
            raise ValueError(f"data must be (N, *D), got shape {tuple(data.shape)}")
        if labels is not None and labels.shape != (data.shape[0],):
            raise ValueError(f"labels must be ({data.shape[0]},), got {tuple(labels.shape)}")
    elif not callable(data):
        raise TypeError(
            f"data must be a tensor or a callable (n, generator) -> batch, got {type(data).__name__}"
        )
    elif labels is not None:
        raise ValueError("labels need tensor data")
    if labels is not None and null_label is None:
        null_label = int(labels.max()) + 1
    param = next(model.parameters())
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def lr_at(step: int) -> float:
        f = 1.0
        if lr_warmup and step < lr_warmup:
            f = (step + 1) / lr_warmup
        if cosine_decay:
            f *= 0.5 * (1.0 + torch.cos(torch.tensor(torch.pi * step / n_steps)).item())
        return lr * f

    losses = torch.empty(n_steps)
    model.train()
    start = time.perf_counter()
    for step in range(n_steps):
        y = None
        if isinstance(data, Tensor):
            idx = torch.randint(data.shape[0], (batch_size,), generator=generator)
            batch = data[idx].to(param)
            if labels is not None:
                y = drop_labels(
                    labels[idx].to(param.device), null_label, label_dropout, generator=generator
                )
        else:
            batch = data(batch_size, generator).to(param)
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        out = interpolant_loss(
            model,
            batch,
            interp,
            prediction,
            weighting=weighting,
            coupling=coupling,
            y=y,
            generator=generator,
        )
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        _ema_update(ema, model, ema_decay)
        losses[step] = out.loss.detach()
        if callback is not None:
            callback(step, float(losses[step]))
    model.eval()
    ema.eval()
    return FitResult(model, ema, losses, time.perf_counter() - start)


def fit_flow(
    model: nn.Module, data: DataSource, interpolant: Interpolant | str = "linear", **kwargs
) -> FitResult:
    """Conditional flow matching (velocity prediction); kwargs as :func:`fit_diffusion`."""
    return fit_diffusion(model, data, interpolant, "velocity", **kwargs)


def fit_score(
    model: nn.Module,
    data: DataSource,
    interpolant: Interpolant | str = "vp",
    *,
    weighting: str = "sigma2",
    **kwargs,
) -> FitResult:
    """Denoising score matching over time (score prediction); kwargs as :func:`fit_diffusion`."""
    return fit_diffusion(model, data, interpolant, "score", weighting=weighting, **kwargs)
