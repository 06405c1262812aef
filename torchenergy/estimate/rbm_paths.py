"""Annealing paths for RBMs (Salakhutdinov & Murray 2008): from a base-rate model to the RBM.

For a :class:`~torchenergy.models.BernoulliRBM` with parameters ``(W, b, c)`` and a base-rate
visible bias ``b_A`` (the log-odds of the training data's pixel means, see :func:`base_rate_bias`),
the intermediate joint is ``p_β(v, h) ∝ exp((1-β) b_Aᵀv + β (vᵀWh + bᵀv + cᵀh))``, whose
marginal energy is

    ``E_β(v) = -(1-β) b_Aᵀv - β bᵀv - Σ_j softplus(β (c_j + vᵀW_j))``

and whose block-Gibbs conditionals are ``h ~ σ(β (c + Wᵀv))``, ``v ~ σ((1-β) b_A + β (b + Wh))``.
At β = 0 the visible units are independent with ``log Z_0 = H log 2 + Σ_i softplus(b_A,i)``.

For a :class:`~torchenergy.models.GaussianBernoulliRBM` the same construction anneals the
interaction ``(v/σ²)ᵀWh + cᵀh`` by β and keeps the Gaussian ``N(b, σ²)``:
``E_β(v) = Σ (v-b)²/2σ² - Σ_j softplus(β (c_j + (v/σ²)ᵀW_j))``,
``log Z_0 = H log 2 + Σ_i ½ log(2π σ_i²)``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from torchenergy._checks import check_tensor
from torchenergy.energies import sample_bernoulli
from torchenergy.models.rbm import BlockGibbs
from torchenergy.types import Generator

__all__ = ["RBMAnnealingPath", "base_rate_bias"]


def base_rate_bias(data: Tensor, *, eps: float = 1e-3) -> Tensor:
    """Log-odds of the mean of each visible unit over ``data`` (N, V) -> (V,), clipped to [eps, 1-eps].

    Example:
        >>> base_rate_bias(torch.tensor([[1.0, 0.0], [1.0, 1.0]])).tolist()[1]
        0.0
    """
    check_tensor("data", data, min_dim=2, floating=True)
    p = data.flatten(1).mean(0).clamp(eps, 1 - eps)
    return torch.log(p) - torch.log1p(-p)


class _IntermediateRBM:
    """The RBM at inverse temperature β on the base-rate path (for :class:`BlockGibbs`)."""

    def __init__(self, path: RBMAnnealingPath, beta: float) -> None:
        self.path, self.beta = path, beta

    def __call__(self, v: Tensor) -> Tensor:
        return self.path.energy(v, self.beta)

    def sample_hidden_from_input(self, a: Tensor, generator: Generator) -> Tensor:
        """``h ~ σ(β a)`` for the hidden input ``a = c + (features of v)ᵀW`` (C, H)."""
        return sample_bernoulli(torch.sigmoid(self.beta * a), generator=generator)

    def sample_hidden(self, v: Tensor, *, generator: Generator = None) -> Tensor:
        return self.sample_hidden_from_input(self.path.hidden_input(v), generator)

    def sample_visible(self, h: Tensor, *, generator: Generator = None) -> Tensor:
        rbm, beta = self.path.rbm, self.beta
        if self.path.gaussian:
            mean = rbm.b + beta * (h @ rbm.W.T)
            z = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
            return mean + z * torch.exp(0.5 * rbm.lv)
        logits = (1 - beta) * self.path.base_bias + beta * torch.addmm(rbm.b, h, rbm.W.T)
        return sample_bernoulli(torch.sigmoid(logits), generator=generator)


class RBMAnnealingPath:
    """The Salakhutdinov-Murray path from a base-rate model to an RBM (for :func:`ais`).

    Args:
        rbm: a Bernoulli or Gaussian-Bernoulli RBM (not modified; evaluated without gradients).
        base_bias: the base-rate visible bias ``b_A`` (V,) for a Bernoulli RBM (default zeros,
            i.e. uniform; use :func:`base_rate_bias` of the training data for a much better base).
        k: block-Gibbs rounds per kernel transition.

    Shapes: ``energy(v, beta)``: (C, V) -> (C,).
    """

    def __init__(self, rbm: Any, base_bias: Tensor | None = None, *, k: int = 1) -> None:
        self.rbm = rbm
        self.gaussian = hasattr(rbm, "log_var")
        self.k = k
        if self.gaussian:
            if base_bias is not None:
                raise ValueError(
                    "base_bias applies to a Bernoulli RBM only (Gaussian base is N(b, σ²))"
                )
            self.base_bias = None
        else:
            bb = torch.zeros_like(rbm.b) if base_bias is None else base_bias
            if bb.shape != rbm.b.shape:
                raise ValueError(
                    f"base_bias must have shape {tuple(rbm.b.shape)}, got {tuple(bb.shape)}"
                )
            self.base_bias = bb.detach().to(rbm.b.dtype)

    def hidden_input(self, v: Tensor) -> Tensor:
        """``a = c + (features of v)ᵀW`` (C, V) -> (C, H), shared by every β."""
        rbm = self.rbm
        return torch.addmm(rbm.c, rbm.visible_features(v), rbm.W)

    def energy(self, v: Tensor, beta: float) -> Tensor:
        rbm = self.rbm
        with torch.no_grad():
            v = rbm.flatten_visible(v)
            a = self.hidden_input(v)
            soft = F.softplus(beta * a).sum(-1)
            if self.gaussian:
                return 0.5 * ((v - rbm.b) ** 2 * torch.exp(-rbm.lv)).sum(-1) - soft
            return -(v @ ((1 - beta) * self.base_bias + beta * rbm.b)) - soft

    def base_sample(self, n: int, *, generator: Generator = None) -> Tensor:
        rbm = self.rbm
        with torch.no_grad():
            if self.gaussian:
                z = torch.randn(
                    (n, rbm.n_visible), generator=generator, dtype=rbm.b.dtype, device=rbm.b.device
                )
                return rbm.b + z * torch.exp(0.5 * rbm.lv)
            p = torch.sigmoid(self.base_bias).expand(n, -1)
            return sample_bernoulli(p, generator=generator)

    def base_log_partition(self) -> Tensor:
        rbm = self.rbm
        with torch.no_grad():
            hid = rbm.n_hidden * math.log(2.0)
            if self.gaussian:
                vis = 0.5 * (rbm.lv.double() + math.log(2 * math.pi)).sum()
            else:
                vis = F.softplus(self.base_bias.double()).sum()
            return hid + vis

    def at(self, beta: float) -> _IntermediateRBM:
        """The intermediate model at β (energy and Gibbs conditionals)."""
        return _IntermediateRBM(self, beta)

    def anneal(
        self, betas: list[float], x: Tensor, *, reverse: bool = False, generator: Generator = None
    ) -> tuple[Tensor, Tensor]:
        """The whole AIS sweep with one block-Gibbs step per β, two products per β.

        Same random draws and same result as the generic loop of :func:`ais` /
        :func:`reverse_ais` with this path's kernel (``k = 1``), but the hidden input
        ``a = c + vᵀW`` is computed once per β and shared by the two energies and the Gibbs step.
        Forward: ``x`` are base samples; reverse: target samples. Returns ``(log_w (C,), x)``.
        """
        rbm = self.rbm
        with torch.no_grad():
            x = rbm.flatten_visible(x)
            dlin = None if self.gaussian else rbm.b - self.base_bias

            def diff(v: Tensor, a: Tensor, b_hi: float, b_lo: float) -> Tensor:
                # E_{b_lo}(v) - E_{b_hi}(v)
                d = F.softplus(b_hi * a).sum(-1) - F.softplus(b_lo * a).sum(-1)
                if dlin is not None:
                    d = d + (b_hi - b_lo) * (v @ dlin)
                return d.to(torch.float64)

            def gibbs(a: Tensor, beta: float) -> Tensor:
                at = self.at(beta)
                h = at.sample_hidden_from_input(a, generator)
                return at.sample_visible(h, generator=generator)

            log_w = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
            a = self.hidden_input(x)
            k_all = range(1, len(betas)) if not reverse else range(len(betas) - 1, 0, -1)
            last = len(betas) - 1 if not reverse else 1
            for k in k_all:
                if reverse:
                    log_w -= diff(x, a, betas[k], betas[k - 1])
                    t = betas[k - 1]
                else:
                    log_w += diff(x, a, betas[k], betas[k - 1])
                    t = betas[k]
                if k != last:
                    x = gibbs(a, t)
                    a = self.hidden_input(x)
        return log_w, x

    def kernel(self, beta: float) -> Any:
        return BlockGibbs(self.at(beta), k=self.k)
