"""Test-time composition with a JEM on Fashion-MNIST, each shown as a picture:

1. product of experts: class "Sneaker" AND a darkness constraint (mean pixel near a target), and
   class "Trouser" AND an empty top band (a region constraint);
2. inpainting: the left half of test images observed (kept bit for bit), the right half sampled
   from the class-conditional energy;
3. denoising by energy descent on ``E(x) + |x - y|^2 / (2 sigma^2)``.

    PYTHONPATH=. python examples/image_composition.py --checkpoint runs/jem_example/jem/checkpoint.pt
    PYTHONPATH=. python examples/image_composition.py --quick      # an untrained JEM, a smoke run

Writes ``OUT/composition.png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from torchenergy.cli.image_recipes import CNN_ARCH, load_image_model
from torchenergy.data import load_fashion_mnist
from torchenergy.image_tasks import brightness_penalty, denoise, inpaint, region_penalty
from torchenergy.models import JEM, ConvClassifier
from torchenergy.samplers import Langevin, run_chain
from torchenergy.viz import make_grid, new_axes, savefig

SNEAKER, TROUSER = 7, 1


def sample(energy, n, steps, g, init=None):
    x0 = init if init is not None else torch.rand(n, 1, 28, 28, generator=g) * 2 - 1
    kernel = Langevin(energy, step_size=1.0, noise_scale=0.01 / 2**0.5, clamp=(-1.0, 1.0))
    return run_chain(kernel, x0, steps, generator=g, on_divergence="warn").x


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--checkpoint", help="a JEM checkpoint of torchenergy.cli.image_recipes")
    p.add_argument("--out", default="runs/composition")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--quick", action="store_true")
    p.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (1 is fastest when shared)"
    )
    args = p.parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(threads)


def _run(args: argparse.Namespace) -> Path:
    g = torch.Generator().manual_seed(0)
    steps = 3 if args.quick else args.steps
    init = None
    if args.checkpoint and not args.quick:
        kind, jem, ckpt = load_image_model(args.checkpoint)
        if kind != "jem":
            raise SystemExit(f"--checkpoint must hold a jem model, got {kind!r}")
        init = ckpt.get("buffer")
    else:
        jem = JEM(ConvClassifier(1, 10, **CNN_ARCH), 10)
    jem.requires_grad_(False)
    n = 10
    start = (lambda k: init[k * n : (k + 1) * n].clone()) if init is not None else (lambda k: None)
    # 1. product of experts: class AND constraint
    dark = jem.conditional(SNEAKER).constrained(brightness_penalty(-0.8), weight=0.3)
    plain = sample(jem.conditional(SNEAKER), n, steps, g, start(0))
    dark_s = sample(dark, n, steps, g, start(1))
    band = torch.zeros(1, 28, 28, dtype=torch.bool)
    band[:, :8] = True
    trouser = jem.conditional(TROUSER).constrained(region_penalty(band, -1.0), weight=0.3)
    trouser_s = sample(trouser, n, steps, g, start(2))
    # 2. inpainting and 3. denoising on test images
    xt, yt = load_fashion_mnist("test", flatten=False, limit=n)
    xt = 2 * xt - 1
    mask = torch.zeros(1, 28, 28, dtype=torch.bool)
    mask[:, :, :14] = True
    filled = inpaint(jem.conditional(yt), xt, mask, n_steps=steps, generator=g)
    assert torch.equal(filled[:, mask], xt[:, mask])  # observed pixels kept bit for bit
    noisy = (xt + 0.4 * torch.randn(xt.shape, generator=g)).clamp(-1, 1)
    clean = denoise(jem, noisy, n_steps=max(steps // 2, 1), step_size=0.05, sigma=0.4)
    observed = torch.where(mask, xt, torch.zeros_like(xt))
    rows = [
        ("sneaker", plain),
        ("sneaker AND dark", dark_s),
        ("trouser AND empty top", trouser_s),
        ("test images", xt),
        ("left half observed", observed),
        ("inpainted", filled),
        ("noisy (σ=0.4)", noisy),
        ("denoised", clean),
    ]
    ax = new_axes(1, size=8.0)
    tile = make_grid(torch.cat([r for _, r in rows]), nrow=n, value_range=(-1, 1))
    ax.imshow(tile, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_yticks([15 + 29 * i for i in range(len(rows))], [name for name, _ in rows])
    ax.set_xticks([])
    ax.set_title("JEM composition, inpainting, denoising")
    return savefig(ax, Path(args.out) / "composition.png")


if __name__ == "__main__":
    print(main())
