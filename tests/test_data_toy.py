"""2-D toy densities and the digits loader: shapes, determinism, rough support."""

from __future__ import annotations

import math

import pytest
import torch

from torchenergy.data import TOY_DENSITIES, DigitsDataset, ToyDataset, load_digits, sample_toy

N = 4000


def _g(seed=0):
    return torch.Generator().manual_seed(seed)


def test_names_listed():
    assert set(TOY_DENSITIES) == {
        "two_moons",
        "eight_gaussians",
        "swiss_roll",
        "checkerboard",
        "pinwheel",
        "circles",
        "spirals",
        "grid",
    }


@pytest.mark.parametrize("name", TOY_DENSITIES)
def test_shape_dtype_determinism_and_box(name):
    a = sample_toy(name, N, generator=_g(1))
    b = sample_toy(name, N, generator=_g(1))
    c = sample_toy(name, N, generator=_g(2))
    assert a.shape == (N, 2) and a.dtype == torch.get_default_dtype()
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert bool(torch.isfinite(a).all())
    assert float(a.abs().max()) < 5.5  # everything lives roughly in [-4, 4]^2
    d = sample_toy(name, 10, generator=_g(1), dtype=torch.float64)
    assert d.dtype == torch.float64


def test_eight_gaussians_support():
    x = sample_toy("eight_gaussians", N, generator=_g(), dtype=torch.float64)
    r = x.norm(dim=1)
    assert abs(float(r.mean()) - 2 * math.sqrt(2)) < 0.1
    angle = torch.atan2(x[:, 1], x[:, 0])
    k = torch.round(angle / (math.pi / 4)) % 8
    counts = torch.bincount(k.long(), minlength=8).double()
    # multinomial(N, 1/8): each count within 4 sd (Bonferroni over 8 is covered by z = 4)
    sd = math.sqrt(N * (1 / 8) * (7 / 8))
    assert bool(((counts - N / 8).abs() <= 4 * sd).all())


def test_checkerboard_support():
    x = sample_toy("checkerboard", N, generator=_g(), dtype=torch.float64)
    assert bool((x.abs() <= 4).all())
    cell = torch.floor(x / 2).long()
    assert bool(((cell[:, 0] + cell[:, 1]) % 2 == 0).all())  # only half of the squares


def test_circles_and_grid_support():
    r = sample_toy("circles", N, generator=_g(), dtype=torch.float64).norm(dim=1)
    near = torch.minimum((r - 3.0).abs(), (r - 1.5).abs())
    assert float((near < 0.24 * 4).double().mean()) > 0.99
    g = sample_toy("grid", N, generator=_g(), dtype=torch.float64)
    off = (g / 1.5 - torch.round(g / 1.5)).abs() * 1.5
    assert float((off < 0.6).double().mean()) > 0.999


def test_two_moons_and_spirals_moments():
    m = sample_toy("two_moons", N, generator=_g(), dtype=torch.float64)
    assert float(m.mean(0).abs().max()) < 0.1  # centred
    s = sample_toy("spirals", N, generator=_g(), dtype=torch.float64)
    assert float(s.mean(0).abs().max()) < 0.15  # point-symmetric pair of spirals


def test_aliases_and_errors():
    a = sample_toy("moons", 5, generator=_g())
    b = sample_toy("Two-Moons", 5, generator=_g())
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match=r"unknown toy density .banana.*two_moons.*grid"):
        sample_toy("banana", 5)
    with pytest.raises(ValueError, match="n"):
        sample_toy("grid", 0)
    with pytest.raises(TypeError):
        sample_toy(3, 5)


def test_toy_dataset():
    ds = ToyDataset("pinwheel", 300, seed=4)
    assert len(ds) == 300 and ds[0].shape == (2,)
    assert torch.equal(ds.data, ToyDataset("pinwheel", 300, seed=4).data)
    loader = torch.utils.data.DataLoader(ds, batch_size=64)
    assert next(iter(loader)).shape == (64, 2)
    with pytest.raises(ValueError, match="choose one of"):
        ToyDataset("nope")


def test_digits():
    x, y = load_digits()
    assert x.shape == (1797, 1, 8, 8) and y.shape == (1797,)
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert set(y.tolist()) == set(range(10))
    xf, _ = load_digits(flatten=True, dtype=torch.float64)
    assert xf.shape == (1797, 64) and xf.dtype == torch.float64
    assert torch.equal(xf.reshape(-1, 1, 8, 8).float(), x.float())
    ds = DigitsDataset()
    img, label = ds[3]
    assert img.shape == (1, 8, 8) and int(label) == int(y[3])
