"""``torchenergy train --model flow|score|cnn|jem|conv``: the CLI reaches the modern models."""

from __future__ import annotations

import json

import pytest

from torchenergy.cli import main
from torchenergy.data import fashion_mnist_dir
from torchenergy.train import load_checkpoint


def _has_fashion() -> bool:
    try:
        fashion_mnist_dir()
    except (FileNotFoundError, OSError, ValueError):
        return False
    return True


needs_fashion = pytest.mark.skipif(
    not _has_fashion(), reason="sudo apt-get install dataset-fashion-mnist"
)


@pytest.mark.parametrize("model", ["flow", "score"])
def test_flow_and_score_runs_write_checkpoint_samples_and_metrics(tmp_path, model, capsys):
    out = tmp_path / model
    argv = ["train", "--model", model, "--data", "eight_gaussians", "--out", str(out)]
    assert main([*argv, "steps=30", "n_eval=100", "hidden=16"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 30 and metrics["mmd2"] == metrics["mmd2"]  # finite, not NaN
    assert ("heldout_nll" in metrics) == (model == "flow")
    assert (out / "samples.png").stat().st_size > 0
    assert load_checkpoint(out / "checkpoint.pt")["kind"] == model
    assert (out / "loss.csv").read_text().count("\n") == 31
    assert f"trained {model} on eight_gaussians" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "flow", "--data", "moons"], "data must be fashion_mnist or a toy"),
        (["--model", "flow"], "--model flow needs --data"),
        (["--model", "flow", "--data", "grid", "bogus=1"], "override 'bogus=1' is not key=value"),
        (["--model", "flow", "--data", "grid", "steps=x"], "override steps='x': expected int"),
        (["--model", "score", "--data", "grid", "coupling=ot"], "coupling must be"),
        (["--model", "jem", "--data", "digits"], "trains on --data fashion_mnist"),
        (["--model", "jem", "sgld_steps=2.5"], "sgld_steps must be an int, got 2.5"),
        (["--model", "conv", "nope=1"], "not key=value with a field of the conv config"),
    ],
)
def test_bad_model_options_get_one_line_and_leave_no_folder(tmp_path, capsys, argv, message):
    out = tmp_path / "run"
    assert main(["train", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("torchenergy: error: ") and message in err and err.count("\n") == 1
    assert not out.exists()


@needs_fashion
def test_cnn_run_on_a_slice_of_fashion_mnist(tmp_path):
    out = tmp_path / "cnn"
    argv = ["train", "--model", "cnn", "--data", "fashion_mnist", "--out", str(out)]
    assert main([*argv, "--epochs", "1", "--limit", "128"]) == 0
    assert load_checkpoint(out / "checkpoint.pt")["kind"] == "cnn"


@pytest.mark.slow
@needs_fashion
@pytest.mark.parametrize("model", ["jem", "conv"])
def test_energy_image_runs_on_a_slice_of_fashion_mnist(tmp_path, model):
    out = tmp_path / model
    argv = ["train", "--model", model, "--data", "fashion_mnist", "--out", str(out)]
    assert main([*argv, "--epochs", "1", "--limit", "256", "steps=3"]) == 0
    assert load_checkpoint(out / "checkpoint.pt")["kind"] == model
