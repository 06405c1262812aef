"""Flow matching and score models on 2-D toys: held-out NLL by the PF-ODE against the exact
entropy floor, and NCSN / predictor-corrector samples by MMD against fresh data.

The entropy floors (nats) are the exact differential entropies of torchenergy's own generators
(eight_gaussians by Monte Carlo, checkerboard = log 32): no model's expected held-out NLL can be
below them. Run (about 10 + 10 minutes on 2 contended threads):

    nice python bench/diffusion_toys.py --toys eight_gaussians checkerboard --out bench/results/diffusion.md
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from torchenergy.data import sample_toy
from torchenergy.diffusion import (
    FlowSampler,
    TimeMLP,
    VEInterpolant,
    annealed_langevin,
    fit_flow,
    fit_score,
    pf_ode_log_likelihood,
    predictor_corrector,
)
from torchenergy.metrics import mmd2

FLOORS = {"eight_gaussians": 2.8127, "checkerboard": math.log(32.0), "grid": 2.2630}


def batches(name: str):
    return lambda n, g: sample_toy(name, n, generator=g, dtype=torch.float32)


def nll(model, x: torch.Tensor, chunk: int = 2000) -> tuple[float, float, int]:
    vals, evals = [], 0
    for part in x.split(chunk):
        res = pf_ode_log_likelihood(
            model, part.double(), "linear", "velocity", method="dopri5", rtol=1e-5, atol=1e-5
        )
        vals.append(-res.log_prob)
        evals += res.n_evals
    v = torch.cat(vals)
    return v.mean().item(), (v.std() / math.sqrt(v.numel())).item(), evals


def run_toy(name: str, args) -> dict:
    g = torch.Generator().manual_seed(args.seed)
    out: dict = {"toy": name, "floor": FLOORS.get(name, float("nan"))}
    # flow matching (linear path, velocity), OT or independent coupling
    net = TimeMLP(2, hidden=args.hidden, depth=args.depth)
    fit = fit_flow(
        net,
        batches(name),
        "linear",
        coupling=args.coupling,
        n_steps=args.steps,
        batch_size=args.batch,
        lr=args.lr,
        ema_decay=0.999,
        generator=g,
    )
    ema = fit.ema.double()
    held = sample_toy(name, args.n_eval, generator=torch.Generator().manual_seed(12345))
    t0 = time.perf_counter()
    out["nll"], out["nll_se"], out["nfe"] = nll(ema, held)
    out["train_s"], out["nll_s"] = fit.seconds, time.perf_counter() - t0
    fresh = sample_toy(name, args.n_mmd, generator=torch.Generator().manual_seed(777))
    ref = sample_toy(name, args.n_mmd, generator=torch.Generator().manual_seed(778))
    out["mmd_ref"] = mmd2(ref, fresh).item()
    fs = FlowSampler(ema, "linear", integrator="rk4", n_steps=50)
    xs = fs.sample(n=args.n_mmd, dtype=torch.float64, generator=torch.Generator().manual_seed(5)).x
    out["mmd_flow"] = mmd2(xs, fresh).item()
    # a VE score model for NCSN and predictor-corrector
    ve = VEInterpolant(0.01, 10.0)
    snet = TimeMLP(2, hidden=args.hidden, depth=args.depth)
    sfit = fit_score(
        snet,
        batches(name),
        ve,
        n_steps=args.score_steps,
        batch_size=args.batch,
        lr=args.lr,
        generator=g,
    )
    out["score_train_s"] = sfit.seconds
    sm = sfit.ema.double()
    t1 = time.perf_counter()
    xn = annealed_langevin(
        sm,
        ve,
        n_levels=10,
        n_inner=100,
        lr=1e-4,
        n=args.n_mmd,
        dtype=torch.float64,
        generator=torch.Generator().manual_seed(6),
    ).x
    out["ncsn_s"] = time.perf_counter() - t1
    out["mmd_ncsn"] = mmd2(xn, fresh).item()
    t1 = time.perf_counter()
    xp = predictor_corrector(
        sm,
        ve,
        n_steps=500,
        snr=0.16,
        grid="karras",
        n=args.n_mmd,
        dtype=torch.float64,
        generator=torch.Generator().manual_seed(7),
    ).x
    out["pc_s"] = time.perf_counter() - t1
    out["mmd_pc"] = mmd2(xp, fresh).item()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--toys", nargs="+", default=["eight_gaussians", "checkerboard"])
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--score-steps", type=int, default=5000)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--coupling", default="independent")
    p.add_argument("--n-eval", type=int, default=5000)
    p.add_argument("--n-mmd", type=int, default=2000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name in args.toys:
        r = run_toy(name, args)
        rows.append(r)
        print(r, flush=True)
    lines = [
        f"steps={args.steps} batch={args.batch} MLP {args.depth}x{args.hidden} lr={args.lr} coupling={args.coupling} threads={args.threads}",
        "",
        "| toy | floor (nats) | FM NLL (PF-ODE, dopri5) | gap | NFE | train s | NLL s | MMD² ref | MMD² FM (rk4 50) | MMD² NCSN | MMD² PC | score train s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['toy']} | {r['floor']:.4f} | {r['nll']:.4f} ± {r['nll_se']:.4f} | {r['nll'] - r['floor']:+.4f} | "
            f"{r['nfe']} | {r['train_s']:.0f} | {r['nll_s']:.0f} | {r['mmd_ref']:.5f} | {r['mmd_flow']:.5f} | "
            f"{r['mmd_ncsn']:.5f} | {r['mmd_pc']:.5f} | {r['score_train_s']:.0f} |"
        )
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "a") as fh:
            fh.write(text + "\n\n")


if __name__ == "__main__":
    main()
