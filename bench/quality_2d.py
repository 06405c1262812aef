"""Quality of the training losses on 2-D densities: held-out NLL (exact, grid log Z) and MMD.

Every method trains an MLPEnergy 2-128-128-1 (SiLU, same initial seed; NCE and denoising SM put
random Fourier features in front of it, ``Config.method_net``, picked on validation data)
with the same optimiser (Adam, lr 1e-3 with a cosine decay over the budget), batch size and
*budget* (seconds of CPU time of this process, single-threaded: a wall-clock budget measured
with ``time.process_time`` so that other load on a shared machine does not eat it). After the
budget the energy is normalised on a grid over [-6, 6]^2 (300 x 300 cells): the held-out NLL is
the exact negative log-likelihood in nats of the model density restricted to that box (every
data point lies inside it; the mass on the boundary ring is reported). MMD^2 (unbiased, RBF,
median bandwidth) compares 2,000 exact draws from that normalised model with 2,000 test points.

Baselines: a Gaussian KDE (scikit-learn) whose bandwidth maximises the validation likelihood,
and TorchEBM's ``ContrastiveDivergence(persistent=True)`` with the same network, Langevin step
size, chain steps, energy regulariser, optimiser and budget (when ``torchebm`` imports).

Usage:
    PYTHONPATH=. python bench/quality_2d.py --budget 30 --densities two_moons eight_gaussians
    PYTHONPATH=. python bench/quality_2d.py --budget 20 --jobs 2 --seeds 0 1 2 \
        --out table.md --json bench/results/quality_2d_seeds.json --plot densities.png
    # choosing settings: the same on validation data, e.g.
    PYTHONPATH=. python bench/quality_2d.py --budget 20 --methods nce --set eval_split=val \
        'method_net={"nce": {"fourier_features": 64, "fourier_scale": 0.25}}'

Each (density, method) run is independent; ``--jobs`` runs densities in parallel processes.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import ClassVar

import numpy as np
import torch

from torchenergy.data import sample_toy
from torchenergy.energies import MLPEnergy
from torchenergy.losses import (
    DataNegatives,
    PersistentNegatives,
    contrastive_divergence,
    denoising_score_matching,
    equilibrium_matching,
    noise_contrastive_estimation,
    sliced_score_matching,
)
from torchenergy.metrics import grid_log_partition, mmd2
from torchenergy.samplers import GradientDescent, Langevin, ReplayBuffer

__all__ = ["Config", "main", "run_method"]

METHODS = ("pcd", "cd_k", "sliced_sm", "denoising_sm", "nce", "eqm", "torchebm_pcd")
DENSITIES = ("two_moons", "eight_gaussians", "checkerboard", "pinwheel")
BOX = 6.0
RESOLUTION = 300


@dataclass
class Config:
    """Hyperparameters shared by every method (one set for all densities)."""

    budget: float = 30.0  # CPU seconds per method
    hidden: tuple[int, ...] = (128, 128)
    lr: float = 1e-3
    pcd_lr: float = 3e-3  # Adam lr of our PCD (picked on validation; TorchEBM's PCD keeps lr)
    batch: int = 256
    n_train: int = 10_000
    n_val: int = 2_000
    n_test: int = 5_000
    langevin_step: float = 0.01  # eps in x' = x - eps grad E + sqrt(2 eps) z
    chain_steps: int = 5  # k for PCD / CD-k / TorchEBM
    buffer_size: int = 1_000
    l2_reg: float = 0.01
    noise_box: float = 4.5  # PCD restarts: uniform on [-b, b]^2 when pcd_restart == "uniform"
    pcd_restart: str = "data"  # our PCD restarts a chain from a training point ("data") or noise
    dsm_sigma: float = 0.1
    nce_scale: float = 1.5  # NCE noise: Gaussian fit to the data, std inflated by this
    # "gauss" (above), "gauss_box" (that + nce_broad uniform on the evaluated box),
    # "gmm" (mixture fitted to train + nce_broad broad Gaussian) or "box" (uniform on the data's box)
    nce_noise: str = "gauss_box"
    nce_components: int = 16  # GMM components; 0: pick K in {4, 8, 16, 32, 64} on validation
    nce_broad: float = 0.05  # weight of the broad component in gmm / box / gauss_box noise
    nce_ratio: int = 1  # noise samples per data point
    ssm_projections: int = 1
    # per-method overrides, e.g. method_lr={"nce": 0.003},
    # method_net={"nce": {"hidden": [128, 128], "fourier_features": 64, "fourier_scale": 0.3}}
    method_lr: dict = field(default_factory=dict)
    method_net: dict = field(
        default_factory=lambda: {
            # picked on validation data (bench/results/quality_2d.md): Fourier features help the
            # methods trained on points off the data (NCE's noise, DSM's perturbed points);
            # sliced SM, CD-k (and our PCD, kept equal to TorchEBM's network) do better without
            "nce": {"fourier_features": 128, "fourier_scale": 0.25},
            "denoising_sm": {"fourier_features": 64, "fourier_scale": 0.125},
        }
    )
    method_batch: dict = field(default_factory=dict)
    eval_split: str = "test"  # "val" for choosing settings (never "test" while tuning)
    eqm_step: float = 0.002  # gradient-descent step for EqM samples
    eqm_steps: int = 250
    seed: int = 0


def _lr_at(cfg: Config, frac: float, method: str = "") -> float:
    lr = cfg.pcd_lr if method == "pcd" else cfg.lr
    lr = cfg.method_lr.get(method, lr)
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))


def _uniform_box(half: float):
    def noise(n: int, *, generator=None):
        return (2 * torch.rand(n, 2, generator=generator) - 1) * half

    return noise


def _data_restart(train: torch.Tensor):
    """Restart a persistent chain at a random training point (Tieleman 2008 starts PCD at data)."""

    def noise(n: int, *, generator=None):
        return train[torch.randint(train.shape[0], (n,), generator=generator)]

    return noise


def _make_net(cfg: Config, method: str = "") -> MLPEnergy:
    torch.manual_seed(cfg.seed)  # the same initial weights for every method (script, not library)
    kw = {"hidden": list(cfg.hidden), "activation": "silu"}
    kw.update(cfg.method_net.get(method, {}))
    hidden = kw.pop("hidden")
    return MLPEnergy(2, tuple(hidden), **kw)


def _broad_gaussian(train: torch.Tensor, scale: float):
    mean = train.mean(0)
    cov = torch.cov(train.T) * scale**2
    return mean, cov


def _gmm_noise(train: torch.Tensor, val: torch.Tensor, cfg: Config):
    """A Gaussian mixture fitted to the training data, plus a broad component for coverage.

    K = cfg.nce_components, or (0) the K in {4, ..., 64} whose mixture has the best validation
    log-likelihood. Returns the distribution and the K used.
    """
    from sklearn.mixture import GaussianMixture

    ks = [cfg.nce_components] if cfg.nce_components > 0 else [4, 8, 16, 32, 64]
    best = None
    for k in ks:
        gm = GaussianMixture(k, covariance_type="full", random_state=0, reg_covar=1e-4)
        gm.fit(train.double().numpy())
        score = gm.score(val.double().numpy()) if len(ks) > 1 else 0.0
        if best is None or score > best[0]:
            best = (score, k, gm)
    _, k, gm = best
    means = torch.as_tensor(gm.means_, dtype=torch.float32)
    covs = torch.as_tensor(gm.covariances_, dtype=torch.float32)
    w = torch.as_tensor(gm.weights_, dtype=torch.float32) * (1 - cfg.nce_broad)
    bm, bc = _broad_gaussian(train, 2.0)
    means = torch.cat([means, bm[None].float()])
    covs = torch.cat([covs, bc[None].float()])
    w = torch.cat([w, torch.tensor([cfg.nce_broad])])
    dist = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(probs=w),
        torch.distributions.MultivariateNormal(means, covariance_matrix=covs),
    )
    return dist, k


class _UniformPlusGaussian(torch.distributions.Distribution):
    """Mixture (1 - w) Uniform([lo, hi]) + w N(mean, cov) of 2-D points (a user-made noise)."""

    arg_constraints: ClassVar[dict] = {}
    support = torch.distributions.constraints.real_vector

    def __init__(self, lo, hi, mean, cov, w: float):
        self.lo, self.hi, self.w = lo.float(), hi.float(), float(w)
        self.gauss = torch.distributions.MultivariateNormal(mean.float(), cov.float())
        super().__init__(event_shape=torch.Size([lo.shape[0]]), validate_args=False)

    @property
    def mean(self):
        return (1 - self.w) * (self.lo + self.hi) / 2 + self.w * self.gauss.mean

    def sample(self, sample_shape=()):
        n = int(torch.Size(sample_shape).numel())
        u = self.lo + (self.hi - self.lo) * torch.rand(n, self.lo.shape[0])
        pick = torch.rand(n) < self.w
        out = torch.where(pick[:, None], self.gauss.sample((n,)), u)
        return out.reshape(*sample_shape, -1)

    def log_prob(self, x):
        inside = ((x >= self.lo) & (x <= self.hi)).all(-1)
        log_box = torch.where(
            inside, -torch.log(self.hi - self.lo).sum(), torch.tensor(-float("inf"))
        )
        return torch.logaddexp(
            math.log1p(-self.w) + log_box, math.log(self.w) + self.gauss.log_prob(x)
        )


def _box_noise(train: torch.Tensor, w: float) -> _UniformPlusGaussian:
    """(1 - w) Uniform(bounding box of the data, 5% margin) + w N(data mean, (2 x data std)^2)."""
    lo, hi = train.min(0).values, train.max(0).values
    pad = 0.05 * (hi - lo)
    mean, cov = _broad_gaussian(train, 2.0)
    return _UniformPlusGaussian(lo - pad, hi + pad, mean, cov, w)


def _gauss_box_noise(train: torch.Tensor, scale: float, w: float) -> _UniformPlusGaussian:
    """(1 - w) N(data mean, (scale x data std)^2) + w Uniform([-6, 6]^2), the evaluated box."""
    mean, cov = _broad_gaussian(train, scale)
    lo = torch.full((train.shape[1],), -BOX)
    return _UniformPlusGaussian(lo, -lo, mean, cov, 1 - w)


def _torchebm_step(net: MLPEnergy, cfg: Config, g: torch.Generator):
    """TorchEBM's persistent CD around a copy-free wrapper of the same network."""
    from torchebm.core import BaseModel
    from torchebm.losses import ContrastiveDivergence
    from torchebm.samplers import LangevinDynamics

    class Wrapped(BaseModel):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x)

    model = Wrapped(net)
    sampler = LangevinDynamics(model=model, step_size=cfg.langevin_step, noise_scale=1.0)
    loss_fn = ContrastiveDivergence(
        model=model,
        sampler=sampler,
        k_steps=cfg.chain_steps,
        persistent=True,
        buffer_size=cfg.buffer_size,
        new_sample_ratio=0.05,
        energy_reg_weight=cfg.l2_reg,
    )

    def step(x):
        loss, _ = loss_fn(x, generator=g)
        return loss

    return step, []


def _method_step(
    method: str,
    net: MLPEnergy,
    cfg: Config,
    train: torch.Tensor,
    g: torch.Generator,
    val: torch.Tensor | None = None,
):
    """A function batch -> loss, and the extra parameters to optimise."""
    if method in ("pcd", "cd_k"):
        sampler = Langevin(net, step_size=cfg.langevin_step)
        if method == "pcd":
            if cfg.pcd_restart == "data":
                noise = _data_restart(train)
            elif cfg.pcd_restart == "uniform":
                noise = _uniform_box(cfg.noise_box)
            else:
                raise ValueError(
                    f"pcd_restart must be 'data' or 'uniform', got {cfg.pcd_restart!r}"
                )
            buf = ReplayBuffer(
                cfg.buffer_size,
                (2,),
                noise=noise,
                reinit_prob=0.05,
                generator=g,
            )
            make = PersistentNegatives(sampler, buf, n_steps=cfg.chain_steps)
        else:
            make = DataNegatives(sampler, n_steps=cfg.chain_steps)
        return (
            lambda x: contrastive_divergence(net, x, make(x, generator=g), l2_reg=cfg.l2_reg).loss
        ), []
    if method == "sliced_sm":
        n_proj = cfg.ssm_projections
        return (lambda x: sliced_score_matching(net, x, n_projections=n_proj, generator=g).loss), []
    if method == "denoising_sm":
        return (
            lambda x: denoising_score_matching(net, x, sigma=cfg.dsm_sigma, generator=g).loss
        ), []
    if method == "nce":
        if cfg.nce_noise == "gauss":
            mean, cov = _broad_gaussian(train, cfg.nce_scale)
            noise = torch.distributions.MultivariateNormal(mean, covariance_matrix=cov)
        elif cfg.nce_noise == "gmm":
            noise, _ = _gmm_noise(train, train if val is None else val, cfg)
        elif cfg.nce_noise == "box":
            noise = _box_noise(train, cfg.nce_broad)
        elif cfg.nce_noise == "gauss_box":
            noise = _gauss_box_noise(train, cfg.nce_scale, cfg.nce_broad)
        else:
            raise ValueError(
                f"nce_noise must be gauss, gauss_box, gmm or box, got {cfg.nce_noise!r}"
            )
        log_z = torch.nn.Parameter(torch.zeros(()))

        def nce_loss(x):
            n = x.shape[0] * cfg.nce_ratio
            return noise_contrastive_estimation(
                net, x, noise, log_z=log_z, n_noise=n, generator=g
            ).loss

        return nce_loss, [log_z]
    if method == "eqm":
        return (lambda x: equilibrium_matching(net, x, generator=g).loss), []
    if method == "torchebm_pcd":
        return _torchebm_step(net, cfg, g)
    raise ValueError(f"unknown method {method!r}; choose from {METHODS}")


def _grid_samples(logp: torch.Tensor, axes, n: int, g: torch.Generator) -> torch.Tensor:
    """Exact draws from the grid-normalised density: a cell, then uniform inside it."""
    probs = logp.reshape(-1).exp()
    probs = probs / probs.sum()
    idx = torch.multinomial(probs, n, replacement=True, generator=g)
    res = logp.shape[0]
    i, j = idx // res, idx % res
    h = float(axes[0][1] - axes[0][0])
    jitter = (torch.rand(n, 2, generator=g, dtype=torch.float64) - 0.5) * h
    return torch.stack([axes[0][i], axes[1][j]], -1) + jitter


def evaluate_energy(net, test: torch.Tensor, g: torch.Generator) -> dict:
    """Exact held-out NLL on the box and MMD^2 of exact model draws against the test set."""
    with torch.no_grad():
        grid = grid_log_partition(
            net, bounds=BOX, resolution=RESOLUTION, max_edge_mass=1.0, dtype=torch.float32
        )
        e = net(test).double()
    if not (torch.isfinite(grid.log_z) and torch.isfinite(e).all()):
        return {"nll": float("inf"), "mmd2": float("nan"), "edge_mass": float("nan")}
    nll = float(e.mean() + grid.log_z)
    samples = _grid_samples(grid.log_density + 0.0, grid.axes, 2000, g).float()
    m = float(mmd2(samples, test[:2000]))
    dens = grid.log_density.exp().float()
    dens = torch.nn.functional.avg_pool2d(dens[None, None], 2)[0, 0]  # 150^2 for the figure
    return {"nll": nll, "mmd2": m, "edge_mass": float(grid.edge_mass), "_density": dens.numpy()}


def run_method(method: str, density: str, cfg: Config, data: dict) -> dict:
    """Train one method for ``cfg.budget`` CPU seconds and evaluate it."""
    g = torch.Generator().manual_seed(cfg.seed + 1)
    net = _make_net(cfg, method)
    train = data["train"]
    batch = cfg.method_batch.get(method, cfg.batch)
    # the clock starts before the set-up, so fitting a noise distribution counts in the budget
    t0, w0 = time.process_time(), time.perf_counter()
    try:
        step, extra = _method_step(method, net, cfg, train, g, data["val"])
    except ImportError as err:
        return {"method": method, "error": f"cannot import: {err}"}
    opt = torch.optim.Adam([*net.parameters(), *extra], lr=_lr_at(cfg, 0.0, method))
    iters, last_loss, error = 0, float("nan"), None
    try:
        while (used := time.process_time() - t0) < cfg.budget:
            for group in opt.param_groups:
                group["lr"] = _lr_at(cfg, used / cfg.budget, method)
            idx = torch.randint(train.shape[0], (batch,), generator=g)
            loss = step(train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            iters += 1
            if iters % 50 == 0:
                last_loss = float(loss.detach())
    except Exception as err:  # report the failure in the table, keep the other runs going
        error = f"{type(err).__name__}: {str(err).splitlines()[0][:160]}"
        traceback.print_exc()
    cpu, wall = time.process_time() - t0, time.perf_counter() - w0
    out = {"method": method, "iters": iters, "cpu_s": round(cpu, 1), "wall_s": round(wall, 1)}
    out["final_loss"] = last_loss
    if error is not None:
        out["error"] = error
    net.eval()
    held_out = data[cfg.eval_split]
    out.update(evaluate_energy(net, held_out, torch.Generator().manual_seed(cfg.seed + 2)))
    if method == "eqm":
        # EqM samples by descending the energy from the N(0, I) noise of its interpolant
        g2 = torch.Generator().manual_seed(cfg.seed + 3)
        x0 = torch.randn(2000, 2, generator=g2)
        try:
            xs = GradientDescent(net, cfg.eqm_step).sample(x0, cfg.eqm_steps)
            out["mmd2_sampler"] = float(mmd2(xs, held_out[:2000]))
        except Exception as err:
            out["note"] = f"descent failed: {type(err).__name__}"
    return out


def run_kde(data: dict, seed: int, split: str = "test", with_density: bool = False) -> dict:
    """Gaussian KDE with the bandwidth that maximises the validation log-likelihood."""
    from sklearn.neighbors import KernelDensity

    tr, va, te = (data[k].double().numpy() for k in ("train", "val", "test"))
    best = None
    for h in np.geomspace(0.02, 1.0, 30):
        kde = KernelDensity(bandwidth=float(h)).fit(tr)
        score = kde.score_samples(va).mean()
        if best is None or score > best[0]:
            best = (score, float(h), kde)
    _, h, kde = best
    held = va if split == "val" else te
    nll = float(-kde.score_samples(held).mean())
    samples = torch.from_numpy(kde.sample(2000, random_state=seed)).float()
    m = float(mmd2(samples, data[split][:2000]))
    out = {"method": "kde", "bandwidth": round(h, 4), "nll": nll, "mmd2": m}
    if with_density:  # cell averages on the 150^2 figure grid (centres of 2x2 blocks of 300^2)
        c = np.linspace(-BOX, BOX, RESOLUTION // 2 + 1)
        c = (c[1:] + c[:-1]) / 2
        xx, yy = np.meshgrid(c, c, indexing="ij")
        pts = np.stack([xx.ravel(), yy.ravel()], -1)
        out["_density"] = np.exp(kde.score_samples(pts)).reshape(xx.shape).astype(np.float32)
    return out


def run_density(density: str, cfg: Config, methods, with_kde: bool = True) -> dict:
    torch.set_num_threads(1)
    data = {
        "train": sample_toy(density, cfg.n_train, generator=torch.Generator().manual_seed(100)),
        "val": sample_toy(density, cfg.n_val, generator=torch.Generator().manual_seed(101)),
        "test": sample_toy(density, cfg.n_test, generator=torch.Generator().manual_seed(102)),
    }
    rows = []
    if with_kde:
        rows.append(run_kde(data, cfg.seed, cfg.eval_split, with_density=cfg.seed == 0))
        print(f"[{density}] kde: {_public(rows[-1])}", flush=True)
    for method in methods:
        rows.append(run_method(method, density, copy.deepcopy(cfg), data))
        print(f"[{density}] {method}: {_public(rows[-1])}", flush=True)
    return {"density": density, "seed": cfg.seed, "rows": rows, "_data": data[cfg.eval_split]}


def _public(row: dict) -> dict:
    """A result row without the private (non-JSON) entries."""
    return {k: v for k, v in row.items() if not k.startswith("_")}


def _fmt(v, spec=".3f"):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    return format(v, spec)


def render(results: list[dict], cfg: Config, elapsed: float, previous=None, rerun=()) -> str:
    lines = [
        "# Quality on 2-D densities",
        "",
        f"Budget: {cfg.budget:g} CPU seconds per method (single thread), Adam lr {cfg.lr:g} "
        f"(cosine to 10%), batch {cfg.batch}, MLPEnergy 2-{'-'.join(map(str, cfg.hidden))}-1 SiLU, "
        f"same initial weights. Langevin eps {cfg.langevin_step:g}, k = {cfg.chain_steps}, "
        f"buffer {cfg.buffer_size} (5% restarts; ours from {cfg.pcd_restart}), our PCD lr "
        f"{cfg.pcd_lr:g}, l2 {cfg.l2_reg:g}, DSM sigma {cfg.dsm_sigma:g}, "
        f"NCE noise: data Gaussian x{cfg.nce_scale:g}. Train/val/test {cfg.n_train}/{cfg.n_val}/"
        f"{cfg.n_test}. NLL in nats on the box [-{BOX:g}, {BOX:g}]^2 (grid {RESOLUTION}^2); "
        "MMD^2 x 1e3 of 2,000 exact model draws vs test. Total run time "
        f"{elapsed / 60:.1f} min.",
        "",
    ]
    for res in results:
        rows = res["rows"]
        kde = next((r for r in rows if r["method"] == "kde"), {"nll": float("nan")})
        ours = [r for r in rows if r["method"] not in ("kde", "torchebm_pcd") and "nll" in r]
        best = min(ours, key=lambda r: r["nll"]) if ours else None
        lines += [
            f"## {res['density']}",
            "",
            "| method | held-out NLL | NLL − KDE | MMD² ×1e3 | iters | CPU s | edge mass | note |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            nll = r.get("nll")
            diff = None if nll is None else nll - kde["nll"]
            note = r.get("error", "")
            if r["method"] == "kde":
                note = f"bandwidth {r['bandwidth']}"
            if "mmd2_sampler" in r:
                note = f"MMD² ×1e3 of descent samples: {1e3 * r['mmd2_sampler']:.2f}"
            note = (note + " " + r.get("note", "")).strip()
            mmd = r.get("mmd2")
            lines.append(
                f"| {r['method']} | {_fmt(nll)} | {_fmt(diff, '+.3f')} | "
                f"{_fmt(None if mmd is None else 1e3 * mmd, '.2f')} | {r.get('iters', '-')} | "
                f"{r.get('cpu_s', '-')} | {_fmt(r.get('edge_mass'), '.1e')} | {note} |"
            )
        tebm = next((r for r in rows if r["method"] == "torchebm_pcd"), None)
        pcd = next((r for r in rows if r["method"] == "pcd"), None)
        verdict = []
        if best is not None:
            gap = best["nll"] - kde["nll"]
            verdict.append(
                f"best of ours: {best['method']} ({gap:+.3f} nats vs KDE: "
                f"{'within 0.1' if gap <= 0.1 else 'NOT within 0.1'})"
            )
        if tebm is not None and pcd is not None and "nll" in tebm and "nll" in pcd:
            verdict.append(
                f"PCD {'beats' if pcd['nll'] < tebm['nll'] else 'does NOT beat'} TorchEBM PCD "
                f"({pcd['nll']:.3f} vs {tebm['nll']:.3f})"
            )
        lines += ["", "; ".join(verdict), ""]
    if previous is not None:
        pc = previous["config"]
        lines += [
            "## Earlier run of the re-run methods",
            "",
            f"Same set-up except: {', '.join(f'{k}={v}' for k, v in pc.items() if getattr(cfg, k, v) != v and not isinstance(v, list))}.",
            "",
            "| density | method | held-out NLL | MMD² ×1e3 | iters |",
            "|---|---|---|---|---|",
        ]
        for res in previous["results"]:
            for r in res["rows"]:
                if r["method"] in rerun:
                    lines.append(
                        f"| {res['density']} | {r['method']} | {_fmt(r.get('nll'))} | "
                        f"{_fmt(1e3 * r['mmd2'] if r.get('mmd2') is not None else None, '.2f')} | "
                        f"{r.get('iters', '-')} |"
                    )
        lines.append("")
    return "\n".join(lines)


def _strip(results: list[dict]) -> list[dict]:
    return [
        {
            **{k: v for k, v in res.items() if not k.startswith("_")},
            "rows": [_public(r) for r in res["rows"]],
        }
        for res in results
    ]


def _stats(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def render_seeds(results: list[dict], cfg: Config, elapsed: float, seeds) -> str:
    """One table per density: mean ± sd (over seeds) of the held-out NLL and MMD^2 of each method."""
    split = cfg.eval_split
    lines = [
        f"Seeds {', '.join(map(str, seeds))}; held-out split: {split}; budget {cfg.budget:g} CPU s "
        f"per method; total run time {elapsed / 60:.1f} min.",
        "",
        "Settings: "
        + ", ".join(
            f"{k}={v}" for k, v in asdict(cfg).items() if k not in ("budget", "seed", "eval_split")
        )
        + ".",
        "",
    ]
    densities = list(dict.fromkeys(r["density"] for r in results))
    summary = []
    for d in densities:
        per = [r for r in results if r["density"] == d]
        methods = list(dict.fromkeys(row["method"] for r in per for row in r["rows"]))
        table = {}
        for m in methods:
            rows = [row for r in per for row in r["rows"] if row["method"] == m]
            table[m] = rows
        kde_nll = _stats([r["nll"] for r in table["kde"]])[0] if "kde" in table else float("nan")
        lines += [
            f"### {d}",
            "",
            f"| method | {split} NLL (mean ± sd) | − KDE | per seed | MMD² ×1e3 (mean, range) | "
            "updates | note |",
            "|---|---|---|---|---|---|---|",
        ]
        means = {}
        for m, rows in table.items():
            nlls = [r.get("nll", float("nan")) for r in rows]
            mu, sd = _stats(nlls)
            means[m] = mu
            mm = [1e3 * r["mmd2"] for r in rows if r.get("mmd2") is not None]
            mm_s = f"{np.mean(mm):.2f} ({min(mm):.2f}–{max(mm):.2f})" if mm else "-"
            iters = [r["iters"] for r in rows if "iters" in r]
            note = "; ".join(sorted({r["error"] for r in rows if "error" in r}))
            if m == "kde":
                note = f"bandwidth {rows[0]['bandwidth']}"
            if any("mmd2_sampler" in r for r in rows):
                ms = [1e3 * r["mmd2_sampler"] for r in rows if "mmd2_sampler" in r]
                note = f"MMD² ×1e3 of descent samples {np.mean(ms):.2f}"
            lines.append(
                f"| {m} | {_fmt(mu)} ± {_fmt(sd)} | {_fmt(mu - kde_nll, '+.3f')} | "
                f"{' / '.join(_fmt(v) for v in nlls)} | {mm_s} | "
                f"{int(np.mean(iters)) if iters else '-'} | {note} |"
            )
        ours = {m: v for m, v in means.items() if m not in ("kde", "torchebm_pcd")}
        verdict = []
        if ours:
            best = min(ours, key=ours.get)
            gap = ours[best] - kde_nll
            verdict.append(
                f"best of ours: {best} ({gap:+.3f} nats vs KDE: "
                f"{'within 0.1' if gap <= 0.1 else 'NOT within 0.1'})"
            )
            summary.append((d, best, gap))
        if "pcd" in table and "torchebm_pcd" in table:
            wins = sum(
                a["nll"] < b["nll"]
                for a, b in zip(table["pcd"], table["torchebm_pcd"], strict=True)
            )
            verdict.append(
                f"our PCD vs TorchEBM PCD: {means['pcd']:.3f} vs {means['torchebm_pcd']:.3f} "
                f"(ours lower on {wins}/{len(table['pcd'])} seeds)"
            )
        lines += ["", "; ".join(verdict), ""]
    return "\n".join(lines)


def plot_densities(results: list[dict], path: str) -> None:
    """Heat maps of each method's grid-normalised density (rows: densities), data on the left."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(row["method"] for r in results for row in r["rows"]))
    fig, axes = plt.subplots(
        len(results), len(methods) + 1, figsize=(1.9 * (len(methods) + 1), 1.9 * len(results))
    )
    axes = np.atleast_2d(axes)
    ext = (-BOX, BOX, -BOX, BOX)
    for i, res in enumerate(results):
        x = res["_data"].numpy()
        ax = axes[i, 0]
        ax.hist2d(x[:, 0], x[:, 1], bins=150, range=[[-BOX, BOX], [-BOX, BOX]], cmap="viridis")
        ax.set_ylabel(res["density"], fontsize=8)
        if i == 0:
            ax.set_title("held-out data", fontsize=8)
        by = {row["method"]: row for row in res["rows"]}
        vmax = None
        if "kde" in by and "_density" in by["kde"]:
            vmax = float(np.quantile(by["kde"]["_density"], 0.999))
        for j, m in enumerate(methods):
            ax = axes[i, j + 1]
            row = by.get(m, {})
            if "_density" in row:
                ax.imshow(
                    row["_density"].T,
                    origin="lower",
                    extent=ext,
                    cmap="viridis",
                    vmin=0,
                    vmax=vmax,
                )
            if i == 0:
                ax.set_title(m, fontsize=8)
            if "nll" in row:
                ax.text(
                    0.03,
                    0.03,
                    f"{row['nll']:.3f}",
                    color="w",
                    fontsize=7,
                    transform=ax.transAxes,
                )
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=float, default=Config.budget)
    p.add_argument("--densities", nargs="+", default=list(DENSITIES))
    p.add_argument("--methods", nargs="+", default=list(METHODS))
    p.add_argument("--jobs", type=int, default=1, help="densities run in parallel processes")
    p.add_argument("--out", default=None, help="write the markdown table here")
    p.add_argument("--json", default=None, help="write raw results here")
    p.add_argument("--set", nargs="*", default=[], help="Config overrides key=value")
    p.add_argument("--no-kde", action="store_true", help="skip the KDE row (for sweeps)")
    p.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        default=None,
        help="run every (density, seed) and report mean ± sd over the seeds (overrides seed=)",
    )
    p.add_argument("--plot", default=None, help="PNG of the learned densities (first seed)")
    p.add_argument(
        "--replace-from",
        default=None,
        help="JSON of an earlier run: keep its rows, re-run only --methods and list the "
        "replaced rows in an appendix",
    )
    args = p.parse_args(argv)
    cfg = Config(budget=args.budget)
    for kv in args.set:
        k, v = kv.split("=", 1)
        cur = getattr(cfg, k)
        setattr(cfg, k, type(cur)(json.loads(v)) if not isinstance(cur, str) else v)
    bad = [m for m in args.methods if m not in METHODS]
    if bad:
        p.error(f"unknown methods {bad}; choose from {METHODS}")
    t0 = time.perf_counter()
    if args.seeds is not None:
        if args.replace_from:
            p.error("--seeds and --replace-from do not combine")
        tasks = []
        for seed in args.seeds:
            c = copy.deepcopy(cfg)
            c.seed = seed
            tasks += [(d, c, args.methods, not args.no_kde) for d in args.densities]
        if args.jobs > 1:
            import multiprocessing as mp

            with mp.get_context("spawn").Pool(args.jobs) as pool:
                results = pool.starmap(run_density, tasks, chunksize=1)
        else:
            results = [run_density(*t) for t in tasks]
        elapsed = time.perf_counter() - t0
        text = render_seeds(results, cfg, elapsed, args.seeds)
        print(text)
        if args.plot:
            plot_densities([r for r in results if r["seed"] == args.seeds[0]], args.plot)
        if args.out:
            os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
            with open(args.out, "w") as f:
                f.write(text + "\n")
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"config": asdict(cfg), "results": _strip(results)}, f, indent=1)
        return 0
    if args.jobs > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(args.jobs) as pool:
            results = pool.starmap(
                run_density,
                [
                    (d, cfg, args.methods, not (args.replace_from or args.no_kde))
                    for d in args.densities
                ],
            )
    else:
        with_kde = not (args.replace_from or args.no_kde)
        results = [run_density(d, cfg, args.methods, with_kde) for d in args.densities]
    previous = None
    if args.replace_from:
        with open(args.replace_from) as f:
            previous = json.load(f)
        by_density = {r["density"]: r for r in results}
        merged = []
        for old in previous["results"]:
            new = by_density.get(old["density"])
            rows = []
            for row in old["rows"]:
                fresh = None
                if new is not None:
                    fresh = next((r for r in new["rows"] if r["method"] == row["method"]), None)
                rows.append(fresh if fresh is not None and row["method"] != "kde" else row)
            merged.append({"density": old["density"], "rows": rows})
        results = merged
    text = render(results, cfg, time.perf_counter() - t0, previous, args.methods)
    print(text)
    if args.plot:
        plot_densities(results, args.plot)
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out, "w") as f:
            f.write(text + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"config": asdict(cfg), "results": _strip(results)}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
