"""The Trainer advances hyperparameter schedules and resumes them exactly."""

from __future__ import annotations

import pytest
import torch

from torchenergy.schedules import Cosine, Linear, Warmup
from torchenergy.train import CSVLogger, Scheduled, Trainer


def _run(tmp_path, steps, *, resume_from=None, save_at=None, schedule=None):
    torch.manual_seed(0)
    net = torch.nn.Linear(2, 1).double()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    sched = Scheduled(
        {"w": schedule or Warmup(Cosine(1.0, 0.1, 20), n_warmup=5), "lr": Linear(0.1, 0.01, 25)},
        apply=lambda name, v: opt.param_groups[0].update(lr=v) if name == "lr" else None,
    )
    seen = []
    g = torch.Generator().manual_seed(1)

    def step(batch):
        seen.append(sched.values["w"])
        return sched.values["w"] * net(batch).pow(2).mean()

    log = CSVLogger(tmp_path / f"log{resume_from is not None}.csv")
    trainer = Trainer(
        net, opt, step, callbacks=[sched, log], generators=g, state={"schedules": sched}
    )
    if resume_from is not None:
        trainer.load(resume_from)
    data = lambda: torch.randn(8, 2, generator=g, dtype=torch.float64)  # noqa: E731
    trainer.fit(data, max_steps=save_at or steps)
    if save_at is not None:
        trainer.save(tmp_path / "ckpt.pt")
    return trainer, seen, net


def test_values_follow_the_trainer_step_and_drive_the_optimiser(tmp_path):
    trainer, seen, _ = _run(tmp_path, 12)
    ref = Warmup(Cosine(1.0, 0.1, 20), n_warmup=5)
    assert seen == [ref(t) for t in range(12)]
    lrs = Linear(0.1, 0.01, 25)
    assert trainer.optimizer.param_groups[0]["lr"] == lrs(12)
    rows = (tmp_path / "logFalse.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert "w" in header and float(rows[3].split(",")[header.index("w")]) == ref(2)


def test_a_resumed_run_sees_the_same_values_and_weights_bit_for_bit(tmp_path):
    _, seen_full, net_full = _run(tmp_path, 12)
    _, seen_a, _ = _run(tmp_path, 12, save_at=7)
    _, seen_b, net_b = _run(tmp_path, 12, resume_from=tmp_path / "ckpt.pt")
    assert seen_a + seen_b == seen_full
    for p, q in zip(net_full.parameters(), net_b.parameters()):
        assert torch.equal(p, q)


def test_resuming_with_another_schedule_is_refused(tmp_path):
    _run(tmp_path, 12, save_at=3)
    with pytest.raises(Exception, match="schedule"):
        _run(tmp_path, 12, resume_from=tmp_path / "ckpt.pt", schedule=Linear(1.0, 0.0, 9))


def test_bad_schedules_are_refused():
    with pytest.raises(ValueError, match="non-empty"):
        Scheduled({})
    with pytest.raises(TypeError, match=r"schedules\['w'\]"):
        Scheduled({"w": 0.5})
