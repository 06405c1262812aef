"""The fused CD/PCD trainer (``fit_rbm(fused=...)``) against the generic ``cd_step`` path, and
each accelerator of :mod:`torchenergy.models.rbm.protocols` against its reference part."""

import pytest
import torch

import torchenergy.models.rbm.training as rt
from torchenergy.energies import sample_bernoulli
from torchenergy.models import BernoulliRBM, GaussianBernoulliRBM, cd_step, fit_rbm
from torchenergy.models.rbm import (
    BernoulliSource,
    CDStepTrainer,
    CDTrainer,
    RBMProducts,
    _onednn,
    _uniforms,
)
from torchenergy.models.rbm import _fused as fcd
from torchenergy.models.rbm.protocols import PlainProducts, TorchBernoulli

D64 = torch.float64
CONFIGS = [
    {"epochs": 1, "batch_size": 53},  # one full-batch update
    {"epochs": 3, "batch_size": 10, "k": 3, "weight_decay": 0.01},  # CD-3, short last batch
    {  # PCD with more chains than rows per batch, lr decay, sparsity
        "epochs": 2,
        "batch_size": 10,
        "persistent": True,
        "n_chains": 7,
        "lr_decay": "linear",
        "sparsity_target": 0.1,
    },
    {"epochs": 2, "batch_size": 16, "momentum": 0.0, "persistent": True, "shuffle": False},
]


def _fit(fused, dtype=D64, seed=3, **kw):
    g = torch.Generator().manual_seed(seed)
    rbm = BernoulliRBM(20, 7, init_std=0.3, generator=g, dtype=dtype)
    data = torch.bernoulli(torch.full((53, 20), 0.4, dtype=dtype), generator=g)
    hist = fit_rbm(rbm, data, fused=fused, generator=g, **kw)
    return rbm, hist


@pytest.mark.parametrize("cfg", CONFIGS)
def test_fused_trainer_matches_cd_step_in_float64(cfg, monkeypatch):
    # with torch.rand draws (in cd_step's order) every update is the same to rounding
    monkeypatch.setattr(rt, "_FUSED_RNG", "torch")
    a, ha = _fit(False, **cfg)
    b, hb = _fit(True, **cfg)
    for name in ("W", "b", "c"):
        torch.testing.assert_close(getattr(b, name), getattr(a, name), rtol=1e-12, atol=1e-12)
    assert [h["recon_error"] for h in hb] == pytest.approx([h["recon_error"] for h in ha])


def _fused(rbm, **kw):
    """A fused trainer with this file's usual settings, overridden by ``kw``."""
    args = dict(
        lr=0.1,
        momentum=0.5,
        weight_decay=1e-3,
        k=1,
        batch_size=16,
        chains=None,
        sparsity_target=None,
        sparsity_cost=0.1,
        matmul_dtype=None,
        generator=torch.Generator().manual_seed(1),
    )
    args.update(kw)
    return fcd.FusedCD(rbm, **args)


def _one_step(onednn, md=None, k=2, two_steps=True):
    g = torch.Generator().manual_seed(0)
    rbm = BernoulliRBM(30, 20, init_std=0.3, generator=g)
    with torch.no_grad():
        rbm.b.normal_(0, 0.3, generator=g)
        rbm.c.normal_(0, 0.3, generator=g)
    data = torch.bernoulli(torch.full((40, 30), 0.4), generator=g)
    chains = torch.bernoulli(torch.full((24, 30), 0.5), generator=g)
    tr = _fused(rbm, k=k, chains=chains, matmul_dtype=md, onednn=onednn)
    w0 = rbm.W.detach().clone()
    err = tr.step(data, torch.arange(16), True)
    if two_steps:
        tr.step(data, slice(16, 32), False)
    tr.sync()
    return rbm.W.detach() - w0, rbm.b.detach().clone(), tr.chains, err


needs_onednn = pytest.mark.skipif(
    not _onednn.onednn_linear_ok(torch.float32), reason="oneDNN linear op not available"
)


@needs_onednn
def test_onednn_and_plain_products_give_the_same_updates():
    dw1, b1, ch1, e1 = _one_step(True)
    dw0, b0, ch0, e0 = _one_step(False)
    # the same uniforms; products differ by float32 rounding (no draw sits that close to p)
    assert torch.equal(ch1, ch0)
    torch.testing.assert_close(dw1, dw0, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(b1, b0)
    torch.testing.assert_close(e1, e0)


@pytest.mark.skipif(
    not _onednn.onednn_linear_ok(torch.bfloat16), reason="oneDNN bf16 linear op not available"
)
def test_bf16_products_give_the_same_update_up_to_rounding():
    # one CD-1 step: the same uniforms; the bf16 products round p to ~3 significant digits
    dw, *_ = _one_step(True, k=1, two_steps=False)
    for onednn in (True, False):
        dw_bf, *_ = _one_step(onednn, torch.bfloat16, k=1, two_steps=False)
        rel = (dw_bf - dw).norm() / dw.norm()
        assert float(rel) < 0.05, (onednn, float(rel))


def test_onednn_probe_falls_back_when_the_op_fails(monkeypatch):
    class Broken:
        def _linear_pointwise(self, *a):
            raise RuntimeError("no mkldnn here")

        def _is_mkldnn_bf16_supported(self):
            return True

    monkeypatch.setattr(_onednn, "_ONEDNN_OK", {})
    monkeypatch.setattr(torch.ops, "mkldnn", Broken(), raising=False)
    assert not _onednn.onednn_linear_ok(torch.float32)
    rbm, hist = _fit(None, dtype=torch.float32, epochs=1, batch_size=20)
    assert len(hist) == 1 and torch.isfinite(rbm.W).all()
    tr = _fused(rbm, momentum=0.0, weight_decay=0.0, batch_size=4, generator=None)
    assert not tr.onednn


def test_fused_default_is_seeded_and_only_for_bernoulli_with_default_optimizer():
    a, _ = _fit(None, dtype=torch.float32, epochs=2, batch_size=10, persistent=True)
    b, _ = _fit(None, dtype=torch.float32, epochs=2, batch_size=10, persistent=True)
    torch.testing.assert_close(a.W, b.W, rtol=0, atol=0)
    data = torch.bernoulli(torch.full((20, 5), 0.5))
    with pytest.raises(ValueError, match="fused"):
        fit_rbm(GaussianBernoulliRBM(5, 3), data, fused=True)
    rbm = BernoulliRBM(5, 3)
    with pytest.raises(ValueError, match="fused"):
        fit_rbm(rbm, data, fused=True, optimizer=torch.optim.SGD(rbm.parameters(), lr=0.1))


def test_fused_trainer_sees_weights_changed_by_the_callback():
    g = torch.Generator().manual_seed(0)
    rbm = BernoulliRBM(6, 4, generator=g)
    data = torch.bernoulli(torch.full((30, 6), 0.5), generator=g)
    seen = []

    def cb(epoch, rec):
        seen.append(rbm.W.detach().clone())
        with torch.no_grad():
            rbm.W.zero_()

    fit_rbm(rbm, data, epochs=2, batch_size=10, lr=1e-6, callback=cb, generator=g)
    assert seen[0].abs().max() > 1e-3  # the trained weights were written back before the call
    assert seen[1].abs().max() < 1e-3  # and the zeroed ones were trained on afterwards


def test_int24_bernoulli_is_u_below_p_with_the_stream_s_24_bit_uniforms():
    """The fused trainer's float32 draws compare the low 24 bits k of each raw 32-bit word with
    p·2²⁴: the same event as u < p for the float32 uniform u = k·2⁻²⁴."""
    import numpy as np

    u = _uniforms.NumpyBernoulli(torch.Generator().manual_seed(5), torch.float32)
    assert u.int24
    p = torch.rand(37, 11, generator=torch.Generator().manual_seed(6))
    p[0, :4] = torch.tensor([0.0, 1.0, 2.0**-24, 1.0 - 2.0**-24])
    state = u.rng.bit_generator.state
    out = torch.empty(37, 11)
    u.bernoulli(p.clone(), out, scale_p=True)
    u.rng.bit_generator.state = state
    words = u.rng.bit_generator.random_raw((p.numel() + 1) // 2).view(np.uint32)[: p.numel()]
    ref = torch.from_numpy(((words & 0xFFFFFF) * 2.0**-24).astype(np.float32)).view(37, 11) < p
    assert torch.equal(out, ref.float())
    assert out[0, 0] == 0 and out[0, 1] == 1  # p = 0 never fires, p = 1 always does
    # p is left alone unless scale_p; bf16 probabilities are compared in float32
    q = p.clone()
    u.bernoulli(q, out)
    assert torch.equal(q, p)
    # bf16 probabilities (all-bf16 products) are compared in float32, the same 24-bit law
    state = u.rng.bit_generator.state
    got = u.bernoulli(p.bfloat16(), torch.empty(37, 11, dtype=torch.bfloat16))
    u.rng.bit_generator.state = state
    words = u.rng.bit_generator.random_raw((p.numel() + 1) // 2).view(np.uint32)[: p.numel()]
    uni = torch.from_numpy(((words & 0xFFFFFF) * 2.0**-24).astype(np.float32)).view(37, 11)
    assert torch.equal(got, (uni < p.bfloat16().float()).bfloat16())


def test_int24_bernoulli_frequencies_match_p():
    u = _uniforms.NumpyBernoulli(torch.Generator().manual_seed(7), torch.float32)
    p = torch.tensor([0.001, 0.1, 0.37, 0.5, 0.93]).repeat(40_000, 1)  # 40,000 draws per p
    freq = u.bernoulli(p, torch.empty_like(p)).mean(0)
    se = (p[0] * (1 - p[0]) / 40_000).sqrt()
    assert bool(((freq - p[0]).abs() <= 4 * se).all()), (freq, p[0])


def _grad_dtype_step(grad_dtype):
    g = torch.Generator().manual_seed(0)
    rbm = BernoulliRBM(30, 20, init_std=0.3, generator=g)
    data = torch.bernoulli(torch.full((40, 30), 0.4), generator=g)
    chains = torch.bernoulli(torch.full((24, 30), 0.5), generator=g)
    tr = _fused(rbm, chains=chains, sparsity_target=0.1, grad_dtype=grad_dtype)
    w0, c0 = rbm.W.detach().clone(), rbm.c.detach().clone()
    tr.step(data, torch.arange(16), False)
    tr.sync()
    return tr, rbm.W.detach() - w0, rbm.c.detach() - c0, tr.chains


@pytest.mark.parametrize("grad_dtype", [torch.bfloat16, torch.float16])
def test_low_precision_gradient_product_changes_only_the_rounding(grad_dtype):
    """The chains are the same draws (the forward products are float32); the weight update
    differs by the rounding of P to ~3 significant digits, the bias updates not at all."""
    tr32, dw32, dc32, ch32 = _grad_dtype_step(None)
    tr16, dw16, dc16, ch16 = _grad_dtype_step(grad_dtype)
    assert tr32.grad_dtype == torch.float32 and tr16.grad_dtype == grad_dtype
    assert torch.equal(ch16, ch32)
    rel = float((dw16 - dw32).norm() / dw32.norm())
    assert 0 < rel < 1e-2, rel
    torch.testing.assert_close(dc16, dc32, rtol=1e-6, atol=1e-7)


def test_grad_dtype_auto_and_errors(monkeypatch):
    # "auto": bf16 only for float32 weights with oneDNN products and a native-bf16 CPU
    g = torch.Generator().manual_seed(0)
    rbm = BernoulliRBM(6, 4, generator=g)
    kw = dict(lr=0.1, momentum=0.5, weight_decay=0.0, k=1, batch_size=5, chains=None)
    kw.update(sparsity_target=None, sparsity_cost=0.1, matmul_dtype=None, generator=g)
    auto = fcd.FusedCD(rbm, grad_dtype="auto", **kw)
    native = _onednn.native_bf16() and _onednn.onednn_linear_ok(torch.bfloat16) and auto.onednn
    assert auto.grad_dtype == (torch.bfloat16 if native else torch.float32)
    monkeypatch.setattr(fcd, "native_bf16", lambda: False)
    assert fcd.FusedCD(rbm, grad_dtype="auto", **kw).grad_dtype == torch.float32
    rbm64 = BernoulliRBM(6, 4, generator=g, dtype=D64)
    assert fcd.FusedCD(rbm64, grad_dtype="auto", **kw).grad_dtype == D64
    data = torch.bernoulli(torch.full((20, 6), 0.5), generator=g)
    with pytest.raises(ValueError, match="grad_dtype must be 'auto', None or a torch dtype"):
        fit_rbm(rbm, data, grad_dtype="fast")
    with pytest.raises(ValueError, match="grad_dtype must be"):
        fit_rbm(rbm, data, grad_dtype=torch.int8)
    with pytest.raises(ValueError, match="needs the fused trainer"):
        fit_rbm(rbm, data, grad_dtype=torch.bfloat16, fused=False)
    hist = fit_rbm(rbm, data, epochs=2, batch_size=5, grad_dtype=torch.bfloat16, generator=g)
    assert len(hist) == 2 and torch.isfinite(rbm.W).all()


def test_centred_gradient_product_is_the_same_gradient():
    """The centring identity Pᵀ S X = (P − 1cᵀ)ᵀ S X + c (Xᵀ s)ᵀ: with the centred product in
    float64 the update equals the plain float32 one to float32 rounding, for CD and for PCD with
    more chains than rows (m ≠ n)."""
    for chains in (None, 24):
        outs = []
        for gd in (None, D64):
            g = torch.Generator().manual_seed(0)
            rbm = BernoulliRBM(30, 20, init_std=0.5, generator=g)
            data = torch.bernoulli(torch.full((40, 30), 0.4), generator=g)
            ch = torch.bernoulli(torch.full((chains, 30), 0.5), generator=g) if chains else None
            tr = _fused(rbm, chains=ch, grad_dtype=gd)
            assert (gd is not None) == (tr.grad_dtype == D64)
            w0 = rbm.W.detach().clone()
            for rows in (torch.arange(16), torch.arange(16, 32)):  # momentum carries over
                tr.step(data, rows, False)
            tr.sync()
            outs.append(rbm.W.detach() - w0)
        torch.testing.assert_close(outs[1], outs[0], rtol=1e-5, atol=1e-7)


def test_pcd_with_hidden_chain_state_is_scikit_learns_update(monkeypatch):
    """``chain_state="hidden"``: the persistent state is h drawn from p(h | v_neg) at the end of
    an update; the next update draws v_neg from it. Checked against the rule written out (the
    same torch.rand draws in the same order), float64, two epochs with momentum and decay."""
    monkeypatch.setattr(rt, "_FUSED_RNG", "torch")
    g = torch.Generator().manual_seed(3)
    rbm = BernoulliRBM(12, 5, init_std=0.3, generator=g, dtype=D64)
    data = torch.bernoulli(torch.full((30, 12), 0.4, dtype=D64), generator=g)
    ref = BernoulliRBM(12, 5, dtype=D64)
    ref.load_state_dict(rbm.state_dict())
    seed_state = g.get_state()
    fit_rbm(
        rbm,
        data,
        epochs=2,
        batch_size=10,
        lr=0.1,
        momentum=0.5,
        weight_decay=0.01,
        persistent=True,
        chain_state="hidden",
        shuffle=False,
        generator=g,
    )
    g.set_state(seed_state)
    w, b, c = (t.detach().clone() for t in (ref.W, ref.b, ref.c))
    chains = data[torch.randint(0, 30, (10,), generator=g)]
    draw = lambda p: (torch.rand(p.shape, generator=g, dtype=D64) < p).to(D64)  # noqa: E731
    h = draw(torch.sigmoid(chains @ w + c))
    bw, bb, bc = torch.zeros_like(w), torch.zeros_like(b), torch.zeros_like(c)
    for _ in range(2):
        for start in range(0, 30, 10):
            v = data[start : start + 10]
            p_pos = torch.sigmoid(v @ w + c)
            v_neg = draw(torch.sigmoid(h @ w.T + b))
            p_neg = torch.sigmoid(v_neg @ w + c)
            h = draw(p_neg)
            gw = v_neg.T @ p_neg / 10 - v.T @ p_pos / 10 + 0.01 * w
            bw = 0.5 * bw + gw
            bb = 0.5 * bb + (v_neg.mean(0) - v.mean(0))
            bc = 0.5 * bc + (p_neg.mean(0) - p_pos.mean(0))
            w, b, c = w - 0.1 * bw, b - 0.1 * bb, c - 0.1 * bc
    torch.testing.assert_close(rbm.W.detach(), w, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(rbm.b.detach(), b, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(rbm.c.detach(), c, rtol=1e-12, atol=1e-12)


def test_chain_state_errors():
    rbm = BernoulliRBM(5, 3)
    data = torch.bernoulli(torch.full((20, 5), 0.5))
    with pytest.raises(ValueError, match="chain_state must be 'visible' or 'hidden'"):
        fit_rbm(rbm, data, persistent=True, chain_state="h")
    with pytest.raises(ValueError, match="chain_state='hidden' is for PCD"):
        fit_rbm(rbm, data, chain_state="hidden")
    with pytest.raises(ValueError, match="chain_state='hidden' is for PCD"):
        fit_rbm(rbm, data, persistent=True, chain_state="hidden", fused=False)


# -- each accelerator against its reference part (tests of the declared protocols) -------------


def test_parts_satisfy_their_protocols():
    g = torch.Generator().manual_seed(0)
    assert isinstance(TorchBernoulli(g, torch.float32, "cpu"), BernoulliSource)
    assert isinstance(_uniforms.NumpyBernoulli(g, torch.float32), BernoulliSource)
    assert isinstance(PlainProducts(), RBMProducts)
    assert isinstance(_onednn.OneDNNProducts(), RBMProducts)
    rbm = BernoulliRBM(6, 4, generator=g)
    assert isinstance(_fused(rbm), CDTrainer)
    opt = torch.optim.SGD(rbm.parameters(), lr=0.1)
    kw = dict(sparsity_target=None, sparsity_cost=0.1, matmul_dtype=None, generator=g)
    assert isinstance(CDStepTrainer(rbm, opt, k=1, chains=None, **kw), CDTrainer)


@pytest.mark.parametrize("dtype", [torch.float32, D64])
def test_torch_bernoulli_source_is_sample_bernoulli_draw_for_draw(dtype):
    """The reference source makes exactly cd_step's draws: bit-equal for the same generator."""
    p = torch.rand(13, 9, generator=torch.Generator().manual_seed(1), dtype=dtype)
    src = TorchBernoulli(torch.Generator().manual_seed(2), dtype, "cpu")
    g = torch.Generator().manual_seed(2)
    for _ in range(3):  # the streams stay in step
        got = src.bernoulli(p, torch.empty_like(p))
        assert torch.equal(got, sample_bernoulli(p, generator=g))


def test_numpy_float64_source_is_u_below_p_with_the_stream_s_uniforms():
    """float64 (no int24 trick): ``u < p`` for ``u`` the stream's 53-bit uniforms, p unchanged."""
    import numpy as np

    src = _uniforms.NumpyBernoulli(torch.Generator().manual_seed(3), D64)
    assert not src.int24
    p = torch.rand(17, 5, generator=torch.Generator().manual_seed(4), dtype=D64)
    q = p.clone()
    state = src.rng.bit_generator.state
    out = src.bernoulli(q, torch.empty_like(p), scale_p=True)
    src.rng.bit_generator.state = state
    u = torch.from_numpy(src.rng.random((17, 5), dtype=np.float64))
    assert torch.equal(out, (u < p).to(D64))
    assert torch.equal(q, p)


def _product_inputs(dtype):
    g = torch.Generator().manual_seed(0)
    x = torch.bernoulli(torch.full((40, 30), 0.4), generator=g).to(dtype)
    wt = (torch.randn(20, 30, generator=g) * 0.3).to(dtype)
    b, c = torch.randn(30, generator=g).to(dtype), torch.randn(20, generator=g).to(dtype)
    pt = torch.rand(20, 40, generator=g).to(dtype)
    return x, wt, b, c, pt


@pytest.mark.skipif(
    not _onednn.onednn_linear_ok(torch.float32), reason="oneDNN linear op not available"
)
def test_onednn_products_equal_the_plain_products_to_float32_rounding():
    """The same sums in another order: |Δ| <= n·ε·(|a| |b| + |bias|) before the sigmoid (which is
    1/4-Lipschitz), plus the sigmoid's own rounding (a few ε)."""
    x, wt, b, c, pt = _product_inputs(torch.float32)
    fast, ref = _onednn.OneDNNProducts(), PlainProducts()
    eps = torch.finfo(torch.float32).eps
    h = torch.sigmoid(torch.addmm(c, x, wt.T))
    pairs = (
        (fast.hidden(x, wt, c), ref.hidden(x, wt, c), x.abs() @ wt.abs().T + c.abs(), 30),
        (fast.visible(h, wt, b), ref.visible(h, wt, b), h.abs() @ wt.abs() + b.abs(), 20),
    )
    for got, want, mag, n in pairs:
        assert got.dtype == want.dtype == torch.float32
        assert bool(((got - want).abs() <= 0.25 * n * eps * mag + 4 * eps).all())
    buf = torch.randn(20, 30, generator=torch.Generator().manual_seed(5))
    got = fast.accumulate(buf.clone(), pt, x, 0.5)
    want = ref.accumulate(buf.clone(), pt, x, 0.5)
    mag = pt.abs() @ x.abs() + 0.5 * buf.abs()
    assert bool(((got - want).abs() <= 41 * eps * mag).all())


@pytest.mark.skipif(
    not _onednn.onednn_linear_ok(torch.bfloat16), reason="oneDNN bf16 linear op not available"
)
def test_onednn_bf16_gradient_product_equals_the_plain_one_to_bf16_rounding():
    """A bf16 product (float32 accumulation) rounds its result once to bf16 (ε = 2⁻⁸ relative)
    in both implementations; widened into the float32 buffer they differ by at most two such
    roundings of |pt| |x| (plus the float32 sums)."""
    x, _, _, _, pt = _product_inputs(torch.float32)
    xb, ptb = x.bfloat16(), pt.bfloat16()
    buf = torch.randn(20, 30, generator=torch.Generator().manual_seed(5))
    got = _onednn.OneDNNProducts().accumulate(buf.clone(), ptb, xb, 0.5)
    want = PlainProducts().accumulate(buf.clone(), ptb, xb, 0.5)
    assert got.dtype == torch.float32
    mag = ptb.float().abs() @ xb.float().abs()
    eps32 = torch.finfo(torch.float32).eps
    bound = 2 * 2.0**-8 * mag + 41 * eps32 * (mag + 0.5 * buf.abs())
    assert bool(((got - want).abs() <= bound).all())


def test_reference_trainer_is_cd_step_with_lambda_lr_bitwise():
    """fit_rbm(fused=False) drives CDStepTrainer; its linear learning-rate decay sets each group
    to base·max(0, 1 − t/T) as torch's LambdaLR does: the same parameters bit for bit as
    cd_step + LambdaLR written out (Gaussian-Bernoulli, PCD, sparsity, three groups)."""
    g = torch.Generator().manual_seed(11)
    rbm = GaussianBernoulliRBM(6, 4, generator=g, dtype=D64)
    data = torch.randn(23, 6, generator=g, dtype=D64)
    ref = GaussianBernoulliRBM(6, 4, dtype=D64)
    ref.load_state_dict(rbm.state_dict())
    state = g.get_state()
    kw = dict(epochs=2, batch_size=5, lr=0.05, persistent=True, n_chains=4)
    fit_rbm(rbm, data, lr_decay="linear", sparsity_target=0.2, generator=g, **kw)
    g.set_state(state)
    opt = rt.default_optimizer(ref, 0.05, 0.5, 0.0, 0.1)
    n_batches = 2 * 5
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: max(0.0, 1.0 - t / n_batches))
    chains = data[torch.randint(0, 23, (4,), generator=g)].clone()
    q = None
    for _ in range(2):
        order = torch.randperm(23, generator=g)
        for b_i, start in enumerate(range(0, 23, 5)):
            res = cd_step(
                ref,
                data[order[start : start + 5]],
                opt,
                chains=chains,
                sparsity_target=0.2,
                hidden_mean=q,
                compute_recon=b_i % 10 == 0,
                generator=g,
            )
            q, chains = res.hidden_mean, res.chains
            sched.step()
    for name, p in ref.named_parameters():
        assert torch.equal(getattr(rbm, name), p), name
