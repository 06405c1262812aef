"""Make the gallery's pictures: run the demo and the examples with small budgets, copy the PNGs.

    python docs/gen_gallery.py            # about 1-2 minutes on 2 CPU cores (what make gallery runs)
    python docs/gen_gallery.py --quick    # a few seconds' smoke version (rough pictures)

Writes ``docs/gallery/*.png`` (git-ignored; ``docs/gallery.md`` shows them). An example whose
data are not installed is skipped with a note. Each run happens in a temporary folder with one
torch thread.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GALLERY = ROOT / "docs" / "gallery"


def jobs(quick: bool) -> list[tuple[str, list[str], dict[str, str]]]:
    """(name, argv after the interpreter, {file written -> gallery name}) for every picture."""
    demo = ["-m", "torchenergy", "demo", "--threads", "1"] + (["--quick"] if quick else [])
    steps = ["--steps", "100", "--sample-steps", "100"] if quick else ["--steps", "800"]
    rbm = ["--quick"] if quick else ["--epochs", "1", "--hidden", "100"]
    return [
        (
            "demo",
            [*demo, "--out", "{out}"],
            {
                "landscape.png": "demo_landscape.png",
                "samples.png": "demo_samples.png",
                "score_field.png": "demo_score_field.png",
                "training_curves.png": "demo_training_curves.png",
                **{
                    f"samplers/samplers_{t}.png": f"samplers_{t}.png"
                    for t in (
                        "gaussian_mixture",
                        "double_well",
                        "correlated_gaussian",
                        "rosenbrock",
                    )
                },
            },
        ),
        (
            "train_2d",
            ["examples/train_2d.py", "--data", "moons", *steps, "--out", "{out}"],
            {"density.png": "train_2d_density.png", "samples.png": "train_2d_samples.png"},
        ),
        (
            "rbm_fashion_mnist",
            ["examples/rbm_fashion_mnist.py", *rbm, "--out", "{out}"],
            {"samples.png": "rbm_samples.png", "filters.png": "rbm_filters.png"},
        ),
    ]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny budgets (smoke test)")
    p.add_argument("--only", nargs="*", help="names of the jobs to run (default: all)")
    args = p.parse_args()
    GALLERY.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
    }
    failed = 0
    for name, argv, outputs in jobs(args.quick):
        if args.only and name not in args.only:
            continue
        with tempfile.TemporaryDirectory(prefix=f"gallery_{name}_") as tmp:
            cmd = [sys.executable, *(a.replace("{out}", tmp) for a in argv)]
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
            dt = time.perf_counter() - t0
            if proc.returncode != 0:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
                print(f"gallery: {name} skipped after {dt:.0f} s: {tail[0]}")
                if "dataset-fashion-mnist" not in proc.stderr:
                    failed += 1
                continue
            for src, dst in outputs.items():
                shutil.copyfile(Path(tmp) / src, GALLERY / dst)
            print(f"gallery: {name} ({dt:.0f} s): {', '.join(outputs.values())}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
