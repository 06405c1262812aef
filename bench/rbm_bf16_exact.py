"""Does training with bf16 products reach the float32 log-likelihood? An exact check.

RBMs with 20 hidden units (exact log Z by enumerating the 2^20 hidden states) trained on
binarised Fashion-MNIST (20,000 rows, 5 epochs, batch 100, momentum 0.5) with CD-1 (lr 0.05) and
PCD (lr 0.1 falling linearly to 0), several seeds; the exact average log-likelihood of validation
rows 50000..55000 of the training file. Precisions (``--modes``, suffixes of cd1 / pcd):

* none: float32 throughout (``grad_dtype=torch.float32``);
* ``_gbf16``: the weight-gradient product alone in bf16, columns centred
  (``grad_dtype=torch.bfloat16``, the fused trainer's default on CPUs with native bf16);
* ``_bf16``: every product in bf16 (``matmul_dtype=torch.bfloat16``).

A run's random draws depend on its products (a rounding that moves a probability across a
uniform flips a sample, and the runs part ways), so paired runs are not copies of each other: the
table gives the spread of the float32 runs beside the differences.

    PYTHONPATH=$PWD python bench/rbm_bf16_exact.py --seeds 0-7 > bench/results/rbm_bf16_exact.md
    # or split over processes: --seeds 0-3 --json a.json, --seeds 4-7 --json b.json, then
    PYTHONPATH=$PWD python bench/rbm_bf16_exact.py --merge a.json b.json
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from torchenergy.data import load_fashion_mnist
from torchenergy.estimate import base_rate_bias, rbm_log_partition
from torchenergy.models import BernoulliRBM, fit_rbm

__all__ = ["main"]


def _seeds(spec: str) -> list[int]:
    lo, _, hi = spec.partition("-")
    return list(range(int(lo), int(hi) + 1)) if hi else list(range(int(lo)))


def run(seeds: list[int], modes: list[str], hidden: int) -> dict[str, dict[str, float]]:
    full, _ = load_fashion_mnist("train", binarize=0.5)
    train, val = full[:20000], full[50000:55000]
    bb = base_rate_bias(train)
    res: dict[str, dict[str, float]] = {}
    for seed in seeds:
        for mode in modes:
            g = torch.Generator().manual_seed(seed)
            rbm = BernoulliRBM(784, hidden, generator=g)
            with torch.no_grad():
                rbm.b.copy_(bb)
            if mode.startswith("pcd"):
                kw = {"persistent": True, "lr": 0.1, "lr_decay": "linear"}
            else:
                kw = {"lr": 0.05}
            md = torch.bfloat16 if mode.endswith("_bf16") else None
            gd = torch.bfloat16 if mode.endswith("gbf16") else (None if md else torch.float32)
            fit_rbm(
                rbm,
                train,
                epochs=5,
                momentum=0.5,
                matmul_dtype=md,
                grad_dtype=gd,
                generator=g,
                **kw,
            )
            with torch.no_grad():
                ll = float(-rbm(val).double().mean() - rbm_log_partition(rbm))
            res.setdefault(mode, {})[str(seed)] = ll
    return res


def report(res: dict[str, dict[str, float]], hidden: int) -> str:
    seeds = sorted({int(s) for r in res.values() for s in r})
    lines = [
        f"Exact validation log-likelihood (nats), {hidden} hidden, seeds {seeds[0]}..{seeds[-1]}, "
        "5 epochs on 20,000 rows. `_gbf16`: weight-gradient product in bf16 (centred columns; "
        "fit_rbm(grad_dtype=torch.bfloat16)); `_bf16`: every product in bf16 "
        "(fit_rbm(matmul_dtype=torch.bfloat16)).",
        "",
        "| trainer | mean ± sd over seeds | paired difference to float32 (mean ± se) |",
        "|---|---|---|",
    ]
    for mode, r in res.items():
        vals = np.array([r[str(s)] for s in seeds if str(s) in r])
        base = res.get(mode.split("_")[0], {})
        row = f"| {mode} | {vals.mean():.2f} ± {vals.std(ddof=1):.2f} (n={len(vals)}) |"
        if mode != mode.split("_")[0] and base:
            d = np.array(
                [r[str(s)] - base[str(s)] for s in seeds if str(s) in r and str(s) in base]
            )
            row += f" {d.mean():+.2f} ± {d.std(ddof=1) / np.sqrt(len(d)):.2f} |"
        else:
            row += " (reference) |"
        lines.append(row)
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--hidden", type=int, default=20)
    p.add_argument("--seeds", default="4", help="a count (0..N-1) or a range 'a-b'")
    p.add_argument("--modes", default="cd1,cd1_gbf16,cd1_bf16,pcd,pcd_gbf16,pcd_bf16")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None, help="also write the raw results here")
    p.add_argument("--merge", nargs="+", default=None, help="report merged --json files")
    args = p.parse_args()
    if args.merge:
        res: dict[str, dict[str, float]] = {}
        for f in args.merge:
            for mode, r in json.loads(open(f).read()).items():
                res.setdefault(mode, {}).update(r)
        print(report(res, args.hidden))
        return
    torch.set_num_threads(args.threads)
    res = run(_seeds(args.seeds), args.modes.split(","), args.hidden)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=1)
    print(report(res, args.hidden))


if __name__ == "__main__":
    main()
