"""Observed orders of the ODE integrators on the exact Gaussian flow map (float64), and the
endpoint behaviour of score/noise samplers without a sample epsilon.

    python bench/diffusion_orders.py
"""

from __future__ import annotations

import math

import torch

from torchenergy.diffusion import FlowSampler, GaussianPath

MU = torch.tensor([1.0, -0.5], dtype=torch.float64)
SIGMA = torch.tensor([[1.0, 0.6], [0.6, 0.8]], dtype=torch.float64)


def main() -> None:
    torch.set_num_threads(1)
    lines = [
        "| path | prediction | method | err n=16 | err n=32 | err n=64 | observed order |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in ("linear", "cosine"):
        path = GaussianPath(MU, SIGMA, name)
        m, c = path.marginal(0.0)
        x0 = (
            m
            + torch.randn(256, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
            @ torch.linalg.cholesky(c).T
        )
        exact = path.flow_map(x0, 0.0, 1.0)
        for pred in ("velocity", "score"):
            for method in ("euler", "heun", "midpoint", "rk4"):
                errs = []
                for n in (16, 32, 64):
                    fs = FlowSampler(
                        path.field(pred), name, prediction=pred, integrator=method, n_steps=n
                    )
                    errs.append((fs.sample(x0).x - exact).abs().max().item())
                order = math.log2(errs[1] / errs[2])
                lines.append(
                    f"| {name} | {pred} | {method} | {errs[0]:.2e} | {errs[1]:.2e} | {errs[2]:.2e} | {order:.2f} |"
                )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
