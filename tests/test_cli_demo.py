"""``torchenergy demo``: every promised file is written and the paths are printed."""

from __future__ import annotations

import json
import math

import pytest
from PIL import Image

from torchenergy.cli import main

FILES = [
    "landscape.png",
    "samples.png",
    "score_field.png",
    "training.gif",
    "training_curves.png",
    "metrics.json",
    "checkpoint.pt",
    "config.json",
    "log.csv",
]


def _check_outputs(out, stdout):
    for name in FILES:
        assert (out / name).is_file(), name
        assert str(out / name) in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("heldout_nll", "kde_nll", "mmd2", "edge_mass", "train_seconds"):
        assert math.isfinite(metrics[key]), key
    assert Image.open(out / "training.gif").n_frames >= 3


def test_tiny_demo_writes_everything(tmp_path, capsys, monkeypatch):
    calls = []
    import torchenergy.cli.demos.samplers as sd

    monkeypatch.setattr(sd, "run_sampler_demo", lambda out, quick=False: calls.append((out, quick)))
    out = tmp_path / "demo"
    tiny = ["steps=6", "snapshot_every=2", "hidden=[8]", "n_test=300", "buffer_size=300"]
    assert main(["demo", "--quick", "--out", str(out), *tiny]) == 0
    _check_outputs(out, capsys.readouterr().out)
    assert calls == [(out / "samplers", True)]
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["steps"], cfg["hidden"]) == (6, [8])


def test_demo_rejects_bad_overrides(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "data=nowhere"]) == 2
    assert "unknown toy density 'nowhere'" in capsys.readouterr().err


@pytest.mark.slow
def test_quick_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    _check_outputs(out, capsys.readouterr().out)
    assert (out / "samplers" / "samplers.json").is_file()
