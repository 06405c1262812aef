"""HMC and NUTS, torchenergy vs BlackJAX (JAX on CPU), side by side in one run.

Targets (the same for both, float32, identity mass, the same step size and budget):

  gauss100   100-D correlated Gaussian, covariance U diag(λ) Uᵀ with λ log-spaced in [0.1, 10]
             (condition number 100) and a random rotation U; closed-form gradient P x.
  logreg     Bayesian logistic regression, 1,000 synthetic points, 25 features + bias
             (d = 26), prior N(0, 1); E(β) = Σ softplus((1 − 2y) Xβ) + |β|²/2.

Each method runs C chains from the same start points: ``--warmup`` transitions, then
``--draws`` recorded ones. ESS is torchenergy's multi-chain bulk ESS (rank-normalised, split)
of each coordinate, computed the same way on both libraries' traces; the table shows the
minimum and the mean over coordinates. "grads" counts gradient evaluations during the
recorded phase: the per-chain leapfrog steps summed over chains (NUTS: ``n_leapfrog`` /
``num_integration_steps``; HMC: L per transition). Times are wall-clock seconds of the
recorded phase (JAX: compiled beforehand by the warm-up call of the same length, so
compilation is excluded and reported separately). Both libraries run on one CPU thread
(``torch.set_num_threads(1)``; ``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false
intra_op_parallelism_threads=1``).

BlackJAX's NUTS is vmapped over chains: like torchenergy's batched trees, the batch runs
until its longest tree ends. Both use the same multinomial NUTS with the generalised U-turn
criterion (ρ = Σp − (p₋ + p₊)/2) and iterative subtree checks, so ESS per gradient should
agree up to Monte Carlo noise.

Run:  PYTHONPATH=. nice python bench/blackjax_nuts.py [--chains 1000] [--warmup 100] [--draws 200]
Writes bench/results/nuts.md (appends nothing; the table of this run).
"""

from __future__ import annotations

import os

os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)

import argparse
import math
import platform
import time
from pathlib import Path

import torch
from torch import Tensor, nn

from torchenergy.diagnostics import ess_bulk
from torchenergy.samplers import HMC, NUTS

__all__ = ["main"]


# --------------------------------------------------------------------------- targets (torch)


class Quadratic(nn.Module):
    """``E(x) = 0.5 xᵀ P x`` with a closed-form gradient."""

    def __init__(self, prec: Tensor) -> None:
        super().__init__()
        self.register_buffer("prec", prec)

    def forward(self, x: Tensor) -> Tensor:
        return 0.5 * ((x @ self.prec) * x).sum(-1)

    def energy_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        g = x @ self.prec
        return 0.5 * (g * x).sum(-1), g


class LogReg(nn.Module):
    """Bayesian logistic regression posterior energy with a closed-form gradient."""

    def __init__(self, xs: Tensor, ys: Tensor) -> None:
        super().__init__()
        self.register_buffer("xs", xs)  # (N, d) (last column ones)
        self.register_buffer("sign", 1.0 - 2.0 * ys)  # (N,)

    def forward(self, b: Tensor) -> Tensor:
        z = (b @ self.xs.T) * self.sign
        return torch.nn.functional.softplus(z).sum(-1) + 0.5 * (b * b).sum(-1)

    def energy_and_grad(self, b: Tensor) -> tuple[Tensor, Tensor]:
        z = (b @ self.xs.T) * self.sign
        e = torch.nn.functional.softplus(z).sum(-1) + 0.5 * (b * b).sum(-1)
        g = (torch.sigmoid(z) * self.sign) @ self.xs + b
        return e, g


def make_targets(seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    d = 100
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    lam = torch.logspace(-1, 1, d, dtype=torch.float64)
    cov = q @ torch.diag(lam) @ q.T
    prec = q @ torch.diag(1.0 / lam) @ q.T
    n, k = 1000, 25
    xs = torch.cat([torch.randn(n, k, generator=g, dtype=torch.float64), torch.ones(n, 1)], 1)
    beta = torch.randn(k + 1, generator=g, dtype=torch.float64)
    ys = (torch.rand(n, generator=g, dtype=torch.float64) < torch.sigmoid(xs @ beta)).double()
    return {
        "gauss100": {"prec": prec, "cov": cov, "d": d, "nuts_eps": 0.25, "hmc": (0.25, 12)},
        "logreg": {"xs": xs, "ys": ys, "d": k + 1, "nuts_eps": 0.06, "hmc": (0.06, 16)},
    }


def torch_energy(name: str, t: dict) -> nn.Module:
    if name == "gauss100":
        return Quadratic(t["prec"].float())
    return LogReg(t["xs"].float(), t["ys"].float())


def start_points(name: str, t: dict, chains: int, seed: int = 1) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.5 * torch.randn(chains, t["d"], generator=g)


# --------------------------------------------------------------------------- torchenergy


def run_torch(kind: str, name: str, t: dict, chains: int, warmup: int, draws: int) -> dict:
    energy = torch_energy(name, t)
    if kind == "nuts":
        sampler = NUTS(energy, t["nuts_eps"])
    else:
        eps, n_leap = t["hmc"]
        sampler = HMC(energy, eps, n_leap)
    gen = torch.Generator().manual_seed(0)
    state = sampler.init(start_points(name, t, chains))
    for _ in range(warmup):
        state, _ = sampler.step(state, generator=gen)
    xs, grads, acc = [], 0, 0.0
    t0 = time.perf_counter()
    for _ in range(draws):
        state, info = sampler.step(state, generator=gen)
        xs.append(state.x)
        grads += int(info.n_leapfrog.sum()) if kind == "nuts" else chains * sampler.n_leapfrog
        acc += float(info.accept_prob.mean())
    seconds = time.perf_counter() - t0
    return {"trace": torch.stack(xs), "grads": grads, "seconds": seconds, "accept": acc / draws}


# --------------------------------------------------------------------------- BlackJAX


def run_blackjax(kind: str, name: str, t: dict, chains: int, warmup: int, draws: int) -> dict:
    import blackjax
    import jax
    import jax.numpy as jnp

    if name == "gauss100":
        prec = jnp.asarray(t["prec"].float().numpy())

        def logdensity(x):
            return -0.5 * x @ prec @ x

    else:
        xs = jnp.asarray(t["xs"].float().numpy())
        sign = jnp.asarray((1.0 - 2.0 * t["ys"]).float().numpy())

        def logdensity(b):
            return -(jax.nn.softplus((xs @ b) * sign).sum() + 0.5 * b @ b)

    d = t["d"]
    inv_mass = jnp.ones(d, dtype=jnp.float32)
    if kind == "nuts":
        algo = blackjax.nuts(logdensity, t["nuts_eps"], inv_mass)
    else:
        eps, n_leap = t["hmc"]
        algo = blackjax.hmc(logdensity, eps, inv_mass, n_leap)
    x0 = jnp.asarray(start_points(name, t, chains).numpy())
    states = jax.vmap(algo.init)(x0)

    def one(carry, key):
        keys = jax.random.split(key, chains)
        new, info = jax.vmap(algo.step)(keys, carry)
        return new, (new.position, info.num_integration_steps, info.acceptance_rate)

    @jax.jit
    def run(states, key):
        return jax.lax.scan(one, states, jax.random.split(key, draws))

    key_w, key_s = jax.random.split(jax.random.PRNGKey(0))
    # warm-up: compile (same length as the recorded phase) and run; extra steps if warmup > draws
    t0 = time.perf_counter()
    states, _ = run(states, key_w)
    jax.block_until_ready(states)
    compile_and_first = time.perf_counter() - t0
    for i in range(max(0, math.ceil(warmup / draws) - 1)):
        states, _ = run(states, jax.random.fold_in(key_w, i + 1))
    t0 = time.perf_counter()
    states, (pos, n_int, acc) = run(states, key_s)
    jax.block_until_ready(pos)
    seconds = time.perf_counter() - t0
    import numpy as np

    return {
        "trace": torch.from_numpy(np.asarray(pos)),
        "grads": int(np.asarray(n_int).sum()),
        "seconds": seconds,
        "accept": float(np.asarray(acc).mean()),
        "compile_s": compile_and_first - seconds,
    }


# --------------------------------------------------------------------------- table


def summarise(res: dict) -> dict:
    ess = ess_bulk(res["trace"].double())
    out = dict(res)
    out["ess_min"] = float(ess.min())
    out["ess_mean"] = float(ess.mean())
    out["ess_per_grad"] = out["ess_min"] / res["grads"]
    out["ess_per_s"] = out["ess_min"] / res["seconds"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--chains", type=int, nargs="+", default=[1000])
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument("--kinds", nargs="+", default=["nuts", "hmc"])
    ap.add_argument("--targets", nargs="+", default=["gauss100", "logreg"])
    ap.add_argument("--out", default="bench/results/nuts.md")
    args = ap.parse_args()
    torch.set_num_threads(1)
    targets = make_targets()
    rows = []
    for chains in args.chains:
        for name in args.targets:
            for kind in args.kinds:
                pair = {}
                for lib, fn in (("torchenergy", run_torch), ("blackjax", run_blackjax)):
                    r = summarise(fn(kind, name, targets[name], chains, args.warmup, args.draws))
                    pair[lib] = r
                    print(
                        f"{name:9s} {kind:4s} C={chains:5d} {lib:11s} acc {r['accept']:.3f} "
                        f"grads {r['grads']:>10d} {r['seconds']:8.2f}s ESS min {r['ess_min']:9.0f}"
                        f" mean {r['ess_mean']:9.0f} ESS/grad {r['ess_per_grad']:.2e} "
                        f"ESS/s {r['ess_per_s']:9.1f}",
                        flush=True,
                    )
                rows.append((name, kind, chains, pair))
    write_table(rows, args)


def write_table(rows: list, args: argparse.Namespace) -> None:
    lines = [
        "# NUTS and HMC: torchenergy vs BlackJAX (JAX CPU)",
        "",
        f"Command: `PYTHONPATH=. nice python bench/blackjax_nuts.py --chains "
        f"{' '.join(map(str, args.chains))} --warmup {args.warmup} --draws {args.draws}`",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores shared "
        "with other jobs, one thread per library; float32; torch "
        f"{torch.__version__}, {_jax_versions()}.",
        "",
        "ESS = minimum over coordinates of the bulk ESS of all chains' recorded draws; grads = "
        "gradient evaluations in the recorded phase (sum over chains); ratio = torchenergy / "
        "BlackJAX (> 1: torchenergy better).",
        "",
        "| target | kernel | chains | lib | accept | grads | seconds | ESS min | ESS mean | "
        "ESS/grad | ESS/s | ratio ESS/grad | ratio ESS/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, kind, chains, pair in rows:
        a, b = pair["torchenergy"], pair["blackjax"]
        for lib, r in pair.items():
            ratio_g = a["ess_per_grad"] / b["ess_per_grad"] if lib == "torchenergy" else ""
            ratio_s = a["ess_per_s"] / b["ess_per_s"] if lib == "torchenergy" else ""
            lines.append(
                f"| {name} | {kind} | {chains} | {lib} | {r['accept']:.3f} | {r['grads']} | "
                f"{r['seconds']:.1f} | {r['ess_min']:.0f} | {r['ess_mean']:.0f} | "
                f"{r['ess_per_grad']:.2e} | {r['ess_per_s']:.1f} | "
                f"{ratio_g if ratio_g == '' else f'{ratio_g:.2f}'} | "
                f"{ratio_s if ratio_s == '' else f'{ratio_s:.2f}'} |"
            )
    comp = [f"{n}/{k}/C={c}: {p['blackjax']['compile_s']:.1f}s" for n, k, c, p in rows]
    lines += ["", "BlackJAX compile time (excluded above): " + ", ".join(comp) + "."]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _jax_versions() -> str:
    try:
        import blackjax
        import jax

        return f"jax {jax.__version__}, blackjax {blackjax.__version__}"
    except Exception as err:  # pragma: no cover
        return f"blackjax unavailable ({err})"


if __name__ == "__main__":
    main()
