"""Train an energy-based model on a 2-D density with persistent contrastive divergence.

A plain PyTorch set-up (energy network, sampler, replay buffer, loss, Adam) with the optional
``Trainer`` for the loop, EMA, logging and checkpoints. Run:

    python examples/train_2d.py --data moons --steps 1500 --out runs/example

and look at ``runs/example/*.png``. Interrupt it (Ctrl-C) and run the same command with
``--resume``: it continues bit-identically, as if it had never stopped. Ctrl-C lets the current
step finish and ``CheckpointEvery`` then saves that step (a checkpoint only ever holds a step
boundary), with the same torch thread count it needs to be bit-identical.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from torchenergy.data import sample_toy
from torchenergy.energies import MLPEnergy
from torchenergy.losses import PersistentNegatives, contrastive_divergence
from torchenergy.metrics import grid_nll
from torchenergy.samplers import Langevin, ReplayBuffer
from torchenergy.train import CheckpointEvery, CSVLogger, Trainer
from torchenergy.viz import plot_density, plot_samples, plot_training_curves, savefig


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="moons")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--out", default="runs/example")
    p.add_argument("--sample-steps", type=int, default=500, help="Langevin steps for the plot")
    p.add_argument("--resume", action="store_true")
    args = p.parse_args()
    out = Path(args.out)

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)  # drives data, buffer restarts and Langevin noise
    energy = MLPEnergy(2, (64, 64))
    langevin = Langevin(energy, step_size=0.01)  # x' = x - eps grad E + sqrt(2 eps) z
    noise = lambda n, generator=None: 4.5 * (2 * torch.rand(n, 2, generator=generator) - 1)  # noqa: E731
    buffer = ReplayBuffer(10_000, (2,), noise, generator=g)
    negatives = PersistentNegatives(langevin, buffer, n_steps=20)

    def step_fn(x_pos: torch.Tensor):
        x_neg = negatives(x_pos, generator=g)
        return contrastive_divergence(energy, x_pos, x_neg, l2_reg=0.1)

    trainer = Trainer(
        energy,
        torch.optim.Adam(energy.parameters(), lr=2e-3, betas=(0.0, 0.999)),
        step_fn,
        ema=0.99,
        generators={"g": g},
        state={"buffer": buffer},
        callbacks=[CSVLogger(out / "log.csv"), CheckpointEvery(out / "checkpoint.pt", every=100)],
    )
    if args.resume:
        trainer.load(out / "checkpoint.pt")
    try:
        trainer.fit(lambda: sample_toy(args.data, 256, generator=g), max_steps=args.steps)
    except KeyboardInterrupt:  # the checkpoint now holds the last completed step
        print(f"interrupted after step {trainer.step}; run again with --resume", file=sys.stderr)
        raise SystemExit(130) from None

    model = trainer.ema.module
    test = sample_toy(args.data, 2000, generator=torch.Generator().manual_seed(1))
    print(f"held-out NLL: {float(grid_nll(model, test, bounds=4.5, max_edge_mass=1.0)):.3f} nats")
    savefig(plot_density(model, xlim=(-4.5, 4.5), ylim=(-4.5, 4.5)), out / "density.png")
    x0 = noise(1000, generator=g)
    samples = Langevin(model, step_size=0.01).sample(x0, args.sample_steps, generator=g)
    savefig(plot_samples(samples, test, xlim=(-4.5, 4.5), ylim=(-4.5, 4.5)), out / "samples.png")
    savefig(
        plot_training_curves(out / "log.csv", keys=["loss", "gap"], smooth=10), out / "curves.png"
    )
    print(f"wrote {out}/density.png, samples.png, curves.png, checkpoint.pt")


if __name__ == "__main__":
    main()
