"""The sampler demo: every sampler on analytic 2-D targets, scored against exact draws.

Targets: a 0.8/0.2 Gaussian mixture with separated modes, a double well, a Rosenbrock valley and
a correlated Gaussian (see :mod:`torchenergy.cli.demos.targets`). Samplers: unadjusted Langevin
(ULA), MALA and HMC (both tuned by :func:`torchenergy.samplers.adapt`), parallel tempering over
MALA (one tuned step size per replica), annealed Langevin (cooling to T = 1, then held), and
gradient descent / Nesterov as mode finders. For each pair the demo writes the error of the mean
and covariance, the mode-weight error, the squared MMD against exact draws, the acceptance rate,
the bulk ESS and ESS per second, and the wall time, as a markdown table and JSON, plus one PNG
per target (samples over energy contours).

Run it with ``torchenergy demo`` or ``run_sampler_demo(Path("runs/demo"))``.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from torchenergy.cli.demos.targets import DemoTarget, demo_targets
from torchenergy.diagnostics import ess_bulk
from torchenergy.metrics import mmd2
from torchenergy.samplers import (
    HMC,
    MALA,
    AnnealedLangevin,
    GradientDescent,
    Langevin,
    Nesterov,
    ParallelTempering,
    adapt,
    geometric_ladder,
    geometric_schedule,
    run_chain,
)

__all__ = ["run_sampler_demo"]

SAMPLERS = ("ULA", "MALA", "HMC", "PT (MALA)", "Annealed Langevin")
MODE_FINDERS = ("Gradient descent", "Nesterov")
# step sizes of the mode finders: below 2 / (largest curvature met from the initial points)
DESCENT_STEP = {
    "gaussian_mixture": 0.5,
    "double_well": 0.01,
    "rosenbrock": 0.001,
    "correlated_gaussian": 0.05,
}
INIT_SCALE = {"gaussian_mixture": 2.0}


def _config(quick: bool) -> dict[str, int]:
    if quick:
        return {
            "chains": 16,
            "warmup": 60,
            "burn_in": 40,
            "steps": 60,
            "thin": 1,
            "replicas": 4,
            "leapfrog": 5,
            "n_ref": 4000,
            "n_mmd": 200,
        }
    return {
        "chains": 128,
        "warmup": 300,
        "burn_in": 200,
        "steps": 600,
        "thin": 2,
        "replicas": 6,
        "leapfrog": 8,
        "n_ref": 100_000,
        "n_mmd": 1000,
    }


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _run(sampler: Any, x0: Any, cfg: dict[str, int], seed: int, burn_in: int) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # divergence is reported in the table
        return run_chain(
            sampler,
            x0,
            cfg["steps"],
            burn_in=burn_in,
            thin=cfg["thin"],
            trace=True,
            generator=_gen(seed),
            on_divergence="warn",
        )


def _sample_all(target: DemoTarget, x0: Tensor, cfg: dict[str, int], seed: int) -> dict:
    """Run every sampler on ``target`` from ``x0`` (C, 2); traces and timings per sampler."""
    e = target.energy
    out: dict[str, dict[str, Any]] = {}

    (mala, mala_state), t_adapt = _timed(
        lambda: adapt(MALA(e, 0.1), x0, cfg["warmup"], generator=_gen(seed))
    )
    res, t = _timed(lambda: _run(mala, mala_state, cfg, seed + 1, 0))
    out["MALA"] = {"res": res, "seconds": t_adapt + t, "note": f"ε={mala.step_size:.3g}"}
    eps_ula = 0.5 * mala.step_size

    # gradient clipping at |∇E| = 1/ε bounds a move's drift by 1: without it, chains started
    # from noise in the steep walls of the double well / Rosenbrock valley blow up
    clip = 1.0 / eps_ula
    ula = Langevin(e, eps_ula, grad_clip=clip)
    res, t = _timed(lambda: _run(ula, x0, cfg, seed + 2, cfg["warmup"]))
    out["ULA"] = {"res": res, "seconds": t, "note": f"ε={eps_ula:.3g}, clip {clip:.3g}"}

    (hmc, hmc_state), t_adapt = _timed(
        lambda: adapt(HMC(e, 0.1, cfg["leapfrog"]), x0, cfg["warmup"], generator=_gen(seed + 3))
    )
    res, t = _timed(lambda: _run(hmc, hmc_state, cfg, seed + 4, 0))
    out["HMC"] = {
        "res": res,
        "seconds": t_adapt + t,
        "note": f"L={cfg['leapfrog']}, ε={hmc.step_size:.3g}, diag mass",
    }

    ladder = geometric_ladder(cfg["replicas"], target.max_temperature)
    pt0 = ParallelTempering(e, MALA(e, mala.step_size), ladder, step_scaling=1.0)
    (pt, pt_state), t_adapt = _timed(
        lambda: adapt(pt0, x0, cfg["warmup"], generator=_gen(seed + 7))
    )  # one step size per replica
    res, t = _timed(lambda: _run(pt, pt_state, cfg, seed + 5, 0))
    rate = ParallelTempering.swap_rate(res.state)
    eps = torch.as_tensor(pt.replica_step_sizes)
    out["PT (MALA)"] = {
        "res": res,
        "seconds": t_adapt + t,
        "note": f"R={cfg['replicas']}, T_max={target.max_temperature:g}, "
        f"ε {float(eps[0]):.3g}…{float(eps[-1]):.3g}, min swap rate {float(rate.min()):.2f}",
    }

    schedule = geometric_schedule(target.max_temperature, 1.0, cfg["warmup"])
    ann = AnnealedLangevin(e, eps_ula, schedule.to(x0.dtype), grad_clip=clip)
    res, t = _timed(lambda: _run(ann, x0, cfg, seed + 6, cfg["warmup"]))
    out["Annealed Langevin"] = {
        "res": res,
        "seconds": t,
        "note": f"T: {target.max_temperature:g} → 1, ε={eps_ula:.3g}",
    }
    return out


def _moments(x: Tensor) -> tuple[Tensor, Tensor]:
    return x.mean(0), torch.cov(x.T)


def _mmd2(x: Tensor, ref: Tensor) -> float:
    """Unbiased MMD² of :func:`torchenergy.metrics.mmd2` in float64, its bandwidth the median
    pairwise distance of the exact draws alone (one fixed kernel per target, so rows compare)."""
    x, ref = x.double(), ref.double()
    d = torch.cdist(ref, ref)
    return float(mmd2(x, ref, bandwidth=d[d > 0].median()))


def _score(
    target: DemoTarget, run: dict[str, Any], ref: Tensor, cfg: dict[str, int], seed: int
) -> dict[str, Any]:
    res = run["res"]
    trace = res.trace[:, ~res.diverged]  # (T, C', 2): diverged chains are counted, not scored
    flat = trace.reshape(-1, trace.shape[-1])
    mean_t, cov_t = _moments(ref)
    mean_s, cov_s = _moments(flat)
    g = _gen(seed)
    pick = torch.randperm(flat.shape[0], generator=g)[: cfg["n_mmd"]]
    pick_ref = torch.randperm(ref.shape[0], generator=g)[: cfg["n_mmd"]]
    ess = ess_bulk(trace.double())
    row = {
        "mean_error": float(torch.linalg.norm(mean_s - mean_t)),
        "cov_rel_error": float(torch.linalg.norm(cov_s - cov_t) / torch.linalg.norm(cov_t)),
        "mode_weight_error": None,
        "mmd2": _mmd2(flat[pick], ref[pick_ref]),
        "accept": float(res.mean_accept_prob.mean()),
        "ess_bulk_min": float(ess.min()),
        "seconds": run["seconds"],
        "ess_per_second": float(ess.min()) / max(run["seconds"], 1e-9),
        "diverged_chains": int(res.diverged.sum()),
        "note": run["note"],
    }
    if target.split is not None:
        w_true = float(target.split(ref).double().mean())
        w_est = float(target.split(flat).double().mean())
        row["mode_weight"] = w_est
        row["mode_weight_true"] = w_true
        row["mode_weight_error"] = abs(w_est - w_true)
    return row


def _mode_finders(target: DemoTarget, x0: Tensor, n_steps: int) -> list[dict[str, Any]]:
    e = target.energy
    eps = DESCENT_STEP[target.name]
    modes = target.modes.to(x0.dtype)
    e_min = float(e(modes).min())
    rows = []
    for name, sampler in (
        ("Gradient descent", GradientDescent(e, eps)),
        ("Nesterov", Nesterov(e, eps, 0.9)),
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res, t = _timed(lambda s=sampler: run_chain(s, x0, n_steps, on_divergence="warn"))
        x = res.x
        dist = torch.cdist(x, modes).min(1).values
        found = dist < 0.05
        rows.append(
            {
                "target": target.name,
                "method": name,
                "step_size": eps,
                "steps": n_steps,
                "found_mode_fraction": float(found.double().mean()),
                "median_energy_gap": float((e(x) - e_min).median()),
                "seconds": t,
                "diverged_chains": int(res.diverged.sum()),
                "final": x,
            }
        )
    return rows


def _plot(
    target: DemoTarget, runs: dict, finders: list, ref: Tensor, rows: list[dict], path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x_lo, x_hi, y_lo, y_hi = target.box
    gx, gy = torch.meshgrid(
        torch.linspace(x_lo, x_hi, 200, dtype=torch.float64),
        torch.linspace(y_lo, y_hi, 200, dtype=torch.float64),
        indexing="xy",
    )
    grid = torch.stack((gx.flatten(), gy.flatten()), 1)
    with torch.no_grad():
        energy = target.energy(grid).reshape(200, 200)
    energy = (energy - energy.min()).clamp(max=30.0)
    panels = [("Exact", ref[:1000])]
    for name in SAMPLERS:
        res = runs[name]["res"]
        flat = res.trace[:, ~res.diverged].reshape(-1, 2)
        step = max(1, flat.shape[0] // 1000)
        panels.append((name, flat[::step]))
    fig, axes = plt.subplots(2, 4, figsize=(16, 7.5), sharex=True, sharey=True)
    fig.subplots_adjust(left=0.04, right=0.99, bottom=0.05, top=0.91, wspace=0.08, hspace=0.15)
    for ax, (name, pts) in zip(axes.flat, [*panels, ("Mode finders", None)]):
        ax.contour(
            gx.numpy(), gy.numpy(), energy.numpy(), levels=15, cmap="viridis", linewidths=0.7
        )
        if pts is not None:
            p = pts.detach().cpu().double()
            ax.scatter(p[:, 0], p[:, 1], s=3, alpha=0.35, color="tab:red")
        else:
            for f, marker, color in zip(finders, ("o", "x"), ("tab:blue", "tab:orange")):
                p = f["final"].detach().cpu().double()
                ax.scatter(
                    p[:, 0],
                    p[:, 1],
                    s=18,
                    marker=marker,
                    color=color,
                    label=f"{f['method']} ({f['found_mode_fraction']:.0%} at a mode)",
                )
            m = target.modes.double()
            ax.scatter(m[:, 0], m[:, 1], s=80, marker="*", color="k", label="true modes")
            ax.legend(fontsize=7, loc="upper left")
        ax.set_title(name, fontsize=10)
        ax.locator_params(nbins=4)
        ax.tick_params(labelsize=7)
    axes[0, 0].set_xlim(x_lo, x_hi)
    axes[0, 0].set_ylim(y_lo, y_hi)
    summary = axes.flat[-1]
    summary.axis("off")
    lines = [f"{'':18}{'MMD²':>9}{'|Δw|':>7}{'ESS/s':>7}"]
    for r in rows:
        w = "–" if r["mode_weight_error"] is None else f"{r['mode_weight_error']:.3f}"
        lines.append(f"{r['sampler']:18}{r['mmd2']:9.1e}{w:>7}{r['ess_per_second']:7.0f}")
    summary.text(
        0.0,
        0.9,
        "\n".join(lines),
        va="top",
        family="monospace",
        fontsize=8,
        transform=summary.transAxes,
    )
    fig.suptitle(target.title)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _fmt(v: Any, spec: str = ".3g") -> str:
    if v is None:
        return "–"
    if isinstance(v, float) and not math.isfinite(v):
        return "nan"
    return format(v, spec) if isinstance(v, float) else str(v)


def _markdown(rows: list[dict], finders: list[dict], cfg: dict, seconds: float) -> str:
    lines = [
        "# Sampler demo: accuracy and speed on analytic 2-D targets",
        "",
        f"{cfg['chains']} chains; MALA, HMC and PT tuned for {cfg['warmup']} warm-up steps (ULA "
        f"and annealed Langevin burn in for as long); then {cfg['steps']} steps, thinned by "
        f"{cfg['thin']}. Errors are against {cfg['n_ref']} exact draws: mean error ‖Δμ‖, "
        "relative covariance error ‖ΔΣ‖_F/‖Σ‖_F, |Δ weight| of the left mode (x₀ < 0), "
        f"unbiased squared MMD (RBF, median bandwidth, {cfg['n_mmd']} points). ESS: minimum "
        "bulk ESS over the two coordinates; time includes adaptation. Total "
        f"{seconds:.1f} s.",
        "",
        "| target | sampler | mean err | cov rel err | mode-weight err | MMD² | accept | "
        "ESS | ESS/s | time (s) | diverged | settings |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['target']} | {r['sampler']} | {_fmt(r['mean_error'])} | "
            f"{_fmt(r['cov_rel_error'])} | {_fmt(r['mode_weight_error'])} | {_fmt(r['mmd2'])} | "
            f"{_fmt(r['accept'], '.2f')} | {_fmt(r['ess_bulk_min'], '.0f')} | "
            f"{_fmt(r['ess_per_second'], '.0f')} | {_fmt(r['seconds'], '.2f')} | "
            f"{r['diverged_chains']} | {r['note']} |"
        )
    lines += [
        "",
        "## Mode finders (from the same initial points)",
        "",
        "| target | method | step size | steps | chains at a mode (< 0.05) | median E − E_min | "
        "time (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in finders:
        lines.append(
            f"| {f['target']} | {f['method']} | {f['step_size']:g} | {f['steps']} | "
            f"{f['found_mode_fraction']:.0%} | {_fmt(f['median_energy_gap'])} | "
            f"{f['seconds']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def run_sampler_demo(out_dir: Path | str, *, quick: bool = False, seed: int = 0) -> dict:
    """Run every sampler on the analytic targets; write plots and a table to ``out_dir``.

    Files: ``samplers_<target>.png`` (samples over energy contours, one per target),
    ``samplers.md`` (the table) and ``samplers.json`` (the same numbers).

    Args:
        out_dir: output folder (created when missing).
        quick: a few seconds' smoke run (few chains and steps; numbers are not meaningful).
        seed: seed of every random stream used (same seed, same numbers up to timings).

    Returns:
        ``{"rows": [...], "mode_finders": [...], "files": [...], "seconds": float,
        "config": {...}}``; each row holds the numbers of one (target, sampler) pair.

    Example:
        >>> out = run_sampler_demo(Path("/tmp/te_demo"), quick=True)  # doctest: +SKIP
        >>> sorted(out)  # doctest: +SKIP
        ['config', 'files', 'mode_finders', 'rows', 'seconds']
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = _config(quick)
    t_start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    finders_all: list[dict[str, Any]] = []
    files: list[str] = []
    for k, target in enumerate(demo_targets()):
        s = seed + 100 * k
        scale = INIT_SCALE.get(target.name, 1.0)
        x0 = scale * torch.randn(cfg["chains"], 2, generator=_gen(s), dtype=torch.float64)
        ref = target.sample(cfg["n_ref"], generator=_gen(s + 50))
        runs = _sample_all(target, x0, cfg, s)
        for name in SAMPLERS:
            row = {"target": target.name, "sampler": name}
            row.update(_score(target, runs[name], ref, cfg, s + 60))
            rows.append(row)
        finders = _mode_finders(target, x0, cfg["warmup"] + cfg["steps"])
        path = out / f"samplers_{target.name}.png"
        _plot(target, runs, finders, ref, rows[-len(SAMPLERS) :], path)
        files.append(str(path))
        for f in finders:
            f.pop("final")
        finders_all.extend(finders)
    seconds = time.perf_counter() - t_start
    md = out / "samplers.md"
    md.write_text(_markdown(rows, finders_all, cfg, seconds), encoding="utf-8")
    result = {
        "rows": rows,
        "mode_finders": finders_all,
        "files": [*files, str(md)],
        "seconds": seconds,
        "config": cfg,
    }
    js = out / "samplers.json"
    result["files"].append(str(js))
    js.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return result
