import math

import pytest
import torch

from torchenergy.samplers.buffer import ReplayBuffer, sample_distribution


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_initial_fill_is_uniform_noise_with_shape_dtype():
    buf = ReplayBuffer(500, (1, 3, 3), generator=gen(), dtype=torch.float64)
    assert buf.data.shape == (500, 1, 3, 3) and buf.data.dtype == torch.float64
    assert float(buf.data.min()) >= -1.0 and float(buf.data.max()) <= 1.0
    # mean of U[-1, 1] is 0 with sd sqrt(1/3): |mean| <= 4 * MCSE
    n = buf.data.numel()
    assert abs(float(buf.data.mean())) <= 4 * math.sqrt(1 / 3 / n)


def test_lineage_chain_read_from_slot_i_goes_back_to_slot_i():
    cap = 50
    buf = ReplayBuffer(cap, (2,), reinit_prob=0.0, generator=gen())
    # mark every slot with its own index
    buf.data = torch.arange(cap, dtype=buf.dtype).repeat_interleave(2).reshape(cap, 2)
    g = gen(1)
    for _ in range(20):
        idx, x = buf.sample(16, generator=g)
        assert idx.unique().numel() == 16  # distinct slots: each chain advanced once
        # the state read from slot i is slot i's chain: its marker (mod 1000) is i
        torch.testing.assert_close(torch.remainder(x[:, 0], 1000.0), idx.to(x.dtype))
        buf.update(idx, x + 1000.0)  # advance the chains
    # every slot carries its own marker plus 1000 x (number of times it was advanced)
    torch.testing.assert_close(
        torch.remainder(buf.data[:, 0], 1000.0), torch.arange(cap, dtype=buf.dtype)
    )
    advanced = torch.div(buf.data[:, 0], 1000.0, rounding_mode="floor").long()
    torch.testing.assert_close(advanced, buf.age)
    assert int(buf.age.sum()) == 20 * 16


def test_reinit_fraction_matches_probability_within_mcse():
    cap, batch, rounds, p = 1000, 200, 100, 0.05
    sentinel = 1e6
    buf = ReplayBuffer(cap, (3,), reinit_prob=p, generator=gen())
    g = gen(2)
    fresh = 0
    for _ in range(rounds):
        buf.data.fill_(sentinel)  # every chain far from the noise support
        idx, x = buf.sample(batch, generator=g)
        is_fresh = (x.abs() <= 1.0).all(dim=1)
        fresh += int(is_fresh.sum())
        # re-initialised slots were overwritten in place (the buffer holds the chain's state)
        torch.testing.assert_close(buf.data[idx], x)
    n = batch * rounds
    frac = fresh / n
    assert abs(frac - p) <= 4 * math.sqrt(p * (1 - p) / n)
    assert int(buf.n_reinit) == fresh and int(buf.n_drawn) == n


def test_reinit_resets_age():
    buf = ReplayBuffer(10, (1,), reinit_prob=1.0, generator=gen())
    idx, x = buf.sample(10, generator=gen(3))
    buf.update(idx, x)
    buf.update(idx, x)
    assert (buf.age == 2).all()
    buf.sample(10, generator=gen(3))
    assert (buf.age == 0).all()


def test_same_seed_same_draws_and_different_seed_differs():
    def run(seed):
        buf = ReplayBuffer(64, (2,), generator=gen(seed))
        g = gen(seed + 100)
        out = []
        for _ in range(5):
            idx, x = buf.sample(8, generator=g)
            buf.update(idx, 0.5 * x)
            out.append((idx, x))
        return buf.data, out

    d1, o1 = run(0)
    d2, o2 = run(0)
    d3, _ = run(1)
    assert torch.equal(d1, d2)
    for (i1, x1), (i2, x2) in zip(o1, o2):
        assert torch.equal(i1, i2) and torch.equal(x1, x2)
    assert not torch.equal(d1, d3)


def test_state_dict_round_trip_with_safetensors_and_weights_only(tmp_path):
    buf = ReplayBuffer(32, (2, 2), reinit_prob=0.2, generator=gen())
    g = gen(4)
    for _ in range(3):
        idx, x = buf.sample(8, generator=g)
        buf.update(idx, x * 2)
    sd = buf.state_dict()
    assert all(isinstance(v, torch.Tensor) for v in sd.values())

    from safetensors.torch import load_file, save_file

    save_file(sd, tmp_path / "buf.safetensors")
    torch.save(sd, tmp_path / "buf.pt")
    for loaded in (
        load_file(tmp_path / "buf.safetensors"),
        torch.load(tmp_path / "buf.pt", weights_only=True),
    ):
        other = ReplayBuffer(32, (2, 2), reinit_prob=0.5, generator=gen(9))
        other.load_state_dict(loaded)
        assert torch.equal(other.data, buf.data) and torch.equal(other.age, buf.age)
        assert other.reinit_prob == pytest.approx(0.2)
        assert int(other.n_drawn) == int(buf.n_drawn) == 24
        # continuing both with the same stream gives the same chains
        ga, gb = gen(5), gen(5)
        ia, xa = buf.sample(8, generator=ga)
        ib, xb = other.sample(8, generator=gb)
        assert torch.equal(ia, ib) and torch.equal(xa, xb)
        buf.load_state_dict(sd)  # undo the draw for the next loop


def test_noise_callable_and_distribution_and_generator_reproducibility():
    def noise(n, generator=None):
        return 3.0 + torch.randn(n, 2, generator=generator)

    buf = ReplayBuffer(2000, (2,), noise, generator=gen())
    assert abs(float(buf.data.mean()) - 3.0) < 4 / math.sqrt(4000)

    dist = torch.distributions.Normal(torch.tensor([1.0, -1.0]), torch.tensor([0.5, 2.0]))
    b1 = ReplayBuffer(4000, noise=dist, generator=gen(7))
    b2 = ReplayBuffer(4000, noise=dist, generator=gen(7))
    assert b1.sample_shape == (2,) and torch.equal(b1.data, b2.data)
    mean, sd = b1.data.mean(0), b1.data.std(0)
    assert torch.all((mean - dist.mean).abs() <= 4 * dist.stddev / math.sqrt(4000))
    assert torch.all((sd - dist.stddev).abs() <= 4 * dist.stddev / math.sqrt(2 * 4000))

    mvn = torch.distributions.MultivariateNormal(
        torch.zeros(2), torch.tensor([[1.0, 0.8], [0.8, 1.0]])
    )
    x = sample_distribution(mvn, 4000, generator=gen(8))
    assert abs(float(torch.corrcoef(x.T)[0, 1]) - 0.8) < 4 * (1 - 0.64) / math.sqrt(4000)
    # a distribution without icdf falls back to a forked, seeded stream: still reproducible,
    # and the global stream is untouched
    gamma = torch.distributions.Gamma(torch.tensor([2.0]), torch.tensor([1.0]))
    state = torch.random.get_rng_state()
    a = sample_distribution(gamma, 10, generator=gen(1))
    b = sample_distribution(gamma, 10, generator=gen(1))
    assert torch.equal(a, b) and torch.equal(torch.random.get_rng_state(), state)


def test_bad_input_errors_name_the_value():
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(0, (2,))
    with pytest.raises(ValueError, match="reinit_prob"):
        ReplayBuffer(10, (2,), reinit_prob=1.5)
    with pytest.raises(ValueError, match="sample_shape"):
        ReplayBuffer(10)
    with pytest.raises(TypeError, match="noise"):
        ReplayBuffer(10, (2,), noise=3)
    with pytest.raises(ValueError, match=r"\(n, \*D\)"):
        ReplayBuffer(10, (2,), noise=lambda n, generator=None: torch.zeros(n, 3))
    buf = ReplayBuffer(10, (2,))
    with pytest.raises(ValueError, match="batch_size must be <= capacity = 10"):
        buf.sample(11)
    idx, x = buf.sample(4)
    with pytest.raises(ValueError, match=r"\(B, \*D\) = \(4, 2\)"):
        buf.update(idx, x[:, :1])
    with pytest.raises(ValueError, match="repeated"):
        buf.update(torch.tensor([1, 1, 2, 3]), x)
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        buf.update(torch.tensor([1, 2, 3, 10]), x)
    with pytest.raises(TypeError, match="integer"):
        buf.update(idx.float(), x)
    with pytest.raises(ValueError, match="shape"):
        buf.load_state_dict({**buf.state_dict(), "data": torch.zeros(5, 2)})
    with pytest.raises(ValueError, match="initial"):
        ReplayBuffer(10, (2,), initial=torch.zeros(9, 2))


def test_initial_tensor_sets_device_and_dtype():
    init = torch.randn(6, 4, dtype=torch.float64)
    buf = ReplayBuffer(6, initial=init)
    assert buf.dtype == torch.float64 and buf.sample_shape == (4,)
    assert torch.equal(buf.data, init) and buf.data is not init
    idx, x = buf.sample(3, generator=gen())
    assert x.dtype == torch.float64 and idx.dtype == torch.long
