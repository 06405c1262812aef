"""Issue 15, "bad input: one clear line": each bad input a new user meets first gets a
ValueError/TypeError (or a warning) whose message names the argument and the offending value,
shape or dtype. One test per bad input; the messages are asserted exactly where they matter."""

from __future__ import annotations

import re

import pytest
import torch

from torchenergy.energies import MLPEnergy, energy_and_grad
from torchenergy.losses import (
    DataNegatives,
    contrastive_divergence,
    score_matching,
    sliced_score_matching,
)
from torchenergy.models import BernoulliRBM, GaussianBernoulliRBM, LinearChainCRF
from torchenergy.samplers import (
    HMC,
    MALA,
    AnnealedLangevin,
    GibbsWithGradients,
    GradientDescent,
    Langevin,
    Nesterov,
    ParallelTempering,
    run_chain,
)

F64 = torch.float64


def quad(x):
    return 0.5 * (x**2).flatten(1).sum(-1)


def _nan_start():
    x = torch.zeros(4, 2, dtype=F64)
    x[1, 0] = float("nan")
    x[3, 1] = float("inf")
    return x


NAN_START = "x must be finite at the start: 2 of 4 chains hold NaN or inf (x[1] = [nan, 0.0], x[3] = [0.0, inf])"

KERNELS = {
    "Langevin": lambda e: Langevin(e, 0.1),
    "MALA": lambda e: MALA(e, 0.1),
    "HMC": lambda e: HMC(e, 0.1, 3),
    "GradientDescent": lambda e: GradientDescent(e, 0.1),
    "Nesterov": lambda e: Nesterov(e, 0.1),
    "AnnealedLangevin": lambda e: AnnealedLangevin(e, 0.1, torch.tensor([1.0, 0.5])),
    "ParallelTempering": lambda e: ParallelTempering(e, MALA(e, 0.1), [1.0, 2.0, 4.0]),
}


@pytest.mark.parametrize("name", KERNELS)
def test_every_sampler_refuses_a_non_finite_start(name):
    s = KERNELS[name](quad)
    with pytest.raises(ValueError) as ei:
        run_chain(s, _nan_start(), 3, generator=torch.Generator().manual_seed(0))
    assert str(ei.value) == NAN_START


@pytest.mark.parametrize("name", KERNELS)
def test_every_sampler_refuses_a_start_of_infinite_energy(name):
    def barrier(x):  # +inf for x0 < 0
        e = quad(x)
        return torch.where(x[:, 0] < 0, torch.full_like(e, float("inf")), e)

    x = torch.zeros(3, 2, dtype=F64)
    x[2, 0] = -1.0
    if name == "ParallelTempering":  # chain 2's three replicas, counted over C·R chains
        pattern = r"not finite at the start x: 3 of 9 chains .*E\[6\] = inf.*index c·R \+ r"
    else:
        pattern = r"not finite at the start x: 1 of 3 chains .*E\[2\] = inf"
    with pytest.raises(ValueError, match=pattern):
        KERNELS[name](barrier).init(x)


def test_gibbs_with_gradients_refuses_non_finite_and_non_binary_starts():
    s = GibbsWithGradients(lambda x: x.sum(-1))
    with pytest.raises(ValueError) as ei:
        s.init(_nan_start())
    assert str(ei.value) == NAN_START
    with pytest.raises(ValueError) as ei:
        s.init(torch.tensor([[0.0, 1.0], [0.5, 1.0]]))
    assert str(ei.value) == (
        "GibbsWithGradients needs binary x with values in {0, 1}, got 1 other value(s), "
        "e.g. x[1, 0] = 0.5"
    )


def test_data_negatives_refuse_a_non_finite_batch():
    with pytest.raises(ValueError, match=re.escape(NAN_START)):
        DataNegatives(MALA(quad, 0.1))(_nan_start())


def test_replay_buffer_refuses_non_finite_initial_chains():
    from torchenergy.samplers import ReplayBuffer

    initial = torch.zeros(6, 2)
    initial[4, 1] = float("nan")
    with pytest.raises(ValueError) as ei:
        ReplayBuffer(6, initial=initial)
    assert str(ei.value) == "initial holds 1 non-finite value(s) out of 12"


def test_rbm_fit_refuses_nan_data():
    for rbm in (BernoulliRBM(4, 3), GaussianBernoulliRBM(4, 3)):
        data = torch.zeros(5, 4)
        data[2, 3] = float("nan")
        with pytest.raises(ValueError) as ei:
            rbm.fit(data, epochs=1, batch_size=5)
        assert str(ei.value) == (
            "data holds 1 non-finite value(s) (NaN or inf) out of 20, e.g. data[2, 3] = nan"
        )


def test_rbm_fit_refuses_empty_data():
    for rbm in (BernoulliRBM(4, 3), GaussianBernoulliRBM(4, 3)):
        with pytest.raises(ValueError) as ei:
            rbm.fit(torch.zeros(0, 4), epochs=1)
        assert str(ei.value) == "data must hold at least one row (N, V), got shape (0, 4)"


def test_bernoulli_rbm_fit_warns_on_values_outside_0_1():
    data = torch.rand(6, 4, generator=torch.Generator().manual_seed(0))
    data[0, 0] = 3.0
    with pytest.warns(UserWarning, match=r"should lie in \[0, 1\] .*got values in \[0\.\d+, 3\]"):
        BernoulliRBM(4, 3).fit(data, epochs=1, batch_size=6)
    import warnings

    with warnings.catch_warnings():  # real-valued data is what a Gaussian-Bernoulli RBM is for
        warnings.simplefilter("error")
        GaussianBernoulliRBM(4, 3).fit(data, epochs=1, batch_size=6)


def test_crf_refuses_non_finite_emissions():
    crf = LinearChainCRF(3)
    em = torch.zeros(2, 4, 3)
    em[1, 2, 0] = float("-inf")
    tags = torch.zeros(2, 4, dtype=torch.long)
    msg = (
        "emissions must be finite at the positions the mask selects, got 1 NaN or inf value(s), "
        "e.g. emissions[1, 2, 0] = -inf"
    )
    for call in (lambda: crf.nll(em, tags), lambda: crf.decode(em), lambda: crf.marginals(em)):
        with pytest.raises(ValueError) as ei:
            call()
        assert str(ei.value) == msg
    # outside the mask (padding) a NaN is never read
    mask = torch.ones(2, 4, dtype=torch.bool)
    mask[1, 2:] = False
    assert torch.isfinite(crf.nll(em, tags, mask))


def test_crf_refuses_half_precision():
    crf = LinearChainCRF(3)
    for dtype in (torch.float16, torch.bfloat16):
        with pytest.raises(
            TypeError, match=rf"emissions must be float32 or float64, got dtype {dtype}"
        ):
            crf.nll(torch.zeros(2, 4, 3, dtype=dtype), torch.zeros(2, 4, dtype=torch.long))


def test_crf_refuses_an_empty_batch():
    crf = LinearChainCRF(3)
    with pytest.raises(ValueError) as ei:
        crf.decode(torch.zeros(0, 4, 3))
    assert (
        str(ei.value) == "emissions must hold at least one sequence (B >= 1), got shape (0, 4, 3)"
    )


@pytest.mark.parametrize("kind", ["exact", "sliced"])
def test_score_matching_on_an_affine_energy_is_half_the_squared_slope(kind):
    """E(x) = x·w: ∇E = w, zero Hessian, so the loss is 0.5‖w‖² and its gradient in w is w."""
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5], dtype=F64))
    x = torch.randn(5, 3, dtype=F64, generator=torch.Generator().manual_seed(0))
    if kind == "exact":
        out = score_matching(lambda y: y @ w, x)
    else:
        out = sliced_score_matching(
            lambda y: y @ w, x, n_projections=2, generator=torch.Generator().manual_seed(0)
        )
    out.loss.backward()
    assert out.loss.item() == 0.5 * (1.0 + 4.0 + 0.25)
    assert torch.equal(out.per_sample, torch.full((5,), 2.625, dtype=F64))
    assert torch.equal(w.grad, w.detach())
    # a constant slope (no parameter) and an energy free of x: no autograd error either
    fixed = w.detach()
    assert score_matching(lambda y: y @ fixed, x).loss.item() == 2.625
    assert score_matching(lambda y: 0.0 * y.sum(-1) + 1.0, x).loss.item() == 0.0


DTYPE_MSG = (
    "x has dtype torch.float32 (shape (3, 2)) but MLPEnergy's parameters have dtype "
    "torch.float64; convert one of them: x.to(torch.float64) or MLPEnergy.to(torch.float32)"
)


def test_dtype_mismatch_is_named_at_every_boundary():
    net = MLPEnergy(2, [8]).double()
    x = torch.zeros(3, 2)
    for call in (
        lambda: energy_and_grad(net, x),
        lambda: energy_and_grad(net, x, create_graph=True),
        lambda: Langevin(net, 0.1).init(x),
        lambda: MALA(net, 0.1).init(x),
        lambda: contrastive_divergence(net, x, x),
        lambda: score_matching(net, x),
    ):
        with pytest.raises(TypeError) as ei:
            call()
        assert str(ei.value).startswith(DTYPE_MSG)


EVENTLESS = (
    "x of shape (3,) is 3 chains with no event dimensions D (one point of dimension 3 is "
    "x.unsqueeze(0), shape (1, 3); 3 scalar points are x.unsqueeze(-1), shape (3, 1))"
)


def test_eventless_x_is_explained():
    x = torch.zeros(3)
    net = MLPEnergy(3, [4])
    with pytest.raises(ValueError) as ei:
        energy_and_grad(net, x)
    assert str(ei.value) == (
        f"x must have at least 2 dimension(s) (C, *D), got shape (3,): {EVENTLESS}"
    )
    with pytest.raises(ValueError) as ei:  # an energy that sums the last dimension
        Langevin(lambda y: (y**2).sum(-1), 0.1).init(x)
    assert str(ei.value) == (
        "energy_fn must map x of shape (C, *D) = (3,) to energies of shape (C,) = (3,), got "
        f"shape (); {EVENTLESS}"
    )
    with pytest.raises(ValueError) as ei:  # an energy that indexes the event dimension
        energy_and_grad(lambda y: y[:, 0] ** 2, x)
    assert str(ei.value).startswith(f"function failed on x of shape (3,): {EVENTLESS} (too many")
    with pytest.raises(ValueError, match=re.escape(EVENTLESS)):
        score_matching(net, x)
