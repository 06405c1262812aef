"""Trainer mechanics: the plain-loop equivalence, clipping, EMA, callbacks, logging, errors."""

from __future__ import annotations

import csv
from typing import NamedTuple

import pytest
import torch
from torch import nn

from torchenergy.train import (
    EMA,
    CSVLogger,
    EveryN,
    LambdaCallback,
    ProgressBar,
    TensorBoardLogger,
    Trainer,
    scalar_logs,
)


class _Out(NamedTuple):
    loss: torch.Tensor
    energy_pos: torch.Tensor
    negatives: torch.Tensor


def _setup(seed=0, **kw):
    torch.manual_seed(seed)
    net = nn.Linear(3, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(1)
    batches = [torch.randn(5, 3, generator=g) for _ in range(4)]

    def step_fn(x):
        e = net(x).squeeze(-1)
        return _Out(e.pow(2).mean(), e.detach(), x)

    return Trainer(net, opt, step_fn, **kw), net, batches


def test_one_step_equals_the_plain_loop():
    trainer, net, batches = _setup(grad_clip=0.05)
    torch.manual_seed(0)
    ref = nn.Linear(3, 1)
    opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    for x in batches:
        opt.zero_grad()
        ref(x).squeeze(-1).pow(2).mean().backward()
        torch.nn.utils.clip_grad_norm_(ref.parameters(), 0.05)
        opt.step()
    trainer.fit(batches, max_epochs=1)
    assert trainer.step == 4 and trainer.epoch == 1
    assert torch.equal(net.weight, ref.weight) and torch.equal(net.bias, ref.bias)


def test_ema_follows_its_update_rule():
    net = nn.Linear(2, 1, bias=False)
    ema = EMA(net, decay=0.9)  # warm-up: d_t = min(0.9, (1+t)/(10+t))
    avg = net.weight.detach().clone()
    for t in range(1, 30):
        with torch.no_grad():
            net.weight.add_(1.0)
        d = min(0.9, (1 + t) / (10 + t))
        avg = d * avg + (1 - d) * net.weight.detach()
        ema.update(net)
    torch.testing.assert_close(ema.module.weight, avg, rtol=0, atol=1e-5)
    ema.copy_to(net)
    assert torch.equal(net.weight, ema.module.weight)
    with pytest.raises(ValueError, match="decay"):
        EMA(net, decay=1.0)


def test_scalar_logs_keep_scalars_and_means_only():
    out = _Out(torch.tensor(2.0), torch.tensor([1.0, 3.0]), torch.ones(2, 3))
    assert scalar_logs(out) == {"loss": 2.0, "energy_pos": 2.0}
    assert scalar_logs(torch.tensor(1.5)) == {"loss": 1.5}


def test_callbacks_order_stop_and_every_n():
    trainer, _, batches = _setup()
    events = []
    stopper = LambdaCallback(
        on_fit_start=lambda t: events.append("start"),
        on_step_end=lambda t, out, logs: (
            events.append(int(logs["step"])),
            setattr(t, "should_stop", t.step == 6),
        ),
        on_epoch_end=lambda t: events.append("epoch"),
        on_fit_end=lambda t: events.append("end"),
    )
    every = EveryN(3, lambda t: t.step * 10)
    trainer.callbacks += [stopper, every]
    trainer.fit(batches, max_epochs=5)
    assert events == ["start", 1, 2, 3, 4, "epoch", 5, 6, "end"]
    assert every.history == [(0, 0), (3, 30), (6, 60)]


def test_csv_and_tensorboard_logging(tmp_path):
    trainer, _, batches = _setup()
    path = tmp_path / "log.csv"
    trainer.callbacks += [CSVLogger(path), TensorBoardLogger(tmp_path / "tb", every=2)]
    trainer.fit(batches, max_steps=6)
    sparse = tmp_path / "sparse.csv"
    trainer.callbacks = [CSVLogger(sparse, every=4)]
    trainer.fit(batches, max_steps=15)  # steps 7..15: logs 8, 12 and the last step, 15
    assert [int(float(r["step"])) for r in csv.DictReader(open(sparse))] == [8, 12, 15]
    rows = list(csv.DictReader(open(path)))
    assert [int(float(r["step"])) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert set(rows[0]) >= {"step", "loss", "energy_pos", "lr"}
    events = list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("loss")] == [2, 4, 6]


def test_csv_logger_drops_rows_past_the_resumed_step(tmp_path):
    trainer, _, batches = _setup()
    path = tmp_path / "log.csv"
    trainer.callbacks.append(CSVLogger(path))
    trainer.fit(batches, max_steps=3)
    trainer.save(tmp_path / "c.pt")
    trainer.fit(batches, max_steps=6)  # the run goes on, then "crashes"
    again, _, _ = _setup()
    again.callbacks.append(CSVLogger(path))
    again.load(tmp_path / "c.pt")
    again.fit(batches, max_steps=5)
    steps = [int(float(r["step"])) for r in csv.DictReader(open(path))]
    assert steps == [1, 2, 3, 4, 5]


def test_progress_bar_runs(capsys):
    trainer, _, batches = _setup()
    trainer.callbacks.append(ProgressBar(every=1))
    trainer.fit(batches, max_steps=3)
    assert "3/3" in capsys.readouterr().err


def test_stream_data_and_budget_checks():
    trainer, _, batches = _setup()
    trainer.fit(lambda: batches[0], max_steps=3)
    assert trainer.step == 3 and trainer.epoch == 0
    with pytest.raises(ValueError, match="max_epochs"):
        trainer.fit(lambda: batches[0], max_epochs=1)
    with pytest.raises(ValueError, match="max_steps or max_epochs"):
        trainer.fit(batches)
    with pytest.raises(ValueError, match="max_steps"):
        trainer.fit(batches, max_steps=-1)
    with pytest.raises(ValueError, match="no batches"):
        trainer.fit([], max_epochs=1)


def test_non_finite_loss_raises_and_leaves_weights():
    net = nn.Linear(2, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    before = net.weight.detach().clone()
    trainer = Trainer(net, opt, lambda x: net(x).sum() * float("nan"))
    with pytest.raises(FloatingPointError, match="loss is nan at step 1"):
        trainer.fit([torch.ones(2, 2)], max_steps=1)
    assert torch.equal(net.weight, before)


def test_constructor_validation():
    net = nn.Linear(2, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    with pytest.raises(TypeError, match=r"nn\.Module"):
        Trainer(lambda x: x, opt, lambda b: b)
    with pytest.raises(ValueError, match="grad_clip"):
        Trainer(net, opt, lambda b: b, grad_clip=-1.0)
    with pytest.raises(TypeError, match="state_dict"):
        Trainer(net, opt, lambda b: b, state={"buffer": object()})
    with pytest.raises(TypeError, match="scalar"):
        Trainer(net, opt, lambda b: net(b)).fit([torch.ones(3, 2)], max_steps=1)


# ---------------------------------------------------------------- the library / application split
MOVED = ("EBM", "Run", "TrainConfig", "build_run", "draw_samples", "evaluate_run", "load_run")


@pytest.mark.parametrize("name", [*MOVED, "train_to_folder"])
def test_moved_names_still_import_from_train_with_a_warning(name):
    import torchenergy.cli as cli
    import torchenergy.train as train

    with pytest.warns(DeprecationWarning, match=f"torchenergy.cli.{name}"):
        obj = getattr(train, name)
    assert obj is getattr(cli, name)
    assert name not in train.__all__  # `from torchenergy.train import *` stays silent


def test_unknown_train_attribute_is_an_attribute_error():
    import torchenergy.train as train

    with pytest.raises(AttributeError, match="no_such_name"):
        train.no_such_name
    assert not hasattr(train, "no_such_name")


def test_old_demos_path_warns():
    import torchenergy.cli.demos
    import torchenergy.demos

    with pytest.warns(DeprecationWarning, match="torchenergy.cli.demos"):
        f = torchenergy.demos.run_sampler_demo
    assert f is torchenergy.cli.demos.run_sampler_demo


def test_the_library_loop_never_imports_the_application():
    import subprocess
    import sys

    code = (
        "import sys, torchenergy.train\n"
        "from torchenergy.train import *\n"
        "bad = sorted(m for m in sys.modules if m.startswith('torchenergy.cli'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-W", "error::DeprecationWarning", "-c", code], check=True)
    # and no static import either: only the by-name lookup of the deprecated aliases
    import ast
    from pathlib import Path

    import torchenergy.train as train

    for path in Path(train.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("torchenergy.cli"), path
                if path.name == "callbacks.py":  # callbacks see a TrainerView, not the trainer
                    assert node.module != "torchenergy.train.trainer", path
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith("torchenergy.cli") for a in node.names), path


def test_trainer_is_a_trainer_view():
    from torchenergy.train import TrainerView

    net = nn.Linear(2, 1)
    t = Trainer(net, torch.optim.SGD(net.parameters(), lr=0.1), lambda x: net(x).sum())
    for name in TrainerView.__annotations__:
        assert hasattr(t, name), name
    assert callable(t.save)
