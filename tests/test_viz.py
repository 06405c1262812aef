"""Plots: the numbers behind them (normalised density, score field) and that every file is written."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from torchenergy.viz import (
    energy_grid,
    make_grid,
    plot_density,
    plot_energy,
    plot_image_grid,
    plot_samples,
    plot_score_field,
    plot_training_curves,
    save_training_animation,
    savefig,
    score_grid,
    snapshot_frame,
)


def ring_energy(x: torch.Tensor) -> torch.Tensor:
    """Mixture of 8 Gaussians (σ = 0.3) on a circle of radius 2: E = −log Σ_k N(x; μ_k, σ²I)."""
    angles = torch.arange(8, dtype=x.dtype) * (2 * math.pi / 8)
    mu = 2.0 * torch.stack([angles.cos(), angles.sin()], 1)
    d2 = ((x[:, None, :] - mu) ** 2).sum(-1)
    return -torch.logsumexp(-d2 / (2 * 0.3**2), dim=1)


def ring_samples(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    k = torch.randint(8, (n,), generator=g).double() * (2 * math.pi / 8)
    return 2.0 * torch.stack([k.cos(), k.sin()], 1) + 0.3 * torch.randn(
        n, 2, generator=g, dtype=torch.float64
    )


def test_density_grid_is_normalised_and_matches_a_gaussian():
    g = energy_grid(lambda x: 0.5 * (x**2).sum(-1), (-6, 6), (-6, 6), n=241)
    assert abs(np.exp(g.log_density).sum() * g.cell_area - 1.0) < 1e-12
    # the quadrature log Z recovers the Gaussian normaliser log(2π) to high accuracy
    centre = g.log_density[120, 120]
    assert abs(centre - (-math.log(2 * math.pi))) < 1e-6


def test_score_grid_is_minus_the_gradient():
    xs, ys, u, v = score_grid(lambda x: 0.5 * (x**2).sum(-1), (-2, 2), (-1, 1), n=5)
    xx, yy = np.meshgrid(xs, ys)
    np.testing.assert_allclose(u, -xx, atol=1e-6)
    np.testing.assert_allclose(v, -yy, atol=1e-6)


def test_make_grid_layout_and_validation():
    imgs = torch.arange(6.0).reshape(6, 1, 1, 1).expand(6, 1, 2, 3)
    tile = make_grid(imgs, nrow=3, pad=1)
    assert tile.shape == (2 * 3 + 1, 3 * 4 + 1)
    assert tile[1, 1] == 0.0 and tile[1 + 3, 1 + 2 * 4] == 1.0  # first and last image, min/max
    assert make_grid(torch.rand(4, 3, 5, 5)).shape == (13, 13, 3)
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        make_grid(torch.rand(4, 2, 5, 5))


def _check_png(path, min_colours=20):
    img = np.asarray(Image.open(path).convert("RGB"))
    assert img.shape[0] > 100 and img.shape[1] > 100
    assert len(np.unique(img.reshape(-1, 3), axis=0)) >= min_colours  # not blank


def test_every_plot_writes_a_non_blank_png(tmp_path):
    data = ring_samples(800)
    paths = [
        savefig(plot_energy(ring_energy, n=60), tmp_path / "energy.png"),
        savefig(plot_density(ring_energy, n=60), tmp_path / "density.png"),
        savefig(plot_samples(ring_samples(300, 1), data), tmp_path / "samples.png"),
        savefig(plot_score_field(ring_energy, n=15), tmp_path / "score.png"),
        savefig(plot_score_field(ring_energy, n=15, kind="stream"), tmp_path / "stream.png"),
        savefig(plot_image_grid(torch.rand(16, 8, 8)), tmp_path / "grid.png"),
        savefig(
            plot_training_curves(
                [{"step": s, "loss": 1 / s, "e": math.sin(s)} for s in range(1, 60)], smooth=5
            ),
            tmp_path / "curves.png",
        ),
    ]
    for p in paths:
        _check_png(p)


def test_training_animation_gif(tmp_path):
    data = ring_samples(400)
    frames = []
    for i, scale in enumerate([8.0, 3.0, 1.0]):
        fn = lambda x, s=scale: ring_energy(x) / s  # noqa: E731  (a sharpening "training")
        frames.append((10 * i, snapshot_frame(fn, ring_samples(200, i) * (1 + 0.5 * scale), n=40)))
    path = save_training_animation(frames, tmp_path / "train.gif", data=data, fps=4)
    gif = Image.open(path)
    assert gif.format == "GIF" and gif.n_frames == 3
    with pytest.raises(ValueError, match="no frames"):
        save_training_animation([], tmp_path / "x.gif")


def test_bad_arguments():
    with pytest.raises(ValueError, match="low < high"):
        energy_grid(ring_energy, (1, -1))
    with pytest.raises(ValueError, match="kind"):
        plot_score_field(ring_energy, kind="arrows")
    with pytest.raises(ValueError, match=r"shape \(C, 2\)"):
        plot_samples(torch.zeros(5, 3))
    with pytest.raises(ValueError, match="not in the log"):
        plot_training_curves([{"step": 1, "loss": 1.0}], keys=["nll"])
