"""Run the speed benchmarks one after another (what ``make bench`` does).

Each script compares torchenergy with raw PyTorch and the peers side by side in one run and
writes its table under ``bench/results/``:

* ``samplers_speed.py``: Langevin / HMC against hand-written loops and TorchEBM (about 3 min);
* ``crf_speed.py``: the linear-chain CRF against pytorch-crf and torch-struct (about 1 min);
* ``rbm_fashion_mnist.py --part timing``: seconds per RBM epoch against scikit-learn (about
  2 min; needs the Debian package ``dataset-fashion-mnist``, skipped with a note without it);
* ``blackjax_nuts.py``: NUTS and HMC ESS per gradient and per second against BlackJAX on JAX CPU
  at 1,000 chains (about 10 min; needs the ``bench`` extra, skipped without it);
* ``ddp_throughput.py``: 2-process DDP against one process on a 784-512-512-1 energy.

The quality benchmarks (``quality_2d.py``, ``rbm_fashion_mnist.py --part binary``,
``hopfield_capacity.py``, ``rbm_bf16_exact.py``) take 10-30 minutes each and are run by hand;
their commands are in their docstrings and in ``bench/results``.

Run:  PYTHONPATH=. python bench/run_all.py [--threads 2] [--only samplers,crf,rbm,nuts,ddp]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

__all__ = ["main"]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _commands(threads: int) -> dict[str, list[str]]:
    py = sys.executable
    return {
        "samplers": [py, str(HERE / "samplers_speed.py"), "--threads", str(threads)],
        "crf": [py, str(HERE / "crf_speed.py"), "--threads", str(threads)],
        "rbm": [
            py,
            str(HERE / "rbm_fashion_mnist.py"),
            "--part",
            "timing",
            "--train-limit",
            "20000",
            "--threads",
            str(threads),
            "--timing-models",
            "cd1,pcd,cd1_fp32,pcd_fp32,sklearn",
            "--tag",
            "_run_all",
        ],
        # needs the bench extra (jax, blackjax); skipped with the install line when absent
        "nuts": [py, str(HERE / "blackjax_nuts.py"), "--chains", "1000"],
        "ddp": [py, str(HERE / "ddp_throughput.py")],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", default="samplers,crf,rbm,nuts,ddp", help="comma-separated subset")
    args = ap.parse_args(argv)
    cmds = _commands(args.threads)
    wanted = [w for w in args.only.split(",") if w]
    unknown = sorted(set(wanted) - set(cmds))
    if unknown:
        ap.error(f"unknown benchmark(s) {unknown}; choose from {sorted(cmds)}")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    failed = []
    for name in wanted:
        if name == "nuts":
            import importlib.util

            if importlib.util.find_spec("blackjax") is None:
                print("== nuts: skipped (pip install -e '.[bench]' for jax/blackjax)", flush=True)
                continue
        if name == "rbm":
            try:
                from torchenergy.data import load_fashion_mnist

                load_fashion_mnist("test")
            except (FileNotFoundError, RuntimeError, ImportError, OSError) as err:
                print(f"== rbm: skipped ({err})", flush=True)
                continue
        print(f"== {name}: {' '.join(cmds[name][1:])}", flush=True)
        if subprocess.call(cmds[name], cwd=ROOT, env=env) != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
