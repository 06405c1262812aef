"""The regression losses: their minimiser is the exact field; OT coupling; CFG; training."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from tests._diffusion_helpers import MU, SIGMA, WRONG_SIGMA, moments_ok, one_thread  # noqa: F401
from torchenergy.diffusion import (
    ClassifierFreeGuidance,
    FlowSampler,
    GaussianPath,
    TimeMLP,
    ddpm_loss,
    drop_labels,
    dsm_loss,
    fit_flow,
    flow_matching_loss,
    interpolant_loss,
    ot_pairing,
)

N = 20000


def _data(n: int, seed: int, cov=SIGMA) -> torch.Tensor:
    z = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return MU + z @ torch.linalg.cholesky(cov).T


def _directional_z(fit: GaussianPath, name: str, pred: str, weighting: str) -> float:
    """z-score of dL/dθ at θ = 0 for the model ``f_fit + θ h``.

    The direction h is the fixed function ``f_wrong − f_exact`` (fields of N(μ, 1.5Σ) and of the
    data law): at the exact field the expected gradient in any fixed direction is 0.
    """
    x = _data(N, 0)
    f = fit.field(pred)
    f_wrong = GaussianPath(MU, WRONG_SIGMA, name).field(pred)
    f_true = GaussianPath(MU, SIGMA, name).field(pred)

    def h(u, t):
        return f_wrong(u, t) - f_true(u, t)

    per = []
    for th in (1e-3, -1e-3):
        out = interpolant_loss(
            lambda u, t, th=th: f(u, t) + th * h(u, t),
            x,
            name,
            pred,
            weighting=weighting,
            generator=torch.Generator().manual_seed(1),
        )
        per.append(out.per_sample)
    g = (per[0] - per[1]) / 2e-3  # exact: the per-sample loss is quadratic in θ
    return (g.mean() / (g.std() / math.sqrt(N))).abs().item()


@pytest.mark.parametrize(
    ("name", "pred", "weighting"),
    [
        ("linear", "velocity", "none"),
        ("vp", "score", "sigma2"),
        ("vp", "score", "likelihood"),
        ("ve", "score", "sigma2"),
        ("vp", "noise", "none"),
        ("cosine", "data", "none"),
    ],
)
def test_loss_minimiser_is_the_exact_field(name: str, pred: str, weighting: str) -> None:
    """DSM / FM / DDPM: the gradient of the loss at the exact field is 0 within MCSE."""
    assert _directional_z(GaussianPath(MU, SIGMA, name), name, pred, weighting) < 4.0
    # power: at the field of a wrong law the gradient is clearly non-zero
    assert _directional_z(GaussianPath(MU, WRONG_SIGMA, name), name, pred, weighting) > 4.0


def test_ot_pairing_is_the_exact_assignment() -> None:
    g = torch.Generator().manual_seed(3)
    x, e = torch.randn(6, 2, generator=g), torch.randn(6, 2, generator=g)
    best = min(itertools.permutations(range(6)), key=lambda p: ((x - e[list(p)]) ** 2).sum().item())
    assert torch.equal(ot_pairing(x, e), e[list(best)])


def _curvature(model, n_steps: int = 32) -> float:
    fs = FlowSampler(model, "linear", integrator="euler", n_steps=n_steps)
    tr = fs.sample(
        n=512,
        dtype=torch.float32,
        generator=torch.Generator().manual_seed(4),
        return_trajectory=True,
    ).trajectory
    chord = tr[-1] - tr[0]
    step = (tr[1:] - tr[:-1]) * n_steps
    return ((step - chord) ** 2).sum(-1).mean().item()


@pytest.mark.slow  # trains two small flows (about 15 s on the shared 2-core machine)
def test_minibatch_ot_paths_straighter_than_independent() -> None:
    from torchenergy.data import sample_toy

    def data(n, g):
        return sample_toy("eight_gaussians", n, generator=g, dtype=torch.float32) / 2

    curv = {}
    for coupling in ("independent", "ot"):
        torch.manual_seed(0)
        net = TimeMLP(2, hidden=64, depth=2)
        res = fit_flow(
            net,
            data,
            coupling=coupling,
            n_steps=200,
            batch_size=128,
            lr=3e-3,
            ema_decay=0.9,
            generator=torch.Generator().manual_seed(5),
        )
        curv[coupling] = _curvature(res.ema)
    assert curv["ot"] < 0.5 * curv["independent"], curv


class _AffineInTime(torch.nn.Module):
    """v(x, t) = A(t) x + b(t): contains the exact Gaussian velocity field."""

    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(16, 64), torch.nn.SiLU(), torch.nn.Linear(64, 6)
        )

    def forward(self, x, t):
        k = torch.arange(1, 9, dtype=x.dtype)
        feats = torch.cat([torch.sin(k * t[:, None]), torch.cos(k * t[:, None])], 1)
        out = self.net(feats)
        return (out[:, :4].reshape(-1, 2, 2) @ x[:, :, None])[:, :, 0] + out[:, 4:]


def _fit_gaussian(cov) -> torch.nn.Module:
    torch.manual_seed(0)
    data = _data(20000, 6, cov).float()
    res = fit_flow(
        _AffineInTime(),
        data,
        n_steps=600,
        batch_size=256,
        lr=5e-3,
        ema_decay=0.98,
        generator=torch.Generator().manual_seed(7),
    )
    return res.ema.double()


@pytest.mark.slow  # trains two small flows (about 12 s on the shared 2-core machine)
def test_flow_matching_learns_gaussian() -> None:
    """Declared model tolerance 0.05 on every moment, on top of 4 MCSE; a fit to N(μ, 1.5Σ) fails it."""
    model = _fit_gaussian(SIGMA)
    fs = FlowSampler(model, "linear", integrator="rk4", n_steps=20)
    x = fs.sample(n=5000, dtype=torch.float64, generator=torch.Generator().manual_seed(8)).x
    assert moments_ok(x, MU, SIGMA, z=4.0, slack_mean=0.05, slack_cov=0.05)
    wrong = FlowSampler(_fit_gaussian(WRONG_SIGMA), "linear", integrator="rk4", n_steps=20)
    xw = wrong.sample(n=5000, dtype=torch.float64, generator=torch.Generator().manual_seed(8)).x
    assert not moments_ok(xw, MU, SIGMA, z=4.0, slack_mean=0.05, slack_cov=0.05)


def test_classifier_free_guidance_scales() -> None:
    torch.manual_seed(0)
    net = TimeMLP(2, hidden=16, depth=1, n_classes=3).double()
    x = torch.randn(5, 2, dtype=torch.float64)
    t = torch.rand(5, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 1, 0])
    null = torch.full_like(y, 3)
    cond, uncond = net(x, t, y), net(x, t, null)
    assert torch.equal(ClassifierFreeGuidance(net, 0.0, 3)(x, t, y), uncond)
    assert torch.equal(ClassifierFreeGuidance(net, 1.0, 3)(x, t, y), cond)
    torch.testing.assert_close(
        ClassifierFreeGuidance(net, 2.5, 3)(x, t, y), uncond + 2.5 * (cond - uncond)
    )
    # the guided model drives FlowSampler with labels
    fs = FlowSampler(ClassifierFreeGuidance(net, 2.0, 3), "linear", n_steps=4)
    assert fs.sample(n=5, y=y, dtype=torch.float64).x.shape == (5, 2)
    with pytest.raises(ValueError, match="guidance scale"):
        ClassifierFreeGuidance(net, -1.0, 3)


def test_drop_labels_rate() -> None:
    y = torch.zeros(40000, dtype=torch.long)
    d = drop_labels(y, 9, 0.1, generator=torch.Generator().manual_seed(0))
    rate = (d == 9).double().mean().item()
    assert abs(rate - 0.1) < 4 * math.sqrt(0.1 * 0.9 / 40000)
    assert torch.equal(drop_labels(y, 9, 0.0), y)


def test_loss_wrappers_and_errors() -> None:
    x = _data(64, 9)
    path = GaussianPath(MU, SIGMA, "vp")
    assert torch.isfinite(dsm_loss(path.score, x, weighting="likelihood").loss)
    assert torch.isfinite(ddpm_loss(path.noise, x).loss)
    assert torch.isfinite(
        flow_matching_loss(GaussianPath(MU, SIGMA, "linear").velocity, x, coupling="ot").loss
    )
    with pytest.raises(ValueError, match="weighting"):
        interpolant_loss(path.noise, x, "vp", "noise", weighting="sigma2")
    with pytest.raises(ValueError, match="coupling"):
        flow_matching_loss(path.velocity, x, coupling="sinkhorn")
    with pytest.raises(ValueError, match="shape"):
        interpolant_loss(lambda u, t: u[:, :1], x, "vp", "noise")
