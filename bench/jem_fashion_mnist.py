"""Plain CNN vs JEM vs an unconditional image EBM on Fashion-MNIST (CPU): accuracy, calibration,
OOD detection (every score × every OOD set), sample quality (Fréchet distance and KID on the
project's own feature net, not FID), training time.

All three share the data scaling ([-1, 1]) and the JEM shares the CNN's architecture (it is
warm-started from it, and its training time counts the CNN's). Parts write checkpoints under
``--runs`` and the evaluation writes ``bench/results/jem.md``, ``jem_results.json`` and PNGs.

Run (1 thread is faster than 2 on a shared 2-core machine)::

    PYTHONPATH=$PWD nice python bench/jem_fashion_mnist.py --part train_cnn
    PYTHONPATH=$PWD nice python bench/jem_fashion_mnist.py --part train_jem --jem-minutes 20
    PYTHONPATH=$PWD nice python bench/jem_fashion_mnist.py --part train_ebm --ebm-minutes 10
    PYTHONPATH=$PWD nice python bench/jem_fashion_mnist.py --part eval
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from torchenergy.cli.image_evaluation import evaluate_fashion_mnist, format_tables
from torchenergy.cli.image_recipes import CNN_ARCH, EBM_ARCH, train_fashion_mnist
from torchenergy.data import load_fashion_mnist
from torchenergy.energies import ConvEnergy
from torchenergy.models import JEM, ConvClassifier, JEMConfig
from torchenergy.train import (
    CSVLogger,
    ImageEBMConfig,
    LambdaCallback,
    fit_image_ebm,
    fit_jem,
    save_checkpoint,
)
from torchenergy.viz import plot_image_grid, save_image_animation, savefig

ARCH = dict(CNN_ARCH)


def net(energy_head: bool = False) -> ConvClassifier:
    return ConvClassifier(1, 10, **ARCH, energy_head=energy_head)


def data() -> dict[str, torch.Tensor]:
    x, y = load_fashion_mnist("train", flatten=False)
    xt, yt = load_fashion_mnist("test", flatten=False)
    return {"x": 2 * x - 1, "y": y, "xt": 2 * xt - 1, "yt": yt}


def train_cnn(args, d) -> None:
    torch.manual_seed(0)
    model, g = net(), torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    t0, n = time.perf_counter(), len(d["x"])
    for ep in range(args.cnn_epochs):
        if ep == args.cnn_epochs - 1:  # a lower learning rate for the last epoch
            for group in opt.param_groups:
                group["lr"] = 3e-4
        perm = torch.randperm(n, generator=g)
        for i in range(0, n - 63, 64):
            idx = perm[i : i + 64]
            loss = F.cross_entropy(model(d["x"][idx]), d["y"][idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        print(f"cnn epoch {ep + 1}: {time.perf_counter() - t0:.0f} s, {accuracy(model, d):.4f}")
    save(args, "cnn", model, time.perf_counter() - t0)


def train_jem(args, d) -> None:
    cnn = torch.load(Path(args.cnn or Path(args.runs) / "cnn.pt"), weights_only=True)
    model = net(args.energy_head)
    model.load_state_dict(cnn["state_dict"], strict=not args.energy_head)
    jem = JEM(model, 10)
    cfg = JEMConfig(
        steps=args.jem_steps,
        batch_size=64,
        lr=args.jem_lr,
        lr_warmup_steps=100,
        sgld_steps=args.sgld_steps,
        sgld_step_size=1.0,
        sgld_noise=0.01,
        sgld_grad_clip=args.sgld_clip,
        buffer_size=args.buffer,
        reinit_prob=args.reinit,
        data_noise=0.03,
        l2_reg=args.l2,
        gen_weight=args.gen_weight,
        grad_clip=args.clip,
        on_divergence="rollback",
        snapshot_every=100,
    )
    t0 = time.perf_counter()
    frames: list = []

    def budget(trainer, out, logs):
        if trainer.step % 50 == 0:
            print(
                {k: round(v, 4) for k, v in logs.items()},
                f"{time.perf_counter() - t0:.0f}s",
                flush=True,
            )
        if trainer.step % 250 == 0:
            frames.append((trainer.step, res_buf["b"].data[:64].clone()))
        if args.save_every and trainer.step % args.save_every == 0:
            save(
                args,
                f"jem_step{trainer.step}",
                model,
                time.perf_counter() - t0 + cnn["seconds"],
                buffer=res_buf["b"].data,
                steps=trainer.step,
                energy_head=args.energy_head,
            )
        if time.perf_counter() - t0 > 60 * args.jem_minutes:
            trainer.should_stop = True

    from torchenergy.samplers import ReplayBuffer

    lo = -1.0
    buf = ReplayBuffer(
        cfg.buffer_size,
        (1, 28, 28),
        lambda n, generator=None: lo + 2 * torch.rand(n, 1, 28, 28, generator=generator),
        reinit_prob=cfg.reinit_prob,
        generator=torch.Generator().manual_seed(1),
    )
    res_buf = {"b": buf}
    log = CSVLogger(Path(args.runs) / "jem_log.csv")
    res = fit_jem(
        jem,
        d["x"],
        d["y"],
        cfg,
        generator=torch.Generator().manual_seed(0),
        callbacks=[LambdaCallback(on_step_end=budget), log],
        buffer=buf,
    )
    secs = time.perf_counter() - t0 + cnn["seconds"]
    print(f"jem: {res.trainer.step} steps, divergences {res.divergences}")
    save(
        args,
        "jem",
        model,
        secs,
        buffer=buf.data,
        steps=res.trainer.step,
        frames=frames,
        divergences=res.divergences,
        energy_head=args.energy_head,
    )


def train_ebm(args, d) -> None:
    torch.manual_seed(0)
    energy = ConvEnergy(1, **EBM_ARCH)
    cfg = ImageEBMConfig(
        steps=args.ebm_steps,
        batch_size=64,
        lr=1e-4,
        sgld_steps=args.sgld_steps_ebm,
        sgld_step_size=10.0,
        sgld_noise=0.01,
        sgld_grad_clip=0.3,
        buffer_size=args.buffer,
        l2_reg=1.0,
        grad_clip=1.0,
        snapshot_every=100,
        n_snapshot=64,
    )
    t0 = time.perf_counter()

    def budget(trainer, out, logs):
        if trainer.step % 50 == 0:
            print(
                {k: round(v, 4) for k, v in logs.items()},
                f"{time.perf_counter() - t0:.0f}s",
                flush=True,
            )
        if time.perf_counter() - t0 > 60 * args.ebm_minutes:
            trainer.should_stop = True

    res = fit_image_ebm(
        energy,
        d["x"],
        cfg,
        generator=torch.Generator().manual_seed(0),
        callbacks=[LambdaCallback(on_step_end=budget)],
    )
    save(
        args,
        "ebm",
        energy,
        time.perf_counter() - t0,
        buffer=res.buffer.data,
        steps=res.trainer.step,
        frames=res.snapshots,
    )


def save(args, name, model, seconds, **extra) -> None:
    Path(args.runs).mkdir(parents=True, exist_ok=True)
    torch.save(
        {"state_dict": model.state_dict(), "seconds": seconds, **extra},
        Path(args.runs) / f"{name}.pt",
    )
    print(f"saved {name}: {seconds:.0f} s")


@torch.no_grad()
def accuracy(model, d) -> float:
    pred = torch.cat([model(c).argmax(1) for c in d["xt"].split(1000)])
    return float(pred.eq(d["yt"]).float().mean())


def to_library(src: Path, dst: Path, kind: str) -> Path:
    """A bench checkpoint (torch.save of a dict) as a library one (``load_image_model``)."""
    blob = torch.load(src, weights_only=True)
    arch = dict(EBM_ARCH if kind == "conv" else ARCH)
    sd = blob["state_dict"]
    if kind == "jem":  # the bench saved the classifier; the library saves the JEM
        if blob.get("energy_head"):
            arch["energy_head"] = True
        sd = {f"classifier.{k}": v for k, v in sd.items()}
    payload = {
        "kind": kind,
        "arch": {k: list(v) if isinstance(v, tuple) else v for k, v in arch.items()},
        "state_dict": sd,
        "seconds": blob["seconds"],
        "steps": blob.get("steps"),
    }
    if "buffer" in blob:
        payload["buffer"] = blob["buffer"]
    return save_checkpoint(dst, payload)


def final_jem(args, d) -> None:
    """The measured JEM: ``train_fashion_mnist("jem", ...)`` warm-started from the bench CNN."""
    runs = Path(args.runs)
    cnn = to_library(runs / "cnn.pt", runs / "cnn_library.pt", "cnn")
    kw = (
        {}
        if args.repair is None
        else {"steps": 200 + args.repair, "ce_only_final_steps": args.repair}
    )
    res = train_fashion_mnist("jem", runs / "jem_final", warm_start=cnn, **kw)
    print(res)


def evaluate(args, d) -> None:
    """Run ``evaluate_fashion_mnist`` (what ``torchenergy evaluate`` runs) on the bench's models,
    then draw the replay buffers and the training animations."""
    out, runs = Path(args.out), Path(args.runs)
    ckpts = {}
    if (runs / "cnn.pt").is_file():
        ckpts["cnn"] = to_library(runs / "cnn.pt", runs / "cnn_library.pt", "cnn")
    if (runs / "jem_final" / "checkpoint.pt").is_file():
        ckpts["jem"] = runs / "jem_final" / "checkpoint.pt"
    for extra in args.extra:  # name=path.pt (a bench JEM checkpoint)
        name, path = extra.split("=", 1)
        ckpts[name] = to_library(Path(path), runs / f"{name}_library.pt", "jem")
    if (runs / "ebm.pt").is_file():
        ckpts["ebm"] = to_library(runs / "ebm.pt", runs / "ebm_library.pt", "conv")
        blob = torch.load(runs / "ebm.pt", weights_only=True)
        save_image_animation(blob["frames"], out / "jem_training_ebm.gif", nrow=8)
        ax = plot_image_grid(
            blob["buffer"][:64], nrow=8, title="ebm replay buffer", value_range=(-1, 1)
        )
        savefig(ax, out / "jem_buffer_ebm.png")
    res = evaluate_fashion_mnist(
        ckpts, out / "jem_eval", n_ood=args.n_ood, sample_steps=args.sample_steps
    )
    (out / "jem_results.json").write_text(json.dumps(res, indent=1))
    print(format_tables(res))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument(
        "--part",
        required=True,
        choices=["train_cnn", "train_jem", "train_ebm", "final_jem", "eval"],
    )
    p.add_argument("--runs", default="runs/jem_bench")
    p.add_argument("--out", default="bench/results")
    p.add_argument("--cnn", help="CNN checkpoint to warm-start the JEM from (default RUNS/cnn.pt)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cnn-epochs", type=int, default=5)
    p.add_argument("--jem-steps", type=int, default=100000)
    p.add_argument("--jem-minutes", type=float, default=20.0)
    p.add_argument("--jem-lr", type=float, default=1e-4)
    p.add_argument("--sgld-steps", type=int, default=5)
    p.add_argument("--l2", type=float, default=1.0)
    p.add_argument("--gen-weight", type=float, default=1.0)
    p.add_argument("--clip", type=float, default=10.0)
    p.add_argument(
        "--energy-head", action="store_true", help="JEM classifier with an energy offset head"
    )
    p.add_argument("--sgld-clip", type=float, default=None)
    p.add_argument("--reinit", type=float, default=0.05)
    p.add_argument("--save-every", type=int, default=0)
    p.add_argument(
        "--repair", type=int, help="final_jem: classifier-only repair steps (default 150)"
    )
    p.add_argument("--buffer", type=int, default=10000)
    p.add_argument("--ebm-steps", type=int, default=100000)
    p.add_argument("--ebm-minutes", type=float, default=10.0)
    p.add_argument("--sgld-steps-ebm", type=int, default=10)
    p.add_argument("--n-ood", type=int, default=5000)
    p.add_argument(
        "--extra", nargs="*", default=[], help="name=bench_jem.pt variants to evaluate too"
    )
    p.add_argument("--sample-steps", type=int, default=100)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    d = data()
    {
        "train_cnn": train_cnn,
        "train_jem": train_jem,
        "train_ebm": train_ebm,
        "final_jem": final_jem,
        "eval": evaluate,
    }[args.part](args, d)


if __name__ == "__main__":
    main()
