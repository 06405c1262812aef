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

from torchenergy.data import load_animal_mnist, load_fashion_mnist, load_mnist_5k
from torchenergy.energies import ConvEnergy
from torchenergy.features import fashion_feature_net, image_features
from torchenergy.metrics import frechet_distance, kernel_distance
from torchenergy.models import (
    JEM,
    ConvClassifier,
    ImageEBMConfig,
    JEMConfig,
    fit_image_ebm,
    fit_jem,
)
from torchenergy.ood import (
    classifier_scores,
    energy_as_score,
    expected_calibration_error,
    format_report,
    gradient_norm_score,
    ood_report,
)
from torchenergy.samplers import Langevin, run_chain
from torchenergy.train import CSVLogger, LambdaCallback
from torchenergy.viz import (
    plot_image_grid,
    plot_reliability_diagram,
    plot_score_histograms,
    save_image_animation,
    savefig,
)

ARCH = dict(channels=(32, 64, 128), strides=(2, 2, 2), pool="flatten")


def net(energy_head: bool = False) -> ConvClassifier:
    return ConvClassifier(1, 10, **ARCH, energy_head=energy_head)


def data() -> dict[str, torch.Tensor]:
    x, y = load_fashion_mnist("train", flatten=False)
    xt, yt = load_fashion_mnist("test", flatten=False)
    return {"x": 2 * x - 1, "y": y, "xt": 2 * xt - 1, "yt": yt}


def ood_sets(xt: torch.Tensor, n: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(123)
    m, _ = load_mnist_5k(flatten=False)
    a, _ = load_animal_mnist(flatten=False)
    base = xt[-n:]  # the last n test images (the in-distribution set uses the first n)
    return {
        "MNIST-5k": (2 * m - 1)[:n],
        "Animal-MNIST": (2 * a - 1)[:n],
        "uniform noise": torch.rand(n, 1, 28, 28, generator=g) * 2 - 1,
        "flipped Fashion": base.flip(2),
        "inverted Fashion": -base,
    }


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
        reinit_prob=0.05,
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
    energy = ConvEnergy(1, (16, 32, 64), activation="silu")
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
    return float(
        torch.cat([model(c).argmax(1) for c in d["xt"].split(1000)]).eq(d["yt"]).float().mean()
    )


def conditional_samples(jem, init, labels, steps, g) -> torch.Tensor:
    kernel = Langevin(
        jem.conditional(labels), step_size=1.0, noise_scale=0.01 / 2**0.5, clamp=(-1.0, 1.0)
    )
    return run_chain(kernel, init, steps, generator=g, on_divergence="warn").x


def evaluate(args, d) -> None:
    out = Path(args.out)
    runs = Path(args.runs)
    n = args.n_ood
    x_in = d["xt"][:n]
    sets = ood_sets(d["xt"], n)
    fnet = fashion_feature_net(verbose=True)
    ref = image_features(fnet, d["xt"][:2000], value_range=(-1, 1))
    floor = image_features(fnet, d["x"][:2000], value_range=(-1, 1))
    g = torch.Generator().manual_seed(0)
    results: dict = {
        "feature_net_test_accuracy": fnet.test_accuracy,
        "fd_train_vs_test": float(frechet_distance(floor, ref)),
        "kid_train_vs_test": float(kernel_distance(floor, ref, generator=g).mean),
    }
    hist_scores: dict = {}
    for name in ("cnn", "jem", "ebm"):
        p = runs / f"{name}.pt"
        if not p.is_file():
            continue
        blob = torch.load(p, weights_only=True)
        r: dict = {"seconds": blob["seconds"], "steps": blob.get("steps")}
        if name == "ebm":
            e = ConvEnergy(1, (16, 32, 64), activation="silu")
            e.load_state_dict(blob["state_dict"])
            scores = {
                "energy": lambda x, e=e: energy_as_score(e, x),
                "grad_norm": lambda x, e=e: gradient_norm_score(e, x),
            }
            samples = blob["buffer"][:2000]
            samples = run_chain(
                Langevin(e, 10.0, 0.01 / 20**0.5, grad_clip=0.3, clamp=(-1.0, 1.0)),
                samples,
                50,
                generator=g,
                on_divergence="warn",
            ).x
            grid = samples[:100]
        else:
            m = net(bool(blob.get("energy_head", False)))
            m.load_state_dict(blob["state_dict"])
            m.eval()
            jem = JEM(m, 10)
            r["accuracy"] = accuracy(m, d)
            with torch.no_grad():
                probs = torch.cat([torch.softmax(m(c), -1) for c in d["xt"].split(1000)])
            r["ece"] = float(expected_calibration_error(probs, d["yt"], 15))
            ax = plot_reliability_diagram(probs, d["yt"], n_bins=15, title=name)
            savefig(ax, out / f"jem_reliability_{name}.png")
            scores = classifier_scores(m)
            labels = torch.arange(10).repeat_interleave(200)
            init = (
                blob["buffer"][:2000]
                if "buffer" in blob
                else torch.rand(2000, 1, 28, 28, generator=g) * 2 - 1
            )
            samples = conditional_samples(jem, init.clone(), labels, args.sample_steps, g)
            order = torch.arange(10)[:, None] * 200 + torch.arange(10)[None, :]
            grid = samples[order.T.flatten()]  # rows: sample index, columns: class
        rep = ood_report(scores, x_in, sets, return_scores=True)
        raw = rep.pop("_scores")
        r["ood"] = rep
        best = max(raw, key=lambda s: rep[s]["MNIST-5k"]["auroc"])
        hist_scores[name] = {k: torch.tensor(v) for k, v in raw[best].items()}
        ax = plot_score_histograms(
            {("Fashion test" if k == "in" else k): v for k, v in hist_scores[name].items()},
            title=f"{name}: {best} score",
        )
        savefig(ax, out / f"jem_scores_{name}.png")
        feats = image_features(fnet, samples[:2000], value_range=(-1, 1))
        r["frechet"] = float(frechet_distance(feats, ref))
        r["kid"] = float(kernel_distance(feats, ref, generator=g).mean)
        ax = plot_image_grid(grid, nrow=10, title=f"{name} samples", value_range=(-1, 1))
        savefig(ax, out / f"jem_samples_{name}.png")
        if blob.get("frames"):
            save_image_animation(blob["frames"], out / f"jem_training_{name}.gif", nrow=8)
            ax = plot_image_grid(
                blob["buffer"][:64], nrow=8, title=f"{name} buffer", value_range=(-1, 1)
            )
            savefig(ax, out / f"jem_buffer_{name}.png")
        results[name] = r
        print(name, json.dumps({k: v for k, v in r.items() if k != "ood"}), flush=True)
        print(format_report(rep, title=name), flush=True)
    (out / "jem_results.json").write_text(json.dumps(results, indent=1))
    (out / "jem_tables.md").write_text(tables(results))


def tables(res: dict) -> str:
    models = [m for m in ("cnn", "jem", "ebm") if m in res]
    lines = [
        "| model | train time (s) | steps | test acc | ECE (15 bins) | Fréchet (own features) | KID |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in models:
        r = res[m]
        acc = f"{r['accuracy']:.4f}" if "accuracy" in r else "–"
        ece = f"{r['ece']:.4f}" if "ece" in r else "–"
        lines.append(
            f"| {m} | {r['seconds']:.0f} | {r.get('steps') or '–'} | {acc} | {ece} | "
            f"{r['frechet']:.2f} | {r['kid']:.4f} |"
        )
    lines += [
        "",
        f"Reference: Fréchet distance train vs test images {res['fd_train_vs_test']:.2f}, "
        f"KID {res['kid_train_vs_test']:.4f} (feature net test accuracy "
        f"{res['feature_net_test_accuracy']:.4f}).",
        "",
    ]
    sets = list(next(iter(res[models[0]]["ood"].values())))
    lines += [
        "| model | score | " + " | ".join(f"{s} AUROC / FPR95" for s in sets) + " |",
        "|---|---|" + "---|" * len(sets),
    ]
    for m in models:
        for score, per in res[m]["ood"].items():
            cells = " | ".join(f"{per[s]['auroc']:.3f} / {per[s]['fpr95']:.3f}" for s in sets)
            lines.append(f"| {m} | {score} | {cells} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--part", required=True, choices=["train_cnn", "train_jem", "train_ebm", "eval"])
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
    p.add_argument("--buffer", type=int, default=10000)
    p.add_argument("--ebm-steps", type=int, default=100000)
    p.add_argument("--ebm-minutes", type=float, default=10.0)
    p.add_argument("--sgld-steps-ebm", type=int, default=10)
    p.add_argument("--n-ood", type=int, default=5000)
    p.add_argument("--sample-steps", type=int, default=100)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    d = data()
    {"train_cnn": train_cnn, "train_jem": train_jem, "train_ebm": train_ebm, "eval": evaluate}[
        args.part
    ](args, d)


if __name__ == "__main__":
    main()
