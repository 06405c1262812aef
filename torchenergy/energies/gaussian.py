"""Gaussian targets with closed-form energy, gradient, log partition and exact sampling.

* :class:`GaussianEnergy`: ``E(x) = ½ (x − μ)ᵀ Σ⁻¹ (x − μ)``, ``log Z = (D/2) log 2π + ½ log|Σ|``.
* :class:`GaussianMixtureEnergy`: ``E(x) = −log Σ_k w_k |Σ_k|^{-1/2} exp(−½ (x − μ_k)ᵀ Σ_k⁻¹ (x − μ_k))``,
  ``log Z = (D/2) log 2π``; the mixture weights of ``p ∝ exp(−E)`` are exactly ``w_k``.
* :class:`HarmonicEnergy`: ``E(x) = ½ k ‖x‖²`` over all event dimensions, ``log Z = (d/2) log(2π/k)``.

In every case ``log p(x) = −E(x) − log_partition()`` exactly. Gradients are closed forms (no
autograd on the sampling hot path). Parameters are buffers (they follow ``.to(...)``); an input of
another dtype or device gets the parameters cast to it.

Reference: C. M. Bishop, *Pattern Recognition and Machine Learning* (2006), §2.3 and §9.2.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from torchenergy._checks import check_positive, check_positive_int, check_tensor
from torchenergy.energies._util import (
    LOG_2PI,
    as_float_tensor,
    check_vector_input,
    checked_cholesky,
    row_groups,
    row_sum,
)
from torchenergy.energies.base import Energy
from torchenergy.types import Generator

__all__ = ["GaussianEnergy", "GaussianMixtureEnergy", "HarmonicEnergy"]


class GaussianEnergy(Energy):
    """Multivariate normal ``N(μ, Σ)`` as an energy, full covariance via Cholesky.

    ``E(x) = ½ (x − μ)ᵀ Σ⁻¹ (x − μ)``, ``∇E(x) = Σ⁻¹ (x − μ)``,
    ``log Z = (D/2) log 2π + ½ log|Σ|``, so ``log p(x) = −E(x) − log Z``.

    Shapes: ``mean`` (D,), ``covariance`` (D, D); ``x`` (C, D) -> (C,).

    Args:
        mean: the mean μ, shape (D,).
        covariance: symmetric positive-definite Σ, shape (D, D).

    Raises:
        ValueError: if the shapes do not match, or Σ is not symmetric positive definite
            (singular, indefinite); the message names ``covariance`` and its smallest eigenvalue.

    Example:
        >>> g = GaussianEnergy(torch.zeros(2), torch.eye(2))
        >>> g(torch.ones(3, 2)).tolist()
        [1.0, 1.0, 1.0]
        >>> round(g.log_partition().item(), 4)  # log 2π
        1.8379
    """

    def __init__(self, mean: Tensor | Sequence[float], covariance: Tensor | Sequence) -> None:
        super().__init__()
        mean = as_float_tensor("mean", mean)
        cov = as_float_tensor("covariance", covariance).to(dtype=mean.dtype, device=mean.device)
        if mean.dim() != 1 or mean.numel() < 1:
            raise ValueError(f"mean must have shape (D,), got shape {tuple(mean.shape)}")
        d = mean.shape[0]
        if cov.shape != (d, d):
            raise ValueError(
                f"covariance must have shape (D, D) = ({d}, {d}) to match mean of shape ({d},), "
                f"got shape {tuple(cov.shape)}"
            )
        chol = checked_cholesky("covariance", cov)
        self.register_buffer("mean", mean)
        self.register_buffer("covariance", 0.5 * (cov + cov.mT))
        self.register_buffer("scale_tril", chol)
        prec = torch.cholesky_inverse(chol)
        # symmetric and row-major: a transposed (column-major) operand makes ``diff @ P`` far slower
        self.register_buffer("precision", (0.5 * (prec + prec.mT)).contiguous())
        self.dim = d
        self.event_shape = (d,)
        self._params_cache: tuple | None = None

    def _params(self, x: Tensor, k: int = 1) -> tuple[Tensor, ...]:
        """``(μ, P, μ_k, P_k, s)`` for ``x``'s dtype/device: μ and P cast; for ``k > 1`` μ
        repeated k times (kD,) and ``I_k ⊗ P`` (kD, kD), else None; and ``s = 4 λ_max(P)``
        (0-dim), the scale of :meth:`grad_unchecked`'s guard. Cached per (k, dtype, device) and
        the buffers' identity and version, so an in-place edit of ``mean`` or ``precision``
        refreshes it."""
        mean, prec = self.mean, self.precision
        key = (
            k,
            x.dtype,
            x.device,
            mean.data_ptr(),
            mean._version,
            prec.data_ptr(),
            prec._version,
        )
        cached = self._params_cache
        if cached is None or cached[0] != key:
            lam = float(torch.linalg.eigvalsh(prec.detach().double()).max())
            mean = mean.to(dtype=x.dtype, device=x.device)
            prec = prec.to(dtype=x.dtype, device=x.device)
            mean_k = p_k = None
            if k > 1:
                mean_k = mean.repeat(k)
                p_k = torch.kron(torch.eye(k, dtype=prec.dtype, device=prec.device), prec)
            scale = torch.tensor(4.0 * lam, dtype=x.dtype, device=x.device)
            cached = (key, mean, prec, mean_k, p_k, scale)
            self._params_cache = cached
        return cached[1:]

    def _diff_grad(self, x: Tensor, k: int) -> tuple[Tensor, Tensor]:
        """``x − μ`` and ``P (x − μ)``, in the grouped layout (C/k, kD) for ``k > 1`` (see
        ``row_groups``), else (C, D). Shared by the energy and the gradient-only path, so their
        gradients are the same bits."""
        mean, prec, mean_k, p_k, _ = self._params(x, k)
        if k > 1:
            c, d = x.shape
            diff = x.view(c // k, k * d) - mean_k
            return diff, diff @ p_k
        diff = x - mean
        return diff, diff @ prec

    def forward(self, x: Tensor) -> Tensor:
        """Energies ``½ (x − μ)ᵀ Σ⁻¹ (x − μ)``: (C, D) -> (C,)."""
        return self.energy_and_grad(x)[0]

    def energy_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(E(x), Σ⁻¹ (x − μ))``, shapes (C,) and (C, D); closed form."""
        check_vector_input(x, self.dim, "GaussianEnergy")
        return self._energy_and_grad(x, True)

    def energy_and_grad_unchecked(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """:meth:`energy_and_grad` for the unchecked block steps of the samplers' driver (``x``
        (C, D) validated before): a grouped result that is not all finite is returned as it is,
        so a non-finite ``x`` may spread NaN to the chains grouped with it, but never hides one;
        the driver's block check sees it and replays the block with the checked evaluation."""
        return self._energy_and_grad(x, False)

    def grad_unchecked(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The gradient alone, for the driver's gradient-only block steps (Langevin).

        Returns ``(grad, guard)``: ``grad`` (C, D) bit for bit as :meth:`energy_and_grad`
        computes it (a non-finite ``x`` may spread NaN to the chains grouped with it), and
        ``guard``, a 0-dim tensor ``4 λ_max(P) Σ_c ‖x_c − μ‖²`` whose finiteness certifies that
        every chain's energy, gradient and ``x`` are finite (``E_c ≤ ½ λ_max ‖d_c‖²``, and no
        partial sum of the energy can overflow). One dot product instead of the energy's
        three kernels.
        """
        k = row_groups(x)
        diff, grad = self._diff_grad(x, k)
        flat = diff.view(-1)
        return grad.view(x.shape), torch.dot(flat, flat).mul_(self._params(x, k)[4])

    def _energy_and_grad(self, x: Tensor, checked: bool) -> tuple[Tensor, Tensor]:
        k = row_groups(x)
        diff, grad = self._diff_grad(x, k)
        if k > 1:
            # grouped layout (see ``row_groups``); its zero blocks would spread a non-finite
            # entry of one chain to the k - 1 chains beside it (0 · inf = NaN), so a result that
            # is not all finite is recomputed row by row below
            c, d = x.shape
            # ½ Σ_j diff_j grad_j by adding the D strided columns (cheaper than a GEMM here);
            # for D = 2 one lerp, t0 + ½ (t1 − t0), is the whole half-sum
            cols = diff.mul_(grad).view(c, d).unbind(1)  # diff is not needed after this
            if d == 2:
                energy = torch.lerp(cols[0], cols[1], 0.5)
            else:
                energy = cols[0] + cols[1] if d > 1 else cols[0].clone()
                for j in range(2, d):
                    energy.add_(cols[j])
                energy.mul_(0.5)
            if not checked or math.isfinite(energy.sum().item()):  # CPU only: no device sync
                return energy, grad.view(c, d)
            diff, grad = self._diff_grad(x, 1)
        return 0.5 * row_sum(diff * grad), grad

    def log_partition(self) -> Tensor:
        """``log Z = (D/2) log 2π + Σ_i log L_ii`` (L the Cholesky factor), a 0-dim tensor."""
        logdet_half = torch.log(torch.diagonal(self.scale_tril)).sum()
        return 0.5 * self.dim * LOG_2PI + logdet_half

    def sample(self, n: int, *, generator: Generator = None) -> Tensor:
        """Exact draws ``μ + L z`` with ``z ~ N(0, I)``: shape (n, D), the mean's dtype/device."""
        check_positive_int("n", n)
        z = torch.randn(
            n, self.dim, generator=generator, device=self.mean.device, dtype=self.mean.dtype
        )
        return self.mean + z @ self.scale_tril.mT

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class GaussianMixtureEnergy(Energy):
    """Mixture of K Gaussians ``p(x) = Σ_k w_k N(x; μ_k, Σ_k)`` as an energy.

    Convention (one constant dropped, so that ``log Z`` is non-trivial yet known exactly)::

        E(x)  = −logsumexp_k [ log w_k − ½ log|Σ_k| − ½ (x − μ_k)ᵀ Σ_k⁻¹ (x − μ_k) ]
        log Z = (D/2) log 2π

    so ``−E(x) − log Z = log Σ_k w_k N(x; μ_k, Σ_k)`` exactly and the component weights of
    ``p ∝ exp(−E)`` are the given ``w_k``. For K = 1 and Σ = I this is ``½‖x − μ‖²``.
    The gradient is ``∇E(x) = Σ_k r_k(x) Σ_k⁻¹ (x − μ_k)`` with responsibilities ``r_k(x)``.

    Shapes: ``means`` (K, D); ``covariances`` (K, D, D), or (D, D) shared by all components;
    ``weights`` (K,); ``x`` (C, D) -> (C,).

    Args:
        means: component means μ_k, (K, D).
        covariances: symmetric positive-definite Σ_k, (K, D, D) or (D, D).
        weights: non-negative mixture weights summing to one, (K,); uniform when None.
            Weights that do not sum to one (beyond rounding, 1e-5) raise a ValueError rather than
            being silently renormalised (pass ``w / w.sum()`` explicitly).

    Example:
        >>> gm = GaussianMixtureEnergy(torch.tensor([[-2.0], [2.0]]), torch.eye(1), [0.8, 0.2])
        >>> gm.sample(4, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([4, 1])
    """

    def __init__(
        self,
        means: Tensor | Sequence,
        covariances: Tensor | Sequence,
        weights: Tensor | Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        means = as_float_tensor("means", means)
        if means.dim() != 2 or means.shape[0] < 1 or means.shape[1] < 1:
            raise ValueError(f"means must have shape (K, D), got shape {tuple(means.shape)}")
        k, d = means.shape
        cov = as_float_tensor("covariances", covariances).to(means)
        if cov.shape == (d, d):
            cov = cov.expand(k, d, d).clone()
        if cov.shape != (k, d, d):
            raise ValueError(
                f"covariances must have shape (K, D, D) = ({k}, {d}, {d}) or (D, D) = ({d}, {d}) "
                f"to match means of shape ({k}, {d}), got shape {tuple(cov.shape)}"
            )
        if weights is None:
            w = torch.full((k,), 1.0 / k, dtype=means.dtype, device=means.device)
        else:
            w = as_float_tensor("weights", weights).to(means)
            if w.shape != (k,):
                raise ValueError(
                    f"weights must have shape (K,) = ({k},) to match means, got shape "
                    f"{tuple(w.shape)}"
                )
            if bool((w < 0).any()):
                raise ValueError(f"weights must be non-negative, got {w.tolist()}")
            total = float(w.sum())
            if abs(total - 1.0) > 1e-5:
                raise ValueError(
                    f"weights must sum to 1, got sum {total:.6g} for weights {w.tolist()} "
                    "(pass weights / weights.sum() to normalise)"
                )
            w = w / w.sum()
        chol = checked_cholesky("covariances", cov)
        self.register_buffer("means", means)
        self.register_buffer("covariances", 0.5 * (cov + cov.mT))
        self.register_buffer("weights", w)
        self.register_buffer("scale_tril", chol)
        prec = torch.cholesky_inverse(chol)
        self.register_buffer("precisions", (0.5 * (prec + prec.mT)).contiguous())
        # log w_k − ½ log|Σ_k|  (−inf for a zero weight, which logsumexp handles)
        half_logdet = torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
        self.register_buffer("log_coef", torch.log(w) - half_logdet)
        self.n_components = k
        self.dim = d
        self.event_shape = (d,)
        self._block_cache: tuple | None = None

    def _logits(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Per-component log terms, transposed (K, C), and ``Σ_k⁻¹ (x − μ_k)`` as (K, D, C).

        The chain axis is laid last: every broadcast and reduction then runs over contiguous
        rows of C values. With C first, as (C, K, D), each op loops over short rows of D = 2 and
        K values, which on CPU is 10-20x slower for thousands of chains.
        """
        check_vector_input(x, self.dim, "GaussianMixtureEnergy")
        means = self.means.to(dtype=x.dtype, device=x.device)
        prec = self.precisions.to(dtype=x.dtype, device=x.device)
        coef = self.log_coef.to(dtype=x.dtype, device=x.device)
        k, d = means.shape
        graph = torch.is_grad_enabled() and any(
            t.requires_grad for t in (x, means, prec, coef)
        )  # autograd through forward (score matching, learnable parameters): no in-place ops
        diff = x.t().contiguous().unsqueeze(0) - means.unsqueeze(-1)  # (K, D, C)
        if k * d <= 64:  # one GEMM with the block-diagonal diag(Σ_1⁻¹, ..., Σ_K⁻¹)
            block = torch.block_diag(*prec.unbind(0)) if graph else self._block_precision(prec)
            pdiff = (block @ diff.view(k * d, -1)).view(diff.shape)
        else:
            pdiff = torch.bmm(prec, diff)
        if graph:
            return coef.unsqueeze(-1) - 0.5 * (diff * pdiff).sum(1), pdiff
        quad = diff.mul_(pdiff).sum(1)  # (K, C); diff is not needed after this
        return quad.mul_(-0.5).add_(coef.unsqueeze(-1)), pdiff

    def _block_precision(self, prec: Tensor) -> Tensor:
        """``diag(Σ_1⁻¹, ..., Σ_K⁻¹)`` (KD, KD) for ``prec`` (K, D, D), cached per the buffer's
        identity, version, dtype and device."""
        key = (self.precisions.data_ptr(), self.precisions._version, prec.dtype, prec.device)
        cached = self._block_cache
        if cached is None or cached[0] != key:
            cached = (key, torch.block_diag(*prec.unbind(0)))
            self._block_cache = cached
        return cached[1]

    def forward(self, x: Tensor) -> Tensor:
        """Energies (C, D) -> (C,); see the class docstring for the convention."""
        return -torch.logsumexp(self._logits(x)[0], dim=0)

    def energy_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(E(x), Σ_k r_k(x) Σ_k⁻¹ (x − μ_k))``, shapes (C,) and (C, D); closed form
        (detached: differentiate ``forward`` for gradients with respect to parameters)."""
        with torch.no_grad():
            logits, pdiff = self._logits(x)
            lse = torch.logsumexp(logits, dim=0)
            resp = torch.exp(logits.sub_(lse))  # (K, C), columns sum to one
            grad = pdiff.mul_(resp.unsqueeze(1)).sum(0)  # (D, C)
            return lse.neg_(), grad.t().contiguous()

    def responsibilities(self, x: Tensor) -> Tensor:
        """Posterior component probabilities ``r_k(x)``, shape (C, K)."""
        return torch.softmax(self._logits(x)[0], dim=0).t()

    def log_partition(self) -> Tensor:
        """``log Z = (D/2) log 2π`` (exact; see the class docstring), a 0-dim tensor."""
        return torch.tensor(
            0.5 * self.dim * LOG_2PI, dtype=self.means.dtype, device=self.means.device
        )

    def sample(self, n: int, *, generator: Generator = None) -> Tensor:
        """Exact draws: a component ``k ~ w``, then ``μ_k + L_k z``. Shape (n, D)."""
        check_positive_int("n", n)
        dev, dt = self.means.device, self.means.dtype
        comp = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, device=dev, dtype=dt)
        return self.means[comp] + (self.scale_tril[comp] @ z.unsqueeze(-1)).squeeze(-1)

    def extra_repr(self) -> str:
        return f"n_components={self.n_components}, dim={self.dim}"


class HarmonicEnergy(Energy):
    """Isotropic harmonic well ``E(x) = ½ k ‖x‖²`` summed over all event dimensions.

    ``∇E(x) = k x``; for an event of ``d = prod(D)`` numbers ``log Z = (d/2) log(2π/k)``, and
    ``p`` is ``N(0, I/k)``. Accepts any event shape (C, *D).

    Args:
        stiffness: the spring constant ``k > 0`` (float).
        event_shape: the event shape D; only needed for :meth:`log_partition` and :meth:`sample`
            (which also accept it as an argument).

    Example:
        >>> HarmonicEnergy()(torch.ones(2, 1, 2, 2)).tolist()
        [2.0, 2.0]
    """

    def __init__(self, stiffness: float = 1.0, event_shape: Sequence[int] | None = None) -> None:
        super().__init__()
        check_positive("stiffness", stiffness)
        self.stiffness = float(stiffness)
        self.event_shape = None if event_shape is None else self._shape(event_shape)

    @staticmethod
    def _shape(event_shape: Sequence[int] | int) -> tuple[int, ...]:
        shape = (event_shape,) if isinstance(event_shape, int) else tuple(event_shape)
        if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in shape):
            raise ValueError(f"event_shape must be positive ints, got {event_shape!r}")
        return shape

    def _resolve(self, event_shape: Sequence[int] | None) -> tuple[int, ...]:
        if event_shape is not None:
            return self._shape(event_shape)
        if self.event_shape is None:
            raise ValueError(
                "HarmonicEnergy needs an event_shape (given to the constructor or this call), "
                "got None"
            )
        return self.event_shape

    def forward(self, x: Tensor) -> Tensor:
        """Energies ``½ k ‖x‖²``: (C, *D) -> (C,)."""
        check_tensor("x", x, min_dim=1, floating=True)
        return (0.5 * self.stiffness) * row_sum(x.reshape(x.shape[0], -1).square())

    def energy_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(½ k ‖x‖², k x)``, shapes (C,) and (C, *D); closed form."""
        return self.forward(x), self.stiffness * x

    def grad_unchecked(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(k x, 4 k Σ ‖x_c‖²)`` for the driver's gradient-only block steps: the gradient as
        :meth:`energy_and_grad` computes it and a 0-dim guard whose finiteness certifies every
        chain's energy ``½ k ‖x_c‖²`` (and each of its terms) is finite; see
        :meth:`GaussianEnergy.grad_unchecked`."""
        flat = x.reshape(-1)
        return self.stiffness * x, torch.dot(flat, flat).mul_(4.0 * float(self.stiffness))

    def log_partition(self, event_shape: Sequence[int] | None = None) -> Tensor:
        """``log Z = (d/2) log(2π/k)`` with ``d = prod(event_shape)``, a 0-dim float64 tensor."""
        d = math.prod(self._resolve(event_shape))
        return torch.tensor(0.5 * d * (LOG_2PI - math.log(self.stiffness)), dtype=torch.float64)

    def sample(
        self,
        n: int,
        *,
        generator: Generator = None,
        event_shape: Sequence[int] | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """Exact draws from ``N(0, I/k)``, shape (n, *D)."""
        check_positive_int("n", n)
        shape = self._resolve(event_shape)
        z = torch.randn(n, *shape, generator=generator, dtype=dtype, device=device)
        return z / math.sqrt(self.stiffness)

    def extra_repr(self) -> str:
        return f"stiffness={self.stiffness}, event_shape={self.event_shape}"
