"""Evaluation of Fashion-MNIST image models side by side (``torchenergy evaluate``): accuracy,
ECE, OOD detection for every score × OOD set, sample quality on the project's feature net.

Checkpoints come from :func:`torchenergy.cli.image_recipes.train_fashion_mnist`.

Example:
    >>> print(format_tables({}))
    <BLANKLINE>
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from torchenergy._checks import check_positive_int
from torchenergy.cli.image_recipes import _fashion, load_image_model

__all__ = ["evaluate_fashion_mnist", "format_tables"]


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
