"""Train a Bernoulli RBM on binarised Fashion-MNIST, score it by AIS and save samples and filters.

    PYTHONPATH=$PWD python examples/rbm_fashion_mnist.py --epochs 5
    PYTHONPATH=$PWD python examples/rbm_fashion_mnist.py --epochs 5 --persistent   # PCD
    PYTHONPATH=$PWD python examples/rbm_fashion_mnist.py --quick   # a few seconds

Needs the Debian package: ``sudo apt-get install dataset-fashion-mnist``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from torchenergy.data import load_fashion_mnist
from torchenergy.estimate import base_rate_bias, rbm_ais_log_likelihood
from torchenergy.models import BernoulliRBM, BlockGibbs


def save_grid(images: torch.Tensor, path: Path, nrow: int = 10) -> None:
    """(N, 784) images in [0, 1] -> one PNG."""
    from PIL import Image

    n = images.shape[0]
    ncol = (n + nrow - 1) // nrow
    grid = torch.ones(nrow * 30, ncol * 30)
    for i, img in enumerate(images.reshape(-1, 28, 28)):
        r, c = divmod(i, ncol)
        grid[r * 30 + 1 : r * 30 + 29, c * 30 + 1 : c * 30 + 29] = img
    Image.fromarray((grid.clamp(0, 1) * 255).byte().numpy()).save(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--hidden", type=int, default=500)
    ap.add_argument("--k", type=int, default=1, help="CD-k steps")
    ap.add_argument("--persistent", action="store_true", help="PCD instead of CD-k")
    ap.add_argument(
        "--lr",
        type=float,
        default=None,
        help="learning rate (default: 0.05 for CD; for PCD 0.1 falling linearly to 0, the "
        "recipe bench/rbm_fashion_mnist.py --part select picked on validation rows: at a "
        "constant rate PCD's last parameters carry large spurious modes)",
    )
    ap.add_argument("--quick", action="store_true", help="tiny run (smoke test)")
    ap.add_argument("--out", default="runs/rbm_fashion_mnist")
    args = ap.parse_args()
    limit, n_betas, hidden = (None, 2000, args.hidden) if not args.quick else (1000, 50, 32)
    epochs = 1 if args.quick else args.epochs

    g = torch.Generator().manual_seed(0)
    train, _ = load_fashion_mnist("train", binarize=0.5, limit=limit)
    test, _ = load_fashion_mnist("test", binarize=0.5, limit=limit)

    rbm = BernoulliRBM(784, hidden, generator=g)
    with torch.no_grad():
        rbm.b.copy_(base_rate_bias(train))  # start from the pixel log-odds
    history = rbm.fit(
        train,
        epochs=epochs,
        batch_size=100,
        lr=args.lr or (0.1 if args.persistent else 0.05),
        lr_decay="linear" if args.persistent else "none",
        k=args.k,
        persistent=args.persistent,
        momentum=0.5,
        generator=g,
        callback=lambda e, r: print(
            f"epoch {e}: recon {r['recon_error']:.4f} ({r['seconds']:.1f}s)"
        ),
    )

    # samples: block Gibbs from random training images, shown as p(v | h) (from noise, the
    # chains all fall into the largest mode, pullovers, and stay there for thousands of steps)
    with torch.no_grad():
        start = train[torch.randint(0, train.shape[0], (100,), generator=g)]
        v = BlockGibbs(rbm).sample(start, 1000 if not args.quick else 10, generator=g)
        shown = rbm.visible_mean(rbm.sample_hidden(v, generator=g))
    est = rbm_ais_log_likelihood(
        rbm,
        test,
        n_betas=n_betas,
        n_chains=100,
        base_bias=base_rate_bias(train),
        reverse_samples=v,
        generator=g,
    )
    print(
        f"test log-likelihood {est.mean:.2f} nats (AIS se {est.stderr:.2f}), bracket [{est.lower:.2f}, {est.upper:.2f}]"
    )

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_grid(shown, out / "samples.png")
    w = rbm.W[:, :100].T.detach()
    w = (w - w.min(1, keepdim=True).values) / (
        w.max(1, keepdim=True).values - w.min(1, keepdim=True).values
    )
    save_grid(w, out / "filters.png")
    print(f"wrote {out}/samples.png and filters.png after {len(history)} epoch(s)")


if __name__ == "__main__":
    main()
