"""Training RBMs by contrastive divergence (CD-k) and persistent CD (PCD).

The log-likelihood gradient of an RBM is a difference of two expectations of ``∂F/∂θ``:
``∇θ log p(v) = -∂F(v)/∂θ + E_model[∂F/∂θ]``. CD-k estimates the model term with ``k`` block-Gibbs
steps started at the data; PCD (Tieleman 2008) keeps persistent chains across updates.

Both phases are *averaged* over their own number of samples, so a short last minibatch is not
over-weighted against the negative phase (scikit-learn divides the negative sum of its
``batch_size`` persistent chains by the size of the positive batch).

* :func:`cd_step`: one update from one minibatch, given an optimizer (plain step function).
* :func:`fit_rbm` (also ``rbm.fit``): epochs over a data tensor with SGD + momentum, weight decay
  on ``W`` only, optional sparsity target (Hinton 2010, §11).

References:
    Hinton (2002); Tieleman (2008), Training RBMs using approximations to the likelihood gradient;
    Hinton (2010), A practical guide to training RBMs.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor

from torchenergy._checks import check_positive, check_positive_int, check_probability, check_tensor
from torchenergy.models.rbm import BernoulliRBM, _bernoulli
from torchenergy.types import Generator

__all__ = ["CDStepResult", "cd_gradients", "cd_step", "fit_rbm"]


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
    if matmul_dtype not in (None, torch.bfloat16, torch.float16):
        raise ValueError(
            f"matmul_dtype must be None, torch.bfloat16 or torch.float16, got {matmul_dtype}"
        )
    v_pos = rbm._flat(v).detach()
    n = v_pos.shape[0]
    amp = (
        torch.autocast(v_pos.device.type, dtype=matmul_dtype)
        if matmul_dtype is not None
        else contextlib.nullcontext()
    )
    with torch.no_grad(), amp:
        if chains is None:
            p_pos = rbm.hidden_probs(v_pos)
            h = _bernoulli(p_pos, generator)
        else:  # one product for the data and the chains
            p_all = rbm.hidden_probs(torch.cat([v_pos, rbm._flat(chains)]))
            p_pos = p_all[:n]
            h = _bernoulli(p_all[n:], generator)
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


def _default_optimizer(
    rbm: Any, lr: float, momentum: float, weight_decay: float, sigma_lr_scale: float
) -> torch.optim.Optimizer:
    groups = [
        {"params": [rbm.W], "weight_decay": weight_decay},
        {"params": [rbm.b, rbm.c], "weight_decay": 0.0},
    ]
    lv = getattr(rbm, "log_var", None)
    if lv is not None and lv.requires_grad:
        groups.append({"params": [lv], "weight_decay": 0.0, "lr": lr * sigma_lr_scale})
    return torch.optim.SGD(groups, lr=lr, momentum=momentum)


def fit_rbm(
    rbm: Any,
    data: Tensor,
    *,
    epochs: int = 10,
    batch_size: int = 100,
    lr: float = 0.05,
    k: int = 1,
    persistent: bool = False,
    n_chains: int | None = None,
    momentum: float = 0.5,
    weight_decay: float = 0.0,
    sparsity_target: float | None = None,
    sparsity_cost: float = 0.1,
    sigma_lr_scale: float = 0.1,
    optimizer: torch.optim.Optimizer | None = None,
    shuffle: bool = True,
    matmul_dtype: torch.dtype | None = None,
    lr_decay: str = "none",
    generator: Generator = None,
    callback: Callable[[int, dict[str, float]], None] | None = None,
) -> list[dict[str, float]]:
    """Train an RBM with CD-k or PCD-k by minibatch SGD with momentum.

    Every minibatch (the last one may be shorter; it is averaged over its own size) makes one
    :func:`cd_step`. With ``persistent=True``, ``n_chains`` persistent chains (default
    ``batch_size``) start from random data rows and are carried across batches and epochs.

    Args:
        rbm: the model (updated in place).
        data: training data (N, V) (or (N, *D)), float, values in {0, 1} for a Bernoulli RBM.
        epochs, batch_size, lr, k: the usual.
        persistent: PCD instead of CD.
        n_chains: number of persistent chains.
        momentum: SGD momentum; weight_decay: L2 on ``W`` only.
        sparsity_target, sparsity_cost: see :func:`cd_step`.
        sigma_lr_scale: learning-rate factor for ``log σ²`` of a Gaussian-Bernoulli RBM.
        optimizer: use this instead of the default SGD.
        shuffle: reshuffle rows every epoch (with ``generator``).
        matmul_dtype: see :func:`cd_step` (``torch.bfloat16`` for faster products).
        lr_decay: ``"none"`` or ``"linear"``: the learning rate falls linearly to zero over all
            minibatches (Tieleman 2008 used this for PCD, whose chains must keep up with the model).
        generator: the random stream (shuffling and Gibbs sampling).
        callback: called as ``callback(epoch, record)`` after every epoch.

    Returns:
        One record per epoch: ``{"epoch", "recon_error", "seconds"}`` (the reconstruction error
        is averaged over every 10th minibatch).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> rbm = BernoulliRBM(8, 4, generator=g)
        >>> x = torch.bernoulli(torch.full((50, 8), 0.3), generator=g)
        >>> len(fit_rbm(rbm, x, epochs=2, batch_size=16, generator=g))
        2
    """
    check_tensor("data", data, min_dim=2, floating=True)
    for name, val in (("epochs", epochs), ("batch_size", batch_size), ("k", k)):
        check_positive_int(name, val)
    check_positive("lr", lr)
    check_positive("weight_decay", weight_decay, allow_zero=True)
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must lie in [0, 1), got {momentum!r}")
    if sparsity_target is not None:
        check_probability("sparsity_target", sparsity_target, open_left=True, open_right=True)
    if lr_decay not in ("none", "linear"):
        raise ValueError(f"lr_decay must be 'none' or 'linear', got {lr_decay!r}")
    x = rbm._flat(data).to(device=rbm.W.device, dtype=rbm.W.dtype)
    n = x.shape[0]
    opt = optimizer or _default_optimizer(rbm, lr, momentum, weight_decay, sigma_lr_scale)
    n_batches = epochs * ((n + batch_size - 1) // batch_size)
    sched = None
    if lr_decay == "linear":
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: max(0.0, 1.0 - t / n_batches))
    chains = None
    if persistent:
        m = batch_size if n_chains is None else n_chains
        check_positive_int("n_chains", m)
        idx = torch.randint(0, n, (m,), generator=generator).to(x.device)
        chains = x[idx].clone()
    q = None
    history: list[dict[str, float]] = []
    for epoch in range(epochs):
        t0 = time.perf_counter()
        order = torch.randperm(n, generator=generator).to(x.device) if shuffle else None
        errs = torch.zeros((), dtype=x.dtype, device=x.device)
        n_err = 0
        for b_i, start in enumerate(range(0, n, batch_size)):
            stop = start + batch_size
            batch = x[order[start:stop]] if order is not None else x[start:stop]
            res = cd_step(
                rbm,
                batch,
                opt,
                k=k,
                chains=chains,
                sparsity_target=sparsity_target,
                sparsity_cost=sparsity_cost,
                hidden_mean=q,
                compute_recon=b_i % 10 == 0,
                matmul_dtype=matmul_dtype,
                generator=generator,
            )
            q = res.hidden_mean
            if sched is not None:
                sched.step()
            if persistent:
                chains = res.chains
            if b_i % 10 == 0:
                errs += res.recon_error
                n_err += 1
        rec = {
            "epoch": epoch + 1,
            "recon_error": float(errs) / n_err,
            "seconds": time.perf_counter() - t0,
        }
        history.append(rec)
        if callback is not None:
            callback(epoch + 1, rec)
    return history
