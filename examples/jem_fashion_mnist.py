"""JEM on Fashion-MNIST in one CPU budget: a plain CNN, then the same network fine-tuned as a JEM
(classifier + energy), compared on accuracy, calibration, OOD detection and samples.

    PYTHONPATH=. python examples/jem_fashion_mnist.py --out runs/jem_example --minutes 20
    PYTHONPATH=. python examples/jem_fashion_mnist.py --quick          # a smoke run, seconds

Writes ``OUT/{cnn,jem}/checkpoint.pt`` and ``OUT/eval/`` (tables.md, metrics.json, reliability
diagrams, OOD score histograms, class-conditional sample grids). ``--quick`` uses 512 images, a
few steps and an untrained feature net, so its numbers mean nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from torchenergy.cli.image_evaluation import evaluate_fashion_mnist, format_tables
from torchenergy.cli.image_recipes import train_fashion_mnist
from torchenergy.features import FeatureNet


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", default="runs/jem_example")
    p.add_argument("--minutes", type=float, default=20.0, help="wall-clock budget of the JEM phase")
    p.add_argument("--epochs", type=int, default=5, help="CNN epochs (the JEM's warm start)")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    quick = {"limit": 512, "epochs": 1} if args.quick else {"epochs": args.epochs}
    cnn = train_fashion_mnist("cnn", out / "cnn", **quick)
    print(f"cnn: {cnn['seconds']:.0f} s")
    jem_kw = {"steps": 3, "sgld_steps": 2, "buffer_size": 64, "limit": 512} if args.quick else {}
    jem = train_fashion_mnist(
        "jem", out / "jem", warm_start=cnn["checkpoint"], minutes=args.minutes, **jem_kw
    )
    print(f"jem: {jem['steps']} steps, {jem['seconds']:.0f} s, divergences: {jem['divergences']}")
    ev_kw = (
        {"n_ood": 100, "sample_steps": 2, "limit": 500, "feature_net": FeatureNet()}
        if args.quick
        else {}
    )
    res = evaluate_fashion_mnist(
        {"cnn": cnn["checkpoint"], "jem": jem["checkpoint"]}, out / "eval", **ev_kw
    )
    print(format_tables(res))
    return res


if __name__ == "__main__":
    main()
