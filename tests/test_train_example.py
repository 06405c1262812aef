"""Smoke test of examples/train_2d.py (a few steps; resumption is tested in test_train_resume)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_example_runs(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, str(ROOT / "examples" / "train_2d.py"), "--out", str(tmp_path)]
    cmd += ["--sample-steps", "3"]
    first = subprocess.run(
        [*cmd, "--steps", "3"], capture_output=True, text=True, env=env, timeout=300
    )
    assert first.returncode == 0, first.stderr
    assert "held-out NLL" in first.stdout
    for name in ("density.png", "samples.png", "curves.png", "checkpoint.pt", "log.csv"):
        assert (tmp_path / name).is_file()
