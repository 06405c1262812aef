"""Linear-chain CRF speed: torchenergy vs pytorch-crf 0.7.2 vs torch-struct 0.5, in one run.

Workload (the issue's): B=64 sequences, T=50, K=17 tags, float32, variable lengths (uniform in
[T/2, T], one of length T), 2 CPU threads. Two operations, each timed as the median over
interleaved repetitions (the three libraries alternate, so background load hits them alike):

* ``nll``: the mean negative log-likelihood forward + backward (gradients of emissions and of the
  transition parameters);
* ``decode``: the best tagging of every sequence.

Before timing, the three implementations are checked to agree on the same parameters (nll to
1e-3 in float32, identical Viterbi tags).

torch-struct represents a chain by edge potentials ``phi[b, n, z_{n+1}, z_n]`` (B, T-1, K, K);
they are built from emissions and transitions inside the timed region (a user has to do it).
It imports and runs under torch 2.13; the only adjustment is declaring
``arg_constraints = {}`` on its distribution class to silence a torch 2.x validation warning.

Run::

    PYTHONPATH=. python bench/crf_speed.py [--threads 2] [--reps 20] [--out bench/results/crf_speed.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

# OpenMP's default (spinning) wait policy is what users run with, and on an idle machine it is
# the fast one (decode 4.5 ms spinning vs 7.5 ms passive, 2 threads). On a loaded, shared
# machine spinning workers wait for descheduled peers and dominate the many small kernels of a
# loop over T (measured: 4.8 ms -> 137 ms CPU per decode); there, run with
# OMP_WAIT_POLICY=PASSIVE (it applies to all three libraries alike; set it before torch starts).
import torch

from torchenergy.models import LinearChainCRF


def _timeit(fn: Callable[[], None], clock: Callable[[], float] = time.perf_counter) -> float:
    t0 = clock()
    fn()
    return clock() - t0


def _ours(k, params):
    crf = LinearChainCRF(k)
    with torch.no_grad():
        crf.transitions.copy_(params[0])
        crf.start_scores.copy_(params[1])
        crf.end_scores.copy_(params[2])
    return crf


def _pytorch_crf(k, params):
    import torchcrf

    crf = torchcrf.CRF(k, batch_first=True)
    with torch.no_grad():  # same convention: transitions[i, j] scores i -> j
        crf.transitions.copy_(params[0])
        crf.start_transitions.copy_(params[1])
        crf.end_transitions.copy_(params[2])
    return crf


def _struct_potentials(e, trans, start, end, lengths):
    """torch-struct edge potentials phi[b, n, j, i] for the step z_n = i -> z_{n+1} = j."""
    batch, steps, _ = e.shape
    phi = trans.t().view(1, 1, *trans.shape) + e[:, 1:].unsqueeze(3)
    first = (start + e[:, 0]).unsqueeze(1)  # (B, 1, K) over the previous tag i
    phi = torch.cat([phi[:, :1] + first.unsqueeze(1), phi[:, 1:]], dim=1)
    last = torch.zeros(batch, steps - 1, 1, 1, dtype=e.dtype)
    last[torch.arange(batch), lengths - 2] = 1.0
    return phi + last * end.view(1, 1, -1, 1)


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--tags", type=int, default=17)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall: time.perf_counter; cpu: process CPU time (robust to other load; with "
        "--threads 1 it equals the wall time on an idle core)",
    )
    ap.add_argument("--out", type=Path, default=Path("bench/results/crf_speed.md"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(args.seed)
    b, t, k = args.batch, args.steps, args.tags
    e0 = torch.randn(b, t, k, generator=g)
    params = (
        torch.randn(k, k, generator=g),
        torch.randn(k, generator=g),
        torch.randn(k, generator=g),
    )
    lengths = torch.randint(t // 2, t + 1, (b,), generator=g)
    lengths[0] = t
    mask = torch.arange(t) < lengths[:, None]
    tags = torch.randint(0, k, (b, t), generator=g)

    ours = _ours(k, params)
    ref = _pytorch_crf(k, params)
    import torch_struct

    # torch 2.x warns that torch-struct's distributions define no `arg_constraints`; declaring
    # none is the only adjustment needed to run torch-struct 0.5 under torch 2.13.
    torch_struct.LinearChainCRF.arg_constraints = {}
    tr = torch.nn.Parameter(params[0].clone())
    st = torch.nn.Parameter(params[1].clone())
    en = torch.nn.Parameter(params[2].clone())
    parts = torch_struct.LinearChainCRF.struct.to_parts(tags, k, lengths=lengths).float()

    def nll_ours():
        e = e0.clone().requires_grad_(True)
        ours.nll(e, tags, mask).backward()

    def nll_pcrf():
        e = e0.clone().requires_grad_(True)
        (-ref(e, tags, mask, reduction="mean")).backward()

    def nll_struct_value(e):
        dist = torch_struct.LinearChainCRF(
            _struct_potentials(e, tr, st, en, lengths), lengths=lengths
        )
        return -dist.log_prob(parts).mean()

    def nll_struct():
        e = e0.clone().requires_grad_(True)
        nll_struct_value(e).backward()

    def dec_ours():
        return ours.decode(e0, mask).tags

    def dec_pcrf():
        return ref.decode(e0, mask)

    def dec_struct():
        with torch.no_grad():
            phi = _struct_potentials(e0, tr, st, en, lengths)
            edges = torch_struct.LinearChainCRF(phi, lengths=lengths).argmax
            return torch_struct.LinearChainCRF.struct.from_parts(edges)[0]

    # agreement on the same parameters
    with torch.no_grad():
        v_ours = float(ours.nll(e0, tags, mask))
        v_pcrf = float(-ref(e0, tags, mask, reduction="mean"))
        v_struct = float(nll_struct_value(e0))
    assert abs(v_ours - v_pcrf) < 1e-3 * max(1.0, abs(v_ours)), (v_ours, v_pcrf)
    assert abs(v_ours - v_struct) < 1e-3 * max(1.0, abs(v_ours)), (v_ours, v_struct)
    d_ours = dec_ours()
    d_pcrf = dec_pcrf()
    d_struct = dec_struct()
    for i in range(b):
        n = int(lengths[i])
        assert d_ours[i, :n].tolist() == d_pcrf[i], i
        assert d_ours[i, :n].tolist() == d_struct[i, :n].tolist(), i

    ops = {
        "nll fwd+bwd": {
            "torchenergy": nll_ours,
            "pytorch-crf": nll_pcrf,
            "torch-struct": nll_struct,
        },
        "decode": {"torchenergy": dec_ours, "pytorch-crf": dec_pcrf, "torch-struct": dec_struct},
    }
    times: dict[tuple[str, str], list[float]] = {}
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    load0 = os.getloadavg()[0]
    for op, fns in ops.items():
        for fn in fns.values():  # warm-up
            for _ in range(3):
                fn()
        for _ in range(args.reps):
            for lib, fn in fns.items():
                times.setdefault((op, lib), []).append(_timeit(fn, clock))
    load1 = os.getloadavg()[0]

    lines = [
        "# Linear-chain CRF speed",
        "",
        f"B={b}, T={t}, K={k}, float32, lengths uniform in [{t // 2}, {t}], "
        f"{args.threads} thread(s) (`torch.set_num_threads`), {args.clock} clock, median of "
        f"{args.reps} interleaved repetitions, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}; "
        f"torch {torch.__version__}, pytorch-crf 0.7.2, torch-struct 0.5, "
        f"{platform.processor() or platform.machine()}; 1-min load average {load0:.1f} -> "
        f"{load1:.1f} (the machine is shared, so absolute times are noisy; ratios are from the "
        "same interleaved run).",
        "",
        f"Agreement checked first: nll {v_ours:.4f} (torchenergy) / {v_pcrf:.4f} (pytorch-crf) / "
        f"{v_struct:.4f} (torch-struct); Viterbi tags identical for all {b} sequences.",
        "",
        "| operation | library | median ms | min ms | IQR ms | median time / torchenergy |",
        "|---|---|---|---|---|---|",
    ]
    ncpu = os.cpu_count() or 1
    if args.clock == "wall" and max(load0, load1) > ncpu:
        lines[2:2] = [
            f"**Warning:** load average {max(load0, load1):.1f} exceeds the {ncpu} cores: "
            "wall-clock times of multi-threaded runs are then dominated by oversubscription "
            "(threads waiting at OpenMP barriers for descheduled peers, which hits the many "
            "small kernels of a loop over T hardest). Re-run on an idle machine, or use "
            "`--threads 1 --clock cpu`.",
            "",
        ]
    for op, fns in ops.items():
        base = statistics.median(times[(op, "torchenergy")])
        for lib in fns:
            ts = times[(op, lib)]
            q = statistics.quantiles(ts, n=4)
            med = statistics.median(ts)
            lines.append(
                f"| {op} | {lib} | {1e3 * med:.2f} | {1e3 * min(ts):.2f} | "
                f"{1e3 * (q[2] - q[0]):.2f} | {med / base:.2f}x |"
            )
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return text


if __name__ == "__main__":
    main()
