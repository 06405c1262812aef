"""Exact partition functions, distributions and samples by enumeration of small discrete models.

* :func:`binary_states` (re-exported from :mod:`torchenergy.energies.discrete`, its home): rows
  ``start..stop-1`` of the table of all ``2^n`` binary vectors.
* :func:`log_partition_enumerate`: ``log Z = logsumexp_x -E(x)`` over ``{0,1}^n`` (or ``{-1,+1}^n``)
  for any energy, vectorised and chunked (memory ``O(chunk · n)``).
* :func:`exact_distribution`: all states and their probabilities (n up to about 20).
* :func:`rbm_log_partition`: exact ``log Z`` of an RBM by summing over the *smaller* binary layer
  (hidden layer for a Gaussian-Bernoulli RBM), ``2^min(V, H)`` terms, e.g. H up to about 25.
* :func:`rbm_exact_sample`: exact samples from an RBM by enumerating the smaller layer.

All sums use float64 internally by default (``dtype``), whatever the model's dtype.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from torchenergy._checks import check_energy_shape, check_positive_int
from torchenergy.energies import binary_states, numbered_states
from torchenergy.types import EnergyFn, Generator

__all__ = [
    "binary_states",
    "exact_distribution",
    "log_partition_enumerate",
    "rbm_exact_sample",
    "rbm_log_partition",
]


def _chunks(n: int, chunk_size: int) -> range:
    check_positive_int("chunk_size", chunk_size)
    return range(0, 2**n, chunk_size)


def log_partition_enumerate(
    energy_fn: EnergyFn,
    n_units: int,
    *,
    spin: bool = False,
    chunk_size: int = 2**16,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> Tensor:
    """Exact ``log Z = log Σ_x exp(-E(x))`` over all ``2^n_units`` binary vectors.

    Args:
        energy_fn: ``(C, n_units) -> (C,)``; called on chunks of states in ``dtype``.
        n_units: number of binary units (at most 40; cost ``2^n``).
        spin: states in {-1, +1} instead of {0, 1}.
        chunk_size: states per call.
        dtype, device: of the enumerated states.

    Returns:
        Scalar tensor ``log Z``.

    Example:
        >>> z = log_partition_enumerate(lambda x: -x.sum(-1), 3)
        >>> round(float(z), 6) == round(3 * float(torch.log1p(torch.tensor(1.0).exp())), 6)
        True
    """
    parts = []
    with torch.no_grad():
        for s in _chunks(n_units, chunk_size):
            x = binary_states(
                n_units, s, min(s + chunk_size, 2**n_units), spin=spin, dtype=dtype, device=device
            )
            e = energy_fn(x)
            check_energy_shape(e, x)
            parts.append(torch.logsumexp(-e.to(dtype), 0))
    return torch.logsumexp(torch.stack(parts), 0)


def exact_distribution(
    energy_fn: EnergyFn,
    n_units: int,
    *,
    spin: bool = False,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> tuple[Tensor, Tensor]:
    """All states (2^n, n) and their exact probabilities (2^n,) (``n_units`` at most 22).

    Example:
        >>> x, p = exact_distribution(lambda x: -x.sum(-1), 2)
        >>> round(float(p.sum()), 12)
        1.0
    """
    if n_units > 22:
        raise ValueError(f"exact_distribution stores 2^n probabilities; n_units={n_units} > 22")
    x = binary_states(n_units, spin=spin, dtype=dtype, device=device)
    with torch.no_grad():
        e = energy_fn(x)
        check_energy_shape(e, x)
        return x, torch.softmax(-e.to(dtype), 0)


def _summed_layer(rbm: Any) -> tuple[str, EnergyFn, int]:
    """The binary layer to enumerate, ``(name, its marginal energy, its size)``: the smaller one,
    always the hidden layer of a Gaussian-Bernoulli RBM (``v`` is integrated in closed form)."""
    if not hasattr(rbm, "hidden_free_energy"):
        raise TypeError(f"expected an RBM with hidden_free_energy, got {type(rbm).__name__}")
    binary_visible = not hasattr(rbm, "log_var")
    if binary_visible and rbm.n_visible < rbm.n_hidden:
        return "visible", rbm.free_energy, rbm.n_visible
    return "hidden", rbm.hidden_free_energy, rbm.n_hidden


def rbm_log_partition(
    rbm: Any, *, chunk_size: int = 2**14, dtype: torch.dtype = torch.float64
) -> Tensor:
    """Exact ``log Z`` of an RBM by summing out the smaller binary layer analytically.

    ``log Z = logsumexp_h -F_h(h)`` (hidden marginal energy) or ``logsumexp_v -F(v)``. For a
    Gaussian-Bernoulli RBM the sum is always over ``h`` (``v`` is integrated in closed form).
    The model is evaluated in ``dtype`` (float64 by default) on a copy of its parameters.

    Example:
        >>> from torchenergy.models import BernoulliRBM
        >>> rbm = BernoulliRBM(3, 2)
        >>> float(rbm_log_partition(rbm)) > 0
        True
    """
    model = _as_dtype(rbm, dtype)
    _, free_energy, n_units = _summed_layer(model)
    return log_partition_enumerate(
        free_energy, n_units, chunk_size=chunk_size, dtype=dtype, device=model.W.device
    )


def _as_dtype(rbm: Any, dtype: torch.dtype) -> Any:
    if rbm.W.dtype == dtype:
        return rbm
    import copy

    return copy.deepcopy(rbm).to(dtype)


def rbm_exact_sample(
    rbm: Any, n: int, *, generator: Generator = None, dtype: torch.dtype = torch.float64
) -> Tensor:
    """``n`` exact samples of the visible units (n, V) by enumerating the smaller layer.

    The smaller layer's exact marginal (``2^min(V,H)`` probabilities, at most ``2^25``) is sampled
    by inverse CDF; the other layer then from its conditional. Returned in the model's dtype.
    """
    check_positive_int("n", n)
    model = _as_dtype(rbm, dtype)
    layer, fe, m = _summed_layer(model)
    if m > 25:
        raise ValueError(f"exact sampling enumerates 2^{m} states; the smaller layer must be <= 25")
    dev = model.W.device
    with torch.no_grad():
        logp = torch.cat(
            [
                fe(binary_states(m, s, min(s + 2**14, 2**m), dtype=dtype, device=dev))
                for s in _chunks(m, 2**14)
            ]
        ).neg()
        cdf = torch.cumsum(torch.softmax(logp, 0), 0)
        u = torch.rand(n, generator=generator, dtype=dtype, device=dev) * cdf[-1]
        idx = torch.searchsorted(cdf, u).clamp_max(2**m - 1)
        states = numbered_states(idx, m, dtype=dtype)
        v = model.sample_visible(states, generator=generator) if layer == "hidden" else states
    return v.to(rbm.W.dtype)
