"""The ``torchenergy`` command line (also ``python -m torchenergy``).

Commands:
    train     train an energy on a 2-D density or the digits (config file + key=value overrides)
    sample    draw samples from a trained checkpoint (CSV, .pt or a PNG plot)
    evaluate  held-out NLL (exact, grid quadrature), MMD, sliced Wasserstein, energy distance
    demo      the main job: train on a 2-D density and write plots, a GIF, metrics and a checkpoint

Bad input (unknown data set, a negative step size, a missing or corrupt checkpoint, a malformed
override) prints one line ``torchenergy: error: ...`` on stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import NoReturn

__all__ = ["main"]


class CLIError(Exception):
    """An error reported as one line on stderr."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # prog is "torchenergy" for the top level and "torchenergy train" for a command
        raise CLIError(f"{message} (see `{self.prog} --help`)")


def _parser() -> argparse.ArgumentParser:
    from torchenergy.cli.config import LOSSES, SAMPLERS

    p = _Parser(
        prog="torchenergy",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="train an energy (config file + key=value overrides)")
    t.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help=f"config overrides, e.g. data=moons loss=pcd lr=1e-3 (losses: {', '.join(LOSSES)}; samplers: {', '.join(SAMPLERS)})",
    )
    t.add_argument("--config", help="JSON or TOML config file")
    t.add_argument("--out", default="runs/train", help="output folder (default runs/train)")
    t.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--tensorboard", action="store_true", help="also log to OUT/tensorboard")
    t.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    t.add_argument(
        "--nproc-per-node",
        type=int,
        default=1,
        help="data-parallel processes on this machine, launched through torchrun (DDP; gloo "
        "on CPU, nccl on GPU); for several machines run torchrun yourself (see the README)",
    )

    s = sub.add_parser("sample", help="draw samples from a checkpoint")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--n", type=int, default=1000, help="number of samples")
    s.add_argument("--steps", type=int, default=500, help="MCMC steps from uniform noise")
    s.add_argument("--sampler", choices=SAMPLERS, help="kernel (default: the run's)")
    s.add_argument("--step-size", type=float, help="step size (default: the run's)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True, help="output file: .csv, .pt or .png")

    e = sub.add_parser("evaluate", help="held-out NLL and sample metrics of a checkpoint")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--n", type=int, default=2000, help="model samples for MMD etc.")
    e.add_argument("--steps", type=int, default=500, help="MCMC steps per sample")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--json", help="also write the metrics to this JSON file")

    d = sub.add_parser("demo", help="train on a 2-D density, write plots, GIF, metrics, checkpoint")
    d.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    d.add_argument("--quick", action="store_true", help="a few-second smoke version")
    d.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: the demo's small networks run fastest on one)",
    )
    d.add_argument(
        "overrides", nargs="*", metavar="key=value", help="config overrides for the demo run"
    )
    return p


def _train(args: argparse.Namespace) -> int:
    from torchenergy.cli.config import TrainConfig, load_config_file
    from torchenergy.cli.run_io import train_to_folder

    # --- distributed (torchenergy.train.distributed): relaunch under torchrun, or join its group
    from torchenergy.train.distributed import launch_or_join

    if args.nproc_per_node < 1:
        raise CLIError(f"--nproc-per-node must be >= 1, got {args.nproc_per_node}")
    launched = launch_or_join(args.nproc_per_node, ["-m", "torchenergy", "train"], sys.argv)
    if launched is not None:  # this process was the launcher; the workers have finished
        return launched

    base = load_config_file(args.config) if args.config else {}
    cfg = TrainConfig.from_dict(base, overrides=args.overrides)
    result = train_to_folder(
        cfg,
        Path(args.out),
        resume=args.resume,
        progress=not args.no_progress,
        tensorboard=args.tensorboard,
    )
    print(
        f"trained {cfg.loss} on {cfg.data} for {result['step']} steps; checkpoint: {result['checkpoint']}"
    )
    return 0


def _sample(args: argparse.Namespace) -> int:
    import torch

    from torchenergy.cli.recipe import draw_samples, is_image_run, load_run

    out = Path(args.out)
    if out.suffix not in (".csv", ".pt", ".png"):
        raise CLIError(f"--out must end in .csv, .pt or .png, got {args.out!r}")
    if args.step_size is not None and not args.step_size > 0:
        raise CLIError(f"--step-size must be > 0, got {args.step_size}")
    run = load_run(args.checkpoint)
    g = torch.Generator().manual_seed(args.seed)
    x = draw_samples(
        run, args.n, n_steps=args.steps, sampler=args.sampler, step_size=args.step_size, generator=g
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".pt":
        torch.save(x, out)
    elif out.suffix == ".csv":
        import numpy as np

        flat = x.flatten(1).double().numpy()
        header = ",".join(f"x{i}" for i in range(flat.shape[1]))
        np.savetxt(out, flat, delimiter=",", header=header, comments="")
    elif is_image_run(run.config):
        from torchenergy.viz import plot_image_grid, savefig

        savefig(plot_image_grid(x[:64], value_range=(-1.0, 1.0)), out)
    else:
        from torchenergy.viz import plot_samples, savefig

        b = run.config.box
        savefig(plot_samples(x, run.heldout, xlim=(-b, b), ylim=(-b, b)), out)
    print(f"wrote {args.n} samples to {out}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    import math

    from torchenergy.cli.recipe import evaluate_run, load_run

    run = load_run(args.checkpoint)
    metrics = evaluate_run(run, n_samples=args.n, n_steps=args.steps, seed=args.seed)
    text = json.dumps(metrics, indent=2, allow_nan=True)
    print(text)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n")
    return 0 if all(math.isfinite(v) for v in metrics.values()) else 1


def _demo(args: argparse.Namespace) -> int:
    from torchenergy.cli.demo import run_demo

    run_demo(Path(args.out), quick=args.quick, overrides=args.overrides)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code (0 ok, 1 failed run, 2 bad input)."""
    from torchenergy.samplers import DivergenceError
    from torchenergy.train import CheckpointError

    try:
        args = _parser().parse_args(argv)
        command = {"train": _train, "sample": _sample, "evaluate": _evaluate, "demo": _demo}[
            args.command
        ]
        for name in ("n", "steps", "threads"):
            value = getattr(args, name, None)
            if value is not None and value < 1:
                raise CLIError(f"--{name} must be >= 1, got {value}")
        if getattr(args, "threads", None):
            import torch

            before = torch.get_num_threads()
            torch.set_num_threads(args.threads)
            try:
                return command(args)
            finally:  # main() is also called in-process (tests, notebooks): leave no trace
                torch.set_num_threads(before)
        return command(args)
    except (CLIError, CheckpointError, ValueError, TypeError) as exc:
        print(f"torchenergy: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except (FloatingPointError, DivergenceError) as exc:
        print(f"torchenergy: training failed: {_one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("torchenergy: interrupted", file=sys.stderr)
        return 130


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
