"""Checkpoints: safe format, atomic writes, clear errors, RNG round trips."""

from __future__ import annotations

import os
import pickle
import random

import numpy as np
import pytest
import torch

from torchenergy.train import (
    CheckpointError,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)


def test_round_trip(tmp_path):
    payload = {"step": 4, "w": torch.arange(3.0), "nested": {"a": [1, 2.5, None, "x"]}}
    save_checkpoint(tmp_path / "sub" / "c.pt", payload)
    back = load_checkpoint(tmp_path / "sub" / "c.pt")
    assert back["step"] == 4 and torch.equal(back["w"], payload["w"])
    assert back["nested"] == {"a": [1, 2.5, None, "x"]}
    assert os.listdir(tmp_path / "sub") == ["c.pt"]  # no temporary file left behind


def test_unsafe_values_are_refused_before_writing(tmp_path):
    with pytest.raises(TypeError, match=r"payload\['obj'\] is a object"):
        save_checkpoint(tmp_path / "c.pt", {"obj": object()})
    assert not (tmp_path / "c.pt").exists()


def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"step": 1})

    def broken_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"step": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert os.listdir(tmp_path) == ["c.pt"]


def test_missing_corrupt_and_foreign_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "garbage.pt").write_bytes(b"\x00\x01 not a checkpoint")
    with pytest.raises(CheckpointError, match=r"is not a torchenergy checkpoint \(not a file"):
        load_checkpoint(tmp_path / "garbage.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="the file is empty"):
        load_checkpoint(tmp_path / "empty.pt")
    with pytest.raises(CheckpointError, match="is a folder"):
        load_checkpoint(tmp_path)
    save_checkpoint(tmp_path / "good.pt", {"w": torch.ones(1000)})
    data = (tmp_path / "good.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(tmp_path / "truncated.pt")
    torch.save({"weights": torch.ones(2)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a torchenergy checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_arbitrary_pickle_is_never_executed(tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"format": "torchenergy.checkpoint/1", "x": _Evil()}, f)
    with pytest.raises(CheckpointError, match="not a torchenergy checkpoint") as info:
        load_checkpoint(path)
    # never the hint torch gives (load with weights_only=False would run the payload)
    assert "weights_only" not in str(info.value) and "safe load does not run" in str(info.value)
    torch.save({"format": "torchenergy.checkpoint/1", "x": _Evil()}, path)
    with pytest.raises(CheckpointError, match="not a torchenergy checkpoint") as info:
        load_checkpoint(path)
    # never the hint torch gives (load with weights_only=False would run the payload)
    assert "weights_only" not in str(info.value) and "safe load does not run" in str(info.value)


def test_rng_state_round_trip_through_a_file(tmp_path):
    g = torch.Generator().manual_seed(3)
    torch.manual_seed(1)
    np.random.seed(2)  # noqa: NPY002
    random.seed(4)
    torch.randn(3, generator=g)
    save_checkpoint(tmp_path / "r.pt", {"rng": rng_state({"g": g})})
    expected = (
        torch.randn(4),
        torch.randn(4, generator=g),
        np.random.standard_normal(4),  # noqa: NPY002
        random.random(),
    )
    torch.manual_seed(77)
    np.random.seed(77)  # noqa: NPY002
    random.seed(77)
    g2 = torch.Generator().manual_seed(77)
    set_rng_state(load_checkpoint(tmp_path / "r.pt")["rng"], {"g": g2})
    assert torch.equal(torch.randn(4), expected[0])
    assert torch.equal(torch.randn(4, generator=g2), expected[1])
    assert np.array_equal(np.random.standard_normal(4), expected[2])  # noqa: NPY002
    assert random.random() == expected[3]
    with pytest.raises(CheckpointError, match="generator 'other'"):
        set_rng_state(load_checkpoint(tmp_path / "r.pt")["rng"], {"other": g2})


def test_trainer_checkpoint_mismatch_is_a_clear_error(tmp_path):
    from torchenergy.train import Trainer

    net = torch.nn.Linear(2, 1)
    t = Trainer(net, torch.optim.SGD(net.parameters(), lr=0.1), lambda b: net(b).sum())
    t.save(tmp_path / "a.pt")
    other = torch.nn.Linear(3, 1)
    t2 = Trainer(other, torch.optim.SGD(other.parameters(), lr=0.1), lambda b: other(b).sum())
    with pytest.raises(CheckpointError, match="does not fit this model"):
        t2.load(tmp_path / "a.pt")
    t3 = Trainer(net, torch.optim.SGD(net.parameters(), lr=0.1), lambda b: b, ema=0.9)
    with pytest.raises(CheckpointError, match="EMA"):
        t3.load(tmp_path / "a.pt")


def test_bench_and_examples_load_with_weights_only():
    """Every ``torch.load`` in bench/ and examples/ passes ``weights_only=True``."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    calls = []
    for path in [*root.glob("bench/**/*.py"), *root.glob("examples/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "torch.load":
                safe = any(
                    k.arg == "weights_only" and ast.unparse(k.value) == "True"
                    for k in node.keywords
                )
                calls.append((f"{path.name}:{node.lineno}", safe))
    assert calls, "no torch.load found: is the scan looking in the right place?"
    assert [c for c, safe in calls if not safe] == []
