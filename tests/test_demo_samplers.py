import json
import math

import pytest

pytest.importorskip("matplotlib")

from torchenergy.cli.demos import run_sampler_demo
from torchenergy.cli.demos.targets import demo_targets, sample_double_well


def test_quick_demo_writes_plots_table_and_json(tmp_path):
    out = run_sampler_demo(tmp_path, quick=True)
    assert sorted(out) == ["config", "files", "mode_finders", "rows", "seconds"]
    names = {p.name for p in tmp_path.iterdir()}
    for t in ("gaussian_mixture", "double_well", "rosenbrock", "correlated_gaussian"):
        png = tmp_path / f"samplers_{t}.png"
        assert png.name in names and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(out["rows"]) == 4 * 5 and len(out["mode_finders"]) == 4 * 2
    samplers = {r["sampler"] for r in out["rows"]}
    assert samplers == {"ULA", "MALA", "HMC", "PT (MALA)", "Annealed Langevin"}
    for r in out["rows"]:
        for key in ("mean_error", "cov_rel_error", "mmd2", "accept", "ess_per_second", "seconds"):
            assert math.isfinite(r[key]), (r["target"], r["sampler"], key, r[key])
        assert 0.0 <= r["accept"] <= 1.0
        assert (r["mode_weight_error"] is None) == (
            r["target"] in ("rosenbrock", "correlated_gaussian")
        )
    loaded = json.loads((tmp_path / "samplers.json").read_text())
    assert loaded["rows"] == out["rows"]
    md = (tmp_path / "samplers.md").read_text()
    assert md.count("\n| gaussian_mixture |") == 5 + 2


def test_reference_draws_and_mmd():
    import torch

    targets = {t.name: t for t in demo_targets()}
    well = targets["double_well"]
    g = torch.Generator().manual_seed(0)
    x = sample_double_well(well.energy, 20000, generator=g)
    # symmetric wells: half the mass on each side (4 MCSE), x1 standard normal
    n = x.shape[0]
    assert abs(float((x[:, 0] < 0).double().mean()) - 0.5) <= 4 * math.sqrt(0.25 / n)
    assert abs(float(x[:, 1].var()) - 1.0) <= 4 * math.sqrt(2 / n)
    # the grid inverse CDF matches the 1-D density's second moment by quadrature
    t = torch.linspace(-5, 5, 200001, dtype=torch.float64)
    dens = torch.exp(-4.0 * ((t / 1.5) ** 2 - 1) ** 2)
    m2 = float(torch.trapezoid(t**2 * dens, t) / torch.trapezoid(dens, t))
    sd_m2 = float(x[:, 0].pow(2).std())
    assert abs(float(x[:, 0].pow(2).mean()) - m2) <= 4 * sd_m2 / math.sqrt(n)


def test_demo_mmd_is_the_library_mmd_with_the_reference_bandwidth():
    import torch

    from torchenergy.cli.demos.samplers import _mmd2
    from torchenergy.metrics import mmd2

    g = torch.Generator().manual_seed(0)
    a = torch.randn(400, 2, generator=g)
    b = torch.randn(400, 2, generator=g)
    # near zero for the same law, clearly positive for shifted samples
    assert abs(_mmd2(a, b)) < 0.02 and _mmd2(a + 2.0, b) > 0.2
    # float64, and one kernel per reference: the bandwidth is the exact draws' median distance
    h = torch.pdist(b.double()).median()
    assert math.isclose(
        _mmd2(a + 2.0, b), float(mmd2(a.double() + 2.0, b.double(), bandwidth=h)), rel_tol=1e-9
    )
