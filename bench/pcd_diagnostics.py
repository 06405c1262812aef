"""PCD diagnostics for bench/results/quality_2d.md: train one variant for N updates, report validation NLL.

Run from the repository root: PYTHONPATH=. python bench/pcd_diagnostics.py --density pinwheel --lr 3e-3 --noise data --diag
(scratch helper, single thread; --diag adds the temperature scan, sampler MMDs and the coarse KL)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.getcwd())
from bench import quality_2d as q
from torchenergy.data import sample_toy
from torchenergy.losses import DataNegatives, PersistentNegatives, contrastive_divergence
from torchenergy.metrics import grid_log_partition, mmd2
from torchenergy.samplers import MALA, Langevin, ReplayBuffer

torch.set_num_threads(1)

p = argparse.ArgumentParser()
p.add_argument("--density", default="pinwheel")
p.add_argument("--iters", type=int, default=2000)
p.add_argument("--step", type=float, default=0.01)
p.add_argument("--k", type=int, default=5)
p.add_argument("--reinit", type=float, default=0.05)
p.add_argument("--buffer", type=int, default=1000)
p.add_argument("--l2", type=float, default=0.01)
p.add_argument("--sampler", default="ula")
p.add_argument("--noise", default="uniform")  # uniform | data
p.add_argument("--lr", type=float, default=1e-3)
p.add_argument("--method", default="pcd")
p.add_argument("--seed", type=int, default=0)
p.add_argument("--diag", action="store_true")
a = p.parse_args()
cfg = q.Config(
    seed=a.seed, langevin_step=a.step, chain_steps=a.k, buffer_size=a.buffer, l2_reg=a.l2, lr=a.lr
)
data = {
    "train": sample_toy(a.density, 10000, generator=torch.Generator().manual_seed(100)),
    "val": sample_toy(a.density, 2000, generator=torch.Generator().manual_seed(101)),
}
g = torch.Generator().manual_seed(a.seed + 1)
net = q._make_net(cfg)
train = data["train"]
if a.method == "torchebm":
    step, _ = q._torchebm_step(net, cfg, g)
else:
    S = Langevin if a.sampler == "ula" else MALA
    sampler = S(net, step_size=a.step)
    if a.method == "cd":
        make = DataNegatives(sampler, n_steps=a.k)
    else:
        if a.noise == "uniform":
            noise = q._uniform_box(cfg.noise_box)
        else:

            def noise(n, *, generator=None):
                return train[torch.randint(train.shape[0], (n,), generator=generator)]

        buf = ReplayBuffer(a.buffer, (2,), noise=noise, reinit_prob=a.reinit, generator=g)
        make = PersistentNegatives(sampler, buf, n_steps=a.k)

    def step(x):
        return contrastive_divergence(net, x, make(x, generator=g), l2_reg=a.l2).loss


opt = torch.optim.Adam(net.parameters(), lr=a.lr)
t0 = time.process_time()
for it in range(a.iters):
    for gr in opt.param_groups:
        gr["lr"] = q._lr_at(cfg, it / a.iters)
    idx = torch.randint(train.shape[0], (256,), generator=g)
    loss = step(train[idx])
    opt.zero_grad()
    loss.backward()
    opt.step()
cpu = time.process_time() - t0
net.eval()
ev = q.evaluate_energy(net, data["val"], torch.Generator().manual_seed(5))
out = dict(
    vars(a), val_nll=round(ev["nll"], 3), mmd_exact=round(1e3 * ev["mmd2"], 2), cpu=round(cpu, 1)
)
if a.diag:
    for T in (0.7, 0.85, 1.0, 1.2, 1.5, 2.0, 3.0):
        with torch.no_grad():
            gr = grid_log_partition(
                lambda x, T=T: net(x) / T,
                bounds=6.0,
                resolution=300,
                max_edge_mass=1.0,
                dtype=torch.float32,
            )
            nllT = float(net(data["val"]).double().mean() / T + gr.log_z)
        out[f"nll_T{T:g}"] = round(nllT, 3)
    # where does the sampler's stationary distribution sit vs the model's exact density?
    gg = torch.Generator().manual_seed(7)
    x0 = data["val"][:2000].clone()
    for s in (a.step, a.step / 10):
        xs = Langevin(net, step_size=s).sample(x0, round(3.0 / s), generator=gg).detach()
        out[f"mmd_ula{s:g}"] = round(1e3 * float(mmd2(xs, data["val"])), 2)
    if a.method == "pcd" and a.method != "torchebm":
        out["mmd_buffer"] = round(1e3 * float(mmd2(buf.data[:1000], data["val"][:1000])), 2)
        out["mean_age"] = float(buf.age.float().mean())
if a.diag:
    with torch.no_grad():
        gr = grid_log_partition(
            net, bounds=6.0, resolution=300, max_edge_mass=1.0, dtype=torch.float32
        )
    P = gr.log_density.double().exp()
    P = P / P.sum()
    # coarse 12 x 12 bins (1 unit): how much of the NLL gap is mass in the wrong coarse place
    Pc = P.reshape(12, 25, 12, 25).sum((1, 3))
    v = data["val"].double()
    b = ((v + 6) // 1).long().clamp(0, 11)
    H = torch.zeros(12, 12, dtype=torch.float64)
    H.index_put_((b[:, 0], b[:, 1]), torch.ones(len(v), dtype=torch.float64), accumulate=True)
    H = H / H.sum()
    m = H > 0
    out["coarse_kl"] = round(float((H[m] * (H[m].log() - Pc[m].clamp_min(1e-300).log())).sum()), 3)
    torch.save(
        {
            "logp": gr.log_density,
            "args": vars(a),
            "buf": buf.data.clone() if a.method == "pcd" else None,
        },
        f"/tmp/logp_{a.method}_{a.density}_{a.reinit}_{a.noise}_{a.k}_{a.step}.pt",
    )
print(json.dumps(out), flush=True)
