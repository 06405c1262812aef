"""Hopfield networks: the classical binary one and the modern continuous one (Ramsauer et al. 2020).

**Classical** (Hopfield 1982), states ``s ∈ {-1,+1}^N``:
``E(s) = -½ sᵀWs + θᵀs`` with ``W`` symmetric and zero on the diagonal. Asynchronous updates
``s_i ← sign((Ws)_i - θ_i)`` (one unit at a time; a zero field keeps the unit) never increase the
energy: the change is ``-(s_i' - s_i)((Ws)_i - θ_i) <= 0``. Synchronous updates (all units at
once) may end in 2-cycles. Storage rules for patterns ``ξ^μ`` (P, N):

* Hebbian: ``W = (1/N) Σ_μ ξ^μ ξ^μᵀ`` (zero diagonal); capacity about ``0.138 N``.
* Storkey (1997): ``W ← W + (1/N)(ξξᵀ - ξ hᵀ - h ξᵀ)`` with the local fields
  ``h_ij = Σ_{k≠i,j} W_ik ξ_k``; incremental, higher capacity.

**Modern continuous** (Ramsauer et al. 2020), states ``ξ ∈ R^D``, stored patterns ``X`` (P, D):
``E(ξ) = -β⁻¹ log Σ_μ exp(β x_μᵀξ) + ½ ξᵀξ + β⁻¹ log P + ½ M²`` (``M`` the largest pattern
norm), whose CCCP update is attention: ``ξ ← Xᵀ softmax(β X ξ)``. It never increases ``E`` and
retrieves exponentially many well-separated patterns in one step.

References:
    Hopfield (1982); Storkey (1997), Increasing the capacity of a Hopfield network without
    sacrificing functionality; Ramsauer et al. (2020), Hopfield networks is all you need.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from torchenergy._checks import check_positive, check_positive_int, check_tensor
from torchenergy.energies import Energy
from torchenergy.types import Generator

__all__ = ["HopfieldNetwork", "ModernHopfield", "RecallResult"]


class RecallResult(NamedTuple):
    """What :meth:`HopfieldNetwork.recall` returns.

    Attributes:
        x: final states (C, N).
        converged: whether each chain reached a fixed point (C,) bool.
        n_sweeps: sweeps (asynchronous) or steps (synchronous) run, int.
    """

    x: Tensor
    converged: Tensor
    n_sweeps: int


def _check_spins(name: str, s: Tensor, n: int) -> Tensor:
    check_tensor(name, s, min_dim=2, floating=True)
    if s.shape[1:] != (n,):
        raise ValueError(f"{name} must have shape (C, {n}), got {tuple(s.shape)}")
    if bool(((s != 1) & (s != -1)).any()):
        raise ValueError(f"{name} must hold spins in {{-1, +1}}")
    return s


class HopfieldNetwork(Energy):
    """Classical binary Hopfield network over spins in {-1, +1}; (C, N) -> (C,).

    Args:
        n_units: N.
        dtype, device: of the weights.

    Example:
        >>> net = HopfieldNetwork(8).store(torch.tensor([[1.0, -1, 1, -1, 1, -1, 1, -1]]))
        >>> noisy = torch.tensor([[1.0, -1, 1, -1, 1, -1, -1, 1]])
        >>> net.recall(noisy).x.tolist()[0]
        [1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0]
    """

    def __init__(
        self,
        n_units: int,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        check_positive_int("n_units", n_units)
        self.n_units = n_units
        kw = {"dtype": dtype or torch.get_default_dtype(), "device": device}
        self.register_buffer("W", torch.zeros(n_units, n_units, **kw))
        self.register_buffer("theta", torch.zeros(n_units, **kw))
        self.n_patterns = 0

    def store(self, patterns: Tensor, rule: str = "hebbian") -> HopfieldNetwork:
        """Add patterns (P, N) of ±1 with the ``"hebbian"`` or ``"storkey"`` rule; returns self."""
        p = _check_spins("patterns", patterns, self.n_units).to(self.W)
        n = self.n_units
        with torch.no_grad():
            if rule == "hebbian":
                self.W += p.T @ p / n
            elif rule == "storkey":
                for xi in p:
                    wx = self.W @ xi
                    h = wx[:, None] - self.W * xi[None, :]  # h_ij = Σ_{k≠i,j} W_ik ξ_k
                    self.W += (torch.outer(xi, xi) - xi[:, None] * h.T - h * xi[None, :]) / n
            else:
                raise ValueError(f"rule must be 'hebbian' or 'storkey', got {rule!r}")
            self.W.fill_diagonal_(0.0)
        self.n_patterns += p.shape[0]
        return self

    def forward(self, s: Tensor) -> Tensor:
        s = _check_spins("s", s, self.n_units) if s.dim() == 2 else s
        return -0.5 * ((s @ self.W) * s).sum(-1) + s @ self.theta

    def update_sync(self, s: Tensor) -> Tensor:
        """All units at once: ``s ← sign(Ws - θ)`` (a zero field keeps the unit), (C, N)."""
        field = s @ self.W - self.theta
        return torch.where(field > 0, 1.0, torch.where(field < 0, -1.0, s)).to(s.dtype)

    def update_async(self, s: Tensor, *, order: Tensor | None = None) -> Tensor:
        """One asynchronous sweep: each unit in ``order`` (default 0..N-1) takes the sign of its field."""
        s = s.clone()
        idx = range(self.n_units) if order is None else order.tolist()
        for i in idx:
            field = s @ self.W[:, i] - self.theta[i]
            s[:, i] = torch.where(field > 0, 1.0, torch.where(field < 0, -1.0, s[:, i]))
        return s

    def recall(
        self,
        s: Tensor,
        *,
        mode: str = "async",
        max_sweeps: int = 100,
        generator: Generator = None,
    ) -> RecallResult:
        """Iterate updates from ``s`` (C, N) until no unit changes (or ``max_sweeps``).

        ``mode="async"`` uses a random unit order per sweep when a ``generator`` is given (else
        0..N-1); ``"sync"`` updates all units together.
        """
        s = _check_spins("s", s, self.n_units).to(self.W)
        check_positive_int("max_sweeps", max_sweeps)
        if mode not in ("async", "sync"):
            raise ValueError(f"mode must be 'async' or 'sync', got {mode!r}")
        converged = torch.zeros(s.shape[0], dtype=torch.bool, device=s.device)
        n_done = 0
        with torch.no_grad():
            for _ in range(max_sweeps):
                n_done += 1
                if mode == "sync":
                    new = self.update_sync(s)
                else:
                    order = None
                    if generator is not None:
                        order = torch.randperm(self.n_units, generator=generator)
                    new = self.update_async(s, order=order)
                converged = (new == s).all(-1)
                s = new
                if bool(converged.all()):
                    break
        return RecallResult(s, converged, n_done)


class ModernHopfield(Energy):
    """Modern continuous Hopfield network (Ramsauer et al. 2020); (C, D) -> (C,).

    ``E(ξ) = -β⁻¹ logsumexp(β X ξ) + ½‖ξ‖² + β⁻¹ log P + ½ M²``; update
    ``ξ ← Xᵀ softmax(β X ξ)`` (attention with the state as query, the patterns as keys/values).

    Args:
        patterns: stored patterns X, (P, D).
        beta: inverse temperature β > 0 (large β: retrieval of single patterns).

    Example:
        >>> x = torch.tensor([[1.0, -1.0, 1.0], [-1.0, -1.0, 1.0]])
        >>> net = ModernHopfield(x, beta=8.0)
        >>> net.recall(torch.tensor([[0.9, -0.7, 0.2]])).round().tolist()
        [[1.0, -1.0, 1.0]]
    """

    def __init__(self, patterns: Tensor, beta: float = 1.0) -> None:
        super().__init__()
        check_tensor("patterns", patterns, min_dim=2, floating=True)
        if patterns.dim() != 2:
            raise ValueError(f"patterns must have shape (P, D), got {tuple(patterns.shape)}")
        check_positive("beta", beta)
        self.register_buffer("patterns", patterns.detach().clone())
        self.beta = float(beta)
        self.max_norm_sq = float(patterns.norm(dim=1).max() ** 2)

    def forward(self, xi: Tensor) -> Tensor:
        check_tensor("xi", xi, min_dim=2, floating=True)
        p = self.patterns.shape[0]
        lse = torch.logsumexp(self.beta * xi @ self.patterns.T, -1) / self.beta
        const = math.log(p) / self.beta + 0.5 * self.max_norm_sq
        return -lse + 0.5 * (xi * xi).sum(-1) + const

    def energy_and_grad(self, xi: Tensor) -> tuple[Tensor, Tensor]:
        e = self(xi)
        return e, xi - self.update(xi)

    def update(self, xi: Tensor) -> Tensor:
        """One retrieval step ``ξ ← Xᵀ softmax(β X ξ)``, (C, D) -> (C, D)."""
        att = torch.softmax(self.beta * xi @ self.patterns.T, -1)
        return att @ self.patterns

    def recall(self, xi: Tensor, *, steps: int = 1) -> Tensor:
        """``steps`` updates from ``xi`` (C, D) (one step usually suffices)."""
        check_positive_int("steps", steps)
        with torch.no_grad():
            for _ in range(steps):
                xi = self.update(xi)
        return xi
