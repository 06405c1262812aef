"""Hyperparameter schedules: values, composition, exact resume from a state dict, errors."""

import dataclasses
import io
import math

import pytest
import torch

from torchenergy.samplers import MALA, run_chain
from torchenergy.schedules import (
    Constant,
    Cosine,
    Exponential,
    Linear,
    Piecewise,
    Product,
    Schedule,
    Step,
    Warmup,
)


def test_values():
    assert [Linear(1.0, 0.0, 4)(t) for t in (0, 1, 4, 10)] == [1.0, 0.75, 0.0, 0.0]
    c = Cosine(2.0, 0.0, 8)
    assert c(0) == 2.0 and c(8) == 0.0 and math.isclose(c(4), 1.0) and c(100) == 0.0
    assert math.isclose(Exponential(1.0, 0.9)(10), 0.9**10)
    assert Exponential(1.0, 0.5, minimum=0.1)(10) == 0.1
    s = Step(1.0, 0.5, every=3)
    assert [s(t) for t in range(7)] == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25]
    assert Step(3.0, 0.1, milestones=[5, 2])(4) == pytest.approx(0.3)
    assert Constant(0.25)(10**9) == 0.25


def test_composition():
    s = Warmup(Cosine(1.0, 0.0, 10), n_warmup=5, start=0.5)
    assert [s(t) for t in (0, 5, 10, 15, 99)] == [0.5, 1.0, pytest.approx(0.5), 0.0, 0.0]
    assert s(2) == pytest.approx(0.7)
    p = Piecewise([Constant(1.0), Linear(1.0, 0.0, 10), Constant(0.0)], boundaries=[5, 15])
    assert [p(t) for t in (0, 4, 5, 10, 15, 40)] == [1.0, 1.0, 1.0, 0.5, 0.0, 0.0]
    q = 0.1 * Exponential(1.0, 0.5)
    assert isinstance(q, Product) and q(2) == pytest.approx(0.025)
    r = Linear(0.0, 1.0, 2) * Linear(1.0, 0.0, 2)
    assert r(1) == 0.25


def _all():
    return [
        Constant(1.0),
        Linear(0.5, 0.1, 20),
        Cosine(1.0, 0.0, 30),
        Exponential(1.0, 0.95, minimum=0.01),
        Step(1.0, 0.5, milestones=[3, 9]),
        Warmup(Cosine(1.0, 0.1, 25), n_warmup=7),
        Piecewise([Linear(0.0, 1.0, 4), Exponential(1.0, 0.9)], boundaries=[4]),
        0.5 * Warmup(Step(1.0, 0.1, every=5), 3),
    ]


@pytest.mark.parametrize("make_idx", range(8))
def test_state_dict_resumes_exactly(make_idx):
    """Run 13 steps, checkpoint, resume in a fresh object: the values continue bit-for-bit."""
    a = _all()[make_idx]
    values = [a.value]
    for _ in range(13):
        values.append(a.step())
    saved = a.state_dict()
    cont = [a.step() for _ in range(20)]
    b = _all()[make_idx]
    b.load_state_dict(saved)
    assert b.last_step == 13 and b.value == values[-1]
    assert [b.step() for _ in range(20)] == cont
    buf = io.BytesIO()
    torch.save(saved, buf)  # plain data: loads with weights_only=True
    buf.seek(0)
    assert torch.load(buf, weights_only=True) == saved
    assert all(
        isinstance(v, (int, float, str, list, dict, type(None))) for v in saved["config"].values()
    )


def test_load_refuses_another_schedule():
    s = Linear(1.0, 0.0, 10)
    with pytest.raises(ValueError, match="checkpoint holds the schedule"):
        s.load_state_dict(Linear(1.0, 0.0, 11).state_dict())
    with pytest.raises(ValueError, match="last_step"):
        s.load_state_dict({"config": s.config()})


def test_errors():
    with pytest.raises(TypeError, match="start"):
        Linear("a", 0.0, 3)
    with pytest.raises(ValueError, match="n_steps"):
        Cosine(1.0, 0.0, 0)
    with pytest.raises(ValueError, match="gamma"):
        Exponential(1.0, -0.5)
    with pytest.raises(ValueError, match="exactly one"):
        Step(1.0, 0.5)
    with pytest.raises(ValueError, match="boundaries"):
        Piecewise([Constant(1.0), Constant(2.0)], boundaries=[])
    with pytest.raises(TypeError, match="Schedule"):
        Warmup(0.5, 3)
    with pytest.raises(ValueError, match="t must be"):
        Constant(1.0)(-1)
    with pytest.raises(TypeError, match="finite float"):
        Constant(float("nan"))


def test_drives_a_sampler_step_size():
    f = lambda x: 0.5 * (x**2).sum(-1)  # noqa: E731
    sched = Warmup(Cosine(0.5, 0.05, 10), n_warmup=2, start=0.01)
    s = MALA(f, sched.value)
    state = s.init(torch.zeros(8, 2))
    g = torch.Generator().manual_seed(0)
    for _ in range(12):
        s = dataclasses.replace(s, step_size=sched.step())
        state = run_chain(s, state, 1, generator=g).state
    assert s.step_size == pytest.approx(0.05) and isinstance(sched, Schedule)
