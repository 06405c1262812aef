"""The declared fast path of RBM training: three protocols, their invariants, the reference code.

:func:`~torchenergy.models.rbm.training.fit_rbm` drives a :class:`CDTrainer`. The reference one
(:class:`~torchenergy.models.rbm.training.CDStepTrainer`) calls the plain
:func:`~torchenergy.models.rbm.cd.cd_step` and a ``torch.optim`` optimizer; the fused one
(:class:`~torchenergy.models.rbm._fused.FusedCD`, a :class:`BernoulliRBM` with the default SGD)
makes the same update in place on a transposed weight copy. The fused trainer is built from two
smaller parts, each a protocol with a plain reference implementation here and an accelerator in a
``_``-module beside it:

* :class:`BernoulliSource`: reference :class:`TorchBernoulli` (``torch.rand``); accelerator
  ``_uniforms.NumpyBernoulli`` (numpy SFC64 stream, float32 draws as 24-bit integer compares);
* :class:`RBMProducts`: reference :class:`PlainProducts` (``torch.addmm`` + in-place sigmoid);
  accelerator ``_onednn.OneDNNProducts`` (oneDNN ``linear + sigmoid``, one call each).

What "the same" means for each is stated in its docstring and checked by a "fast path ==
reference path" test (``tests/test_rbm_fused.py``).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from torchenergy.types import Generator

__all__ = ["BernoulliSource", "CDTrainer", "PlainProducts", "RBMProducts", "TorchBernoulli"]


@runtime_checkable
class BernoulliSource(Protocol):
    """Bernoulli draws ``out = (u < p)`` from one stream of uniforms ``u ~ U[0, 1)``.

    Invariants:

    * ``bernoulli(p, out)`` writes ``(u < p)`` (0/1 in ``out``'s dtype) into ``out`` and returns
      it, where ``u`` are the next ``p.numel()`` uniforms of the stream (row-major), with 24
      random bits in float32 and 53 in float64 (:attr:`dtype`); probabilities in a lower
      precision than float32 are compared in float32. So ``p = 0`` never fires, ``p = 1``
      always does, and ``P(out = 1) = p`` up to the uniforms' resolution.
    * ``p`` is left unchanged unless ``scale_p=True`` (the caller no longer needs it and allows
      it to be overwritten).
    * The reference :class:`TorchBernoulli` draws ``u = torch.rand(p.shape, generator=)``, the
      draws :func:`~torchenergy.energies.sample_bernoulli` (hence :func:`cd_step`) makes for
      float32/float64 ``p``: the same generator state gives bit-equal samples. An accelerated
      source may draw from another stream (same law, other numbers); it is then seeded from the
      generator, so a run stays reproducible.
    """

    dtype: torch.dtype

    def bernoulli(self, p: Tensor, out: Tensor, *, scale_p: bool = False) -> Tensor: ...


class TorchBernoulli:
    """The reference :class:`BernoulliSource`: ``torch.rand`` from ``generator``, in ``dtype``.

    Example:
        >>> src = TorchBernoulli(torch.Generator().manual_seed(0), torch.float32, "cpu")
        >>> src.bernoulli(torch.tensor([0.0, 1.0]), torch.empty(2)).tolist()
        [0.0, 1.0]
    """

    def __init__(
        self, generator: Generator, dtype: torch.dtype, device: torch.device | str
    ) -> None:
        self.generator, self.dtype, self.device = generator, dtype, device

    def bernoulli(self, p: Tensor, out: Tensor, *, scale_p: bool = False) -> Tensor:
        u = torch.rand(p.shape, generator=self.generator, dtype=self.dtype, device=self.device)
        return torch.lt(u, p, out=out)


@runtime_checkable
class RBMProducts(Protocol):
    """The matrix products of a CD update, on transposed weights ``wt`` = ``Wᵀ`` (H, V).

    Invariants (each equal to :class:`PlainProducts` up to the rounding of a matrix product
    summed in another order: ``|Δ| <= n·ε·(|a| |b|)`` elementwise, ``n`` the inner dimension,
    ``ε`` the unit round-off of the product dtype; the sigmoid is applied to the same sum):

    * ``hidden(x, wt, c) = sigmoid(x wtᵀ + c)``, (C, V) -> (C, H), a fresh tensor;
    * ``visible(h, wt, b) = sigmoid(h wt + b)``, (C, H) -> (C, V), a fresh tensor;
    * ``accumulate(buf, pt, x, beta)``: ``buf ← beta·buf + pt x`` in place, for ``pt`` (H, M)
      and ``x`` (M, V) in the gradient dtype and ``buf`` (H, V) in the parameter dtype (the
      product is widened to it before the sum).
    """

    def hidden(self, x: Tensor, wt: Tensor, c: Tensor) -> Tensor: ...

    def visible(self, h: Tensor, wt: Tensor, b: Tensor) -> Tensor: ...

    def accumulate(self, buf: Tensor, pt: Tensor, x: Tensor, beta: float) -> Tensor: ...


class PlainProducts:
    """The reference :class:`RBMProducts`: ``torch.addmm`` with the sigmoid in place.

    Example:
        >>> pr = PlainProducts()
        >>> pr.hidden(torch.zeros(2, 3), torch.zeros(4, 3), torch.zeros(4)).tolist()[0]
        [0.5, 0.5, 0.5, 0.5]
    """

    def hidden(self, x: Tensor, wt: Tensor, c: Tensor) -> Tensor:
        return torch.addmm(c, x, wt.T).sigmoid_()

    def visible(self, h: Tensor, wt: Tensor, b: Tensor) -> Tensor:
        return torch.addmm(b, h, wt).sigmoid_()

    def accumulate(self, buf: Tensor, pt: Tensor, x: Tensor, beta: float) -> Tensor:
        if pt.dtype == buf.dtype:
            return buf.addmm_(pt, x, beta=beta)
        return torch.add(torch.mm(pt, x), buf, alpha=beta, out=buf)


@runtime_checkable
class CDTrainer(Protocol):
    """One CD-k / PCD-k update per minibatch, as :func:`fit_rbm` drives it.

    Invariants:

    * ``step(data, rows, compute_recon)`` makes one update from the minibatch ``data[rows]``
      (N, V): the gradient of :func:`cd_gradients` (with the sparsity term of :func:`cd_step`)
      and the SGD-with-momentum rule of ``torch.optim.SGD`` (weight decay on ``W`` only), the
      ``t``-th update (from 0) at the learning rate(s) times ``lr_schedule(t)`` when the trainer
      was given a schedule (as ``torch.optim.lr_scheduler.LambdaLR``). It returns the mean-field
      reconstruction error of the batch (a scalar tensor) when ``compute_recon``, else None.
    * The fused trainer with :class:`TorchBernoulli` and :class:`PlainProducts` makes the same
      draws in the same order as the reference :class:`CDStepTrainer`, so in float64 the
      parameters agree to rounding (``1e-12``; the weight gradient is summed as one product over
      both phases instead of two).
    * ``sync()`` writes the trainer's working parameters into the model; ``reload()`` takes
      them from the model again (after user code may have changed them); ``chains`` are the
      persistent chains (M, V) or None for CD.
    """

    @property
    def chains(self) -> Tensor | None: ...

    def step(self, data: Tensor, rows: Tensor | slice, compute_recon: bool) -> Tensor | None: ...

    def sync(self) -> None: ...

    def reload(self) -> None: ...
