"""How large is the rounding error of a bf16 weight-gradient product, next to sampling noise?

An RBM is trained for a few epochs in float32 on binarised Fashion-MNIST; then, from that one
state, the fused trainer makes one update (lr 1, no momentum, no decay, so the update is the
gradient) with the gradient product in float32, in bf16 with centred columns (the default on
CPUs with native bf16) and in bf16 without centring (what ``matmul_dtype=torch.bfloat16`` does to
that product). The draws are the same in all three (same uniform stream, float32 forward
products), so the differences are rounding alone. The reference for "small" is the sampling noise
of the gradient itself: the same update with another uniform stream.

    PYTHONPATH=$PWD python bench/rbm_grad_precision.py
"""

from __future__ import annotations

import argparse

import torch

from torchenergy.data import load_fashion_mnist
from torchenergy.models import BernoulliRBM, fit_rbm
from torchenergy.models.rbm._fused import FusedCD

__all__ = ["main"]


def _update(rbm: BernoulliRBM, data, rows, seed: int, grad_dtype, centre: bool) -> torch.Tensor:
    """The gradient (= the change of W with lr 1, no momentum) of one fused CD-1 step."""
    copy = BernoulliRBM(rbm.n_visible, rbm.n_hidden)
    copy.load_state_dict(rbm.state_dict())
    tr = FusedCD(
        copy,
        lr=1.0,
        momentum=0.0,
        weight_decay=0.0,
        k=1,
        batch_size=len(rows),
        chains=None,
        sparsity_target=None,
        sparsity_cost=0.1,
        matmul_dtype=None,
        generator=torch.Generator().manual_seed(seed),
        grad_dtype=grad_dtype,
    )
    tr.centre_grad = centre  # False: P rounded to bf16 as it is
    tr.step(data, rows, False)
    tr.sync()
    return (rbm.W.detach() - copy.W.detach()).double()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hidden", default="20,500")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batches", type=int, default=20, help="updates averaged over")
    args = ap.parse_args()
    torch.set_num_threads(2)
    train, _ = load_fashion_mnist("train", binarize=0.5, limit=20000)
    print(
        "| hidden | gradient product | ‖error‖ / ‖gradient‖ | ‖error‖ / ‖sampling noise‖ | "
        "worst unit: ‖error‖ / ‖its gradient‖ |"
    )
    print("|---|---|---|---|---|")
    for hidden in (int(h) for h in args.hidden.split(",")):
        g = torch.Generator().manual_seed(0)
        rbm = BernoulliRBM(784, hidden, generator=g)
        fit_rbm(rbm, train, epochs=args.epochs, momentum=0.5, generator=g, grad_dtype=torch.float32)
        sums: dict[str, list[float]] = {}
        for b in range(args.batches):
            rows = torch.arange(100 * b, 100 * b + 100)
            ref = _update(rbm, train, rows, 10 + b, torch.float32, True)
            other = _update(rbm, train, rows, 1000 + b, torch.float32, True)
            noise = (other - ref).norm()
            for name, gd, centre in (
                ("float32", torch.float32, True),
                ("bf16, centred columns (default)", torch.bfloat16, True),
                ("bf16, uncentred", torch.bfloat16, False),
            ):
                err = _update(rbm, train, rows, 10 + b, gd, centre) - ref
                # W is (V, H): a hidden unit's gradient is a column
                unit = (err.norm(dim=0) / ref.norm(dim=0).clamp_min(1e-30)).max()
                vals = [float(err.norm() / ref.norm()), float(err.norm() / noise), float(unit)]
                sums.setdefault(name, []).extend(vals)
        for name, v in sums.items():
            a = torch.tensor(v).view(-1, 3).mean(0)
            print(f"| {hidden} | {name} | {a[0]:.2e} | {a[1]:.2e} | {a[2]:.2e} |")


if __name__ == "__main__":
    main()
