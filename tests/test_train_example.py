"""examples/train_2d.py runs, and keeps its promise: Ctrl-C, then the same command with
``--resume``, ends exactly where an uninterrupted run ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests._same_run import assert_same_tree
from torchenergy.train import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def _cmd(out: Path, steps: int) -> list[str]:
    example = str(ROOT / "examples" / "train_2d.py")
    return [
        sys.executable,
        example,
        "--out",
        str(out),
        "--steps",
        str(steps),
        "--sample-steps",
        "3",
    ]


def _rows(log: Path) -> int:
    try:
        return max(0, len(log.read_text().splitlines()) - 1)
    except FileNotFoundError:
        return 0


def test_example_runs(tmp_path):
    run = subprocess.run(_cmd(tmp_path, 3), capture_output=True, text=True, env=ENV, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "held-out NLL" in run.stdout
    for name in ("density.png", "samples.png", "curves.png", "checkpoint.pt", "log.csv"):
        assert (tmp_path / name).is_file()


@pytest.mark.slow
def test_example_runs_and_resumes_bit_identically_after_ctrl_c(tmp_path):
    steps = 30
    straight = subprocess.run(
        _cmd(tmp_path / "a", steps), capture_output=True, text=True, env=ENV, timeout=600
    )
    assert straight.returncode == 0, straight.stderr
    assert "held-out NLL" in straight.stdout
    for name in ("density.png", "samples.png", "curves.png", "checkpoint.pt", "log.csv"):
        assert (tmp_path / "a" / name).is_file()

    b = tmp_path / "b"
    proc = subprocess.Popen(_cmd(b, steps), env=ENV, stderr=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    while _rows(b / "log.csv") < 8:
        assert proc.poll() is None, "finished before the interrupt"
        assert time.monotonic() - t0 < 300
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    done = load_checkpoint(b / "checkpoint.pt")["step"]
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1] == f"interrupted after step {done}; run again with --resume"
    assert 8 <= done < steps
    resumed = subprocess.run(
        [*_cmd(b, steps), "--resume"], capture_output=True, text=True, env=ENV, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.splitlines()[0] == straight.stdout.splitlines()[0]  # the NLL line

    ca, cb = load_checkpoint(tmp_path / "a" / "checkpoint.pt"), load_checkpoint(b / "checkpoint.pt")
    assert ca["step"] == cb["step"] == steps
    # NumPy's and Python's global generators are never used by the example and never seeded,
    # so they differ between processes; everything else must be equal bit for bit
    for rng in (ca["rng"], cb["rng"]):
        del rng["numpy"], rng["python"]
    assert_same_tree(ca, cb)
    assert (tmp_path / "a" / "log.csv").read_bytes() == (b / "log.csv").read_bytes()
