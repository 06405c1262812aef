"""Does training with bf16 products reach the float32 log-likelihood? An exact check.

Three precisions: float32 throughout (``grad_dtype=torch.float32``); the weight-gradient product
alone in bf16 (``grad_dtype=torch.bfloat16``, the fused trainer's default on CPUs with native
bf16); every product in bf16 (``matmul_dtype=torch.bfloat16``).

RBMs with 20 hidden units (exact log Z by enumerating the 2^20 hidden states) trained on
binarised Fashion-MNIST (20,000 rows, 5 epochs, batch 100, momentum 0.5) with CD-1 (lr 0.05) and
PCD (lr 0.1 falling linearly to 0), float32 against bf16 products, several seeds; the exact
average log-likelihood of validation rows 50000..55000 of the training file.

    PYTHONPATH=$PWD python bench/rbm_bf16_exact.py > bench/results/rbm_bf16_exact.md
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from torchenergy.data import load_fashion_mnist
from torchenergy.estimate import base_rate_bias, rbm_log_partition
from torchenergy.models import BernoulliRBM, fit_rbm


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--hidden", type=int, default=20)
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    full, _ = load_fashion_mnist("train", binarize=0.5)
    train, val = full[:20000], full[50000:55000]
    bb = base_rate_bias(train)
    res: dict[str, list[float]] = {}
    for seed in range(args.seeds):
        for mode in ("cd1", "cd1_gbf16", "cd1_bf16", "pcd", "pcd_gbf16", "pcd_bf16"):
            g = torch.Generator().manual_seed(seed)
            rbm = BernoulliRBM(784, args.hidden, generator=g)
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
            res.setdefault(mode, []).append(ll)
    print(
        f"Exact validation log-likelihood (nats), {args.hidden} hidden, seeds 0..{args.seeds - 1}, "
        "5 epochs on 20,000 rows; bf16 = products in bf16 (fit_rbm(matmul_dtype=torch.bfloat16)).\n"
    )
    print("| trainer | float32 | variant | variant | paired difference variant - float32 |")
    print("|---|---|---|---|---|")
    for base in ("cd1", "pcd"):
        for suffix, what in (
            ("_gbf16", "gradient product in bf16"),
            ("_bf16", "all products bf16"),
        ):
            a, b = np.array(res[base]), np.array(res[base + suffix])
            d = b - a
            se = d.std(ddof=1) / np.sqrt(len(d))
            print(
                f"| {base} | {a.mean():.2f} ({', '.join(f'{x:.1f}' for x in a)}) | {what} | "
                f"{b.mean():.2f} ({', '.join(f'{x:.1f}' for x in b)}) | {d.mean():+.2f} ± {se:.2f} |"
            )


if __name__ == "__main__":
    main()
