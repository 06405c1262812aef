"""Fully visible Boltzmann machine / Ising model, Gibbs sweeps and moment-matching training.

``E(x) = -xᵀWx - bᵀx`` with ``W`` symmetric and zero on the diagonal, over ``x ∈ {0,1}^n`` or, with
``spin=True``, ``x ∈ {-1,+1}^n`` (the Ising model). The single-site conditionals are

* binary: ``p(x_i = 1 | x_{-i}) = σ(2 (Wx)_i + b_i)``;
* spins: ``p(x_i = +1 | x_{-i}) = σ(2 (2 (Wx)_i + b_i))``.

:class:`SiteGibbs` sweeps over the sites (in order or in a random order per sweep) as a sampler of
the library protocol; every site update is an exact Gibbs move, so ``p ∝ exp(-E)`` is invariant.

Maximum likelihood is moment matching: ``∂ log p / ∂W_ij ∝ <x_i x_j>_data - <x_i x_j>_model`` and
``∂ log p / ∂b_i = <x_i>_data - <x_i>_model`` (Ackley, Hinton & Sejnowski 1985).
:func:`fit_boltzmann` takes the model moments exactly (enumeration, n <= 20) or from persistent
Gibbs chains.

References:
    Ackley, Hinton & Sejnowski (1985), A learning algorithm for Boltzmann machines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from torchenergy._checks import check_positive, check_positive_int, check_tensor
from torchenergy.energies import Energy, binary_states, sample_bernoulli
from torchenergy.models.rbm.gibbs import gibbs_info
from torchenergy.samplers import BaseInfo, Sampler
from torchenergy.types import Generator

__all__ = ["BoltzmannMachine", "SiteGibbs", "SiteGibbsState", "fit_boltzmann", "moments"]


class BoltzmannMachine(Energy):
    """Fully visible Boltzmann machine ``E(x) = -xᵀWx - bᵀx``; (C, n) -> (C,).

    ``W`` is stored as a parameter and used through :attr:`weight`, its symmetric, zero-diagonal
    part ``(W + Wᵀ)/2 - diag``. ``∇_x E = -2 W x - b`` (closed form).

    Args:
        n_units: n.
        spin: states in {-1, +1} (Ising) instead of {0, 1}.
        init_std: scale of the random initial couplings.
        generator, dtype, device: for the initial parameters.

    Example:
        >>> bm = BoltzmannMachine(4)
        >>> bm(torch.ones(2, 4)).shape
        torch.Size([2])
    """

    def __init__(
        self,
        n_units: int,
        *,
        spin: bool = False,
        init_std: float = 0.0,
        generator: Generator = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        check_positive_int("n_units", n_units)
        check_positive("init_std", init_std, allow_zero=True)
        kw: dict[str, Any] = {"dtype": dtype or torch.get_default_dtype(), "device": device}
        self.n_units = n_units
        self.spin = bool(spin)
        self.W = nn.Parameter(torch.randn(n_units, n_units, generator=generator, **kw) * init_std)
        self.b = nn.Parameter(torch.zeros(n_units, **kw))

    @property
    def weight(self) -> Tensor:
        """The symmetric, zero-diagonal coupling matrix (n, n)."""
        w = 0.5 * (self.W + self.W.T)
        return w - torch.diag_embed(torch.diagonal(w))

    def _check(self, x: Tensor) -> Tensor:
        check_tensor("x", x, min_dim=2, floating=True)
        if x.shape[1:] != (self.n_units,):
            raise ValueError(f"x must have shape (C, {self.n_units}), got {tuple(x.shape)}")
        return x

    def forward(self, x: Tensor) -> Tensor:
        x = self._check(x)
        return -((x @ self.weight) * x).sum(-1) - x @ self.b

    def energy_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = self._check(x)
        wx = x @ self.weight
        return -(wx * x).sum(-1) - x @ self.b, -2.0 * wx - self.b

    def conditional_logit(self, x: Tensor, i: int, weight: Tensor | None = None) -> Tensor:
        """Log-odds of unit ``i`` being "on" (1 or +1) given the others, (C, n) -> (C,)."""
        w = self.weight if weight is None else weight
        field = 2.0 * (x @ w[:, i]) + self.b[i]
        return 2.0 * field if self.spin else field

    def gibbs_sweep(
        self, x: Tensor, *, order: Tensor | None = None, generator: Generator = None
    ) -> Tensor:
        """One sweep of single-site Gibbs updates over all units (in ``order``), (C, n) -> (C, n)."""
        with torch.no_grad():
            x = self._check(x).clone()
            w = self.weight
            idx = range(self.n_units) if order is None else order.tolist()
            for i in idx:
                on = sample_bernoulli(
                    torch.sigmoid(self.conditional_logit(x, i, w)), generator=generator
                )
                x[:, i] = 2.0 * on - 1.0 if self.spin else on
            return x


class SiteGibbsState(NamedTuple):
    """State of :class:`SiteGibbs`: ``x`` (C, n)."""

    x: Tensor


@dataclass(frozen=True)
class SiteGibbs(Sampler):
    """Single-site Gibbs sweeps for a :class:`BoltzmannMachine` (sampler protocol).

    Args:
        energy_fn: the Boltzmann machine.
        random_order: visit the sites in a fresh random order every sweep (random scan);
            otherwise 0..n-1.
        sweeps: sweeps per step.

    Example:
        >>> SiteGibbs(BoltzmannMachine(3)).sample(torch.zeros(2, 3), 4).shape
        torch.Size([2, 3])
    """

    energy_fn: BoltzmannMachine
    random_order: bool = False
    sweeps: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.energy_fn, BoltzmannMachine):
            raise TypeError(
                f"SiteGibbs needs a BoltzmannMachine, got {type(self.energy_fn).__name__}"
            )
        check_positive_int("sweeps", self.sweeps)

    def init(self, x: Tensor) -> SiteGibbsState:
        return SiteGibbsState(self.energy_fn._check(x).detach())

    def step(
        self, state: SiteGibbsState, *, generator: Generator = None
    ) -> tuple[SiteGibbsState, BaseInfo]:
        x = state.x
        n = self.energy_fn.n_units
        for _ in range(self.sweeps):
            order = torch.randperm(n, generator=generator) if self.random_order else None
            x = self.energy_fn.gibbs_sweep(x, order=order, generator=generator)
        return SiteGibbsState(x), gibbs_info(x)


def moments(x: Tensor, weights: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """First and second moments ``(<x_i>, <x_i x_j>)`` of rows ``x`` (N, n), optionally weighted.

    Returns ``(mean (n,), corr (n, n))``; ``weights`` (N,) sum to one (e.g. exact probabilities).
    """
    if weights is None:
        return x.mean(0), x.T @ x / x.shape[0]
    return weights @ x, (x * weights[:, None]).T @ x


def fit_boltzmann(
    bm: BoltzmannMachine,
    data: Tensor,
    *,
    steps: int = 500,
    lr: float = 0.1,
    negatives: str = "exact",
    n_chains: int = 500,
    sweeps: int = 1,
    generator: Generator = None,
) -> list[float]:
    """Moment-matching maximum likelihood: ``W += lr (C_data - C_model)``, ``b += lr (m_data - m_model)``.

    The data moments are computed once; the model moments per step either exactly
    (``negatives="exact"``, enumeration of the ``2^n`` states, n <= 20) or from ``n_chains``
    persistent Gibbs chains advanced by ``sweeps`` sweeps per step (``"gibbs"``).

    Shapes: ``data`` (N, n).

    Returns:
        The largest absolute moment mismatch per step (it goes to 0 at the maximum).
    """
    bm._check(data)
    check_positive_int("steps", steps)
    check_positive("lr", lr)
    if negatives not in ("exact", "gibbs"):
        raise ValueError(f"negatives must be 'exact' or 'gibbs', got {negatives!r}")
    m_d, c_d = moments(data.to(bm.W.dtype))
    chains = None
    if negatives == "exact":
        if bm.n_units > 20:
            raise ValueError(f"exact negatives enumerate 2^n states; n_units={bm.n_units} > 20")
        states = binary_states(bm.n_units, spin=bm.spin, dtype=bm.W.dtype, device=bm.W.device)
    else:
        check_positive_int("n_chains", n_chains)
        idx = torch.randint(0, data.shape[0], (n_chains,), generator=generator)
        chains = data[idx].to(bm.W.dtype).clone()
        kernel = SiteGibbs(bm, sweeps=sweeps)
    gaps: list[float] = []
    for _ in range(steps):
        with torch.no_grad():
            if chains is None:
                p = torch.softmax(-bm(states), 0)
                m_m, c_m = moments(states, p)
            else:
                chains = kernel.step(SiteGibbsState(chains), generator=generator)[0].x
                m_m, c_m = moments(chains)
            dc = c_d - c_m
            dm = m_d - m_m
            bm.W += lr * (dc - torch.diag_embed(torch.diagonal(dc)))
            bm.b += lr * dm
            gaps.append(float(torch.maximum(dc.abs().max(), dm.abs().max())))
    return gaps
