"""Fashion-MNIST runs behind ``torchenergy train --model cnn|jem|conv --data fashion_mnist`` and
``torchenergy evaluate``: train a plain CNN, a JEM (warm-started from the CNN) or an IGEBM-style
conv EBM, write a safe checkpoint, and evaluate accuracy, ECE, OOD detection and sample quality.

Images are scaled to [-1, 1]. Checkpoints (``save_checkpoint``, read with ``weights_only=True``)
hold ``kind``, ``arch``, ``state_dict``, ``buffer`` (replay-buffer chains), ``seconds`` and
``steps``. See ``bench/jem_fashion_mnist.py`` for the measured comparison.

Example:
    >>> sorted(IMAGE_MODELS)
    ['cnn', 'conv', 'jem']
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchenergy._checks import check_positive, check_positive_int

__all__ = [
    "IMAGE_MODELS",
    "evaluate_fashion_mnist",
    "format_tables",
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
        model: "cnn" (cross-entropy, ``epochs``), "jem" (:func:`~torchenergy.models.fit_jem`
            from the CNN checkpoint ``warm_start``, or from a CNN trained first for ``epochs``)
            or "conv" (:func:`~torchenergy.models.fit_image_ebm` with a ConvEnergy).
        out: output folder (``checkpoint.pt``, ``train_log.csv``; ``samples.png``, ``buffer.gif``
            for the EBMs).
        minutes: wall-clock budget of the EBM phase (None: ``steps`` only).
        steps: optimiser steps of the EBM phase (JEM default 350, see ``JEM_DEFAULTS``; conv
            EBM default 100000, i.e. the time budget rules).
        limit: use only the first ``limit`` training images (smoke runs).
        overrides: fields of :class:`~torchenergy.models.JEMConfig` / ``ImageEBMConfig``.

    Returns:
        ``{"checkpoint", "kind", "steps", "seconds", "divergences"}``.
    """
    from torchenergy.models import ImageEBMConfig, JEMConfig, fit_image_ebm, fit_jem
    from torchenergy.train import CSVLogger, save_checkpoint

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


def _ood_sets(xt: Tensor, n: int) -> dict[str, Tensor]:
    from torchenergy.data import load_animal_mnist, load_mnist_5k

    g = torch.Generator().manual_seed(123)
    m, _ = load_mnist_5k(flatten=False)
    a, _ = load_animal_mnist(flatten=False)
    base = xt[-n:]  # the last n test images (the in-distribution set is the first n)
    return {
        "MNIST-5k": (2 * m - 1)[:n],
        "Animal-MNIST": (2 * a - 1)[:n],
        "uniform noise": torch.rand(n, 1, 28, 28, generator=g) * 2 - 1,
        "flipped Fashion": base.flip(2),
        "inverted Fashion": -base,
    }


def _samples(
    kind: str, model: nn.Module, ckpt: dict[str, Any], n_steps: int, g: torch.Generator
) -> tuple[Tensor, Tensor]:
    """(2000 samples for the sample-quality metrics, a 10x10 grid: columns = classes for a JEM)."""
    from torchenergy.models import JEM
    from torchenergy.samplers import Langevin, run_chain

    buf = ckpt.get("buffer")
    if kind == "conv":
        x0 = buf[:2000] if buf is not None else torch.rand(2000, 1, 28, 28, generator=g) * 2 - 1
        kernel = Langevin(model, 10.0, 0.01 / 20**0.5, grad_clip=0.3, clamp=(-1.0, 1.0))
        x = run_chain(kernel, x0, n_steps, generator=g, on_divergence="warn").x
        return x, x[:100]
    jem = model if isinstance(model, JEM) else JEM(model, 10)
    per = 200 if buf is None else max(1, min(200, len(buf) // 10))
    labels = torch.arange(10).repeat_interleave(per)
    if buf is not None and len(buf) >= 10 * per:
        x0 = buf[: 10 * per]
    else:
        x0 = torch.rand(10 * per, 1, 28, 28, generator=g) * 2 - 1
    kernel = Langevin(jem.conditional(labels), 1.0, 0.01 / 2**0.5, clamp=(-1.0, 1.0))
    x = run_chain(kernel, x0.clone(), n_steps, generator=g, on_divergence="warn").x
    cols = min(per, 10)
    order = torch.arange(10)[:, None] * per + torch.arange(cols)[None, :]
    return x, x[order.T.flatten()]


def evaluate_fashion_mnist(
    checkpoints: dict[str, str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    n_ood: int = 5000,
    sample_steps: int = 100,
    seed: int = 0,
    limit: int | None = None,
    feature_net: nn.Module | None = None,
) -> dict[str, Any]:
    """Evaluate checkpoints of :func:`train_fashion_mnist` side by side; write tables and plots.

    For each ``{name: checkpoint}``: test accuracy and ECE (classifiers), AUROC / AUPR / FPR95 for
    every score (max softmax, energy, gradient norm; energy and gradient norm for the conv EBM)
    against MNIST-5k, Animal-MNIST, uniform noise, flipped and inverted Fashion-MNIST
    (``n_ood`` images each, against the first ``n_ood`` test images), and the Fréchet distance and
    KID of 2,000 samples (``sample_steps`` Langevin steps from the replay buffer; class-conditional
    for a JEM) on the cached feature net (:mod:`torchenergy.features`; not FID).

    ``limit`` keeps the first images of each split (smoke runs); ``feature_net`` replaces the
    cached feature network (smoke runs; the distances are then not comparable).

    Writes ``out/metrics.json``, ``out/tables.md`` and per model ``reliability_<name>.png``,
    ``scores_<name>.png`` (histograms of the best score), ``samples_<name>.png``.

    Returns:
        The metrics dict (also in ``metrics.json``).
    """
    from torchenergy.features import fashion_feature_net, image_features
    from torchenergy.metrics import frechet_distance, kernel_distance
    from torchenergy.ood import (
        classifier_scores,
        energy_as_score,
        expected_calibration_error,
        gradient_norm_score,
        ood_report,
    )
    from torchenergy.viz import (
        plot_image_grid,
        plot_reliability_diagram,
        plot_score_histograms,
        savefig,
    )

    check_positive_int("n_ood", n_ood)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    x, _, xt, yt = _fashion(limit)
    n_ood = min(n_ood, len(xt))
    sets = _ood_sets(xt, n_ood)
    g = torch.Generator().manual_seed(seed)
    fnet = feature_net if feature_net is not None else fashion_feature_net()
    ref = image_features(fnet, xt[:2000], value_range=(-1, 1))  # type: ignore[arg-type]
    floor = image_features(fnet, x[:2000], value_range=(-1, 1))  # type: ignore[arg-type]
    res: dict[str, Any] = {
        "feature_net_test_accuracy": float(getattr(fnet, "test_accuracy", float("nan"))),
        "fd_train_vs_test": float(frechet_distance(floor, ref)),
        "kid_train_vs_test": float(kernel_distance(floor, ref, generator=g).mean),
    }
    for name, path in checkpoints.items():
        kind, model, ckpt = load_image_model(path)
        r: dict[str, Any] = {
            "kind": kind,
            "seconds": ckpt.get("seconds"),
            "steps": ckpt.get("steps"),
        }
        if kind == "conv":
            scores = {
                "energy": lambda z, e=model: energy_as_score(e, z),
                "grad_norm": lambda z, e=model: gradient_norm_score(e, z),
            }
        else:
            logits_fn = model.logits if hasattr(model, "logits") else model
            with torch.no_grad():
                probs = torch.cat([torch.softmax(logits_fn(c), -1) for c in xt.split(1000)])
            r["accuracy"] = float((probs.argmax(1) == yt).float().mean())
            r["ece"] = float(expected_calibration_error(probs, yt, 15))
            savefig(
                plot_reliability_diagram(probs, yt, title=name), out / f"reliability_{name}.png"
            )
            scores = classifier_scores(logits_fn)
        rep = ood_report(scores, xt[:n_ood], sets, return_scores=True)
        raw = rep.pop("_scores")
        r["ood"] = rep
        best = max(rep, key=lambda s: rep[s]["MNIST-5k"]["auroc"])
        hist = {("Fashion test" if k == "in" else k): torch.tensor(v) for k, v in raw[best].items()}
        savefig(
            plot_score_histograms(hist, title=f"{name}: {best} score"), out / f"scores_{name}.png"
        )
        samples, grid = _samples(kind, model, ckpt, sample_steps, g)
        feats = image_features(fnet, samples, value_range=(-1, 1))  # type: ignore[arg-type]
        r["frechet"] = float(frechet_distance(feats, ref))
        r["kid"] = float(kernel_distance(feats, ref, generator=g).mean)
        ax = plot_image_grid(grid, nrow=10, title=f"{name} samples", value_range=(-1, 1))
        savefig(ax, out / f"samples_{name}.png")
        res[name] = r
    (out / "metrics.json").write_text(json.dumps(res, indent=1))
    (out / "tables.md").write_text(format_tables(res))
    return res


def format_tables(res: dict[str, Any]) -> str:
    """Markdown tables (summary; AUROC / FPR95 per score and OOD set) of an evaluation dict."""
    models = [m for m, v in res.items() if isinstance(v, dict) and "ood" in v]
    if not models:
        return ""
    lines = [
        "| model | train time (s) | steps | test acc | ECE (15 bins) | Fréchet (own features) | KID |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in models:
        r = res[m]
        acc = f"{r['accuracy']:.4f}" if "accuracy" in r else "–"
        ece = f"{r['ece']:.4f}" if "ece" in r else "–"
        secs = f"{r['seconds']:.0f}" if r.get("seconds") is not None else "–"
        lines.append(
            f"| {m} | {secs} | {r.get('steps') or '–'} | {acc} | {ece} | {r['frechet']:.2f} | {r['kid']:.4f} |"
        )
    lines += [
        "",
        f"Reference: train vs test images, Fréchet {res['fd_train_vs_test']:.2f}, KID "
        f"{res['kid_train_vs_test']:.4f} (feature net test accuracy {res['feature_net_test_accuracy']:.4f}).",
        "",
    ]
    sets = list(next(iter(res[models[0]]["ood"].values())))
    lines += [
        "| model | score | " + " | ".join(f"{s} AUROC / FPR95" for s in sets) + " |",
        "|---|---|" + "---|" * len(sets),
    ]
    for m in models:
        for score, per in res[m]["ood"].items():
            cells = " | ".join(f"{per[s]['auroc']:.3f} / {per[s]['fpr95']:.3f}" for s in sets)
            lines.append(f"| {m} | {score} | {cells} |")
    return "\n".join(lines) + "\n"
