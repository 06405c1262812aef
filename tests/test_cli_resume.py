"""Interrupted ``torchenergy train`` runs resume bit for bit (weights, optimiser, EMA, replay
buffer, every random state, step, log.csv, config.json), whatever the point of the interrupt."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests._same_run import assert_same_tree
from torchenergy.cli import main
from torchenergy.cli.run_io import TEST_INTERRUPT_ENV
from torchenergy.train import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
# the issue's command, made small: PCD with a replay buffer, EMA, periodic checkpoints
FAST = ["data=moons", "hidden=[32]", "loss=pcd", "ema=0.9", "checkpoint_every=25", "steps=60"]
FAST += ["batch_size=64", "buffer_size=512", "n_sampler_steps=5", "n_test=200", "log_every=10"]
OPTS = ["--no-progress", "--threads", "1"]


def assert_same_run(a: Path, b: Path) -> None:
    ca, cb = load_checkpoint(a / "checkpoint.pt"), load_checkpoint(b / "checkpoint.pt")
    assert ca["step"] == cb["step"]
    assert_same_tree(ca, cb)  # model, optimizer, ema, state/buffer, rng (all of it), counters
    assert (a / "log.csv").read_bytes() == (b / "log.csv").read_bytes()
    assert (a / "config.json").read_bytes() == (b / "config.json").read_bytes()


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def _interrupt_line(out: Path, step: int) -> str:
    return (
        f"torchenergy: interrupted after step {step}; '{out / 'checkpoint.pt'}' holds that step "
        f"(continue with `torchenergy train --out {out} --resume`)"
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "run"
    assert main(["train", *FAST, "--out", str(out), *OPTS]) == 0
    return out


# spec: where the interrupt comes (test hook in run_io); saved: the step the checkpoint holds
MATRIX = [
    ("1", 0),  # inside the very first step: the step-0 boundary is saved
    ("25", 24),  # inside a step that would have written a periodic checkpoint
    ("37", 36),  # KeyboardInterrupt raised mid-step, after the buffer and generators moved
    ("40:signal", 40),  # a real SIGINT mid-step: the step finishes, then it stops
    ("60:signal", 60),  # in the last step: the run is complete, resume has nothing to do
]


@pytest.mark.parametrize(("spec", "saved"), MATRIX)
def test_interrupt_anywhere_then_resume_is_bit_identical(
    reference, tmp_path, monkeypatch, capsys, spec, saved
):
    out = tmp_path / "run"
    monkeypatch.setenv(TEST_INTERRUPT_ENV, spec)
    assert main(["train", *FAST, "--out", str(out), *OPTS]) == 130
    assert _err(capsys) == _interrupt_line(out, saved)
    assert load_checkpoint(out / "checkpoint.pt")["step"] == saved
    monkeypatch.delenv(TEST_INTERRUPT_ENV)
    assert main(["train", "--out", str(out), "--resume", *OPTS]) == 0  # reads out/config.json
    assert_same_run(reference, out)


def test_ctrl_c_with_the_default_checkpoint_every_still_saves(reference, tmp_path, monkeypatch):
    out = tmp_path / "run"
    args = [a if not a.startswith("checkpoint_every") else "checkpoint_every=0" for a in FAST]
    monkeypatch.setenv(TEST_INTERRUPT_ENV, "37")
    assert main(["train", *args, "--out", str(out), *OPTS]) == 130
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 36
    monkeypatch.delenv(TEST_INTERRUPT_ENV)
    # an override placed after the options (checkpoint_every may change on resume)
    assert main(["train", "--out", str(out), "--resume", *OPTS, "checkpoint_every=25"]) == 0
    assert_same_run(reference, out)


def test_interrupt_twice_and_resume_twice(reference, tmp_path, monkeypatch):
    out = tmp_path / "run"
    monkeypatch.setenv(TEST_INTERRUPT_ENV, "13")
    assert main(["train", *FAST, "--out", str(out), *OPTS]) == 130
    monkeypatch.setenv(TEST_INTERRUPT_ENV, "51:signal")
    assert main(["train", "--out", str(out), "--resume", *OPTS]) == 130
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 51
    monkeypatch.delenv(TEST_INTERRUPT_ENV)
    assert main(["train", "--out", str(out), "--resume", *OPTS]) == 0
    assert_same_run(reference, out)


@pytest.mark.parametrize("spec", ["7", "8:signal"])
def test_fixed_training_set_resumes_mid_epoch(tmp_path, monkeypatch, spec):
    """n_train > 0: a DataLoader with its own generator, 4 batches an epoch."""
    args = [*FAST[:-1], "steps=14", "n_train=256", "log_every=3"]
    assert main(["train", *args, "--out", str(tmp_path / "ref"), *OPTS]) == 0
    monkeypatch.setenv(TEST_INTERRUPT_ENV, spec)
    assert main(["train", *args, "--out", str(tmp_path / "run"), *OPTS]) == 130
    monkeypatch.delenv(TEST_INTERRUPT_ENV)
    assert main(["train", "--out", str(tmp_path / "run"), "--resume", *OPTS]) == 0
    assert_same_run(tmp_path / "ref", tmp_path / "run")


def _copy(reference: Path, tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    return out, {p.name: p.read_bytes() for p in out.iterdir()}


def test_resume_with_fewer_steps_says_so_and_rewrites_nothing(reference, tmp_path, capsys):
    out, before = _copy(reference, tmp_path)
    assert main(["train", "--out", str(out), "--resume", "steps=30", *OPTS]) == 2
    assert _err(capsys) == (
        f"torchenergy: error: the run in '{out}' has done 60 steps and steps=30 asks for fewer; "
        "nothing was changed (resume with steps=60 or more)"
    )
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert main(["train", "--out", str(out), "--resume", *OPTS]) == 0  # already done
    assert "already at step 60 (steps=60); nothing to do" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_resume_checks_the_config_and_the_thread_count(reference, tmp_path, capsys):
    out, before = _copy(reference, tmp_path)
    ckpt = out / "checkpoint.pt"
    assert main(["train", "--out", str(out), "--resume", "lr=0.01", *OPTS]) == 2
    assert _err(capsys) == (
        f"torchenergy: error: '{ckpt}' was trained with another config: lr 0.001 then, 0.01 now "
        "(on --resume only steps and checkpoint_every may change)"
    )
    assert main(["train", "--out", str(out), "--resume", "steps=80", "--threads", "2"]) == 2
    assert _err(capsys) == (
        f"torchenergy: error: '{ckpt}' was trained with 1 torch threads and this process has 2; "
        "a resumed run is bit-identical only with the same count: add --threads 1"
    )
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert main(["train", "--out", str(tmp_path / "empty"), "--resume", *OPTS]) == 2
    assert "nothing to resume in" in _err(capsys)
    assert not (tmp_path / "empty").exists()


def test_readme_resume_command_continues_a_finished_run(reference, tmp_path):
    """``torchenergy train --out runs/moons --resume steps=4000`` (README): more steps."""
    out, _ = _copy(reference, tmp_path)
    assert main(["train", "--out", str(out), "--resume", "steps=70", *OPTS]) == 0
    longer = tmp_path / "longer"
    args = [a if a != "steps=60" else "steps=70" for a in FAST]
    assert main(["train", *args, "--out", str(longer), *OPTS]) == 0
    assert_same_run(longer, out)


# ---------------------------------------------------------------- real processes, real SIGINT
def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != TEST_INTERRUPT_ENV}
    return {**env, "PYTHONPATH": str(ROOT)}


def _last_logged_step(log: Path) -> int:
    try:
        rows = log.read_text().splitlines()[1:]
        return int(rows[-1].split(",")[0]) if rows else 0
    except (FileNotFoundError, ValueError, IndexError):
        return 0


def sigint_after(cmd: list[str], log: Path, at_least: int, timeout: float = 240) -> tuple[int, str]:
    """Start ``cmd``, send SIGINT once ``log`` shows step ``at_least``; (returncode, stderr)."""
    proc = subprocess.Popen(cmd, env=_env(), stderr=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    while _last_logged_step(log) < at_least:
        assert proc.poll() is None, f"finished before the interrupt: {proc.stderr.read()}"
        assert time.monotonic() - t0 < timeout, "no progress"
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def test_real_sigint_to_a_running_process_then_resume(tmp_path):
    ref, out = tmp_path / "ref", tmp_path / "run"
    args = [a if a != "steps=60" else "steps=120" for a in FAST]
    assert main(["train", *args, "--out", str(ref), *OPTS]) == 0
    long = [a if a != "steps=60" else "steps=100000" for a in FAST]
    cmd = [sys.executable, "-m", "torchenergy", "train", *long, "--out", str(out), *OPTS]
    code, err = sigint_after(cmd, out / "log.csv", 20)
    done = load_checkpoint(out / "checkpoint.pt")["step"]
    assert code == 130 and err.strip().splitlines() == [_interrupt_line(out, done)]
    assert 20 <= done < 120, done
    resume = [sys.executable, "-m", "torchenergy", "train", "--out", str(out), "--resume"]
    proc = subprocess.run([*resume, "steps=120", *OPTS], env=_env(), capture_output=True)
    assert proc.returncode == 0, proc.stderr
    assert_same_run(ref, out)


@pytest.mark.slow
def test_the_issue_command_interrupted_by_sigint_and_hook_resumes_exactly(tmp_path):
    """The command of issue 15, 600 steps, interrupted three ways (two real SIGINTs; the test
    hook inside a step) and resumed each time: equal to the uninterrupted run, bit for bit."""
    base = ["data=moons", "hidden=[32]", "loss=pcd", "ema=0.9", "checkpoint_every=50"]
    run = [sys.executable, "-m", "torchenergy", "train", *base, "steps=600"]
    opts = ["--no-progress"]
    ref, a, b = tmp_path / "ref", tmp_path / "a", tmp_path / "b"
    assert subprocess.run([*run, "--out", str(ref), *opts], env=_env()).returncode == 0
    resume = [sys.executable, "-m", "torchenergy", "train", "--resume", *opts]
    assert sigint_after([*run, "--out", str(a), *opts], a / "log.csv", 100)[0] == 130
    assert sigint_after([*resume, "--out", str(a)], a / "log.csv", 300)[0] == 130
    assert subprocess.run([*resume, "--out", str(a)], env=_env()).returncode == 0
    assert_same_run(ref, a)
    hook = {**_env(), TEST_INTERRUPT_ENV: "437"}
    assert subprocess.run([*run, "--out", str(b), *opts], env=hook).returncode == 130
    assert load_checkpoint(b / "checkpoint.pt")["step"] == 436
    assert subprocess.run([*resume, "--out", str(b)], env=_env()).returncode == 0
    assert_same_run(ref, b)


def test_power_check_a_checkpoint_taken_mid_step_is_caught(reference, tmp_path, monkeypatch):
    """Without the rollback (the old behaviour) the same comparison fails."""
    import torchenergy.train.trainer as trainer_module

    monkeypatch.setattr(trainer_module, "rollback_step", lambda *args, **kwargs: None)
    out = tmp_path / "run"
    monkeypatch.setenv(TEST_INTERRUPT_ENV, "37")
    assert main(["train", *FAST, "--out", str(out), *OPTS]) == 130
    monkeypatch.delenv(TEST_INTERRUPT_ENV)
    assert main(["train", "--out", str(out), "--resume", *OPTS]) == 0
    with pytest.raises(AssertionError):
        assert_same_run(reference, out)
