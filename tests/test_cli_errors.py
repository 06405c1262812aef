"""Bad input to the command line: one line ``torchenergy: error: ...``, exit status 2, checked
before any work is done, and nothing left behind."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
import torch

from torchenergy.cli import main
from torchenergy.train import load_checkpoint, save_checkpoint

TINY = ["hidden=[8]", "steps=4", "batch_size=16", "buffer_size=32", "n_sampler_steps=2"]
TINY += ["n_test=64", "log_every=1"]


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("trained") / "run"
    assert main(["train", "data=moons", *TINY, "--out", str(out), "--no-progress"]) == 0
    return out


@pytest.fixture
def no_work(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the work started before the output path was checked")

    # patched to fail: proves that the output path was checked first
    monkeypatch.setattr("torchenergy.cli.run_io.build_run", fail)
    monkeypatch.setattr("torchenergy.cli.recipe.load_run", fail)


def test_out_is_a_file(tmp_path, capsys, no_work):
    f = tmp_path / "file"
    f.write_text("x")
    for argv in (["train", *TINY, "--no-progress"], ["demo", "--quick"]):
        assert main([*argv, "--out", str(f)]) == 2
        assert _err(capsys) == f"torchenergy: error: --out '{f}': '{f}' is a file, not a folder"
    assert main(["train", *TINY, "--out", str(f / "sub" / "run")]) == 2
    assert _err(capsys) == (
        f"torchenergy: error: --out '{f / 'sub' / 'run'}': '{f}' is a file, not a folder"
    )
    assert f.read_text() == "x"


def test_sample_and_evaluate_outputs_are_checked_first(tmp_path, capsys, no_work, trained):
    ckpt = str(trained / "checkpoint.pt")
    (tmp_path / "d.csv").mkdir()
    assert main(["sample", "--checkpoint", ckpt, "--out", str(tmp_path / "d.csv")]) == 2
    assert _err(capsys) == f"torchenergy: error: --out '{tmp_path / 'd.csv'}': it is a folder"
    (tmp_path / "f").write_text("")
    bad = tmp_path / "f" / "x.png"
    assert main(["sample", "--checkpoint", ckpt, "--out", str(bad)]) == 2
    assert (
        _err(capsys)
        == f"torchenergy: error: --out '{bad}': '{tmp_path / 'f'}' is a file, not a folder"
    )
    bad = tmp_path / "f" / "m.json"
    assert main(["evaluate", "--checkpoint", ckpt, "--json", str(bad)]) == 2
    assert (
        _err(capsys)
        == f"torchenergy: error: --json '{bad}': '{tmp_path / 'f'}' is a file, not a folder"
    )


def test_no_permission(tmp_path, capsys, monkeypatch, no_work):
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() != 0:  # root writes anywhere: then only the simulated refusal below
        ro.chmod(0o500)
        assert main(["train", *TINY, "--out", str(ro / "run")]) == 2
        assert (
            _err(capsys)
            == f"torchenergy: error: --out '{ro / 'run'}': no permission to write in '{ro}'"
        )
        ro.chmod(0o700)
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != ro)
    assert main(["train", *TINY, "--out", str(ro / "run")]) == 2
    assert (
        _err(capsys)
        == f"torchenergy: error: --out '{ro / 'run'}': no permission to write in '{ro}'"
    )
    assert main(["demo", "--out", str(ro)]) == 2
    assert _err(capsys) == f"torchenergy: error: --out '{ro}': no permission to write in '{ro}'"
    assert not (ro / "run").exists()


def test_an_oserror_during_the_work_is_one_line(tmp_path, capsys, monkeypatch, trained):
    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_text", full)
    out = tmp_path / "m.json"
    argv = ["evaluate", "--checkpoint", str(trained / "checkpoint.pt"), "--n", "20"]
    assert main([*argv, "--steps", "2", "--json", str(out)]) == 2
    assert _err(capsys) == f"torchenergy: error: No space left on device: '{out}'"


@pytest.mark.parametrize("cmd", ["train", "demo"])
def test_unknown_data_set_leaves_no_folder(tmp_path, capsys, cmd):
    out = tmp_path / "new" / "run"
    assert main([cmd, "--out", str(out), "data=nowhere", *TINY]) == 2
    assert "unknown toy density 'nowhere'" in _err(capsys)
    assert not (tmp_path / "new").exists()


def test_a_checkpoint_of_another_model_names_the_tensor(tmp_path, capsys, trained):
    ckpt = load_checkpoint(trained / "checkpoint.pt")
    ckpt["config"] = {**ckpt["config"], "hidden": [16]}  # the weights are still (8, 2)
    save_checkpoint(tmp_path / "other.pt", ckpt)
    assert main(["evaluate", "--checkpoint", str(tmp_path / "other.pt")]) == 2
    assert _err(capsys) == (
        "torchenergy: error: checkpoint does not fit this model: model tensor "
        "'energy.net.0.weight' has shape (8, 2) in the checkpoint and (16, 2) in the model"
    )


def test_not_a_checkpoint_never_hints_at_weights_only(tmp_path, capsys):
    import argparse

    torch.save(argparse.Namespace(a=1), tmp_path / "pickle.pt")  # a pickled object
    torch.save({"w": torch.ones(2)}, tmp_path / "state_dict.pt")
    (tmp_path / "text.pt").write_text("hello")
    expected = {
        "pickle.pt": "it holds Python objects that a safe load does not run",
        "state_dict.pt": "a dict with no 'format' entry",
        "text.pt": "not a file written by torch.save",
    }
    for name, why in expected.items():
        assert main(["sample", "--checkpoint", str(tmp_path / name), "--out", "x.csv"]) == 2
        err = _err(capsys)
        assert err.startswith(
            f"torchenergy: error: '{tmp_path / name}' is not a torchenergy checkpoint ({why}"
        ), err
        assert "weights_only" not in err


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (
            ["train", "seed=99999999999999999999"],
            "seed must be an int in [0, 2**63 - 1], got 99999999999999999999",
        ),
        (["train", "seed=-1"], "seed must be an int >= 0, got -1"),
        (
            ["sample", "--checkpoint", "c.pt", "--out", "x.csv", "--seed", str(2**64)],
            f"--seed must be an int in [0, 2**63 - 1], got {2**64}",
        ),
        (
            ["evaluate", "--checkpoint", "c.pt", "--seed", "-3"],
            "--seed must be an int in [0, 2**63 - 1], got -3",
        ),
    ],
)
def test_seed_out_of_range_names_seed(argv, line, tmp_path, capsys):
    extra = ["--out", str(tmp_path / "o")] if argv[0] == "train" else []
    assert main([*argv, *extra]) == 2
    assert _err(capsys) == f"torchenergy: error: {line}"
    assert not (tmp_path / "o").exists()


def test_integer_steps_stay_integers(trained, tmp_path, capsys):
    rows = (trained / "log.csv").read_text().splitlines()
    assert rows[0].startswith("step,") and [r.split(",")[0] for r in rows[1:]] == [
        "1",
        "2",
        "3",
        "4",
    ]
    argv = ["evaluate", "--checkpoint", str(trained / "checkpoint.pt"), "--n", "20", "--steps", "2"]
    assert main([*argv, "--json", str(tmp_path / "m.json")]) == 0
    assert json.loads(capsys.readouterr().out)["step"] == 4
    text = (tmp_path / "m.json").read_text()
    assert '"step": 4\n' in text or '"step": 4,' in text


def test_hints_name_the_command(capsys):
    assert main(["train", "--bogus"]) == 2
    assert (
        _err(capsys)
        == "torchenergy: error: unrecognized arguments: --bogus (see `torchenergy train --help`)"
    )
    assert main(["sample", "--checkpoint", "c.pt", "--out", "x.csv", "n=3"]) == 2
    assert _err(capsys).endswith("(see `torchenergy sample --help`)")
    assert main(["frobnicate"]) == 2
    err = _err(capsys)
    assert err.endswith("(see `torchenergy --help`)") and "torchenergy torchenergy" not in err


def test_overrides_go_anywhere(tmp_path):
    out = tmp_path / "run"
    argv = ["train", "data=moons", "--out", str(out), *TINY[:3], "--no-progress", *TINY[3:]]
    assert main([*argv, "steps=3"]) == 0  # the last one wins
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["data"], cfg["hidden"], cfg["steps"], cfg["n_test"]) == ("moons", [8], 3, 64)
