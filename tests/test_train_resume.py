"""A resumed run continues bit-identically to an uninterrupted one (torch.equal on everything)."""

from __future__ import annotations

from typing import NamedTuple

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from torchenergy.train import Trainer


class _Out(NamedTuple):
    loss: torch.Tensor
    energy_pos: torch.Tensor
    energy_neg: torch.Tensor


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 16), nn.SiLU(), nn.Dropout(0.1), nn.Linear(16, 1))


# ---------------------------------------------------------------- supervised-style, DataLoader
def _regression_trainer(seed: int) -> tuple[Trainer, DataLoader]:
    net = _net(seed)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=4, gamma=0.5)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 2, generator=g)
    y = x.sum(1, keepdim=True).sin()
    # shuffle=True without a generator: the permutation comes from the global torch RNG
    loader = DataLoader(TensorDataset(x, y), batch_size=6, shuffle=True)

    def step_fn(batch):
        xb, yb = batch
        return (net(xb) - yb).pow(2).mean()  # dropout also draws from the global RNG

    return Trainer(net, opt, step_fn, scheduler=sched, grad_clip=0.5, ema=0.9), loader


def _snapshot(trainer: Trainer) -> list[torch.Tensor]:
    tensors = [p.detach().clone() for p in trainer.model.state_dict().values()]
    if trainer.ema is not None:
        tensors += [p.clone() for p in trainer.ema.module.state_dict().values()]
    for v in trainer.optimizer.state.values():
        tensors += [t.clone() for t in v.values() if isinstance(t, torch.Tensor)]
    return tensors


def _assert_identical(a: list[torch.Tensor], b: list[torch.Tensor]) -> None:
    assert len(a) == len(b)
    for u, v in zip(a, b):
        assert torch.equal(u, v)


@pytest.mark.parametrize(
    "split", [3, 7, 10]
)  # mid-epoch and on an epoch boundary (7 batches/epoch)
def test_dataloader_resume_is_bit_identical(tmp_path, split):
    total = 17
    torch.manual_seed(123)
    straight, loader = _regression_trainer(seed=1)
    straight.fit(loader, max_steps=total)

    torch.manual_seed(123)
    first, loader1 = _regression_trainer(seed=1)
    first.fit(loader1, max_steps=split)
    first.save(tmp_path / "ckpt.pt")
    torch.manual_seed(999)  # disturb the global RNG between the two halves

    resumed, loader2 = _regression_trainer(seed=2)  # a fresh trainer with other weights
    resumed.load(tmp_path / "ckpt.pt")
    assert resumed.step == split
    resumed.fit(loader2, max_steps=total)
    assert resumed.step == straight.step == total
    assert resumed.epoch == straight.epoch
    _assert_identical(_snapshot(straight), _snapshot(resumed))


def test_resume_without_rng_restore_differs(tmp_path):
    """Power check: the comparison above detects a resumption that forgets the RNG states."""
    torch.manual_seed(123)
    straight, loader = _regression_trainer(seed=1)
    straight.fit(loader, max_steps=12)
    torch.manual_seed(123)
    first, loader1 = _regression_trainer(seed=1)
    first.fit(loader1, max_steps=5)
    first.save(tmp_path / "ckpt.pt")
    torch.manual_seed(999)
    resumed, loader2 = _regression_trainer(seed=2)
    resumed.load(tmp_path / "ckpt.pt", restore_rng=False)
    resumed.fit(loader2, max_steps=12)
    assert not torch.equal(straight.model[0].weight, resumed.model[0].weight)


# ---------------------------------------------------------------- PCD with a replay buffer
class _StandInBuffer:
    """Minimal persistent buffer (stand-in for samplers.ReplayBuffer): sample, restart, push."""

    def __init__(self, size: int, dim: int, generator: torch.Generator) -> None:
        self.generator = generator
        self.x = torch.rand(size, dim, generator=generator) * 8 - 4

    def sample(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(len(self.x), (n,), generator=self.generator)
        x = self.x[idx]
        fresh = torch.rand(n, generator=self.generator) < 0.05
        noise = torch.rand(x.shape, generator=self.generator) * 8 - 4
        return torch.where(fresh[:, None], noise, x), idx

    def push(self, x: torch.Tensor, idx: torch.Tensor) -> None:
        self.x[idx] = x.detach()

    def state_dict(self) -> dict:
        return {"x": self.x.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.x = state["x"].clone()


def _langevin(energy, x, n_steps, eps, generator):
    for _ in range(n_steps):
        x = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(energy(x).sum(), x)
        x = x - eps * g + (2 * eps) ** 0.5 * torch.randn(x.shape, generator=generator)
    return x.detach()


def _pcd_trainer(seed: int):
    net = _net(seed)
    energy = lambda x: net(x).squeeze(-1)  # noqa: E731
    g_sampler = torch.Generator().manual_seed(7)
    g_data = torch.Generator().manual_seed(8)
    buffer = _StandInBuffer(64, 2, torch.Generator().manual_seed(9))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.0, 0.999))

    def step_fn(x_pos):
        x0, idx = buffer.sample(len(x_pos))
        x_neg = _langevin(energy, x0, 5, 0.01, g_sampler)
        buffer.push(x_neg, idx)
        e_pos, e_neg = energy(x_pos), energy(x_neg)
        loss = e_pos.mean() - e_neg.mean() + 0.1 * (e_pos**2 + e_neg**2).mean()
        return _Out(loss, e_pos.detach(), e_neg.detach())

    data = lambda: torch.randn(16, 2, generator=g_data) * 0.5 + 1.0  # noqa: E731
    trainer = Trainer(
        net,
        opt,
        step_fn,
        ema=0.95,
        grad_clip=1.0,
        generators={"sampler": g_sampler, "data": g_data, "buffer": buffer.generator},
        state={"buffer": buffer},
    )
    return trainer, data, buffer


def test_pcd_with_replay_buffer_resume_is_bit_identical(tmp_path):
    straight, data, buf_a = _pcd_trainer(seed=1)
    straight.fit(data, max_steps=20)

    first, data1, _ = _pcd_trainer(seed=1)
    first.fit(data1, max_steps=10)
    first.save(tmp_path / "pcd.pt")

    resumed, data2, buf_b = _pcd_trainer(seed=3)  # fresh generators, buffer and weights
    resumed.load(tmp_path / "pcd.pt")
    resumed.fit(data2, max_steps=20)
    _assert_identical(_snapshot(straight), _snapshot(resumed))
    assert torch.equal(buf_a.x, buf_b.x)
    for name in straight.generators:
        assert torch.equal(
            straight.generators[name].get_state(), resumed.generators[name].get_state()
        )


def test_second_fit_call_continues_the_same_run():
    a, loader_a = _regression_trainer(seed=1)
    torch.manual_seed(5)
    a.fit(loader_a, max_steps=10)
    b, loader_b = _regression_trainer(seed=1)
    torch.manual_seed(5)
    b.fit(loader_b, max_steps=4)
    b.fit(loader_b, max_steps=10)
    _assert_identical(_snapshot(a), _snapshot(b))


# ---------------------------------------------------------------- the library's own PCD pieces


def _library_pcd_trainer(seed: int):
    from torchenergy.energies import MLPEnergy
    from torchenergy.losses import PersistentNegatives, contrastive_divergence
    from torchenergy.samplers import Langevin, ReplayBuffer

    torch.manual_seed(seed)
    energy = MLPEnergy(2, (16, 16))
    g = torch.Generator().manual_seed(11)  # one generator for data, buffer and chains
    buffer = ReplayBuffer(128, (2,), generator=torch.Generator().manual_seed(seed))
    make_neg = PersistentNegatives(Langevin(energy, step_size=0.01), buffer, n_steps=5)
    opt = torch.optim.Adam(energy.parameters(), lr=1e-3, betas=(0.0, 0.999))

    def step_fn(x_pos):
        return contrastive_divergence(energy, x_pos, make_neg(x_pos, generator=g), l2_reg=0.1)

    data = lambda: torch.randn(32, 2, generator=g) * 0.3 + 0.5  # noqa: E731
    trainer = Trainer(energy, opt, step_fn, ema=0.99, generators={"g": g}, state={"buffer": buffer})
    return trainer, data, buffer


def test_library_pcd_replay_buffer_resume_is_bit_identical(tmp_path):
    straight, data, buf_a = _library_pcd_trainer(seed=1)
    straight.fit(data, max_steps=16)
    first, data1, _ = _library_pcd_trainer(seed=1)
    first.fit(data1, max_steps=9)
    first.save(tmp_path / "pcd.pt")
    resumed, data2, buf_b = _library_pcd_trainer(seed=4)
    resumed.load(tmp_path / "pcd.pt")
    resumed.fit(data2, max_steps=16)
    _assert_identical(_snapshot(straight), _snapshot(resumed))
    for key, value in buf_a.state_dict().items():
        assert torch.equal(value, buf_b.state_dict()[key])


def test_dataloader_with_its_own_generator_resumes_bit_identically(tmp_path):
    """The loader's generator (``DataLoader(generator=g)``) is found and replayed by the trainer."""

    def make(seed):
        net = _net(seed)
        opt = torch.optim.SGD(net.parameters(), lr=0.05)
        g = torch.Generator().manual_seed(3)
        x = torch.randn(30, 2, generator=torch.Generator().manual_seed(0))
        loader = DataLoader(x, batch_size=4, shuffle=True, drop_last=True, generator=g)
        return Trainer(net, opt, lambda xb: net(xb).pow(2).mean()), loader

    torch.manual_seed(0)
    straight, loader = make(1)
    straight.fit(loader, max_steps=17)
    torch.manual_seed(0)
    first, loader1 = make(1)
    first.fit(loader1, max_steps=9)  # 7 batches per epoch: stop in the second epoch
    first.save(tmp_path / "c.pt")
    resumed, loader2 = make(5)
    resumed.load(tmp_path / "c.pt")
    resumed.fit(loader2, max_steps=17)
    _assert_identical(_snapshot(straight), _snapshot(resumed))
    # power check: replaying the epoch under another loader-generator state changes the batches
    broken, loader3 = make(5)
    broken.load(tmp_path / "c.pt")
    wrong = torch.Generator().manual_seed(99).get_state()
    broken._epoch_rng["generators"]["__data_loader__"] = wrong
    broken.fit(loader3, max_steps=17)
    assert not torch.equal(straight.model[0].weight, broken.model[0].weight)


# ---------------------------------------------------------------- interrupts: step boundaries only
def _failing_at(trainer: Trainer, at: int, how: str) -> None:
    """Make step ``at`` fail after its negatives are drawn (buffer and generators have moved)."""
    import signal

    inner = trainer.step_fn

    def step_fn(batch):
        out = inner(batch)
        if trainer.step + 1 == at:
            if how == "signal":  # a real Ctrl-C in the middle of the step
                signal.raise_signal(signal.SIGINT)
            elif how == "interrupt":
                raise KeyboardInterrupt
            else:
                raise RuntimeError("a transient failure")
        return out

    trainer.step_fn = step_fn


@pytest.mark.parametrize(
    ("how", "error", "saved"),
    [
        ("interrupt", KeyboardInterrupt, 8),
        ("signal", KeyboardInterrupt, 9),
        ("error", RuntimeError, 8),
    ],
)
def test_a_step_that_fails_is_rolled_back_and_the_boundary_saved(tmp_path, how, error, saved):
    from torchenergy.train import CheckpointEvery

    straight, data, buf_a = _library_pcd_trainer(seed=1)
    straight.fit(data, max_steps=16)

    first, data1, _ = _library_pcd_trainer(seed=1)
    first.callbacks.append(CheckpointEvery(tmp_path / "c.pt", every=100))  # saves on fit end
    sound = first.step_fn
    _failing_at(first, 9, how)
    with pytest.raises(error):
        first.fit(data1, max_steps=16)
    assert first.step == saved and first.at_boundary and not first.completed
    assert load_checkpoint_step(tmp_path / "c.pt") == saved

    resumed, data2, buf_b = _library_pcd_trainer(seed=4)
    resumed.load(tmp_path / "c.pt")
    resumed.fit(data2, max_steps=16)
    _assert_identical(_snapshot(straight), _snapshot(resumed))
    for key, value in buf_a.state_dict().items():
        assert torch.equal(value, buf_b.state_dict()[key])
    assert torch.equal(straight.generators["g"].get_state(), resumed.generators["g"].get_state())
    # the trainer that failed also continues in memory as if nothing had happened
    first.step_fn = sound
    first.fit(data1, max_steps=16)
    _assert_identical(_snapshot(straight), _snapshot(first))


def load_checkpoint_step(path) -> int:
    from torchenergy.train import load_checkpoint

    return load_checkpoint(path)["step"]


@pytest.mark.parametrize("at", [5, 8])  # mid-epoch, and the first batch of the second epoch
def test_dataloader_step_that_fails_is_rolled_back(at):
    torch.manual_seed(123)
    straight, loader = _regression_trainer(seed=1)
    straight.fit(loader, max_steps=17)
    torch.manual_seed(123)
    failing, loader1 = _regression_trainer(seed=1)
    sound = failing.step_fn
    _failing_at(failing, at, "error")
    with pytest.raises(RuntimeError, match="transient"):
        failing.fit(loader1, max_steps=17)
    assert failing.step == at - 1
    failing.step_fn = sound
    failing.fit(loader1, max_steps=17)  # global RNG (shuffle, dropout) was put back too
    _assert_identical(_snapshot(straight), _snapshot(failing))


def test_an_error_inside_the_optimiser_update_tears_the_trainer(tmp_path):
    from torchenergy.train import CheckpointError, CheckpointEvery

    trainer, data, _ = _library_pcd_trainer(seed=1)
    trainer.callbacks.append(CheckpointEvery(tmp_path / "c.pt", every=3))
    real_step = trainer.optimizer.step

    def broken(*args, **kwargs):
        if trainer.step == 4:
            raise RuntimeError("optimiser failed half-way")
        return real_step(*args, **kwargs)

    trainer.optimizer.step = broken
    with pytest.raises(RuntimeError, match="half-way"):
        trainer.fit(data, max_steps=10)
    assert not trainer.at_boundary
    assert load_checkpoint_step(tmp_path / "c.pt") == 3  # the last boundary stays on disk
    with pytest.raises(CheckpointError, match="optimiser update of step 5"):
        trainer.save(tmp_path / "torn.pt")
    with pytest.raises(RuntimeError, match="torn"):
        trainer.fit(data, max_steps=10)
    trainer.load(tmp_path / "c.pt")
    trainer.optimizer.step = real_step
    trainer.fit(data, max_steps=10)  # fine again after a load
    assert trainer.step == 10


def test_interrupted_fit_logs_no_extra_row_and_threads_are_checked(tmp_path):
    from torchenergy.train import CSVLogger

    trainer, data, _ = _library_pcd_trainer(seed=1)
    trainer.callbacks.append(CSVLogger(tmp_path / "log.csv", every=4))
    _failing_at(trainer, 7, "interrupt")
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(data, max_steps=10)
    steps = [r.split(",")[0] for r in (tmp_path / "log.csv").read_text().splitlines()[1:]]
    assert steps == ["4"]  # no row for the interrupted fit's last step (6)
    state = trainer.state_dict()
    assert state["num_threads"] == torch.get_num_threads()
    other, data2, _ = _library_pcd_trainer(seed=2)
    other.load_state_dict({**state, "num_threads": torch.get_num_threads() + 1})
    with pytest.warns(RuntimeWarning, match="not be bit-identical"):
        other.fit(data2, max_steps=8)
