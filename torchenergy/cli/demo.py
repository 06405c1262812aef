"""``torchenergy demo`` (what ``make demo`` runs): train an EBM on a 2-D density and show it.

The run is :data:`DEMO_CONFIG` (sliced score matching of an MLP energy on 8 Gaussians, Langevin
samples); ``key=value`` overrides change it, e.g. ``loss=pcd`` for persistent contrastive
divergence with a replay buffer.

Writes to the output folder:

* ``landscape.png``: the learned energy E(x) (contour) and density exp(−E)/Z (heat map);
* ``samples.png``: model samples (MCMC from uniform noise) over held-out data;
* ``score_field.png``: the learned score −∇E(x) over the data;
* ``training.gif``: samples over data and the model density as training proceeds;
* ``training_curves.png`` and ``log.csv``: loss, energies of data and negatives;
* ``metrics.json``: held-out NLL (exact, grid quadrature) beside a validated Gaussian KDE's, MMD;
* ``checkpoint.pt`` and ``config.json``: reload with ``torchenergy sample/evaluate``;
* ``samplers/``: the samplers demo (``torchenergy.cli.demos.samplers.run_sampler_demo``).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from torchenergy.cli.config import TrainConfig
from torchenergy.cli.recipe import (
    Run,
    box_noise,
    build_sampler,
    draw_samples,
    evaluate_run,
    is_image_run,
)
from torchenergy.cli.run_io import train_to_folder
from torchenergy.train import Callback

__all__ = ["DEMO_CONFIG", "run_demo"]

#: The demo run: sliced score matching (variance-reduced) of an MLP energy on 8 Gaussians; samples
#: by Langevin dynamics. Chosen by held-out NLL: on 8 Gaussians and two moons it came within
#: 0.02-0.04 nats of a validated Gaussian KDE at a third of PCD's cost per step, where PCD
#: (replay buffer + 20 Langevin steps) was 0.2-0.25 nats behind (numbers in the module README).
DEMO_CONFIG: dict[str, Any] = {
    "data": "8gaussians",
    "loss": "ssm",
    "n_projections": 1,
    "hidden": [64, 64],
    "sampler": "langevin",
    "step_size": 0.01,
    "batch_size": 256,
    "lr": 2e-3,
    "steps": 1500,
    "ema": 0.99,
    "snapshot_every": 50,
    "log_every": 10,
}

_QUICK = {
    "steps": 40,
    "snapshot_every": 10,
    "n_sampler_steps": 5,
    "n_test": 1000,
    "buffer_size": 1000,
}


def run_demo(
    out: str | Path = "runs/demo",
    *,
    quick: bool = False,
    overrides: Sequence[str] = (),
    verbose: bool = True,
) -> dict[str, Any]:
    """Train, plot, evaluate and print where everything is. Returns the metrics dict."""
    from torchenergy.viz import (
        plot_density,
        plot_energy,
        plot_samples,
        plot_score_field,
        plot_training_curves,
        save_training_animation,
        savefig,
    )

    out = Path(out)
    t0 = time.perf_counter()
    values = {**DEMO_CONFIG, **(_QUICK if quick else {})}
    cfg = TrainConfig.from_dict(values, overrides=overrides)
    if is_image_run(cfg):
        raise ValueError(
            f"the demo plots a 2-D density; data={cfg.data!r} is images (train them with "
            "`torchenergy train data=digits energy=conv`)"
        )
    b = cfg.box
    lims = {"xlim": (-b, b), "ylim": (-b, b)}
    every = cfg.snapshot_every or max(1, cfg.steps // 30)
    snapshots = _Snapshots(every, lims)
    result = train_to_folder(cfg, out, progress=verbose, callbacks=[snapshots])
    run: Run = result["run"]
    t_train = time.perf_counter() - t0
    energy = run.trainer.ema.module.energy if run.trainer.ema is not None else run.model.energy
    data = run.heldout

    paths: dict[str, Path] = {}
    axes = _two_axes()
    plot_energy(energy, axes[0], **lims)
    plot_density(energy, axes[1], **lims)
    paths["landscape"] = savefig(axes, out / "landscape.png")
    g = torch.Generator().manual_seed(cfg.seed + 7)
    samples = draw_samples(run, 500 if quick else 2000, n_steps=100 if quick else 500, generator=g)
    paths["samples"] = savefig(plot_samples(samples, data, **lims), out / "samples.png")
    ax = plot_score_field(energy, **lims)
    d = data[:1500].numpy()
    ax.scatter(d[:, 0], d[:, 1], s=3, c="tab:red", alpha=0.4, linewidths=0, zorder=0)
    paths["score_field"] = savefig(ax, out / "score_field.png")
    paths["training_gif"] = save_training_animation(
        snapshots.history, out / "training.gif", data=data
    )
    keys = [
        k
        for k in ("loss", "pos_energy", "neg_energy", "gap", "grad_norm")
        if k in _first_row(out / "log.csv")
    ]
    paths["training_curves"] = savefig(
        plot_training_curves(out / "log.csv", keys=keys, smooth=5), out / "training_curves.png"
    )

    metrics = evaluate_run(run, samples=samples, seed=cfg.seed)
    metrics.update(_reference_nll(cfg, data))
    metrics["train_seconds"] = round(t_train, 2)
    metrics["config"] = cfg.to_dict()  # type: ignore[assignment]
    paths["metrics"] = out / "metrics.json"
    paths["metrics"].write_text(json.dumps(metrics, indent=2) + "\n")
    paths["checkpoint"] = Path(result["checkpoint"])
    paths["config"] = out / "config.json"
    paths["log"] = out / "log.csv"

    sampler_demo = _sampler_demo(out / "samplers", quick)
    if sampler_demo is not None:
        paths["samplers"] = out / "samplers"
    if verbose:
        print(
            f"\ntorchenergy demo: {cfg.loss} + {cfg.sampler} on {cfg.data}, {cfg.steps} steps in {t_train:.1f} s"
        )
        print(
            f"  held-out NLL {metrics['heldout_nll']:.3f} nats (Gaussian KDE: {metrics['kde_nll']:.3f}), MMD² {metrics['mmd2']:.4f}"
        )
        for name, p in paths.items():
            print(f"  {name:16s} {p}")
        print(f"  total time {time.perf_counter() - t0:.1f} s")
    return metrics


class _Snapshots(Callback):
    """Animation frames: the model density and samples. The samples are the replay buffer's chains
    for PCD, else 1000 persistent display chains (uniform noise at step 0) advanced by 100 steps
    of the run's sampler under the current energy at every frame."""

    def __init__(self, every: int, lims: dict[str, Any]) -> None:
        self.every = every
        self.lims = lims
        self.history: list[tuple[int, Any]] = []
        self.g = torch.Generator().manual_seed(12345)
        self.x: torch.Tensor | None = None

    def _frame(self, trainer: Any) -> Any:
        from torchenergy.samplers import run_chain
        from torchenergy.viz import snapshot_frame

        energy = trainer.model.energy
        buffer = trainer.state.get("buffer")
        if buffer is not None:
            x = buffer.data[:1000]
        else:
            cfg = TrainConfig.from_dict(trainer.config)
            if self.x is None:
                self.x = box_noise(cfg)(1000, (2,), generator=self.g)
            else:
                kernel = build_sampler(cfg, energy)
                self.x = run_chain(kernel, self.x, 100, generator=self.g, on_divergence="warn").x
            x = self.x
        return snapshot_frame(energy, x, n=80, **self.lims)

    def on_fit_start(self, trainer: Any) -> None:
        if trainer.step == 0:
            self.history.append((0, self._frame(trainer)))

    def on_step_end(self, trainer: Any, out: Any, logs: dict[str, float]) -> None:
        if trainer.step % self.every == 0:
            self.history.append((trainer.step, self._frame(trainer)))


def _two_axes() -> Any:
    from torchenergy.viz import new_axes

    return new_axes(2, size=4.2)


def _first_row(path: Path) -> dict[str, float]:
    from torchenergy.viz import read_log

    rows = read_log(path)
    return rows[0] if rows else {}


def _reference_nll(cfg: TrainConfig, data: torch.Tensor) -> dict[str, float]:
    """Reference: held-out NLL of a Gaussian KDE fitted to 5000 training points, its bandwidth
    picked on a validation set from a grid (the same data the model saw, no tuning on test)."""
    from torchenergy.data import sample_toy

    g = torch.Generator().manual_seed(cfg.seed + 99)
    train = sample_toy(cfg.data, 5000, generator=g).double()
    valid = sample_toy(cfg.data, 1000, generator=g).double()

    def nll(d2: torch.Tensor, h: float) -> float:
        log_k = -d2 / (2 * h * h) - math.log(2 * math.pi * h * h)
        return float(-(torch.logsumexp(log_k, 1) - math.log(len(train))).mean())

    d2_valid = torch.cdist(valid, train).pow(2)
    best = min((nll(d2_valid, h), h) for h in (0.05, 0.07, 0.1, 0.14, 0.2, 0.3))[1]
    return {"kde_nll": nll(torch.cdist(data.double(), train).pow(2), best), "kde_bandwidth": best}


def _sampler_demo(out: Path, quick: bool) -> Any:
    from torchenergy.cli.demos.samplers import run_sampler_demo

    return run_sampler_demo(out, quick=quick)
