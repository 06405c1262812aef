"""Fashion-MNIST runs behind ``torchenergy train --model cnn|jem|conv --data fashion_mnist`` and
``torchenergy evaluate``: train a plain CNN, a JEM (warm-started from the CNN) or an IGEBM-style
conv EBM and write a safe checkpoint; :mod:`torchenergy.cli.image_evaluation` evaluates them
(accuracy, ECE, OOD detection, sample quality).

Images are scaled to [-1, 1]. Checkpoints (``save_checkpoint``, read with ``weights_only=True``)
hold ``kind``, ``arch``, ``state_dict``, ``buffer`` (replay-buffer chains), ``seconds`` and
``steps``. See ``bench/jem_fashion_mnist.py`` for the measured comparison.

Example:
    >>> sorted(IMAGE_MODELS)
    ['cnn', 'conv', 'jem']
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchenergy._checks import check_positive, check_positive_int

__all__ = [
    "CNN_ARCH",
    "EBM_ARCH",
    "IMAGE_MODELS",
    "JEM_DEFAULTS",
    "load_image_model",
    "train_fashion_mnist",
]

IMAGE_MODELS = ("cnn", "jem", "conv")
#: the classifier architecture shared by the plain CNN and the JEM (measured in bench/)
CNN_ARCH: dict[str, Any] = {"channels": (32, 64, 128), "strides": (2, 2, 2), "pool": "flatten"}
EBM_ARCH: dict[str, Any] = {"hidden_channels": (16, 32, 64), "activation": "silu"}
#: the JEM settings measured in bench/results/jem.md (a CPU-budget recipe, warm-started from the
#: CNN): a short hybrid phase while the SGLD negatives are still off the data (longer runs make
#: p(x) rank MNIST above Fashion-MNIST), then a short classifier-only repair
JEM_DEFAULTS: dict[str, Any] = {
    "steps": 350,
    "ce_only_final_steps": 150,
    "batch_size": 64,
    "lr": 1e-4,
    "lr_warmup_steps": 100,
    "sgld_steps": 5,
    "sgld_step_size": 1.0,
    "sgld_noise": 0.01,
    "buffer_size": 2000,
    "reinit_prob": 0.01,
    "data_noise": 0.03,
    "gen_weight": 0.3,
    "l2_reg": 0.01,
    "grad_clip": 100.0,
    "on_divergence": "rollback",
}


def _fashion(limit: int | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    from torchenergy.data import load_fashion_mnist

    x, y = load_fashion_mnist("train", flatten=False, limit=limit)
    xt, yt = load_fashion_mnist("test", flatten=False, limit=limit)
    return 2 * x - 1, y, 2 * xt - 1, yt


def _build(kind: str, arch: dict[str, Any]) -> nn.Module:
    from torchenergy.energies import ConvEnergy
    from torchenergy.models import JEM, ConvClassifier

    if kind == "conv":
        return ConvEnergy(1, **arch)
    clf = ConvClassifier(1, 10, **arch)
    return JEM(clf, 10) if kind == "jem" else clf


def load_image_model(path: str | os.PathLike[str]) -> tuple[str, nn.Module, dict[str, Any]]:
    """``(kind, module, checkpoint)`` from a checkpoint of :func:`train_fashion_mnist`."""
    from torchenergy.train import CheckpointError, load_checkpoint

    ckpt = load_checkpoint(path)
    kind = ckpt.get("kind")
    if kind not in IMAGE_MODELS:
        raise CheckpointError(f"{str(path)!r} is not a Fashion-MNIST image-model checkpoint")
    arch = {k: tuple(v) if isinstance(v, list) else v for k, v in ckpt["arch"].items()}
    model = _build(kind, arch)
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    return kind, model, ckpt


def _time_budget(t0: float, minutes: float | None) -> Any:
    from torchenergy.train import LambdaCallback

    def stop(trainer: Any, out: Any, logs: dict[str, float]) -> None:
        if minutes is not None and time.perf_counter() - t0 > 60 * minutes:
            trainer.should_stop = True

    return LambdaCallback(on_step_end=stop)


def train_fashion_mnist(
    model: str,
    out: str | os.PathLike[str],
    *,
    minutes: float | None = None,
    steps: int | None = None,
    epochs: int = 5,
    warm_start: str | os.PathLike[str] | None = None,
    seed: int = 0,
    limit: int | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Train ``model`` ("cnn", "jem" or "conv") on Fashion-MNIST and write ``out/checkpoint.pt``.

    Args:
        model: "cnn" (cross-entropy, ``epochs``), "jem" (:func:`~torchenergy.train.fit_jem`
            from the CNN checkpoint ``warm_start``, or from a CNN trained first for ``epochs``)
            or "conv" (:func:`~torchenergy.train.fit_image_ebm` with a ConvEnergy).
        out: output folder (``checkpoint.pt``, ``train_log.csv``; ``samples.png``, ``buffer.gif``
            for the EBMs).
        minutes: wall-clock budget of the EBM phase (None: ``steps`` only).
        steps: optimiser steps of the EBM phase (JEM default 350, see ``JEM_DEFAULTS``; conv
            EBM default 100000, i.e. the time budget rules).
        limit: use only the first ``limit`` training images (smoke runs).
        overrides: fields of :class:`~torchenergy.models.JEMConfig` / ``torchenergy.train.ImageEBMConfig``.

    Returns:
        ``{"checkpoint", "kind", "steps", "seconds", "divergences"}``.
    """
    from torchenergy.models import JEMConfig
    from torchenergy.train import CSVLogger, ImageEBMConfig, fit_image_ebm, fit_jem, save_checkpoint

    if model not in IMAGE_MODELS:
        raise ValueError(f"model must be one of {IMAGE_MODELS}, got {model!r}")
    check_positive_int("epochs", epochs)
    if minutes is not None:
        check_positive("minutes", minutes)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    x, y, _, _ = _fashion(limit)
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    divergences: list[dict[str, Any]] = []
    buffer_data, frames, n_steps, extra_seconds = None, [], None, 0.0
    if model in ("cnn", "jem") and not (model == "jem" and warm_start is not None):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = _build("cnn", CNN_ARCH)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        for ep in range(epochs):
            if ep == epochs - 1:
                for group in opt.param_groups:
                    group["lr"] = 3e-4
            perm = torch.randperm(len(x), generator=g)
            for i in range(0, len(x) - 63, 64):
                idx = perm[i : i + 64]
                loss = F.cross_entropy(net(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        module: nn.Module = net
    if model == "jem":
        from torchenergy.models import JEM

        if warm_start is not None:
            kind, net, ck = load_image_model(warm_start)
            if kind != "cnn":
                raise ValueError(f"warm_start must be a cnn checkpoint, got a {kind!r} one")
            extra_seconds = float(ck.get("seconds", 0.0))
        clf = _build("cnn", {**CNN_ARCH, "energy_head": True})
        clf.load_state_dict(net.state_dict(), strict=False)  # the offset head starts at zero
        jem = JEM(clf, 10)
        cfg = JEMConfig(**{**JEM_DEFAULTS, **({"steps": steps} if steps else {}), **overrides})
        res = fit_jem(
            jem,
            x,
            y,
            cfg,
            generator=g,
            callbacks=[
                _time_budget(time.perf_counter(), minutes),
                CSVLogger(out / "train_log.csv"),
            ],
        )
        module, buffer_data, n_steps, divergences = (
            jem,
            res.buffer.data,
            res.trainer.step,
            res.divergences,
        )
    elif model == "conv":
        energy = _build("conv", EBM_ARCH)
        cfg = ImageEBMConfig(
            **{
                "steps": steps or 100000,
                "sgld_steps": 10,
                "sgld_step_size": 10.0,
                "sgld_noise": 0.01,
                "sgld_grad_clip": 0.3,
                **overrides,
            }
        )
        res = fit_image_ebm(
            energy,
            x,
            cfg,
            generator=g,
            callbacks=[
                _time_budget(time.perf_counter(), minutes),
                CSVLogger(out / "train_log.csv"),
            ],
        )
        module, buffer_data, n_steps, frames = (
            energy,
            res.buffer.data,
            res.trainer.step,
            res.snapshots,
        )
    seconds = time.perf_counter() - t0 + extra_seconds
    arch = {"cnn": CNN_ARCH, "jem": {**CNN_ARCH, "energy_head": True}, "conv": EBM_ARCH}[model]
    payload: dict[str, Any] = {
        "kind": model,
        "arch": {k: list(v) if isinstance(v, tuple) else v for k, v in arch.items()},
        "state_dict": module.state_dict(),
        "seconds": seconds,
        "steps": n_steps,
    }
    if buffer_data is not None:
        payload["buffer"] = buffer_data
    path = save_checkpoint(out / "checkpoint.pt", payload)
    if frames:
        from torchenergy.viz import save_image_animation

        save_image_animation(frames, out / "buffer.gif", nrow=8)
    return {
        "checkpoint": str(path),
        "kind": model,
        "steps": n_steps,
        "seconds": seconds,
        "divergences": divergences,
    }
