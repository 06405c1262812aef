"""Restricted Boltzmann machines: Bernoulli-Bernoulli and Gaussian-Bernoulli, and block Gibbs.

An RBM is a joint energy ``E(v, h)`` over visible ``v`` (C, V) and hidden ``h`` (C, H) units with
no intra-layer connections, so both conditionals factorise. As an :class:`Energy` an RBM *is its
free energy* ``F(v) = -log sum_h exp(-E(v, h))``, the marginal energy of ``v``: every sampler and
loss in the library can use it directly (``p(v) = exp(-F(v)) / Z``).

* :class:`BernoulliRBM`: ``E(v, h) = -vᵀWh - bᵀv - cᵀh``,
  ``p(h_j = 1 | v) = σ(c_j + vᵀW_j)``, ``p(v_i = 1 | h) = σ(b_i + W_i h)``,
  ``F(v) = -bᵀv - Σ_j softplus(c_j + vᵀW_j)``.
* :class:`GaussianBernoulliRBM` (Cho, Ilin & Raiko 2011): per-unit variances ``σ_i²``,
  ``E(v, h) = Σ_i (v_i - b_i)² / (2σ_i²) - Σ_ij v_i W_ij h_j / σ_i² - cᵀh``,
  ``p(v | h) = N(b + Wh, diag σ²)``, ``p(h_j = 1 | v) = σ(c_j + Σ_i v_i W_ij / σ_i²)``.
  ``log σ²`` is the learned parameter (Krizhevsky 2009 / Cho et al. 2011), which keeps it positive
  and makes training stable.

The block-Gibbs kernel is :class:`~torchenergy.models.rbm.gibbs.BlockGibbs`. Training (CD-k, PCD)
lives in :mod:`torchenergy.models.rbm.cd` and :mod:`torchenergy.models.rbm.training`;
``rbm.fit(...)`` is a shortcut for :func:`~torchenergy.models.rbm.training.fit_rbm`, reached
through the hook :func:`register_trainer` (this module never imports the training code: the
training module registers itself when the package ``torchenergy.models.rbm`` is imported, which
always happens before this module is).

References:
    Hinton (2002), Training products of experts by minimizing contrastive divergence.
    Hinton (2010), A practical guide to training restricted Boltzmann machines.
    Cho, Ilin & Raiko (2011), Improved learning of Gaussian-Bernoulli RBMs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchenergy._checks import check_positive, check_positive_int, check_tensor
from torchenergy.energies import Energy, sample_bernoulli
from torchenergy.models.rbm.gibbs import BlockGibbs
from torchenergy.types import Generator

__all__ = ["BernoulliRBM", "GaussianBernoulliRBM", "RBMTrainer", "register_trainer"]

#: ``(rbm, data, **kwargs) -> history``: what :meth:`BernoulliRBM.fit` calls.
RBMTrainer = Callable[..., Any]

_TRAINER: list[RBMTrainer] = []


def register_trainer(fn: RBMTrainer) -> RBMTrainer:
    """Make ``fn`` the implementation of ``rbm.fit(data, **kwargs)`` (a decorator; returns ``fn``).

    :func:`torchenergy.models.rbm.training.fit_rbm` registers itself, so that this module, which
    the training code imports, need not import it back.
    """
    _TRAINER[:] = [fn]
    return fn


class _RBMBase(Energy):
    """Shared parts: parameters ``W`` (V, H), ``b`` (V,), ``c`` (H,), shape checks, sampling."""

    def __init__(
        self,
        n_visible: int,
        n_hidden: int,
        *,
        init_std: float = 0.01,
        generator: Generator = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        check_positive_int("n_visible", n_visible)
        check_positive_int("n_hidden", n_hidden)
        check_positive("init_std", init_std, allow_zero=True)
        self.n_visible = n_visible
        self.n_hidden = n_hidden
        kw: dict[str, Any] = {"dtype": dtype or torch.get_default_dtype(), "device": device}
        w = torch.randn(n_visible, n_hidden, generator=generator, **kw) * init_std
        self.W = nn.Parameter(w)
        self.b = nn.Parameter(torch.zeros(n_visible, **kw))
        self.c = nn.Parameter(torch.zeros(n_hidden, **kw))

    def flatten_visible(self, v: Tensor) -> Tensor:
        """``v`` as the (C, V) matrix the weights multiply: checked, trailing dims flattened
        ((C, *D) with V elements is accepted); raises ``ValueError`` on a wrong size."""
        check_tensor("v", v, min_dim=2, floating=True)
        v = v.flatten(1) if v.dim() > 2 else v
        if v.shape[1] != self.n_visible:
            raise ValueError(
                f"v must have shape (C, {self.n_visible}) (or trailing dims with that many "
                f"elements), got {tuple(v.shape)}"
            )
        return v

    def _check_h(self, h: Tensor) -> Tensor:
        check_tensor("h", h, min_dim=2, floating=True)
        if h.shape[1:] != (self.n_hidden,):
            raise ValueError(f"h must have shape (C, {self.n_hidden}), got {tuple(h.shape)}")
        return h

    def visible_features(self, v: Tensor) -> Tensor:
        """The visible vector the weights multiply: ``v`` (Bernoulli) or ``v / σ²`` (Gaussian)."""
        return v

    def hidden_logits(self, v: Tensor) -> Tensor:
        """Total input to the hidden units, (C, V) -> (C, H)."""
        return torch.addmm(self.c, self.visible_features(self.flatten_visible(v)), self.W)

    def hidden_probs(self, v: Tensor) -> Tensor:
        """``p(h_j = 1 | v)``, (C, V) -> (C, H)."""
        return torch.sigmoid(self.hidden_logits(v))

    def sample_hidden(self, v: Tensor, *, generator: Generator = None) -> Tensor:
        """``h ~ p(h | v)``, (C, V) -> (C, H) with values in {0, 1}."""
        return sample_bernoulli(self.hidden_probs(v), generator=generator)

    def transform(self, v: Tensor) -> Tensor:
        """Hidden features ``p(h = 1 | v)`` (C, H), as scikit-learn's ``transform``."""
        with torch.no_grad():
            return self.hidden_probs(v)

    def gibbs_vhv(self, v: Tensor, *, generator: Generator = None) -> Tensor:
        """One block-Gibbs step ``v → h → v'`` (C, V) -> (C, V)."""
        return self.sample_visible(self.sample_hidden(v, generator=generator), generator=generator)

    def sample(
        self,
        n: int,
        n_steps: int = 1000,
        *,
        v0: Tensor | None = None,
        generator: Generator = None,
    ) -> Tensor:
        """``n`` samples (n, V) after ``n_steps`` block-Gibbs steps from ``v0`` (or random units)."""
        check_positive_int("n", n)
        if v0 is None:
            p = self.W.new_full((n, self.n_hidden), 0.5)
            v0 = self.sample_visible(sample_bernoulli(p, generator=generator), generator=generator)
        with torch.no_grad():
            return BlockGibbs(self).sample(v0, n_steps, generator=generator)

    def fit(self, data: Tensor, **kwargs: Any) -> Any:
        """Train on ``data`` (N, V); see :func:`torchenergy.models.rbm.training.fit_rbm`."""
        if not _TRAINER:  # pragma: no cover - the package __init__ registers fit_rbm
            raise RuntimeError("no RBM trainer registered; import torchenergy.models.rbm")
        return _TRAINER[0](self, data, **kwargs)

    def extra_repr(self) -> str:
        return f"n_visible={self.n_visible}, n_hidden={self.n_hidden}"


class BernoulliRBM(_RBMBase):
    """Binary-binary RBM; as an energy it is the free energy ``F(v)``, (C, V) -> (C,).

    ``E(v, h) = -vᵀWh - bᵀv - cᵀh``; ``F(v) = -bᵀv - Σ_j softplus(c_j + vᵀW_j)``;
    ``∇_v F = -b - W σ(c + Wᵀv)`` (closed form, used by gradient samplers).

    Args:
        n_visible: V, number of visible units.
        n_hidden: H, number of hidden units.
        init_std: standard deviation of the initial weights (biases start at zero).
        generator: random stream for the initial weights.
        dtype, device: of the parameters.

    Example:
        >>> rbm = BernoulliRBM(6, 3, generator=torch.Generator().manual_seed(0))
        >>> v = torch.bernoulli(torch.full((4, 6), 0.5))
        >>> rbm(v).shape, rbm.transform(v).shape
        (torch.Size([4]), torch.Size([4, 3]))
    """

    def forward(self, v: Tensor) -> Tensor:
        v = self.flatten_visible(v)
        return -(v @ self.b) - F.softplus(torch.addmm(self.c, v, self.W)).sum(-1)

    free_energy = forward

    def energy_and_grad(self, v: Tensor) -> tuple[Tensor, Tensor]:
        shape = v.shape
        v = self.flatten_visible(v)
        a = torch.addmm(self.c, v, self.W)
        e = -(v @ self.b) - F.softplus(a).sum(-1)
        g = -self.b - torch.sigmoid(a) @ self.W.T
        return e, g.reshape(shape)

    def joint_energy(self, v: Tensor, h: Tensor) -> Tensor:
        """``E(v, h) = -vᵀWh - bᵀv - cᵀh``, (C, V), (C, H) -> (C,)."""
        v, h = self.flatten_visible(v), self._check_h(h)
        return -((v @ self.W) * h).sum(-1) - v @ self.b - h @ self.c

    def hidden_free_energy(self, h: Tensor) -> Tensor:
        """Marginal energy of ``h``: ``-cᵀh - Σ_i softplus(b_i + W_i h)``, (C, H) -> (C,)."""
        h = self._check_h(h)
        return -(h @ self.c) - F.softplus(torch.addmm(self.b, h, self.W.T)).sum(-1)

    def visible_probs(self, h: Tensor) -> Tensor:
        """``p(v_i = 1 | h)``, (C, H) -> (C, V)."""
        return torch.sigmoid(torch.addmm(self.b, self._check_h(h), self.W.T))

    def visible_mean(self, h: Tensor) -> Tensor:
        """``E[v | h]`` (C, V), for displaying samples."""
        return self.visible_probs(h)

    def sample_visible(self, h: Tensor, *, generator: Generator = None) -> Tensor:
        """``v ~ p(v | h)``, (C, H) -> (C, V) with values in {0, 1}."""
        return sample_bernoulli(self.visible_probs(h), generator=generator)


class GaussianBernoulliRBM(_RBMBase):
    """Gaussian visible / binary hidden RBM with per-unit variances (Cho et al. 2011).

    ``E(v, h) = Σ_i (v_i - b_i)² / (2σ_i²) - Σ_ij (v_i / σ_i²) W_ij h_j - cᵀh``;
    ``F(v) = Σ_i (v_i - b_i)² / (2σ_i²) - Σ_j softplus(c_j + (v / σ²)ᵀ W_j)``;
    ``p(v | h) = N(b + W h, diag σ²)``. The parameter is ``log_var = log σ²`` (V,), learned when
    ``learn_sigma`` (``requires_grad=False`` otherwise), used as ``max(log_var, log min_var)``.
    Standardise the data (zero mean, unit variance per pixel) before training.

    Args:
        n_visible, n_hidden: V and H.
        learn_sigma: learn the per-unit variances.
        init_sigma: initial σ (all units).
        min_var: floor on σ² (a pixel that is constant in the data would otherwise drive its
            variance, and the curvature of the energy, without bound).
        init_std, generator, dtype, device: as :class:`BernoulliRBM`.

    Example:
        >>> rbm = GaussianBernoulliRBM(5, 3)
        >>> rbm(torch.randn(4, 5)).shape
        torch.Size([4])
    """

    def __init__(
        self,
        n_visible: int,
        n_hidden: int,
        learn_sigma: bool = True,
        *,
        init_sigma: float = 1.0,
        min_var: float = 1e-3,
        init_std: float = 0.01,
        generator: Generator = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__(
            n_visible, n_hidden, init_std=init_std, generator=generator, dtype=dtype, device=device
        )
        check_positive("init_sigma", init_sigma)
        check_positive("min_var", min_var)
        if min_var >= init_sigma**2:
            raise ValueError(
                f"min_var must be below init_sigma² = {init_sigma**2!r}, got {min_var!r}"
            )
        self.learn_sigma = bool(learn_sigma)
        self.min_log_var = math.log(min_var)
        lv = torch.full_like(self.b, 2.0 * math.log(init_sigma))
        self.log_var = nn.Parameter(lv, requires_grad=self.learn_sigma)

    @property
    def lv(self) -> Tensor:
        """The effective ``log σ²`` (V,): ``log_var`` floored at ``log min_var``."""
        return self.log_var.clamp(min=self.min_log_var)

    @property
    def var(self) -> Tensor:
        """Per-unit variances ``σ²`` (V,)."""
        return self.lv.exp()

    def visible_features(self, v: Tensor) -> Tensor:
        return v * torch.exp(-self.lv)

    def forward(self, v: Tensor) -> Tensor:
        v = self.flatten_visible(v)
        inv = torch.exp(-self.lv)
        quad = 0.5 * ((v - self.b) ** 2 * inv).sum(-1)
        return quad - F.softplus(torch.addmm(self.c, v * inv, self.W)).sum(-1)

    free_energy = forward

    def energy_and_grad(self, v: Tensor) -> tuple[Tensor, Tensor]:
        shape = v.shape
        v = self.flatten_visible(v)
        inv = torch.exp(-self.lv)
        a = torch.addmm(self.c, v * inv, self.W)
        e = 0.5 * ((v - self.b) ** 2 * inv).sum(-1) - F.softplus(a).sum(-1)
        g = (v - self.b) * inv - (torch.sigmoid(a) @ self.W.T) * inv
        return e, g.reshape(shape)

    def joint_energy(self, v: Tensor, h: Tensor) -> Tensor:
        """``E(v, h)`` (C,) for ``v`` (C, V) and ``h`` (C, H)."""
        v, h = self.flatten_visible(v), self._check_h(h)
        inv = torch.exp(-self.lv)
        quad = 0.5 * ((v - self.b) ** 2 * inv).sum(-1)
        return quad - (((v * inv) @ self.W) * h).sum(-1) - h @ self.c

    def hidden_free_energy(self, h: Tensor) -> Tensor:
        """Marginal energy of ``h`` (v integrated out), (C, H) -> (C,).

        ``-log ∫ exp(-E(v, h)) dv = -cᵀh - Σ_i [(W h)_i² / (2σ_i²) + b_i (W h)_i / σ_i²]
        - (V/2) log 2π - ½ Σ_i log σ_i²``.
        """
        h = self._check_h(h)
        inv = torch.exp(-self.lv)
        m = h @ self.W.T
        quad = (0.5 * m * m + self.b * m) @ inv
        const = 0.5 * self.n_visible * math.log(2 * math.pi) + 0.5 * self.lv.sum()
        return -(h @ self.c) - quad - const

    def visible_mean(self, h: Tensor) -> Tensor:
        """``E[v | h] = b + W h`` (C, V)."""
        return torch.addmm(self.b, self._check_h(h), self.W.T)

    def sample_visible(self, h: Tensor, *, generator: Generator = None) -> Tensor:
        """``v ~ N(b + W h, diag σ²)``, (C, H) -> (C, V)."""
        mean = self.visible_mean(h)
        z = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
        return mean + z * torch.exp(0.5 * self.lv)
