"""Exact conversions at every time, including both ends, against the Gaussian closed forms."""

from __future__ import annotations

import pytest
import torch

from tests._diffusion_helpers import INTERPOLANTS, MU, SIGMA, interp, one_thread  # noqa: F401
from torchenergy.diffusion import (
    PREDICTIONS,
    CosineInterpolant,
    GaussianPath,
    ModelField,
    convert,
    get_interpolant,
    karras_grid,
    uniform_grid,
)

X = torch.randn(6, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def _unidentifiable(name: str, t: float, src: str) -> bool:
    return name == "vp" and t == 1.0 and src == "noise"


@pytest.mark.parametrize("name", INTERPOLANTS)
@pytest.mark.parametrize("t", [0.0, 0.37, 1.0])
def test_model_field_conversions_exact_and_finite(name: str, t: float) -> None:
    path = GaussianPath(MU, SIGMA, interp(name))
    tt = torch.full((6,), t, dtype=torch.float64)
    ref = {k: path.field(k)(X, tt) for k in PREDICTIONS}
    for src in PREDICTIONS:
        f = ModelField(path.field(src), path.interpolant, src)
        for tgt in PREDICTIONS:
            if _unidentifiable(name, t, src) and tgt in ("velocity", "score"):
                with pytest.raises(ValueError, match=r"not identifiable|needs the data score"):
                    getattr(f, tgt)(X, tt)
                continue
            out = getattr(f, tgt)(X, tt)
            assert torch.isfinite(out).all(), (name, t, src, tgt)
            torch.testing.assert_close(
                out, ref[tgt], atol=1e-9, rtol=1e-9, msg=f"{name} {t} {src}->{tgt}"
            )


@pytest.mark.parametrize("name", INTERPOLANTS)
def test_conversions_power_check(name: str) -> None:
    """A wrong field converts to a wrong answer: the comparison above has power."""
    path = GaussianPath(MU, SIGMA, interp(name))
    wrong = GaussianPath(MU, 1.5 * SIGMA, interp(name))
    tt = torch.full((6,), 0.5, dtype=torch.float64)
    f = ModelField(wrong.score, path.interpolant, "score")
    assert (f.velocity(X, tt) - path.velocity(X, tt)).abs().max() > 1e-2


def test_pointwise_convert_matches_field_and_refuses_limits() -> None:
    path = GaussianPath(MU, SIGMA, "linear")
    t = torch.full((6,), 0.4, dtype=torch.float64)
    v = convert(path.score(X, t), X, t, "linear", "score", "velocity")
    torch.testing.assert_close(v, path.velocity(X, t))
    # at the data end the velocity -> noise conversion is pointwise and exact (eps_hat = 0 there)
    one = torch.ones(6, dtype=torch.float64)
    torch.testing.assert_close(
        convert(path.velocity(X, one), X, one, "linear", "velocity", "noise"),
        torch.zeros_like(X),
        atol=1e-12,
        rtol=0,
    )
    with pytest.raises(ValueError, match="ModelField"):
        convert(path.noise(X, 0 * one), X, 0 * one, "linear", "noise", "velocity")
    with pytest.raises(ValueError, match="ModelField"):
        convert(path.data(X, one), X, one, "linear", "data", "score")
    with pytest.raises(ValueError, match="source"):
        convert(X, X, one, "linear", "energy", "score")


def test_cosine_endpoints_are_exact_zeros() -> None:
    """cos(pi/2) = 6e-17 is TorchEBM's 1.6e8 d_alpha/alpha; here sigma(1) and alpha'(1) are 0."""
    c = CosineInterpolant().coefficients(torch.tensor([0.0, 1.0], dtype=torch.float64))
    assert c.alpha[0] == 0 and c.sigma[1] == 0 and c.d_alpha[1] == 0 and c.d_sigma[0] == 0


@pytest.mark.parametrize("name", INTERPOLANTS)
def test_derivatives_match_autograd(name: str) -> None:
    it = interp(name)
    t = torch.linspace(0.05, 0.95, 7, dtype=torch.float64, requires_grad=True)
    c = it.coefficients(t)
    (da,) = torch.autograd.grad((c.alpha + 0 * t).sum(), t, retain_graph=True)
    (ds,) = torch.autograd.grad(c.sigma.sum(), t)
    torch.testing.assert_close(c.d_alpha, da)
    torch.testing.assert_close(c.d_sigma, ds)
    torch.testing.assert_close(c.sigma_d_sigma, c.sigma * c.d_sigma)


def test_grids() -> None:
    assert uniform_grid(4).tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    for name in INTERPOLANTS:
        g = karras_grid(12, interp(name))
        assert g.numel() == 13 and g[0] == 0 and g[-1] == 1 and bool((g[1:] > g[:-1]).all()), name
    with pytest.raises(ValueError, match="interpolant"):
        get_interpolant("sine")
