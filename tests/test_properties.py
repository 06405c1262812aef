"""Property-based contract (issue 15): every public sampler, loss and the CRF, called with
random shapes, dtypes (float32/float64), masks and non-finite entries, either returns finite,
correctly shaped results or raises ``ValueError``/``TypeError`` whose message names the
argument (the losses' documented :class:`NonFiniteEnergyError` names the phase instead).

Hypothesis runs derandomized without an example database, so CI is reproducible.
"""

from __future__ import annotations

import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from torchenergy.losses import (  # noqa: E402
    NonFiniteEnergyError,
    contrastive_divergence,
    denoising_score_matching,
    equilibrium_matching,
    noise_contrastive_estimation,
    score_matching,
    sliced_score_matching,
)
from torchenergy.models import LinearChainCRF  # noqa: E402
from torchenergy.samplers import (  # noqa: E402
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

FAST = settings(max_examples=20, deadline=None, derandomize=True, database=None)
DTYPES = st.sampled_from([torch.float32, torch.float64])
BAD = st.sampled_from([None, float("nan"), float("inf"), float("-inf")])


class Quad(torch.nn.Module):
    """``E(x) = 0.5 a ‖x‖²`` over any event shape, with a parameter ``a`` (follows x's dtype)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor(1.0, dtype=torch.float64))

    def forward(self, x):
        return 0.5 * self.a.to(x.dtype) * (x**2).flatten(1).sum(-1)


@st.composite
def points(draw, *, binary=False):
    """``(x, bad)``: x (C, *D) of a random dtype, with one non-finite entry when ``bad``."""
    c = draw(st.integers(1, 4))
    event = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=2)))
    dtype = draw(DTYPES)
    seed = draw(st.integers(0, 2**16))
    g = torch.Generator().manual_seed(seed)
    if binary:
        x = torch.randint(0, 2, (c, *event), generator=g).to(dtype)
    else:
        x = torch.randn((c, *event), generator=g, dtype=dtype)
    bad = draw(BAD)
    if bad is not None:
        flat = x.view(-1)
        flat[draw(st.integers(0, flat.numel() - 1))] = bad
    return x, bad is not None


def _check_result(x_out, x_in):
    assert x_out.shape == x_in.shape and x_out.dtype == x_in.dtype
    assert torch.isfinite(x_out).all()


KERNELS = {
    "Langevin": lambda e: Langevin(e, 0.05),
    "MALA": lambda e: MALA(e, 0.05),
    "HMC": lambda e: HMC(e, 0.05, 2),
    "GradientDescent": lambda e: GradientDescent(e, 0.05),
    "Nesterov": lambda e: Nesterov(e, 0.05),
    "AnnealedLangevin": lambda e: AnnealedLangevin(e, 0.05, torch.tensor([2.0, 1.0])),
    "ParallelTempering": lambda e: ParallelTempering(e, MALA(e, 0.05), [1.0, 2.0]),
}


@pytest.mark.parametrize("name", KERNELS)
@FAST
@given(data=points(), seed=st.integers(0, 2**16))
def test_samplers_return_finite_draws_or_name_the_start(name, data, seed):
    x, bad = data
    s = KERNELS[name](Quad())
    if bad:
        with pytest.raises(ValueError, match=r"^x must be finite at the start: 1 of \d+ chains"):
            run_chain(s, x, 3, generator=torch.Generator().manual_seed(seed))
        return
    res = run_chain(s, x, 3, generator=torch.Generator().manual_seed(seed))
    _check_result(res.x, x)


@FAST
@given(data=points(binary=True), seed=st.integers(0, 2**16))
def test_gibbs_with_gradients_returns_binary_draws_or_names_the_start(data, seed):
    x, bad = data
    w = torch.linspace(-1.0, 1.0, x[0].numel(), dtype=x.dtype).reshape(x.shape[1:])
    s = GibbsWithGradients(lambda y: (y * w).flatten(1).sum(-1))
    if bad:
        with pytest.raises(ValueError, match=r"^x must be finite at the start"):
            s.sample(x, 2, generator=torch.Generator().manual_seed(seed))
        return
    out = s.sample(x, 2, generator=torch.Generator().manual_seed(seed))
    _check_result(out, x)
    assert bool(((out == 0) | (out == 1)).all())


def _loss_or_named_error(call, bad, names):
    """Run a loss: finite scalar loss and (C,) diagnostics, or (with a bad input) an error that
    names one of ``names`` (or the phase, for :class:`NonFiniteEnergyError`)."""
    if not bad:
        out = call()
        assert out.loss.dim() == 0 and bool(torch.isfinite(out.loss))
        return out
    with pytest.raises((ValueError, TypeError, NonFiniteEnergyError)) as ei:
        call()
    msg = str(ei.value)
    if isinstance(ei.value, NonFiniteEnergyError):
        assert "phase energies are non-finite" in msg
    else:
        assert any(n in msg for n in names), msg
    return None


LOSSES = {
    "cd": lambda e, x, g: contrastive_divergence(e, x, torch.zeros_like(x)),
    "score_matching": lambda e, x, g: score_matching(e, x),
    "sliced": lambda e, x, g: sliced_score_matching(e, x, n_projections=2, generator=g),
    "denoising": lambda e, x, g: denoising_score_matching(e, x, sigma=0.5, generator=g),
    "equilibrium": lambda e, x, g: equilibrium_matching(e, x, generator=g),
    "nce": lambda e, x, g: noise_contrastive_estimation(
        e,
        x,
        torch.distributions.Independent(
            torch.distributions.Normal(
                torch.zeros(x.shape[1:], dtype=x.dtype), torch.ones(x.shape[1:], dtype=x.dtype)
            ),
            len(x.shape[1:]),
        ),
        log_z=torch.zeros((), dtype=x.dtype, requires_grad=True),
        generator=g,
    ),
}


@pytest.mark.parametrize("name", LOSSES)
@FAST
@given(data=points(), seed=st.integers(0, 2**16))
def test_losses_are_finite_or_name_the_bad_input(name, data, seed):
    x, bad = data
    energy = Quad()
    out = _loss_or_named_error(
        lambda: LOSSES[name](energy, x, torch.Generator().manual_seed(seed)), bad, ("x",)
    )
    if out is not None:
        out.loss.backward()
        assert torch.isfinite(energy.a.grad)


@st.composite
def crf_batches(draw):
    b, t, k = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 3))
    dtype = draw(DTYPES)
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    em = torch.randn(b, t, k, generator=g, dtype=dtype)
    mask = torch.rand(b, t, generator=g) < draw(st.floats(0.3, 1.0))
    mask[torch.arange(b), torch.randint(0, t, (b,), generator=g)] = True  # >= 1 per row
    tags = torch.randint(0, k, (b, t), generator=g)
    bad = draw(BAD)
    where = None
    if bad is not None:
        where = (
            draw(st.integers(0, b - 1)),
            draw(st.integers(0, t - 1)),
            draw(st.integers(0, k - 1)),
        )
        em[where] = bad
    selected = where is not None and bool(mask[where[0], where[1]])
    return em, mask, tags, selected


@FAST
@given(batch=crf_batches())
def test_crf_is_finite_and_shaped_or_names_the_emissions(batch):
    em, mask, tags, bad = batch
    b, t, k = em.shape
    crf = LinearChainCRF(k)
    calls = (
        lambda: crf.nll(em, tags, mask),
        lambda: crf.decode(em, mask),
        lambda: crf.marginals(em, mask),
    )
    if bad:
        for call in calls:
            with pytest.raises(ValueError, match=r"^emissions must be finite at the positions"):
                call()
        return
    nll = calls[0]()
    assert nll.dim() == 0 and bool(torch.isfinite(nll)) and float(nll.detach()) >= -1e-4
    dec = calls[1]()
    assert dec.tags.shape == (b, t) and bool((dec.tags[mask] >= 0).all())
    assert bool((dec.tags[~mask] == -1).all()) and bool(torch.isfinite(dec.scores).all())
    marg = calls[2]()
    assert marg.shape == (b, t, k) and bool(torch.isfinite(marg).all())
    ones = torch.ones((), dtype=marg.dtype)
    torch.testing.assert_close(marg.sum(-1)[mask], ones.expand(int(mask.sum())), atol=1e-4, rtol=0)


@FAST
@given(
    c=st.integers(1, 4),
    d=st.integers(1, 3),
    which=st.sampled_from(["kernel", "loss"]),
    name=st.sampled_from(sorted(KERNELS) + sorted(LOSSES)),
)
@example(c=1, d=1, which="kernel", name="ParallelTempering")  # named (C·R,), not (C,)
def test_dtype_mismatch_and_eventless_x_are_named(c, d, which, name):
    """float32 x into a float64 MLP energy names both dtypes; x of shape (C,) names its shape."""
    from torchenergy.energies import MLPEnergy

    net = MLPEnergy(d, [4]).double()
    x = torch.zeros(c, d)
    g = torch.Generator().manual_seed(0)
    if name in KERNELS:
        call = lambda y: run_chain(KERNELS[name](net), y, 1, generator=g)  # noqa: E731
    else:
        call = lambda y: LOSSES[name](net, y, g)  # noqa: E731
    with pytest.raises(TypeError, match=r"x has dtype torch.float32 .* dtype torch.float64"):
        call(x)
    with pytest.raises(ValueError, match=rf"shape \({c},\)"):
        call(torch.zeros(c, dtype=torch.float64))
