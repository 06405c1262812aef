"""The command line: error paths (one line, non-zero exit), config files and overrides, and a
tiny train -> sample -> evaluate round trip."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch

from torchenergy.cli import main
from torchenergy.cli.config import TrainConfig, load_config_file, parse_overrides
from torchenergy.train import load_checkpoint

TINY = [
    "hidden=[8]",
    "steps=4",
    "batch_size=16",
    "buffer_size=32",
    "n_sampler_steps=2",
    "n_test=64",
    "log_every=1",
]


def _err_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["train", "data=nope"], "unknown toy density 'nope'"),
        (["train", "step_size=-0.1"], "step_size must be a finite number > 0, got -0.1"),
        (["train", "lr"], "bad override 'lr'"),
        (["train", "learning_rate=0.1"], "unknown config key(s) ['learning_rate']"),
        (["train", "steps=ten"], "steps must be an int, got 'ten'"),
        (["train", "loss=vae"], "unknown loss 'vae'"),
        (["train", "--config", "missing.toml"], "config file 'missing.toml' not found"),
        (["sample", "--checkpoint", "missing.pt", "--out", "x.csv"], "not found"),
        (["evaluate", "--checkpoint", "missing.pt"], "not found"),
        (["sample", "--out", "x.csv"], "--checkpoint"),
        (["frobnicate"], "invalid choice"),
        (["evaluate", "--checkpoint", "c.pt", "--n", "0"], "--n must be >= 1, got 0"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, needle, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main([*argv, *(["--out", str(tmp_path / "o")] if argv[0] == "train" else [])]) == 2
    assert needle in _err_line(capsys)


def test_corrupt_and_foreign_checkpoints(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"this is not a checkpoint")
    assert main(["evaluate", "--checkpoint", str(bad)]) == 2
    assert "is not a torchenergy checkpoint (not a file written by torch.save)" in _err_line(capsys)
    from torchenergy.train import save_checkpoint

    save_checkpoint(tmp_path / "noconfig.pt", {"step": 1})
    assert main(["sample", "--checkpoint", str(tmp_path / "noconfig.pt"), "--out", "x.csv"]) == 2
    assert "holds no run config" in _err_line(capsys)


def test_bad_config_files(tmp_path, capsys):
    (tmp_path / "c.json").write_text("{not json")
    assert main(["train", "--config", str(tmp_path / "c.json"), "--out", str(tmp_path)]) == 2
    assert "does not parse" in _err_line(capsys)
    (tmp_path / "c.yaml").write_text("a: 1")
    assert main(["train", "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path)]) == 2
    assert ".json or .toml" in _err_line(capsys)


def test_overrides_parse_and_win_over_the_file(tmp_path):
    assert parse_overrides(["lr=1e-3", "data=moons", "ema=null", "hidden=[4, 4]", "x=True"]) == {
        "lr": 1e-3,
        "data": "moons",
        "ema": None,
        "hidden": [4, 4],
        "x": True,
    }
    (tmp_path / "c.toml").write_text('data = "moons"\nlr = 0.01\nhidden = [32, 32]\n')
    cfg = TrainConfig.from_dict(load_config_file(tmp_path / "c.toml"), overrides=["lr=0.02"])
    assert (cfg.data, cfg.lr, cfg.hidden) == ("moons", 0.02, [32, 32])
    assert TrainConfig.from_dict({}, overrides=["grad_clip=1"]).grad_clip == 1.0  # int widens
    with pytest.raises(ValueError, match="ema must be a decay"):
        TrainConfig.from_dict({}, overrides=["ema=1.5"])


def test_train_sample_evaluate_round_trip(tmp_path, capsys):
    threads_before = torch.get_num_threads()
    (tmp_path / "cfg.json").write_text(json.dumps({"data": "moons", "lr": 0.005}))
    out = tmp_path / "run"
    argv = ["train", "--config", str(tmp_path / "cfg.json"), "--out", str(out), "--no-progress"]
    argv += ["--tensorboard", "--threads", str(threads_before + 1)]
    assert main([*argv, *TINY, "ema=0.9"]) == 0
    assert "checkpoint" in capsys.readouterr().out
    for name in ("checkpoint.pt", "log.csv", "config.json"):
        assert (out / name).is_file()
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert torch.get_num_threads() == threads_before  # --threads is undone when main returns
    assert json.loads((out / "config.json").read_text())["lr"] == 0.005
    ckpt = str(out / "checkpoint.pt")
    assert load_checkpoint(ckpt)["step"] == 4
    fast = ["--checkpoint", ckpt, "--n", "50", "--steps", "5"]
    for suffix in (".csv", ".pt", ".png"):
        assert main(["sample", *fast, "--out", str(tmp_path / f"s{suffix}")]) == 0
    rows = (tmp_path / "s.csv").read_text().splitlines()
    assert rows[0] == "x0,x1" and len(rows) == 51
    assert torch.load(tmp_path / "s.pt", weights_only=True).shape == (50, 2)
    assert (tmp_path / "s.png").stat().st_size > 1000
    capsys.readouterr()
    assert main(["evaluate", *fast, "--json", str(tmp_path / "m.json")]) == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert set(metrics) >= {"heldout_nll", "mmd2", "sliced_wasserstein", "energy_distance"}
    assert all(math.isfinite(v) for v in metrics.values())
    assert json.loads(capsys.readouterr().out) == metrics


def test_cli_resume_matches_an_uninterrupted_run(tmp_path):
    common = ["--no-progress", *TINY, "data=moons"]
    assert main(["train", "--out", str(tmp_path / "a"), *common, "steps=6"]) == 0
    assert main(["train", "--out", str(tmp_path / "b"), *common, "steps=3"]) == 0
    assert main(["train", "--out", str(tmp_path / "b"), "--resume", *common, "steps=6"]) == 0
    a = load_checkpoint(tmp_path / "a" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert a["step"] == b["step"] == 6
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key])
    for key, value in a["state"]["buffer"].items():
        assert torch.equal(value, b["state"]["buffer"][key])
    steps = [
        line.split(",")[0] for line in (tmp_path / "b" / "log.csv").read_text().splitlines()[1:]
    ]
    assert [float(s) for s in steps] == [1, 2, 3, 4, 5, 6]


def test_resume_with_another_config_is_refused(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path), "--no-progress", *TINY]) == 0
    assert (
        main(["train", "--out", str(tmp_path), "--resume", "--no-progress", *TINY, "lr=0.5"]) == 2
    )
    assert "another config" in _err_line(capsys)


def test_python_dash_m_reports_without_traceback(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torchenergy",
            "evaluate",
            "--checkpoint",
            str(tmp_path / "none.pt"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"torchenergy: error: checkpoint '{tmp_path / 'none.pt'}' not found (no such file)"
    ]


def test_digits_with_a_conv_energy_round_trip(tmp_path):
    out = tmp_path / "digits"
    args = ["data=digits", "energy=conv", "hidden=[4,8]", "steps=2", "batch_size=16"]
    args += ["buffer_size=32", "n_sampler_steps=2", "n_test=40", "step_size=0.001"]
    assert main(["train", "--out", str(out), "--no-progress", *args]) == 0
    ckpt = str(out / "checkpoint.pt")
    assert (
        main(
            [
                "sample",
                "--checkpoint",
                ckpt,
                "--n",
                "8",
                "--steps",
                "2",
                "--out",
                str(tmp_path / "d.png"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "sample",
                "--checkpoint",
                ckpt,
                "--n",
                "8",
                "--steps",
                "2",
                "--out",
                str(tmp_path / "d.csv"),
            ]
        )
        == 0
    )
    assert len((tmp_path / "d.csv").read_text().splitlines()[0].split(",")) == 64
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                ckpt,
                "--n",
                "20",
                "--steps",
                "2",
                "--json",
                str(tmp_path / "m.json"),
            ]
        )
        == 0
    )
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert "heldout_nll" not in metrics and math.isfinite(metrics["mmd2"])


def test_conv_energy_on_2d_data_is_refused(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path), "energy=conv"]) == 2
    assert "energy 'conv' needs image data" in _err_line(capsys)
