"""Sampler speed, side by side in one run: torchenergy vs a hand-written PyTorch loop vs TorchEBM.

Cases (issue 2, "Speed"), float32 on 2 CPU threads:

  (a) Langevin, 2-D correlated Gaussian, 10,000 chains, 100 steps
  (b) Langevin, MLP energy 2-128-128-1 (SiLU), 1,024 chains, 100 steps
  (c) HMC, the same MLP, L = 10 leapfrog steps, 1,024 chains, 20 transitions
  (d) Langevin, MLP energy 784-512-512-1 (SiLU), 256 chains, 50 steps

Every method runs the same energy (same weights) from the same start. "raw" is a minimal
hand-written loop (autograd for the MLPs; for the Gaussian both the closed-form gradient and
autograd). torchenergy's MLPEnergy has a closed-form input gradient (a hand-written backward
pass, no autograd graph), so rows "raw loop, MLPEnergy closed-form grad" also give a minimal loop
over that same gradient: the driver's own overhead; the textbook HMC loop reuses the force (L gradients per transition) and accepts per
chain. TorchEBM 0.8.9 (if importable) runs ``LangevinDynamics`` / ``HamiltonianMonteCarlo`` with
``GaussianModel`` or a ``BaseModel`` wrapping the same MLP. The optional ``torch.compile`` rows
compile the torchenergy kernel's ``step``. Times are the minimum over interleaved repeats
(robust to load from other processes); ratios are time / time(reference), so < 1 is faster.

Run:  PYTHONPATH=. python bench/samplers_speed.py [--repeats 5] [--no-compile]
Writes the table to bench/results/samplers_speed.md.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from torchenergy.energies import GaussianEnergy, MLPEnergy
from torchenergy.samplers import HMC, Langevin

__all__ = ["main"]

try:  # optional peer
    from torchebm.core import BaseModel as _EBMBase
    from torchebm.core import GaussianModel as _EBMGaussian
    from torchebm.samplers import HamiltonianMonteCarlo as _EBMHMC
    from torchebm.samplers import LangevinDynamics as _EBMLangevin

    TORCHEBM_ERROR = None
except Exception as err:  # pragma: no cover - depends on the environment
    _EBMBase = _EBMGaussian = _EBMHMC = _EBMLangevin = None
    TORCHEBM_ERROR = f"{type(err).__name__}: {err}"


# ----------------------------------------------------------------------------- raw loops


def raw_langevin_closed_form(x: Tensor, mean: Tensor, prec: Tensor, eps: float, n: int, g):
    """Minimal ULA loop with the Gaussian's closed-form gradient ``P (x − μ)``."""
    noise = math.sqrt(2 * eps)
    for _ in range(n):
        grad = (x - mean) @ prec
        x = x - eps * grad + noise * torch.randn(x.shape, generator=g, dtype=x.dtype)
    return x


def raw_langevin_autograd(energy: Callable[[Tensor], Tensor], x: Tensor, eps: float, n: int, g):
    """Minimal ULA loop with ``torch.autograd.grad``."""
    noise = math.sqrt(2 * eps)
    for _ in range(n):
        xg = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(energy(xg).sum(), xg)
        x = x.detach() - eps * grad + noise * torch.randn(x.shape, generator=g, dtype=x.dtype)
    return x


def raw_langevin_given_grad(energy_and_grad, x: Tensor, eps: float, n: int, g):
    """Minimal ULA loop over a given ``energy_and_grad`` (here MLPEnergy's closed form): the
    driver's overhead alone, with the same gradient kernels as torchenergy."""
    noise = math.sqrt(2 * eps)
    for _ in range(n):
        _e, grad = energy_and_grad(x)
        x = x - eps * grad + noise * torch.randn(x.shape, generator=g, dtype=x.dtype)
    return x


def _autograd_eg(energy):
    def eg(z):
        zg = z.detach().requires_grad_(True)
        e = energy(zg)
        (gr,) = torch.autograd.grad(e.sum(), zg)
        return e.detach(), gr

    return eg


def raw_hmc(
    energy: Callable[[Tensor], Tensor], x: Tensor, eps: float, n_leap: int, n: int, g, eg=None
):
    """Textbook HMC: unit mass, leapfrog with the force reused (L gradients per transition);
    autograd gradients unless ``eg`` (an ``energy_and_grad``) is given."""
    eg = eg or _autograd_eg(energy)

    e, grad = eg(x)
    for _ in range(n):
        p = torch.randn(x.shape, generator=g, dtype=x.dtype)
        h0 = e + 0.5 * p.square().sum(1)
        xn, pn = x, p - 0.5 * eps * grad
        for i in range(n_leap):
            xn = xn + eps * pn
            en, gn = eg(xn)
            pn = pn - (eps if i < n_leap - 1 else 0.5 * eps) * gn
        h1 = en + 0.5 * pn.square().sum(1)
        u = torch.rand(x.shape[0], generator=g, dtype=x.dtype)
        acc = torch.log(u) < (h0 - h1)  # NaN compares False: rejected
        x = torch.where(acc[:, None], xn, x)
        e = torch.where(acc, en, e)
        grad = torch.where(acc[:, None], gn, grad)
    return x


# ----------------------------------------------------------------------------- torchebm glue


def _ebm_mlp(net: nn.Module):
    class _MLPModel(_EBMBase):  # type: ignore[misc, valid-type]
        def __init__(self, module):
            super().__init__()
            self.net = module

        def forward(self, x):
            return self.net(x).squeeze(-1)

    return _MLPModel(net)


# ----------------------------------------------------------------------------- timing


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run_case(methods: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Warm every method once, then time them interleaved ``repeats`` times."""
    for fn in methods.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in methods}
    for _ in range(repeats):
        for name, fn in methods.items():
            times[name].append(_timed(fn))
    return times


def _paired(num: list[float], den: list[float], what: str) -> str:
    """Median [quartiles] of the per-round ratios ``num[i] / den[i]``."""
    r = sorted(a / b for a, b in zip(num, den))
    q = statistics.quantiles(r, n=4) if len(r) >= 2 else [r[0], r[0], r[0]]
    return f"{statistics.median(r):.3f}{what} [{q[0]:.3f}, {q[2]:.3f}]"


def _compiled_loop(sampler, x0: Tensor, n: int, seed: int):
    """A loop over ``torch.compile(sampler.step)``; returns (runner, compile_seconds)."""
    step = torch.compile(sampler.step, dynamic=False)
    t0 = time.perf_counter()
    state = sampler.init(x0)
    gen = torch.Generator().manual_seed(seed)
    step(state, generator=gen)  # triggers compilation
    compile_s = time.perf_counter() - t0

    def run():
        s = sampler.init(x0)
        gg = torch.Generator().manual_seed(seed)
        for _ in range(n):
            s, _info = step(s, generator=gg)
        return s.x

    return run, compile_s


def _eager_loop(sampler, x0: Tensor, n: int, seed: int):
    def run():
        s = sampler.init(x0)
        gg = torch.Generator().manual_seed(seed)
        for _ in range(n):
            s, _info = sampler.step(s, generator=gg)
        return s.x

    return run


# ----------------------------------------------------------------------------- cases


SEED = 0


def gen() -> torch.Generator:
    return torch.Generator().manual_seed(SEED)


def case_gaussian(compile_step: bool) -> dict:
    """(a) Langevin on a 2-D Gaussian."""
    seed = SEED
    mean = torch.tensor([0.5, -1.0])
    cov = torch.tensor([[1.0, 0.6], [0.6, 0.8]])
    target = GaussianEnergy(mean, cov)
    prec = target.precision
    x0 = torch.randn(10_000, 2, generator=gen())
    eps, n = 0.05, 100
    lang = Langevin(target, eps)
    m: dict[str, Callable[[], object]] = {
        "raw loop, closed-form grad": lambda: raw_langevin_closed_form(
            x0, mean, prec, eps, n, gen()
        ),
        "raw loop, autograd": lambda: raw_langevin_autograd(target, x0, eps, n, gen()),
        "torchenergy Langevin.sample": lambda: lang.sample(x0, n, generator=gen()),
        "torchenergy init/step loop": _eager_loop(lang, x0, n, seed),
    }
    extra = {}
    if _EBMLangevin is not None:
        ebm = _EBMLangevin(_EBMGaussian(mean, cov), step_size=eps)
        m["torchebm LangevinDynamics(GaussianModel)"] = lambda: ebm.sample(
            x=x0, n_steps=n, generator=gen()
        )
    if compile_step:
        extra["compile"] = (lang, x0, n, seed)
    return dict(
        key="a",
        title="(a) Langevin, 2-D Gaussian, 10,000 chains, 100 steps",
        methods=m,
        raw="raw loop, closed-form grad",
        ours="torchenergy Langevin.sample",
        ebm="torchebm LangevinDynamics(GaussianModel)",
        **extra,
    )


def _small_mlp() -> tuple[MLPEnergy, Tensor]:
    torch.manual_seed(1)
    return MLPEnergy(2, (128, 128), activation="silu"), torch.randn(1024, 2, generator=gen())


def case_small_mlp_langevin(compile_step: bool) -> dict:
    """(b) Langevin on the 2-128-128-1 MLP."""
    seed = SEED
    mlp, x0 = _small_mlp()
    eps, n = 0.01, 100
    lang = Langevin(mlp, eps)
    m = {
        "raw loop, autograd": lambda: raw_langevin_autograd(mlp, x0, eps, n, gen()),
        "raw loop, MLPEnergy closed-form grad": lambda: raw_langevin_given_grad(
            mlp.energy_and_grad, x0, eps, n, gen()
        ),
        "torchenergy Langevin.sample": lambda: lang.sample(x0, n, generator=gen()),
        "torchenergy init/step loop": _eager_loop(lang, x0, n, seed),
    }
    if _EBMLangevin is not None:
        ebm_mlp = _ebm_mlp(mlp.net)
        ebm = _EBMLangevin(ebm_mlp, step_size=eps)
        m["torchebm LangevinDynamics"] = lambda: ebm.sample(x=x0, n_steps=n, generator=gen())
    return dict(
        key="b",
        title="(b) Langevin, MLP 2-128-128-1 SiLU, 1,024 chains, 100 steps",
        methods=m,
        raw="raw loop, autograd",
        ours="torchenergy Langevin.sample",
        ebm="torchebm LangevinDynamics",
        **({"compile": (lang, x0, n, seed)} if compile_step else {}),
    )


def case_small_mlp_hmc(compile_step: bool) -> dict:
    """(c) HMC with L = 10 on the 2-128-128-1 MLP."""
    seed = SEED
    mlp, x0 = _small_mlp()
    eps_h, n_leap, n_h = 0.05, 10, 20
    hmc = HMC(mlp, eps_h, n_leap)
    m = {
        "textbook HMC loop (L grads/transition)": lambda: raw_hmc(
            mlp, x0, eps_h, n_leap, n_h, gen()
        ),
        "textbook HMC loop, MLPEnergy closed-form grad": lambda: raw_hmc(
            mlp, x0, eps_h, n_leap, n_h, gen(), eg=mlp.energy_and_grad
        ),
        "torchenergy HMC.sample": lambda: hmc.sample(x0, n_h, generator=gen()),
    }
    if _EBMHMC is not None:
        ebm_h = _EBMHMC(_ebm_mlp(mlp.net), step_size=eps_h, n_leapfrog_steps=n_leap)
        m["torchebm HamiltonianMonteCarlo (2L grads)"] = lambda: ebm_h.sample(
            x=x0, n_steps=n_h, generator=gen()
        )
    return dict(
        key="c",
        title="(c) HMC L=10, MLP 2-128-128-1 SiLU, 1,024 chains, 20 transitions",
        methods=m,
        raw="textbook HMC loop (L grads/transition)",
        ours="torchenergy HMC.sample",
        ebm="torchebm HamiltonianMonteCarlo (2L grads)",
        **({"compile": (hmc, x0, n_h, seed)} if compile_step else {}),
    )


def case_big_mlp_langevin(compile_step: bool) -> dict:
    """(d) Langevin on the 784-512-512-1 MLP."""
    seed = SEED
    torch.manual_seed(2)
    big = MLPEnergy(784, (512, 512), activation="silu")
    x0 = torch.rand(256, 784, generator=gen())
    eps, n = 0.01, 50
    lang = Langevin(big, eps)
    m = {
        "raw loop, autograd": lambda: raw_langevin_autograd(big, x0, eps, n, gen()),
        "torchenergy Langevin.sample": lambda: lang.sample(x0, n, generator=gen()),
        "torchenergy init/step loop": _eager_loop(lang, x0, n, seed),
    }
    if _EBMLangevin is not None:
        ebm = _EBMLangevin(_ebm_mlp(big.net), step_size=eps)
        m["torchebm LangevinDynamics"] = lambda: ebm.sample(x=x0, n_steps=n, generator=gen())
    return dict(
        key="d",
        title="(d) Langevin, MLP 784-512-512-1 SiLU, 256 chains, 50 steps",
        methods=m,
        raw="raw loop, autograd",
        ours="torchenergy Langevin.sample",
        ebm="torchebm LangevinDynamics",
        **({"compile": (lang, x0, n, seed)} if compile_step else {}),
    )


CASES = {
    "a": case_gaussian,
    "b": case_small_mlp_langevin,
    "c": case_small_mlp_hmc,
    "d": case_big_mlp_langevin,
}


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    ap.add_argument(
        "--compile-cases", default="abcd", help="cases that get a torch.compile row (e.g. 'ab')"
    )
    ap.add_argument("--cases", default="abcd", help="subset of cases, e.g. 'ab'")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "samplers_speed.md"))
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.set_default_dtype(torch.float32)
    lines = [
        "# Sampler speed: torchenergy vs raw PyTorch vs TorchEBM",
        "",
        f"torch {torch.__version__}, {args.threads} threads, float32, {platform.processor() or platform.machine()}, "
        f"load average before: {os.getloadavg()[0]:.1f}; min of {args.repeats} interleaved repeats "
        "(the summary adds the median [quartiles] of per-round paired ratios).",
        f"TorchEBM: {'0.8.9 imported' if TORCHEBM_ERROR is None else 'unavailable: ' + TORCHEBM_ERROR}",
        "",
        "| case | method | time (ms) | median (ms) | vs raw | vs torchebm |",
        "|---|---|---:|---:|---:|---:|",
    ]
    summary = []
    for key in args.cases:
        case = CASES[key](not args.no_compile and key in args.compile_cases)
        methods = dict(case["methods"])
        compile_note = ""
        if "compile" in case:
            sampler, x0, n, seed = case["compile"]
            try:
                run, compile_s = _compiled_loop(sampler, x0, n, seed)
                methods["torchenergy torch.compile(step) loop"] = run
                compile_note = f"compile time {compile_s:.1f} s"
            except Exception as err:  # report, don't crash the table
                compile_note = f"torch.compile failed: {type(err).__name__}: {str(err)[:120]}"
        print(case["title"], flush=True)
        times = run_case(methods, args.repeats)
        best = {k: min(v) for k, v in times.items()}
        raw_t = best[case["raw"]]
        ebm_t = best.get(case["ebm"])
        for name, t in best.items():
            vs_ebm = f"{t / ebm_t:.2f}x" if ebm_t else "n/a"
            row = (
                f"| {case['key']} | {name} | {1e3 * t:.1f} | {1e3 * statistics.median(times[name]):.1f}"
                f" | {t / raw_t:.2f}x | {vs_ebm} |"
            )
            lines.append(row)
            print("  " + row, flush=True)
        ours = best[case["ours"]]
        note = f"{case['title']}: torchenergy {ours / raw_t:.3f}x raw"
        if ebm_t:
            note += f", {ebm_t / ours:.2f}x faster than TorchEBM"
        # per-round ratios (methods run back to back within a round): robust to the machine's
        # slow and fast phases, which bias a ratio of minima taken in different rounds
        note += "; paired median " + _paired(times[case["ours"]], times[case["raw"]], "x raw")
        if ebm_t:
            note += ", " + _paired(
                times[case["ebm"]], times[case["ours"]], "x faster than TorchEBM"
            )
        if compile_note:
            note += f"; {compile_note}"
            if "torchenergy torch.compile(step) loop" in best:
                eager = best.get("torchenergy init/step loop", ours)
                note += f", compiled/eager = {best['torchenergy torch.compile(step) loop'] / eager:.2f}x"
        summary.append(note)
    lines.append("")
    lines.append(f"load average after: {os.getloadavg()[0]:.1f}")
    lines += ["", "## Summary", ""] + [f"- {s}" for s in summary]
    text = "\n".join(lines) + "\n"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print()
    print("\n".join(summary))
    print(f"\nwritten to {out}")
    return text


if __name__ == "__main__":
    main()
