"""2-process DDP throughput vs one process on a 784-512-512-1 energy (CD-k with Langevin negatives).

Weak scaling, as DDP is used: every process takes a batch of ``--batch`` images per step (one
thread each), so 2 processes train on twice the images per step; throughput is images per
second over all processes after ``--warmup`` steps. Issue 14's target: >= 1.7x.

    PYTHONPATH=. python bench/ddp_throughput.py --steps 20 --batch 64 --k 5
"""

from __future__ import annotations

import argparse
import datetime
import os
import socket
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from torchenergy import losses
from torchenergy.samplers import Langevin
from torchenergy.train import Trainer


def _energy() -> torch.nn.Module:
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(784, 512),
        torch.nn.SiLU(),
        torch.nn.Linear(512, 512),
        torch.nn.SiLU(),
        torch.nn.Linear(512, 1),
        torch.nn.Flatten(0),
    )
    return net


def _run(rank: int, world: int, port: int, args: argparse.Namespace, q) -> None:
    torch.set_num_threads(1)
    if world > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group(
            "gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=120)
        )
    net = _energy()
    g = torch.Generator().manual_seed(1 + rank)
    make = losses.DataNegatives(Langevin(net, step_size=1e-3), n_steps=args.k)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    step_fn = lambda x: losses.contrastive_divergence(net, x, make(x, generator=g), l2_reg=0.1)  # noqa: E731
    tr = Trainer(
        net, opt, step_fn, distributed=world > 1, ddp_options={"find_unused_parameters": False}
    )
    x = torch.rand(args.batch, 784, generator=g)
    tr.fit(lambda: x, max_steps=args.warmup)
    if world > 1:
        dist.barrier()
    t0 = time.perf_counter()
    tr.fit(lambda: x, max_steps=args.warmup + args.steps)
    if world > 1:
        dist.barrier()
    dt = time.perf_counter() - t0
    if rank == 0:
        q.put(world * args.batch * args.steps / dt)
    if world > 1:
        dist.destroy_process_group()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--k", type=int, default=5, help="Langevin steps per negative")
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    ctx = mp.get_context("spawn")
    rows = []
    for rep in range(args.repeats):
        for world in (1, 2):
            q = ctx.Queue()
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            mp.start_processes(
                _run, args=(world, port, args, q), nprocs=world, join=True, start_method="spawn"
            )
            rows.append((rep, world, q.get()))
    one = [r[2] for r in rows if r[1] == 1]
    two = [r[2] for r in rows if r[1] == 2]
    load = os.getloadavg()
    print(
        f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores; "
        f"batch {args.batch}/process, k={args.k}, {args.steps} timed steps, 1 thread/process"
    )
    print("| repeat | processes | images/s |")
    print("|---|---|---|")
    for rep, world, ips in rows:
        print(f"| {rep} | {world} | {ips:.1f} |")
    print(
        f"speed-up (best 2-process / best 1-process): {max(two) / max(one):.2f}x; "
        f"interleaved pairs: {[round(b / a, 2) for a, b in zip(one, two)]}"
    )


if __name__ == "__main__":
    main()
