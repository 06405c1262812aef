"""Data-parallel training: two CPU processes (gloo) give the weights one process gets on the
whole batch, stay identical across ranks, checkpoint per rank, and fail together."""

from __future__ import annotations

import os
import socket
import traceback

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from torchenergy.losses import contrastive_divergence
from torchenergy.train import Trainer
from torchenergy.train.distributed import (
    all_reduce_gradients,
    broadcast_parameters,
    rank_path,
    rank_seed,
)

F64 = torch.float64
STEPS = 5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.SiLU(), torch.nn.Linear(8, 1)).to(
        F64
    )


def _batches():
    g = torch.Generator().manual_seed(7)
    return [
        (torch.randn(8, 2, generator=g, dtype=F64), torch.randn(8, 2, generator=g, dtype=F64))
        for _ in range(STEPS)
    ]


def _step_fn(net):
    def energy(x):
        return net(x).squeeze(-1)

    return lambda b: contrastive_divergence(energy, b[0], b[1], l2_reg=0.1)


def _train(rank: int, world: int, out_dir: str, mode: str) -> dict:
    net = _model(seed=rank)  # different on purpose: broadcast_parameters fixes it
    broadcast_parameters(net)
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    step_fn = _step_fn(net)
    if mode == "fail" and rank == 1:

        def step_fn(b):
            raise ValueError("rank 1 breaks")

    trainer = Trainer(net, opt, step_fn, grad_clip=1.0, ema=0.5, distributed=True)
    halves = [(p[rank::world], n[rank::world]) for p, n in _batches()]  # each rank: its half
    try:
        trainer.fit(halves, max_epochs=1)
        result = "ok"
    except Exception as exc:  # the failure mode must raise on every rank
        result = f"{type(exc).__name__}: {exc}"
    path = os.path.join(out_dir, f"{mode}.pt")
    trainer.save(path)
    return {
        "params": [p.detach().clone() for p in net.parameters()],
        "result": result,
        "path": str(rank_path(path)),
    }


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    try:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        torch.set_num_threads(1)
        dist.init_process_group("gloo", rank=rank, world_size=world)
        out = {mode: _train(rank, world, out_dir, mode) for mode in ("ok", "fail")}
        out["seed"] = rank_seed(3)
        torch.save(out, os.path.join(out_dir, f"out{rank}.pt"))
        dist.destroy_process_group()
    except Exception:  # pragma: no cover - surfaced by the parent
        with open(os.path.join(out_dir, f"err{rank}.txt"), "w") as f:
            f.write(traceback.format_exc())
        raise


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
def test_two_ranks_match_one_process_and_fail_together(tmp_path):
    """One spawn (two ranks) covers both runs: spawning costs seconds per process."""
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    outs = [torch.load(tmp_path / f"out{r}.pt", weights_only=True) for r in range(2)]
    ok = [o["ok"] for o in outs]
    assert [o["result"] for o in ok] == ["ok", "ok"]
    for a, b in zip(ok[0]["params"], ok[1]["params"]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)  # ranks stay identical
    net = _model(seed=0)
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    Trainer(net, opt, _step_fn(net), grad_clip=1.0, ema=0.5).fit(_batches(), max_epochs=1)
    for a, b in zip(ok[0]["params"], net.parameters()):  # = one process on the whole batch
        torch.testing.assert_close(a, b.detach(), rtol=1e-10, atol=1e-12)
    assert outs[0]["seed"] != outs[1]["seed"]
    assert ok[0]["path"].endswith("ok.pt") and ok[1]["path"].endswith("ok.rank1.pt")
    assert (tmp_path / "ok.pt").exists() and (tmp_path / "ok.rank1.pt").exists()
    fail = [o["fail"] for o in outs]
    assert fail[1]["result"] == "ValueError: rank 1 breaks"
    assert fail[0]["result"].startswith("FloatingPointError")
    assert "another rank" in fail[0]["result"]


def test_single_process_helpers_are_no_ops():
    net = _model()
    before = [p.detach().clone() for p in net.parameters()]
    broadcast_parameters(net)
    loss = net(torch.ones(3, 2, dtype=F64)).sum()
    loss.backward()
    grads = [p.grad.clone() for p in net.parameters()]
    assert float(all_reduce_gradients(net.parameters(), loss)) == float(loss.detach())
    for p, b, g in zip(net.parameters(), before, grads):
        torch.testing.assert_close(p.detach(), b)
        torch.testing.assert_close(p.grad, g)
    assert rank_seed(5) == 5 and str(rank_path("a/b.pt")) == "a/b.pt"
    with pytest.raises(RuntimeError, match="process group"):
        Trainer(net, torch.optim.SGD(net.parameters(), lr=0.1), lambda b: b, distributed=True)


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
def test_a_one_rank_group_trains_like_no_group(tmp_path):
    """``torchrun --nproc-per-node 1``: distributed=True is accepted and changes nothing."""
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        nets = []
        for distributed in (True, False):
            net = _model(seed=0)
            opt = torch.optim.Adam(net.parameters(), lr=0.05)
            Trainer(net, opt, _step_fn(net), distributed=distributed).fit(_batches(), max_epochs=1)
            nets.append(net)
    finally:
        dist.destroy_process_group()
    for a, b in zip(nets[0].parameters(), nets[1].parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
