"""JEM hybrid training and the IGEBM recipe: the loss, divergence reports, rollback, snapshots."""

import pytest
import torch
from torch import nn

from torchenergy.energies import ConvEnergy
from torchenergy.models import JEM, ConvClassifier, JEMConfig, TrainingDivergedError, jem_loss
from torchenergy.train import ImageEBMConfig, LambdaCallback, fit_image_ebm, fit_jem


def _data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 4, 4, generator=g) * 2 - 1, torch.randint(0, 3, (n,), generator=g)


def _jem(seed=0):
    torch.manual_seed(seed)
    return JEM(nn.Sequential(nn.Flatten(), nn.Linear(16, 3)), 3)


def test_jem_loss_is_ce_plus_the_contrastive_gap_plus_l2():
    jem = _jem()
    x, y = _data(8)
    x_neg = torch.rand(6, 1, 4, 4) * 2 - 1
    out = jem_loss(jem, x, y, x_neg, gen_weight=0.5, l2_reg=0.1)
    f = jem.logits(x)
    ce = nn.functional.cross_entropy(f, y)
    e_pos, e_neg = jem.energy(x), jem.energy(x_neg)
    expected = (
        ce + 0.5 * (e_pos.mean() - e_neg.mean()) + 0.1 * (e_pos.pow(2).mean() + e_neg.pow(2).mean())
    )
    torch.testing.assert_close(out.loss, expected)
    torch.testing.assert_close(out.ce, ce.detach())
    assert out.neg_energy.shape == (6,) and not out.pos_energy.requires_grad
    only_ce = jem_loss(jem, x, y)
    torch.testing.assert_close(only_ce.loss, ce)
    assert only_ce.neg_energy.numel() == 0


def test_fit_jem_runs_updates_the_buffer_and_logs():
    jem = _jem()
    x, y = _data()
    cfg = JEMConfig(
        steps=6, batch_size=8, sgld_steps=3, buffer_size=32, ce_only_steps=2, lr_warmup_steps=3
    )
    seen = []
    cb = LambdaCallback(on_step_end=lambda t, out, logs: seen.append(logs))
    res = fit_jem(jem, x, y, cfg, generator=torch.Generator().manual_seed(0), callbacks=[cb])
    assert res.trainer.step == 6 and res.divergences == []
    assert int(res.buffer.n_drawn) == 4 * 8  # the first 2 steps are classifier-only
    assert seen[0]["gap"] == 0.0 and "ce" in seen[-1] and "accuracy" in seen[-1]
    assert seen[0]["lr"] < seen[-1]["lr"]  # learning-rate warm-up
    assert float(res.buffer.data.min()) >= -1 and float(res.buffer.data.max()) <= 1
    # same seed, same run
    jem2 = _jem()
    res2 = fit_jem(jem2, x, y, cfg, generator=torch.Generator().manual_seed(0))
    for p, q in zip(jem.parameters(), jem2.parameters()):
        assert torch.equal(p, q)
    assert torch.equal(res.buffer.data, res2.buffer.data)


class _Poison:
    """A callback that sets one weight to NaN after step ``at`` (once)."""

    def __init__(self, jem, at):
        self.jem, self.at, self.done = jem, at, False

    def __call__(self, trainer, out, logs):
        if trainer.step == self.at and not self.done:
            self.done = True
            with torch.no_grad():
                next(self.jem.parameters())[0, 0] = float("nan")


def test_final_classifier_only_repair_draws_no_negatives_and_resets_adam():
    jem = _jem()
    x, y = _data()
    cfg = JEMConfig(steps=5, batch_size=8, sgld_steps=2, buffer_size=32, ce_only_final_steps=2)
    steps_seen = []

    def spy(trainer, out, logs):
        state = trainer.optimizer.state[next(jem.parameters())]
        steps_seen.append(int(state["step"]))

    res = fit_jem(jem, x, y, cfg, callbacks=[LambdaCallback(on_step_end=spy)])
    assert int(res.buffer.n_drawn) == 3 * 8  # only the 3 hybrid steps drew negatives
    assert steps_seen == [1, 2, 3, 1, 2]  # Adam's state restarts with the repair phase


def test_a_diverging_step_raises_with_its_step_number():
    jem = _jem()
    x, y = _data()
    cfg = JEMConfig(steps=10, batch_size=8, sgld_steps=2, buffer_size=32)
    cb = LambdaCallback(on_step_end=_Poison(jem, 3))
    with pytest.raises(TrainingDivergedError, match="at step 4") as info:
        fit_jem(jem, x, y, cfg, callbacks=[cb])
    assert info.value.step == 4
    # an energy beyond max_abs_energy counts as divergence (before any NaN)
    with pytest.raises(TrainingDivergedError, match=r"step 1: \|energy\| reached"):
        fit_jem(
            _jem(),
            x * 1e4,
            y,
            JEMConfig(
                steps=3,
                batch_size=8,
                sgld_steps=1,
                buffer_size=32,
                max_abs_energy=10.0,
                data_noise=0.0,
            ),
        )


def test_rollback_restores_the_last_good_state_and_lowers_the_learning_rate():
    jem = _jem()
    x, y = _data()
    cfg = JEMConfig(
        steps=8,
        batch_size=8,
        sgld_steps=2,
        buffer_size=32,
        on_divergence="rollback",
        snapshot_every=2,
        lr=1e-3,
    )
    poison = _Poison(jem, 3)
    res = fit_jem(jem, x, y, cfg, callbacks=[LambdaCallback(on_step_end=poison)])
    assert res.trainer.step == 8
    assert len(res.divergences) == 1
    d = res.divergences[0]
    assert d["step"] == 4 and d["restored_step"] == 2 and d["lr"] == pytest.approx(5e-4)
    assert all(bool(torch.isfinite(p).all()) for p in jem.parameters())
    assert res.trainer.optimizer.param_groups[0]["lr"] == pytest.approx(5e-4)


def test_rollback_gives_up_after_max_rollbacks():
    jem = _jem()
    x, y = _data()
    cfg = JEMConfig(
        steps=8,
        batch_size=8,
        sgld_steps=1,
        buffer_size=32,
        on_divergence="rollback",
        max_rollbacks=1,
        snapshot_every=2,
    )

    def always(trainer, out, logs):
        if trainer.step == 3:
            with torch.no_grad():
                next(jem.parameters())[0, 0] = float("nan")

    with pytest.raises(TrainingDivergedError, match="at step 4"):
        fit_jem(jem, x, y, cfg, callbacks=[LambdaCallback(on_step_end=always)])


def test_config_validation():
    with pytest.raises(ValueError, match="on_divergence"):
        JEMConfig(on_divergence="ignore")
    with pytest.raises(ValueError, match="buffer_size"):
        JEMConfig(batch_size=64, buffer_size=10)
    with pytest.raises(ValueError, match="labels"):
        fit_jem(_jem(), *(_data()[0], torch.zeros(3, dtype=torch.long)))
    with pytest.raises(TypeError, match="JEM"):
        fit_jem(nn.Linear(2, 2), *_data())


def test_jem_on_a_conv_classifier_with_spectral_norm_and_energy_head():
    torch.manual_seed(0)
    clf = ConvClassifier(
        1, 3, (4, 8), strides=(2, 2), pool="flatten", image_size=(4, 4), spectral_norm=True
    )
    x, y = _data(32)
    res = fit_jem(
        JEM(clf, 3),
        x,
        y,
        JEMConfig(steps=2, batch_size=8, sgld_steps=2, buffer_size=16, sgld_grad_clip=1.0),
    )
    assert res.trainer.step == 2
    # the energy head shifts every logit: p(y|x) unchanged, E(x) shifted by -b(x)
    a = ConvClassifier(1, 3, (4,), image_size=(4, 4))
    b = ConvClassifier(1, 3, (4,), image_size=(4, 4), energy_head=True)
    b.load_state_dict(a.state_dict(), strict=False)
    torch.testing.assert_close(a(x), b(x))
    with torch.no_grad():
        b.offset.bias.fill_(2.0)
    torch.testing.assert_close(torch.softmax(a(x), -1), torch.softmax(b(x), -1))
    torch.testing.assert_close(JEM(b)(x), JEM(a)(x) - 2.0)


def test_image_ebm_recipe_keeps_buffer_snapshots_and_reports_divergence():
    torch.manual_seed(0)
    x = torch.rand(32, 1, 6, 6) * 2 - 1
    cfg = ImageEBMConfig(
        steps=4, batch_size=8, sgld_steps=2, buffer_size=16, snapshot_every=2, n_snapshot=4
    )
    res = fit_image_ebm(ConvEnergy(1, (4,)), x, cfg, generator=torch.Generator().manual_seed(0))
    assert [s for s, _ in res.snapshots] == [2, 4] and res.snapshots[0][1].shape == (4, 1, 6, 6)
    assert res.trainer.step == 4
    e = ConvEnergy(1, (4,))

    def poison(trainer, out, logs):
        if trainer.step == 2:
            with torch.no_grad():
                e.head.bias.fill_(float("nan"))

    with pytest.raises(TrainingDivergedError, match="at step 3"):
        fit_image_ebm(e, x, cfg, callbacks=[LambdaCallback(on_step_end=poison)])
