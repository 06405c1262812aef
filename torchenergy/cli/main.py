"""The ``torchenergy`` command line (also ``python -m torchenergy``).

Commands:
    train     train an energy on a 2-D density or the digits (config file + key=value overrides)
    sample    draw samples from a trained checkpoint (CSV, .pt or a PNG plot)
    evaluate  held-out NLL (exact, grid quadrature), MMD, sliced Wasserstein, energy distance
    demo      the main job: train on a 2-D density and write plots, a GIF, metrics and a checkpoint

``key=value`` overrides may go anywhere on the line (before or after the options). ``train
--out DIR --resume [key=value ...]`` continues the run in DIR from its ``config.json`` (only
``steps`` and ``checkpoint_every`` may change) bit-identically; Ctrl-C saves the last completed
step and exits with status 130.

Bad input (unknown data set, a negative step size, a missing or corrupt checkpoint, a malformed
override, an output path that cannot be written) prints one line ``torchenergy: error: ...`` on
stderr and exits with status 2, before any work is done.
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
    t.add_argument(
        "--model",
        choices=("ebm", *_IMAGE_MODELS, *_FLOW_MODELS),
        default="ebm",
        help="ebm (default: the config-driven 2-D/digits run); on Fashion-MNIST: cnn (a plain "
        "classifier), jem (joint energy classifier) or conv (IGEBM-style image EBM); flow "
        "(flow matching) or score (denoising score matching over time) on a 2-D toy or "
        "fashion_mnist, with key=value options steps, coupling (independent|ot), hidden, "
        "batch_size, lr, guidance",
    )
    t.add_argument(
        "--data", help="data set (ebm runs: the same as data=NAME; cnn/jem/conv: fashion_mnist)"
    )
    t.add_argument("--minutes", type=float, help="wall-clock budget of the EBM phase (images)")
    t.add_argument("--epochs", type=int, default=5, help="classifier epochs (cnn, jem warm-up)")
    t.add_argument("--warm-start", help="jem: start from this cnn checkpoint")
    t.add_argument("--seed", type=int, help="the random seed (ebm runs: the same as seed=N)")
    t.add_argument("--limit", type=int, help="image runs: first LIMIT training images (smoke)")

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
    e.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="NAME=CHECKPOINT",
        help="image models: more checkpoints evaluated side by side (repeatable)",
    )
    e.add_argument("--out", help="image models: folder for tables and plots (default: beside)")
    e.add_argument("--n-ood", type=int, default=5000, help="image models: images per OOD set")

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


_IMAGE_MODELS = ("cnn", "jem", "conv")
_FLOW_MODELS = ("flow", "score")
_FLOW_OPTIONS = {
    "steps": int,
    "coupling": str,
    "hidden": int,
    "batch_size": int,
    "lr": float,
    "n_eval": int,
    "guidance": float,
}


def _train_flow(args: argparse.Namespace) -> int:
    from torchenergy.cli.flow_recipes import train_flow
    from torchenergy.cli.run_io import check_output_dir

    if args.data is None:
        raise CLIError(f"--model {args.model} needs --data (a 2-D toy or fashion_mnist)")
    if args.resume or args.config:
        raise CLIError(f"--resume and --config are for --model ebm runs, not --model {args.model}")
    options: dict = {}
    for item in args.overrides:
        key, sep, raw = item.partition("=")
        kind = _FLOW_OPTIONS.get(key)
        if not sep or kind is None:
            raise CLIError(
                f"override {item!r} is not key=value with one of {', '.join(_FLOW_OPTIONS)}"
            )
        try:
            options[key] = kind(raw)
        except ValueError as err:
            raise CLIError(f"override {key}={raw!r}: expected {kind.__name__}") from err
    out = check_output_dir(args.out)
    res = train_flow(args.model, args.data, out, seed=args.seed or 0, **options)
    shown = {k: v for k, v in res.items() if k in ("heldout_nll", "mmd2", "train_seconds")}
    print(f"trained {args.model} on {args.data}: {shown}; checkpoint: {res['checkpoint']}")
    return 0


def _image_overrides(model: str, overrides: list[str]) -> dict:
    """``key=value`` overrides of an image run, typed by the fields of its config dataclass."""
    import dataclasses

    from torchenergy.models import JEMConfig
    from torchenergy.train import ImageEBMConfig

    fields = {
        f.name: f for f in dataclasses.fields(JEMConfig if model != "conv" else ImageEBMConfig)
    }
    out: dict = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or key not in fields:
            raise CLIError(
                f"override {item!r} is not key=value with a field of the {model} config "
                f"({', '.join(sorted(fields))})"
            )
        default = fields[key].default
        try:
            value = json.loads(raw) if not isinstance(default, str) else raw
        except json.JSONDecodeError as err:
            raise CLIError(f"override {key}={raw!r}: not a number, bool or list") from err
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(default, bool) != isinstance(value, bool) or (
            isinstance(default, (int, float)) and not isinstance(value, (int, float))
        ):
            raise CLIError(f"override {key}={raw!r}: expected {type(default).__name__}")
        out[key] = value
    return out


def _check_image_config(model: str, steps: int | None, overrides: dict) -> None:
    """Build the run's config once so that a bad value fails before the work starts."""
    from torchenergy.cli.image_recipes import JEM_DEFAULTS
    from torchenergy.models import JEMConfig
    from torchenergy.train import ImageEBMConfig

    if model == "jem":
        JEMConfig(**{**JEM_DEFAULTS, **({"steps": steps} if steps else {}), **overrides})
    elif model == "conv":
        ImageEBMConfig(**{**({"steps": steps} if steps else {}), **overrides})


def _train_image(args: argparse.Namespace) -> int:
    from torchenergy.cli.image_recipes import train_fashion_mnist
    from torchenergy.cli.run_io import check_output_dir

    if args.data not in (None, "fashion_mnist"):
        raise CLIError(f"--model {args.model} trains on --data fashion_mnist, got {args.data!r}")
    if args.resume or args.config:
        raise CLIError(f"--resume and --config are for --model ebm runs, not --model {args.model}")
    for name in ("epochs", "limit"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise CLIError(f"--{name} must be >= 1, got {value}")
    if args.minutes is not None and not args.minutes > 0:
        raise CLIError(f"--minutes must be > 0, got {args.minutes}")
    overrides = _image_overrides(args.model, args.overrides)
    steps = overrides.pop("steps", None)
    _check_image_config(args.model, steps, overrides)  # before any folder is made
    out = check_output_dir(args.out)
    res = train_fashion_mnist(
        args.model,
        out,
        minutes=args.minutes,
        steps=steps,
        epochs=args.epochs,
        warm_start=args.warm_start,
        seed=args.seed if args.seed is not None else 0,
        limit=args.limit,
        **overrides,
    )
    print(
        f"trained {args.model} on fashion_mnist ({res['steps']} steps, {res['seconds']:.0f} s, "
        f"{len(res['divergences'])} rollbacks); checkpoint: {res['checkpoint']}"
    )
    return 0


def _train(args: argparse.Namespace) -> int:
    if args.model in _FLOW_MODELS:
        return _train_flow(args)
    if args.model != "ebm":
        return _train_image(args)
    from torchenergy.cli.config import TrainConfig, load_config_file

    # --- distributed (torchenergy.train.distributed): relaunch under torchrun, or join its group
    from torchenergy.train.distributed import launch_or_join

    if args.nproc_per_node < 1:
        raise CLIError(f"--nproc-per-node must be >= 1, got {args.nproc_per_node}")
    launched = launch_or_join(args.nproc_per_node, ["-m", "torchenergy", "train"], sys.argv)
    if launched is not None:  # this process was the launcher; the workers have finished
        return launched

    # the options stand for their overrides; written after them, an explicit key=value wins
    args.overrides = [
        *([f"data={args.data}"] if args.data is not None else []),
        *([f"seed={args.seed}"] if args.seed is not None else []),
        *args.overrides,
    ]
    from torchenergy.cli.run_io import check_output_dir, saved_config, train_to_folder

    out = check_output_dir(args.out)
    base = saved_config(out) if args.resume else {}  # a resumed run starts from its own config
    if args.config:
        base.update(load_config_file(args.config))
    cfg = TrainConfig.from_dict(base, overrides=args.overrides)
    result = train_to_folder(
        cfg,
        out,
        resume=args.resume,
        progress=not args.no_progress,
        tensorboard=args.tensorboard,
    )
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_rank() != 0:
        return 0  # one report per run: rank 0 speaks for the group
    if args.resume and result["trained"] == 0:
        print(f"{out} is already at step {result['step']} (steps={cfg.steps}); nothing to do")
        return 0
    print(
        f"trained {cfg.loss} on {cfg.data} for {result['step']} steps; checkpoint: {result['checkpoint']}"
    )
    return 0


def _sample(args: argparse.Namespace) -> int:
    import torch

    from torchenergy.cli.recipe import draw_samples, is_image_run, load_run
    from torchenergy.cli.run_io import check_output_file

    out = Path(args.out)
    if out.suffix not in (".csv", ".pt", ".png"):
        raise CLIError(f"--out must end in .csv, .pt or .png, got {args.out!r}")
    check_output_file(out)
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
    from torchenergy.cli.run_io import check_output_file

    if args.json:
        check_output_file(args.json, "--json")
    if _image_kind(args.checkpoint) is not None:
        return _evaluate_image(args)
    run = load_run(args.checkpoint)
    metrics = evaluate_run(run, n_samples=args.n, n_steps=args.steps, seed=args.seed)
    text = json.dumps(metrics, indent=2, allow_nan=True)
    print(text)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n")
    return 0 if all(math.isfinite(v) for v in metrics.values()) else 1


def _image_kind(path: str) -> str | None:
    """The image model kind ("cnn", "jem", "conv") of a checkpoint, None for a config run."""
    from torchenergy.train import load_checkpoint

    if not Path(path).is_file():
        return None  # load_run reports the missing file
    kind = load_checkpoint(path).get("kind")
    return kind if kind in _IMAGE_MODELS else None


def _evaluate_image(args: argparse.Namespace) -> int:
    from torchenergy.cli.image_evaluation import evaluate_fashion_mnist, format_tables
    from torchenergy.cli.run_io import check_output_dir

    checkpoints = {Path(args.checkpoint).parent.name or "model": args.checkpoint}
    for item in args.compare:
        name, sep, path = item.partition("=")
        if not sep or not name or _image_kind(path) is None:
            raise CLIError(f"--compare wants NAME=CHECKPOINT of an image model, got {item!r}")
        checkpoints[name] = path
    out = check_output_dir(args.out or Path(args.checkpoint).parent / "evaluation")
    res = evaluate_fashion_mnist(
        checkpoints, out, n_ood=args.n_ood, sample_steps=args.steps, seed=args.seed
    )
    print(format_tables(res))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=2, default=str) + "\n")
    print(f"tables and plots in {out}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from torchenergy.cli.demo import run_demo

    run_demo(Path(args.out), quick=args.quick, overrides=args.overrides)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code (0 ok, 1 failed run, 2 bad input)."""
    from torchenergy.cli.config import SEED_MAX
    from torchenergy.samplers import DivergenceError
    from torchenergy.train import CheckpointError

    try:
        args = _parse(argv)
        command = {"train": _train, "sample": _sample, "evaluate": _evaluate, "demo": _demo}[
            args.command
        ]
        for name in ("n", "steps", "threads"):
            value = getattr(args, name, None)
            if value is not None and value < 1:
                raise CLIError(f"--{name} must be >= 1, got {value}")
        seed = getattr(args, "seed", None)
        if seed is not None and not 0 <= seed <= SEED_MAX:
            raise CLIError(f"--seed must be an int in [0, 2**63 - 1], got {seed}")
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
    except OSError as exc:  # an output path that failed after the checks (disk full, a race)
        print(f"torchenergy: error: {_os_error(exc)}", file=sys.stderr)
        return 2
    except (FloatingPointError, DivergenceError) as exc:
        print(f"torchenergy: training failed: {_one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        print(f"torchenergy: {_one_line(exc) if str(exc) else 'interrupted'}", file=sys.stderr)
        return 130


def _parse(argv: list[str] | None) -> argparse.Namespace:
    """Parse ``argv``; ``key=value`` overrides may stand anywhere (argparse alone gives a
    ``nargs="*"`` positional only the first run of them, before the first option)."""
    args, extras = _parser().parse_known_args(argv)
    unknown = [e for e in extras if e.startswith("-")]
    if unknown or (extras and not hasattr(args, "overrides")):
        raise CLIError(
            f"unrecognized arguments: {' '.join(unknown or extras)} "
            f"(see `torchenergy {args.command} --help`)"
        )
    if extras:
        args.overrides = [*args.overrides, *extras]  # in command-line order: the last one wins
    return args


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _os_error(exc: OSError) -> str:
    where = f": {str(exc.filename)!r}" if exc.filename else ""
    return f"{exc.strerror or _one_line(exc)}{where}"
