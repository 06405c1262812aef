"""Accelerator: CD-k / PCD-k updates of a :class:`BernoulliRBM` fused in place (a :class:`CDTrainer`).

The reference is :class:`~torchenergy.models.rbm.training.CDStepTrainer` (the plain
:func:`~torchenergy.models.rbm.cd.cd_step` with ``torch.optim.SGD``); the invariants this trainer
keeps are those of :class:`~torchenergy.models.rbm.protocols.CDTrainer`. Its two parts are chosen
here: the products (:class:`~torchenergy.models.rbm._onednn.OneDNNProducts` where the op exists,
else :class:`~torchenergy.models.rbm.protocols.PlainProducts`) and the Bernoulli source
(:class:`~torchenergy.models.rbm._uniforms.NumpyBernoulli` on CPU with ``rng="auto"``, else
:class:`~torchenergy.models.rbm.protocols.TorchBernoulli`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from torchenergy.models.rbm._onednn import OneDNNProducts, native_bf16, onednn_linear_ok
from torchenergy.models.rbm._uniforms import NumpyBernoulli
from torchenergy.models.rbm.model import BernoulliRBM
from torchenergy.models.rbm.protocols import (
    BernoulliSource,
    PlainProducts,
    RBMProducts,
    TorchBernoulli,
)
from torchenergy.types import Generator

__all__ = ["FusedCD"]


class FusedCD:
    """CD-k / PCD-k updates of a :class:`BernoulliRBM` by SGD with momentum, fused for speed.

    The same estimator and the same SGD rule as :func:`cd_step` with ``torch.optim.SGD`` (with
    ``rng="torch"``, even the same random draws in the same order, so that a float64 run matches
    it to rounding), at the learning rate ``lr`` (times ``lr_schedule(t)`` for the ``t``-th update), but:

    * it works on a transposed copy ``Wt = Wᵀ`` (H, V) (written back by :meth:`sync`), so that
      ``sigmoid(v W + c)``, ``sigmoid(h Wᵀ + b)`` and the weight gradient, one product over both
      phases ``Wt.grad = Pᵀ X`` with ``X = [v_neg; v_pos]`` and ``P = [p_neg / m; -p_pos / n]``,
      need no copies;
    * on CPU (float32 weights, float32 or bf16 products) the products are oneDNN calls with the
      sigmoid fused in (:class:`OneDNNProducts`), when that op exists and gives the right
      numbers; :class:`PlainProducts` otherwise (other devices, float64, builds without mkldnn);
    * ``X`` is one preallocated buffer: the persistent chains stay in its first rows and the batch
      is gathered into the rest; Bernoulli draws are ``u < p`` written in place; the momentum,
      weight decay and parameter updates are in place;
    * Bernoulli draws come from a :class:`BernoulliSource`: :class:`NumpyBernoulli` (numpy's
      SFC64 on CPU with ``rng="auto"``; float32 draws compare 24-bit integers with ``p·2²⁴``, the
      same law as float32 uniforms), or :class:`TorchBernoulli` (``rng="torch"``: ``torch.rand``
      in :func:`cd_step`'s order, so that a float64 run matches it to rounding);
    * ``grad_dtype`` may put the weight-gradient product alone in a lower precision (bf16:
      about twice as fast on CPUs with native bf16 products) while the Gibbs chains, the other
      products and the parameters stay in float32. Each hidden unit's column of ``P`` is then
      centred on its mean probability and the centre's share added back exactly
      (``Pᵀ S X = (P − 1cᵀ)ᵀ S X + c (Xᵀ s)ᵀ``), so that a saturated unit, whose small
      gradient is a difference of probabilities near 1, is not lost to bf16's coarse spacing
      there, and ``X`` (0/1 samples) is exact.
    """

    def __init__(
        self,
        rbm: BernoulliRBM,
        *,
        lr: float,
        lr_schedule: Callable[[int], float] | None = None,
        momentum: float,
        weight_decay: float,
        k: int,
        batch_size: int,
        chains: Tensor | None,
        sparsity_target: float | None,
        sparsity_cost: float,
        matmul_dtype: torch.dtype | None,
        generator: Generator,
        onednn: bool | None = None,
        rng: str = "auto",
        grad_dtype: torch.dtype | str | None = None,
        chain_state: str = "visible",
    ) -> None:
        self.rbm = rbm
        self.lr, self.lr_schedule, self.t = lr, lr_schedule, 0
        self.momentum, self.weight_decay, self.k = momentum, weight_decay, k
        self.sparsity_target, self.sparsity_cost = sparsity_target, sparsity_cost
        w = rbm.W.detach()
        self.dtype, self.device = w.dtype, w.device
        self.mm_dtype = matmul_dtype or w.dtype
        cpu = w.device.type == "cpu"
        if onednn is None:
            onednn = cpu and self.dtype == torch.float32 and onednn_linear_ok(self.mm_dtype)
        self.onednn = bool(onednn)
        # the weight-gradient product Pᵀ X may run in its own (lower) precision; "auto": bf16
        # where the float32 products are oneDNN's and the CPU has native bf16 products
        if grad_dtype == "auto":
            native = self.onednn and self.mm_dtype == torch.float32
            native = native and native_bf16() and onednn_linear_ok(torch.bfloat16)
            grad_dtype = torch.bfloat16 if native else None
        self.grad_dtype = grad_dtype or self.mm_dtype
        self.centre_grad = True  # see the class docstring (False: round P as it is; benchmarks)
        self.grad_onednn = self.onednn and (
            self.grad_dtype == self.mm_dtype or onednn_linear_ok(self.grad_dtype)
        )
        self.products: RBMProducts = OneDNNProducts() if self.onednn else PlainProducts()
        self.grad_products: RBMProducts = OneDNNProducts() if self.grad_onednn else PlainProducts()
        # uniforms in float32 for products in a lower precision, as sample_bernoulli
        u_dtype = self.dtype if self.mm_dtype == self.dtype else torch.float32
        self.uniform: BernoulliSource = (
            NumpyBernoulli(generator, u_dtype)
            if rng == "auto" and cpu
            else TorchBernoulli(generator, u_dtype, self.device)
        )
        self.wt = w.T.contiguous()
        self.b, self.c = rbm.b.detach(), rbm.c.detach()
        self.buf_wt = torch.zeros_like(self.wt)
        self.buf_b, self.buf_c = torch.zeros_like(self.b), torch.zeros_like(self.c)
        self.persistent = chains is not None
        m = chains.shape[0] if chains is not None else batch_size
        self.m = m
        self.x = torch.empty(m + batch_size, rbm.n_visible, dtype=self.mm_dtype, device=self.device)
        if chains is not None:
            self.x[:m] = chains
        # PCD's persistent state: the visible chains (each update starts v -> h under the current
        # weights), or the hidden samples drawn at the end of the previous update (scikit-learn's
        # PCD: one product fewer per update; the first half-step of a chain then uses the
        # weights of the update before)
        self.h_chain: Tensor | None = None
        if chains is not None and chain_state == "hidden":
            md = self.mm_dtype
            wt = self.wt.to(md)
            self.h_chain = self._draw(self._hid(self.x[:m], wt, self.c.to(md)))
        self.xg = (
            self.x
            if self.grad_dtype == self.mm_dtype
            else torch.empty_like(self.x, dtype=self.grad_dtype)
        )
        self.q: Tensor | None = None
        self._scales: dict[tuple[int, int], tuple[Tensor, Tensor]] = {}

    @property
    def chains(self) -> Tensor | None:
        """The persistent chains (M, V) (a copy), or None for CD."""
        return self.x[: self.m].to(self.dtype) if self.persistent else None

    def sync(self) -> None:
        """Write the working weights back into ``rbm.W``."""
        with torch.no_grad():
            self.rbm.W.copy_(self.wt.T)

    def reload(self) -> None:
        """Take the working weights from ``rbm.W`` again (after user code may have changed it)."""
        self.wt.copy_(self.rbm.W.detach().T)

    def _hid(self, x: Tensor, wt: Tensor, c: Tensor) -> Tensor:
        """``p(h | x) = sigmoid(x Wtᵀ + c)`` (C, H)."""
        return self.products.hidden(x, wt, c)

    def _vis(self, h: Tensor, wt: Tensor, b: Tensor) -> Tensor:
        """``p(v | h) = sigmoid(h Wt + b)`` (C, V)."""
        return self.products.visible(h, wt, b)

    def _draw(self, p: Tensor, out: Tensor | None = None, *, scale_p: bool = False) -> Tensor:
        """Bernoulli(p) as ``u < p`` (0/1 in the product dtype), into ``out`` if given
        (``scale_p``: ``p`` is not needed afterwards and may be overwritten)."""
        if out is None:
            out = torch.empty(p.shape, dtype=self.mm_dtype, device=self.device)
        return self.uniform.bernoulli(p, out, scale_p=scale_p)

    def _scale(self, m: int, n: int) -> tuple[Tensor, Tensor]:
        """``s = [1/m] * m + [-1/n] * n`` (m + n,) (``sᵀ X`` is the visible-bias gradient), in the
        parameter and in the gradient-product dtype."""
        if (m, n) not in self._scales:
            kw = {"dtype": self.dtype, "device": self.device}
            s = torch.cat([torch.full((m,), 1.0 / m, **kw), torch.full((n,), -1.0 / n, **kw)])
            self._scales[(m, n)] = (s, s.to(self.grad_dtype))
        return self._scales[(m, n)]

    @torch.no_grad()
    def step(self, data: Tensor, rows: Tensor | slice, compute_recon: bool) -> Tensor | None:
        """One update from the batch ``data[rows]`` (N, V) at the learning rate ``lr`` (times
        ``lr_schedule(t)`` for the ``t``-th update); returns the reconstruction error if
        ``compute_recon`` (else None)."""
        lr = self.lr if self.lr_schedule is None else self.lr * self.lr_schedule(self.t)
        self.t += 1
        md = self.mm_dtype
        if md == self.dtype:
            wt, b, c = self.wt, self.b, self.c
        else:
            wt, b, c = self.wt.to(md), self.b.to(md), self.c.to(md)
        if isinstance(rows, slice):
            n = len(range(*rows.indices(data.shape[0])))
        else:
            n = rows.shape[0]
        m = self.m if self.persistent else n
        x = self.x[: m + n]
        x_neg, x_pos = x[:m], x[m:]
        if md == self.dtype and not isinstance(rows, slice):
            v_pos = torch.index_select(data, 0, rows, out=x_pos)
        else:
            v_pos = data[rows]
            x_pos.copy_(v_pos)
        if self.h_chain is not None:  # PCD from persistent hidden samples
            p_pos = self._hid(x_pos, wt, c)
            h = self.h_chain
        elif self.persistent:  # one product for the chains and the data
            p = self._hid(x, wt, c)
            p_pos = p[m:]
            h = self._draw(p[:m], scale_p=True)
        else:
            p_pos = self._hid(x_pos, wt, c)
            h = self._draw(p_pos)
        for i in range(self.k):
            self._draw(self._vis(h, wt, b), out=x_neg, scale_p=True)
            if i + 1 < self.k:
                h = self._draw(self._hid(x_neg, wt, c), scale_p=True)
        p_neg = self._hid(x_neg, wt, c)
        if self.h_chain is not None:
            self.h_chain = self._draw(p_neg)
        err = None
        if compute_recon:
            err = ((v_pos - self._vis(p_pos, wt, b).to(self.dtype)) ** 2).mean()
        # Pᵀ (H, M + N), contiguous: [p_neg, p_pos]ᵀ, scaled below by s = [1/m, .., -1/n, ..]
        gd = self.grad_dtype
        pt = torch.empty(p_neg.shape[1], m + n, dtype=gd, device=self.device)
        s, s_gd = self._scale(m, n)
        centre = None
        centred = md == self.dtype and gd != md and self.centre_grad
        if not centred:
            pt[:, :m] = p_neg.T
            pt[:, m:] = p_pos.T
        if centred:
            # a lower-precision gradient product: each hidden unit's column is centred on its
            # mean probability c, Pᵀ S X = (P − 1cᵀ)ᵀ S X + c (Xᵀ s)ᵀ, the second term exact in
            # full precision. A saturated unit (p ≈ 1 in both phases, a small difference) keeps
            # its signal: bf16 resolves 1 − p to ~3 digits but p near 1 only to 2⁻⁸. The scaling
            # by s = [1/m, .., −1/n, ..] is applied in full precision before the one rounding.
            mean_neg, mean_pos = p_neg.mean(0), p_pos.mean(0)
            g_b, g_c = x.T @ s, mean_neg - mean_pos
            centre = (mean_neg + mean_pos).mul_(0.5)
            col = centre[:, None]
            torch.add(col * (-1.0 / m), p_neg.T, alpha=1.0 / m, out=pt[:, :m])
            torch.add(col * (1.0 / n), p_pos.T, alpha=-1.0 / n, out=pt[:, m:])
        elif gd == md == self.dtype:
            g_b, g_c = x.T @ s, pt @ s
        elif md == self.dtype:
            g_b, g_c = x.T @ s, p_neg.mean(0) - p_pos.mean(0)
        else:
            g_b = x_neg.to(self.dtype).mean(0) - v_pos.mean(0)
            g_c = p_neg.to(self.dtype).mean(0) - p_pos.to(self.dtype).mean(0)
        if self.sparsity_target is not None:
            q = p_pos.to(self.dtype).mean(0)
            self.q = q if self.q is None else 0.9 * self.q + 0.1 * q
            d = self.sparsity_cost * (self.q - self.sparsity_target)
            g_c += d
        if centre is None:
            pt.mul_(s_gd)
        xg = x if gd == md else self.xg[: m + n].copy_(x)  # 0/1 (and data) in the grad dtype
        mom, bw = self.momentum, self.buf_wt
        # buf <- momentum * buf + grad (+ weight decay * W): torch.optim.SGD's rule, in place;
        # the weight gradient (transposed) is Pᵀ X = p_negᵀ v_neg / m - p_posᵀ v_pos / n
        self.grad_products.accumulate(bw, pt, xg, mom)
        if centre is not None:
            bw.addr_(centre, g_b)
        if self.weight_decay:
            bw.add_(self.wt, alpha=self.weight_decay)
        if self.sparsity_target is not None:
            bw.addr_(d, v_pos.to(self.dtype).mean(0))
        torch.add(g_b, self.buf_b, alpha=mom, out=self.buf_b)
        torch.add(g_c, self.buf_c, alpha=mom, out=self.buf_c)
        self.wt.add_(bw, alpha=-lr)
        self.b.add_(self.buf_b, alpha=-lr)
        self.c.add_(self.buf_c, alpha=-lr)
        return err
