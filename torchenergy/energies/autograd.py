"""``energy_and_grad``: the one place the library calls autograd for ``grad_x E``.

An energy maps ``(C, *D) -> (C,)``. Any callable with that contract works everywhere
(``energy_fn``); an energy may provide a closed-form gradient as a method
``energy_and_grad(x) -> (E, grad)`` (the :class:`~torchenergy.energies.protocols.ClosedFormGrad`
hook), which the samplers then use without autograd.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from torchenergy._checks import check_energy_shape, check_tensor, no_event_hint
from torchenergy.types import EnergyFn

__all__ = [
    "autograd_energy_and_grad",
    "call_energy",
    "energy_and_grad",
    "explain_energy_error",
    "grad_energy",
]


def explain_energy_error(energy_fn: Any, x: Tensor, err: Exception) -> Exception | None:
    """A ``TypeError``/``ValueError`` that says why ``energy_fn(x)`` failed with ``err``, when
    the cause is one a user meets first, else None (then ``err`` stands as it is):

    * ``x``'s dtype differs from the floating parameters of an ``nn.Module`` energy (float32
      data into a float64 model);
    * ``x`` of shape (C,) has no event dimensions D.
    """
    where = type(energy_fn).__name__
    if isinstance(energy_fn, torch.nn.Module):
        dtypes = sorted({str(p.dtype) for p in energy_fn.parameters() if p.is_floating_point()})
        if dtypes and str(x.dtype) not in dtypes:
            want = dtypes[0]
            return TypeError(
                f"x has dtype {x.dtype} (shape {tuple(x.shape)}) but {where}'s parameters have "
                f"dtype {', '.join(dtypes)}; convert one of them: x.to({want}) or "
                f"{where}.to({x.dtype}) ({err})"
            )
    if x.dim() == 1:
        return ValueError(
            f"{where} failed on x of shape {tuple(x.shape)}: {no_event_hint('x', x)} ({err})"
        )
    return None


def call_energy(energy_fn: EnergyFn, x: Tensor) -> Tensor:
    """``energy_fn(x)``, with a failure from a dtype mismatch or an event-less ``x`` (C,)
    re-raised as a ``TypeError``/``ValueError`` naming the shapes and dtypes."""
    try:
        return energy_fn(x)
    except (RuntimeError, IndexError) as err:
        better = explain_energy_error(energy_fn, x, err)
        if better is None:
            raise
        raise better from err


def autograd_energy_and_grad(
    energy_fn: EnergyFn, x: Tensor, *, create_graph: bool = False, name: str | None = None
) -> tuple[Tensor, Tensor]:
    """``(E(x), grad_x E(x))`` by ``torch.autograd.grad`` on ``sum(E(x))``, whatever hooks the
    energy offers (the reference every closed form is tested against).

    Shapes: ``x`` (C, *D) -> (C,), (C, *D). The chains are independent, so the gradient of the
    sum is the per-chain gradient. Parameter ``.grad`` fields are never written; it works inside
    ``torch.no_grad()``. With ``create_graph=False`` both outputs are detached. An energy whose
    value does not depend on ``x`` (a constant, or a bias only) has a zero gradient.

    Example:
        >>> e, g = autograd_energy_and_grad(lambda x: (x ** 2).sum(-1), torch.ones(2, 2))
        >>> g.tolist()
        [[2.0, 2.0], [2.0, 2.0]]
    """
    with torch.enable_grad():
        xg = x if (create_graph and x.requires_grad) else x.detach().requires_grad_(True)
        energy = call_energy(energy_fn, xg)
        check_energy_shape(energy, x, name or "energy_fn")
        grad = None
        if energy.requires_grad:
            (grad,) = torch.autograd.grad(
                energy.sum(), xg, create_graph=create_graph, allow_unused=True
            )
    if grad is None:  # E does not depend on x
        grad = torch.zeros_like(x)
    if create_graph:
        return energy, grad
    return energy.detach(), grad.detach()


def energy_and_grad(
    energy_fn: EnergyFn, x: Tensor, *, create_graph: bool = False
) -> tuple[Tensor, Tensor]:
    """Energy and its gradient with respect to ``x``.

    Shapes: ``x`` (C, *D) -> energy (C,), grad (C, *D).

    Uses a closed-form ``energy_fn.energy_and_grad`` when the energy provides one, otherwise
    :func:`autograd_energy_and_grad`. Parameter ``.grad`` fields are never written, and the
    call works inside ``torch.no_grad()``. With ``create_graph=False`` (sampling) both outputs
    are detached; with ``create_graph=True`` (losses such as score matching) the graph to the
    parameters and to ``x`` is kept so the result can be differentiated again.

    Args:
        energy_fn: callable ``(C, *D) -> (C,)``.
        x: points, shape (C, *D).
        create_graph: keep the graph (for losses that differentiate through the gradient).

    Returns:
        ``(energy, grad)`` with shapes (C,) and (C, *D).

    Raises:
        ValueError: if ``energy_fn`` does not return shape (C,).

    Example:
        >>> e, g = energy_and_grad(lambda x: 0.5 * (x ** 2).sum(-1), torch.ones(3, 2))
        >>> g.tolist()
        [[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]]
    """
    check_tensor("x", x, min_dim=1, floating=True)
    closed = getattr(energy_fn, "energy_and_grad", None)
    if closed is not None and not create_graph:
        try:
            energy, grad = closed(x)
        except (RuntimeError, IndexError) as err:
            better = explain_energy_error(energy_fn, x, err)
            if better is None:
                raise
            raise better from err
        check_energy_shape(energy, x, type(energy_fn).__name__)
        return energy.detach(), grad.detach()
    return autograd_energy_and_grad(energy_fn, x, create_graph=create_graph)


def grad_energy(energy_fn: EnergyFn, x: Tensor) -> Tensor:
    """``grad_x E(x)``, shape (C, *D), detached. See :func:`energy_and_grad`."""
    return energy_and_grad(energy_fn, x)[1]
