"""Contrastive divergence (CD-k) and persistent CD (PCD): the gradient and one plain update.

The log-likelihood gradient of an RBM is a difference of two expectations of ``∂F/∂θ``:
``∇θ log p(v) = -∂F(v)/∂θ + E_model[∂F/∂θ]``. CD-k estimates the model term with ``k`` block-Gibbs
steps started at the data; PCD (Tieleman 2008) keeps persistent chains across updates.

Both phases are *averaged* over their own number of samples, so a short last minibatch is not
over-weighted against the negative phase (scikit-learn divides the negative sum of its
``batch_size`` persistent chains by the size of the positive batch).

* :func:`cd_gradients`: the gradient, closed form for a :class:`BernoulliRBM`, autograd otherwise.
* :func:`cd_step`: one update from one minibatch, given an optimizer. This is the reference code;
  :func:`~torchenergy.models.rbm.training.fit_rbm` runs it, or the fused trainer that makes the
  same update faster (see :mod:`torchenergy.models.rbm.protocols`).

References:
    Hinton (2002); Tieleman (2008), Training RBMs using approximations to the likelihood gradient;
    Hinton (2010), A practical guide to training RBMs.
"""

from __future__ import annotations

import contextlib
from typing import Any, NamedTuple

import torch
from torch import Tensor

from torchenergy._checks import check_positive_int
from torchenergy.energies import sample_bernoulli
from torchenergy.models.rbm.model import BernoulliRBM
from torchenergy.types import Generator

__all__ = ["CDStepResult", "cd_gradients", "cd_step", "check_matmul_dtype"]


def check_matmul_dtype(matmul_dtype: torch.dtype | None) -> None:
    """Raise ``ValueError`` unless ``matmul_dtype`` is None, ``torch.bfloat16`` or ``torch.float16``."""
    if matmul_dtype not in (None, torch.bfloat16, torch.float16):
        raise ValueError(
            f"matmul_dtype must be None, torch.bfloat16 or torch.float16, got {matmul_dtype}"
        )


class CDStepResult(NamedTuple):
    """What :func:`cd_step` returns (all detached).

    Attributes:
        chains: the negative samples after this step (C_neg, V); pass them back for PCD.
        recon_error: mean squared error of the one-step reconstruction of the batch, scalar.
        hidden_mean: running mean activation of the hidden units (H,) (for the sparsity target).
    """

    chains: Tensor
    recon_error: Tensor
    hidden_mean: Tensor


def cd_gradients(
    rbm: Any,
    v_pos: Tensor,
    v_neg: Tensor,
    *,
    p_pos: Tensor | None = None,
    p_neg: Tensor | None = None,
) -> dict[str, Tensor]:
    """Gradients of ``mean F(v_pos) - mean F(v_neg)`` (the negative log-likelihood direction).

    Shapes: ``v_pos`` (N, V), ``v_neg`` (M, V); N and M may differ (each phase is averaged over
    its own samples). Closed form for :class:`BernoulliRBM` (``p_pos``/``p_neg``, the hidden
    probabilities (N, H)/(M, H), are reused when given), autograd otherwise.

    Returns:
        A dict parameter name -> gradient (same shape as the parameter).
    """
    if isinstance(rbm, BernoulliRBM):
        with torch.no_grad():
            p_pos = rbm.hidden_probs(v_pos) if p_pos is None else p_pos
            p_neg = rbm.hidden_probs(v_neg) if p_neg is None else p_neg
            n, m = v_pos.shape[0], v_neg.shape[0]
            # one product: [v_pos; v_neg]ᵀ [-p_pos / n; p_neg / m]
            g_w = torch.cat([v_pos, v_neg]).T @ torch.cat([p_pos * (-1.0 / n), p_neg * (1.0 / m)])
            return {
                "W": g_w,
                "b": v_neg.mean(0) - v_pos.mean(0),
                "c": p_neg.mean(0) - p_pos.mean(0),
            }
    params = {k: p for k, p in rbm.named_parameters() if p.requires_grad}
    with torch.enable_grad():
        loss = rbm(v_pos).mean() - rbm(v_neg.detach()).mean()
        grads = torch.autograd.grad(loss, list(params.values()))
    return dict(zip(params.keys(), grads))


def cd_step(
    rbm: Any,
    v: Tensor,
    optimizer: torch.optim.Optimizer,
    *,
    k: int = 1,
    chains: Tensor | None = None,
    sparsity_target: float | None = None,
    sparsity_cost: float = 0.1,
    hidden_mean: Tensor | None = None,
    compute_recon: bool = True,
    matmul_dtype: torch.dtype | None = None,
    generator: Generator = None,
) -> CDStepResult:
    """One CD-k (``chains=None``) or PCD-k (``chains`` = persistent chains) update.

    Negatives: ``k`` block-Gibbs steps ``v → h → v`` from ``v`` (CD) or from ``chains`` (PCD).
    Gradients (:func:`cd_gradients`) are written into ``.grad`` and ``optimizer.step()`` is called.
    With a sparsity target ``ρ``, the running mean ``q`` of ``p(h|v)`` on the data (decay 0.9)
    adds ``cost·(q - ρ)`` to the hidden-bias gradient and ``cost·mean(v)ᵀ(q - ρ)`` to ``W``'s.

    Shapes: ``v`` (N, V) (or (N, *D) with V elements); ``chains`` (M, V).

    Args:
        rbm: a :class:`BernoulliRBM` or :class:`GaussianBernoulliRBM`.
        v: the positive minibatch.
        optimizer: over ``rbm.parameters()``.
        k: Gibbs steps for the negative phase.
        chains: persistent chains (PCD) or None (CD-k).
        sparsity_target: ρ in (0, 1), or None.
        sparsity_cost: weight of the sparsity term.
        hidden_mean: the running ``q`` from the previous step (H,), or None.
        compute_recon: compute the mean-field reconstruction error (one extra product).
        matmul_dtype: run the matrix products under ``torch.autocast`` in this dtype
            (``torch.bfloat16``: about twice as fast on CPUs with bf16 instructions; the parameters,
            the optimizer and the uniform draws stay in full precision).
        generator: random stream.

    Returns:
        :class:`CDStepResult` (``recon_error`` is NaN when not computed).
    """
    check_positive_int("k", k)
    check_matmul_dtype(matmul_dtype)
    v_pos = rbm.flatten_visible(v).detach()
    n = v_pos.shape[0]
    amp = (
        torch.autocast(v_pos.device.type, dtype=matmul_dtype)
        if matmul_dtype is not None
        else contextlib.nullcontext()
    )
    with torch.no_grad(), amp:
        if chains is None:
            p_pos = rbm.hidden_probs(v_pos)
            h = sample_bernoulli(p_pos, generator=generator)
        else:  # one product for the data and the chains
            p_all = rbm.hidden_probs(torch.cat([v_pos, rbm.flatten_visible(chains)]))
            p_pos = p_all[:n]
            h = sample_bernoulli(p_all[n:], generator=generator)
        for i in range(k):
            v_neg = rbm.sample_visible(h, generator=generator)
            if i + 1 < k:
                h = rbm.sample_hidden(v_neg, generator=generator)
        p_neg = rbm.hidden_probs(v_neg)
        if compute_recon:
            err = ((v_pos - rbm.visible_mean(p_pos)) ** 2).mean()
        else:
            err = torch.full((), float("nan"), dtype=v_pos.dtype, device=v_pos.device)
        grads = cd_gradients(rbm, v_pos, v_neg, p_pos=p_pos, p_neg=p_neg)
    v_neg, p_pos = v_neg.to(v_pos.dtype), p_pos.to(v_pos.dtype)
    with torch.no_grad():
        q = p_pos.mean(0)
        q = q if hidden_mean is None else 0.9 * hidden_mean + 0.1 * q
        if sparsity_target is not None:
            d = sparsity_cost * (q - sparsity_target)
            grads["c"] = grads["c"] + d
            grads["W"] = grads["W"] + torch.outer(rbm.visible_features(v_pos).mean(0), d)
    for name, p in rbm.named_parameters():
        if name in grads:
            p.grad = grads[name].to(p.dtype)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return CDStepResult(v_neg.detach(), err.detach().to(v_pos.dtype), q.detach())
