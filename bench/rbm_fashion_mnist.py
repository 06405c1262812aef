"""RBMs on Fashion-MNIST: CD-1, CD-10 and PCD against scikit-learn's BernoulliRBM, all scored by AIS.

Binarised at 0.5, 500 hidden units, the same epochs, batch size and learning rate for every model.
For each model: AIS test log-likelihood (forward AIS, Salakhutdinov & Murray base-rate path) with
its reverse-AIS bracket (reverse AIS started from the end of long Gibbs chains, so the lower end
is approximate), the pseudo-log-likelihood summed over all pixels, time per epoch, a grid of
samples and the filters. ``--part gaussian`` trains a Gaussian-Bernoulli RBM on the real-valued
images and saves its samples.

Run (background, it takes a while on 2 shared cores)::

    PYTHONPATH=$PWD nohup python bench/rbm_fashion_mnist.py --part binary > bench/results/rbm_binary.log &
    PYTHONPATH=$PWD nohup python bench/rbm_fashion_mnist.py --part gaussian > bench/results/rbm_gauss.log &
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from torchenergy.data import load_fashion_mnist
from torchenergy.estimate import (
    RBMAnnealingPath,
    ais,
    base_rate_bias,
    pseudo_log_likelihood,
    reverse_ais,
)
from torchenergy.models import BernoulliRBM, BlockGibbs, GaussianBernoulliRBM, fit_rbm


def save_grid(images: np.ndarray, path: Path, nrow: int = 10, scale: int = 2) -> None:
    """Save (N, 28, 28) images in [0, 1] as one PNG grid."""
    from PIL import Image

    n = images.shape[0]
    ncol = int(np.ceil(n / nrow))
    h, w = images.shape[1:]
    grid = np.ones((nrow * (h + 2), ncol * (w + 2)), dtype=np.float32)
    for i in range(n):
        r, c = divmod(i, ncol)
        grid[r * (h + 2) + 1 : r * (h + 2) + 1 + h, c * (w + 2) + 1 : c * (w + 2) + 1 + w] = images[
            i
        ]
    img = Image.fromarray((np.clip(grid, 0, 1) * 255).astype(np.uint8))
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    img.save(path)


def filters_png(w: torch.Tensor, path: Path, n: int = 100) -> None:
    f = w[:, :n].T.detach().cpu().numpy().reshape(-1, 28, 28)
    lo = f.min(axis=(1, 2), keepdims=True)
    hi = f.max(axis=(1, 2), keepdims=True)
    save_grid((f - lo) / (hi - lo + 1e-12), path)


def from_sklearn(sk, dtype=torch.float32) -> BernoulliRBM:
    rbm = BernoulliRBM(sk.components_.shape[1], sk.components_.shape[0], dtype=dtype)
    with torch.no_grad():
        rbm.W.copy_(torch.as_tensor(sk.components_.T))
        rbm.b.copy_(torch.as_tensor(sk.intercept_visible_))
        rbm.c.copy_(torch.as_tensor(sk.intercept_hidden_))
    return rbm


def model_chains(rbm, args, g, start=None):
    """``args.n_chains`` block-Gibbs chains after ``args.gibbs_steps`` steps, from ``start`` rows
    (random training images) or, if None, from uniform noise."""
    with torch.no_grad():
        if start is None:
            v0 = torch.bernoulli(torch.full((args.n_chains, 784), 0.5), generator=g)
        else:
            v0 = start[torch.randint(0, start.shape[0], (args.n_chains,), generator=g)]
        return BlockGibbs(rbm).sample(v0, args.gibbs_steps, generator=g)


def evaluate(name, rbm, test, base_bias, args, out, g, train=None, save=True):
    """AIS / reverse-AIS test log-likelihood, pseudo-likelihood, samples and filters.

    Reverse AIS starts from ``args.n_chains`` Gibbs chains run ``args.gibbs_steps`` steps from
    random *training* images (``--chain-init data``, the default) or from noise. From noise, block
    Gibbs falls into the largest mode (pullovers) and stays there, so the reverse chains miss
    most of the model's mass and reverse AIS can land *below* forward AIS (an inverted bracket);
    chains started at data spread over the modes the data supports. Neither is an exact sample,
    so the lower end of the bracket stays approximate.
    """
    t0 = time.perf_counter()
    start = train if args.chain_init == "data" and train is not None else None
    chains = model_chains(rbm, args, g, start)
    with torch.no_grad():
        shown = rbm.visible_mean(rbm.sample_hidden(chains, generator=g))
    if save:
        save_grid(shown[:100].reshape(-1, 28, 28).numpy(), out / f"rbm_{name}_samples.png")
        noise = model_chains(rbm, args, g, None)
        with torch.no_grad():
            shown_n = rbm.visible_mean(rbm.sample_hidden(noise, generator=g))
        save_grid(shown_n[:100].reshape(-1, 28, 28).numpy(), out / f"rbm_{name}_samples_noise.png")
        filters_png(rbm.W, out / f"rbm_{name}_filters.png")
    path = RBMAnnealingPath(rbm, base_bias)
    fwd = ais(path, args.n_betas, args.n_chains, generator=g)
    rev = reverse_ais(path, args.n_betas, chains, generator=g)
    with torch.no_grad():
        neg_f = float(-rbm(test).double().mean())
        pl = float(pseudo_log_likelihood(rbm, test[: args.pl_rows]).mean())
    rec = {
        "model": name,
        "test_ll": neg_f - float(fwd.log_z),
        "ll_lower": neg_f - float(rev.log_z),
        "ll_upper": neg_f - float(fwd.log_z),
        "log_z": float(fwd.log_z),
        "log_z_se": float(fwd.stderr),
        "log_z_rev": float(rev.log_z),
        "log_z_rev_se": float(rev.stderr),
        "ess": float(fwd.ess),
        "pseudo_ll": pl,
        "eval_s": time.perf_counter() - t0,
    }
    print(json.dumps(rec), flush=True)
    return rec


def write_table(args, out, results, timing, n_train, n_test):
    lines = [
        f"Fashion-MNIST binarised at 0.5, 500 hidden, {args.epochs} epochs, batch {args.batch_size}, "
        f"lr {args.lr} (ours: momentum {args.momentum}), train {n_train}, test {n_test}; AIS "
        f"{args.n_betas} betas x {args.n_chains} chains; reverse AIS from {args.n_chains} Gibbs "
        f"chains after {args.gibbs_steps} steps from {args.chain_init}; PCD: lr {args.pcd_lr}, "
        f"lr decay {args.pcd_lr_decay}, momentum {args.pcd_momentum} (picked on validation rows, "
        f"see rbm_select table); torch threads {torch.get_num_threads()}.",
        "",
        "| model | test LL (nats) | bracket [reverse, forward] | log Z ± se | ESS | pseudo-LL (all pixels) | s/epoch | sklearn s/epoch ÷ ours |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        ratio = timing.get("sklearn", float("nan")) / r["s_per_epoch"]
        lines.append(
            f"| {r['model']} | {r['test_ll']:.2f} | [{r['ll_lower']:.2f}, {r['ll_upper']:.2f}] | "
            f"{r['log_z']:.2f} ± {r['log_z_se']:.2f} | {r['ess']:.0f} | {r['pseudo_ll']:.2f} | "
            f"{r['s_per_epoch']:.1f} | {ratio:.2f} |"
        )
    if "sklearn_float32" in timing:
        sk = [r for r in results if r["model"] == "sklearn"]
        lines += [
            "",
            f"scikit-learn with float32 input: {timing['sklearn_float32']:.1f} s/epoch (ratio to our "
            f"PCD {timing['sklearn_float32'] / timing.get('pcd', float('nan')):.2f}). "
            "scikit-learn's own score_samples "
            f"(one random pixel × 784) on the same rows: "
            f"{sk[0].get('sklearn_score_samples', float('nan')) if sk else float('nan'):.2f}.",
        ]
    (out / f"rbm_fashion_mnist{args.tag}_table.md").write_text("\n".join(lines) + "\n")
    (out / f"rbm_fashion_mnist{args.tag}.json").write_text(
        json.dumps({"args": vars(args), "results": results, "timing": timing}, indent=1)
    )
    print("\n".join(lines), flush=True)


def train_ours(name, train, bb, args, g):
    """One of our RBMs: ``cd1``, ``cd10``, ``pcd`` (PCD's own lr / decay / momentum), ``pcdh``
    (the same with ``chain_state="hidden"``, scikit-learn's PCD rule), trained with the fused
    trainer's defaults, with ``_fp32`` for float32 throughout or ``_bf16`` for every product in
    bf16; returns ``(rbm, seconds per epoch)``."""
    base = name.removesuffix("_bf16").removesuffix("_fp32")
    kw = {
        "cd1": {"k": 1},
        "pcd": {"persistent": True},
        "pcdh": {"persistent": True, "chain_state": "hidden"},
        "cd10": {"k": 10},
    }[base]
    if name.endswith("_fp32"):
        kw["grad_dtype"] = torch.float32
    if base.startswith("pcd"):
        opt = {"lr": args.pcd_lr, "lr_decay": args.pcd_lr_decay, "momentum": args.pcd_momentum}
    else:
        opt = {"lr": args.lr, "lr_decay": args.lr_decay, "momentum": args.momentum}
    rbm = BernoulliRBM(784, 500, generator=g)
    with torch.no_grad():
        rbm.b.copy_(bb)
    hist = fit_rbm(
        rbm,
        train,
        epochs=args.epochs,
        batch_size=args.batch_size,
        matmul_dtype=torch.bfloat16 if name.endswith("_bf16") else None,
        generator=g,
        **opt,
        **kw,
    )
    print(json.dumps({"model": name, "history": hist}), flush=True)
    return rbm, float(np.mean([h["seconds"] for h in hist]))


def load_split(args):
    """Training rows ``[0, train_limit)``, validation rows ``[50000, 50000 + val_rows)`` of the
    training file (never used for training), and the test file."""
    full, _ = load_fashion_mnist("train", binarize=0.5)
    train = full[: args.train_limit or 50000]
    val = full[50000 : 50000 + args.val_rows]
    test, _ = load_fashion_mnist("test", binarize=0.5)
    return train, val, test


def binary(args, out):
    from sklearn.neural_network import BernoulliRBM as SkRBM

    train, _, test = load_split(args)
    bb = base_rate_bias(train)
    models = Path(args.models)
    models.mkdir(parents=True, exist_ok=True)
    results, timing = [], {}
    # warm-up (thread pools, allocator) so that the first timed epoch is not penalised
    fit_rbm(BernoulliRBM(784, 500), train[:2000], epochs=1, batch_size=100)
    SkRBM(n_components=500, batch_size=100, n_iter=1).fit(train[:2000].numpy())
    for name in args.only.split(","):
        g = torch.Generator().manual_seed(args.seed)
        if name == "sklearn":
            sk = SkRBM(
                n_components=500,
                learning_rate=args.lr,
                batch_size=args.batch_size,
                n_iter=args.epochs,
                random_state=args.seed,
            )
            t0 = time.perf_counter()
            sk.fit(train.numpy().astype(np.float64))
            timing[name] = (time.perf_counter() - t0) / args.epochs
            rbm = from_sklearn(sk)
        else:
            rbm, timing[name] = train_ours(name, train, bb, args, g)
        label = name + args.tag
        torch.save(rbm.state_dict(), models / f"{label}.pt")
        rec = evaluate(label, rbm, test, bb, args, out, g, train=train)
        rec["s_per_epoch"] = timing[name]
        if name == "sklearn":
            with torch.no_grad():
                x64 = test[: args.pl_rows].numpy().astype(np.float64)
                rec["sklearn_score_samples"] = float(sk.score_samples(x64).mean())
            sk32 = SkRBM(
                n_components=500,
                learning_rate=args.lr,
                batch_size=args.batch_size,
                n_iter=1,
                random_state=0,
            )
            t0 = time.perf_counter()
            sk32.fit(train.numpy().astype(np.float32))
            timing["sklearn_float32"] = time.perf_counter() - t0
        results.append(rec)
        write_table(args, out, results, timing, train.shape[0], test.shape[0])


def select(args, out):
    """Pick PCD's learning rate, decay and momentum on validation rows (never on test).

    Every candidate is trained like ``--part binary`` and scored on the validation rows with a
    cheaper AIS (``--sel-betas`` x ``--sel-chains``) and its reverse-AIS bracket; the pick is the
    best *lower* end of the bracket (the conservative estimate) among brackets that are not
    inverted.
    """
    train, val, _ = load_split(args)
    bb = base_rate_bias(train)
    sel = argparse.Namespace(**vars(args))
    sel.n_betas, sel.n_chains, sel.gibbs_steps = args.sel_betas, args.sel_chains, args.sel_gibbs
    rows = []
    for cand in args.candidates.split(";"):
        lr, decay, mom = cand.split(",")
        sel.pcd_lr, sel.pcd_lr_decay, sel.pcd_momentum = float(lr), decay, float(mom)
        g = torch.Generator().manual_seed(0)
        rbm, spe = train_ours("pcd", train, bb, sel, g)
        rec = evaluate(f"sel_{cand}", rbm, val, bb, sel, out, g, train=train, save=False)
        rec.update({"lr": float(lr), "lr_decay": decay, "momentum": float(mom), "s_per_epoch": spe})
        rows.append(rec)
    lines = [
        f"PCD hyperparameters on validation rows 50000..{50000 + args.val_rows} of the training "
        f"file (train {train.shape[0]} rows, {args.epochs} epochs, batch {args.batch_size}, "
        f"{args.n_chains_pcd} chains); AIS {args.sel_betas} betas x {args.sel_chains} chains, "
        f"reverse AIS from chains after {args.sel_gibbs} Gibbs steps from {args.chain_init}.",
        "",
        "| lr | lr decay | momentum | val LL [reverse, forward] | ESS | val pseudo-LL |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['lr']} | {r['lr_decay']} | {r['momentum']} | "
            f"[{r['ll_lower']:.2f}, {r['ll_upper']:.2f}] | {r['ess']:.0f} | {r['pseudo_ll']:.2f} |"
        )
    ok = [r for r in rows if r["ll_lower"] <= r["ll_upper"] + 2 * r["log_z_se"]] or rows
    best = max(ok, key=lambda r: r["ll_lower"])
    lines += [
        "",
        f"Picked: lr {best['lr']}, lr decay {best['lr_decay']}, momentum {best['momentum']}.",
    ]
    (out / f"rbm_select{args.tag}.md").write_text("\n".join(lines) + "\n")
    (out / f"rbm_select{args.tag}.json").write_text(json.dumps(rows, indent=1))
    print("\n".join(lines), flush=True)


def reevaluate(args, out):
    """AIS again (``--n-betas``) for models saved by ``--part binary`` under ``--models``."""
    train, _, test = load_split(args)
    bb = base_rate_bias(train)
    for name in args.only.split(","):
        rbm = BernoulliRBM(784, 500)
        rbm.load_state_dict(torch.load(Path(args.models) / f"{name}.pt", weights_only=True))
        g = torch.Generator().manual_seed(1)
        rec = evaluate(f"{name}_betas{args.n_betas}", rbm, test, bb, args, out, g, train=train)
        (out / f"rbm_reeval_{name}_{args.n_betas}.json").write_text(json.dumps(rec, indent=1))


def timing(args, out):
    """Seconds per epoch only, interleaved repeats: ours (the fused trainer's default, its
    all-float32 mode ``_fp32``, all products in bf16 ``_bf16``, and the generic cd_step path
    ``_generic``) against scikit-learn (float64 / float32)."""
    from sklearn.neural_network import BernoulliRBM as SkRBM

    train, _ = load_fashion_mnist("train", binarize=0.5, limit=args.train_limit)
    fit_rbm(BernoulliRBM(784, 500), train[:2000], epochs=1, batch_size=100)  # warm-up
    fit_rbm(BernoulliRBM(784, 500), train[:2000], epochs=1, batch_size=100, fused=False)
    names = args.timing_models.split(",")
    clock = time.process_time if args.clock == "process" else time.perf_counter
    runs: dict[str, list[float]] = {}
    for _ in range(args.repeats):
        for name in names:
            if name.startswith("sklearn"):
                sk = SkRBM(
                    n_components=500,
                    learning_rate=args.lr,
                    batch_size=args.batch_size,
                    n_iter=1,
                    random_state=0,
                )
                x = train.numpy().astype(np.float32 if name == "sklearn_float32" else np.float64)
                t0 = clock()
                sk.fit(x)
                runs.setdefault(name, []).append(clock() - t0)
                continue
            g = torch.Generator().manual_seed(0)
            kw = {"persistent": True} if name.startswith("pcd") else {"k": 1}
            if name.startswith("pcdh"):
                kw["chain_state"] = "hidden"
            md = torch.bfloat16 if "bf16" in name else None
            # "_fp32": every product in float32 (grad_dtype float32); default: the trainer's
            # "auto" (the weight-gradient product in bf16 on CPUs with native bf16)
            gd = torch.float32 if name.endswith("_fp32") else "auto"
            rbm = BernoulliRBM(784, 500, generator=g)
            t0 = clock()
            fit_rbm(
                rbm,
                train,
                epochs=1,
                batch_size=args.batch_size,
                lr=args.lr,
                momentum=args.momentum,
                matmul_dtype=md,
                grad_dtype=gd if not (md or name.endswith("_generic")) else "auto",
                fused=not name.endswith("_generic"),
                generator=g,
                **kw,
            )
            runs.setdefault(name, []).append(clock() - t0)
        print(json.dumps(runs), flush=True)
    best = {k: min(v) for k, v in runs.items()}
    med = {k: float(np.median(v)) for k, v in runs.items()}
    lines = [
        f"Seconds per epoch ({train.shape[0]} rows, batch {args.batch_size}, 500 hidden, torch threads "
        f"{torch.get_num_threads()}, {args.clock} clock), best (and median) of {args.repeats} "
        "interleaved repeats; "
        "`_generic` = the cd_step path (fit_rbm(fused=False)).",
        "",
        "| trainer | s/epoch best | median | scikit-learn (float64) ÷ this | scikit-learn (float32) ÷ this |",
        "|---|---|---|---|---|",
    ]
    for k, v in best.items():
        lines.append(
            f"| {k} | {v:.3f} | {med[k]:.3f} | {best.get('sklearn', float('nan')) / v:.2f} | "
            f"{best.get('sklearn_float32', float('nan')) / v:.2f} |"
        )
    (out / f"rbm_timing{args.tag}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def gaussian(args, out):
    train, _ = load_fashion_mnist("train", limit=args.train_limit)
    test, _ = load_fashion_mnist("test")
    # per-pixel mean, one global scale: a per-pixel scale blows the rare non-zero values of
    # near-constant border pixels up to 10+ standard deviations
    mu, sd = train.mean(0), torch.full((784,), float(train.std()))
    xs = (train - mu) / sd
    g = torch.Generator().manual_seed(0)
    # σ starts at 1 for every pixel and is learned slowly (sigma_lr_scale); initialising it from
    # the data variance diverges: near-constant border pixels get tiny σ² while their rare
    # large values then blow up the weight gradient (v/σ²)·p(h|v).
    rbm = GaussianBernoulliRBM(
        784, args.hidden_gauss, learn_sigma=not args.gauss_fixed_sigma, min_var=0.05, generator=g
    )
    with torch.no_grad():
        rbm.b.copy_(xs.mean(0))
    hist = fit_rbm(
        rbm,
        xs,
        epochs=args.epochs_gauss,
        batch_size=args.batch_size,
        lr=args.lr_gauss,
        momentum=0.9,
        weight_decay=1e-4,
        sigma_lr_scale=0.1,
        persistent=args.gauss_persistent,
        lr_decay=args.lr_decay,
        generator=g,
    )
    print(json.dumps({"model": "gbrbm", "history": hist}), flush=True)
    tag = args.tag
    with torch.no_grad():
        v0 = rbm.b + torch.randn(100, 784, generator=g) * rbm.var.sqrt()
        chains = BlockGibbs(rbm).sample(v0, args.gibbs_steps, generator=g)
        mean = rbm.visible_mean(rbm.sample_hidden(chains, generator=g))
        img = (mean * sd + mu).clamp(0, 1)
        recon = rbm.visible_mean(rbm.hidden_probs((test[:50] - mu) / sd)) * sd + mu
    save_grid(img.reshape(-1, 28, 28).numpy(), out / f"gbrbm{tag}_samples.png")
    pairs = torch.stack([test[:50], recon.clamp(0, 1)], 1).reshape(-1, 28, 28)
    save_grid(pairs.numpy(), out / f"gbrbm{tag}_reconstructions.png")
    filters_png(rbm.W, out / f"gbrbm{tag}_filters.png")
    path = RBMAnnealingPath(rbm)
    fwd = ais(path, args.n_betas, args.n_chains, generator=g)
    rev = reverse_ais(path, args.n_betas, chains, generator=g)
    with torch.no_grad():
        # density of the standardised pixels -> of the original ones: minus sum log sd
        neg_f = float(-rbm((test - mu) / sd).double().mean()) - float(torch.log(sd).sum())
    rec = {
        "model": "gbrbm",
        "test_ll": neg_f - float(fwd.log_z),
        "ll_lower": neg_f - float(rev.log_z),
        "log_z_se": float(fwd.stderr),
        "ess": float(fwd.ess),
        "s_per_epoch": float(np.mean([h["seconds"] for h in hist])),
        "sigma_range": [float(rbm.var.detach().sqrt().min()), float(rbm.var.detach().sqrt().max())],
    }
    print(json.dumps(rec), flush=True)
    (out / f"gbrbm{tag}_fashion_mnist.json").write_text(
        json.dumps({"args": vars(args), "result": rec}, indent=1)
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--part", choices=["binary", "gaussian", "timing", "reeval", "select"], default="binary"
    )
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--timing-models",
        default="cd1,pcd,cd1_fp32,pcd_fp32,cd1_bf16,pcd_bf16,cd1_generic,pcd_generic,sklearn,"
        "sklearn_float32",
        help="--part timing: what to time",
    )
    p.add_argument("--gauss-persistent", action="store_true", help="PCD for the Gaussian RBM")
    p.add_argument("--gauss-fixed-sigma", action="store_true", help="σ = 1 (not learned)")
    p.add_argument("--tag", default="", help="suffix of the Gaussian RBM output files")
    p.add_argument("--lr-decay", default="none", choices=["none", "linear"])
    p.add_argument("--only", default="cd1,pcd,sklearn,cd10", help="binary models to run")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--epochs-gauss", type=int, default=10)
    p.add_argument("--hidden-gauss", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--lr-gauss", type=float, default=0.002)
    p.add_argument("--momentum", type=float, default=0.5)
    p.add_argument("--pcd-lr", type=float, default=0.05)
    p.add_argument("--pcd-lr-decay", default="none", choices=["none", "linear"])
    p.add_argument("--pcd-momentum", type=float, default=0.5)
    p.add_argument("--n-chains-pcd", type=int, default=100, help="(= batch size; reported only)")
    p.add_argument("--val-rows", type=int, default=5000)
    p.add_argument("--chain-init", default="data", choices=["data", "noise"])
    p.add_argument(
        "--candidates",
        default="0.05,none,0.5;0.05,linear,0.5;0.02,none,0.5;0.02,linear,0.5;"
        "0.01,none,0.5;0.01,linear,0.5;0.005,none,0.5;0.05,none,0.0",
        help="--part select: 'lr,decay,momentum;...'",
    )
    p.add_argument(
        "--clock",
        default="wall",
        choices=["wall", "process"],
        help="--part timing: wall clock, or process CPU time (with one thread: robust to a "
        "loaded machine; set OMP/OPENBLAS_NUM_THREADS=1 so scikit-learn's BLAS is single too)",
    )
    p.add_argument("--sel-betas", type=int, default=1000)
    p.add_argument("--sel-chains", type=int, default=50)
    p.add_argument("--sel-gibbs", type=int, default=1000)
    p.add_argument("--train-limit", type=int, default=None)
    p.add_argument("--n-betas", type=int, default=3000)
    p.add_argument("--n-chains", type=int, default=100)
    p.add_argument("--gibbs-steps", type=int, default=2000)
    p.add_argument("--pl-rows", type=int, default=500)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0, help="--part binary: the models' seed")
    p.add_argument("--out", default="bench/results")
    p.add_argument("--models", default="runs/rbm_bench", help="where trained weights are saved")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    parts = {
        "binary": binary,
        "gaussian": gaussian,
        "timing": timing,
        "reeval": reevaluate,
        "select": select,
    }
    parts[args.part](args, out)


if __name__ == "__main__":
    main()
