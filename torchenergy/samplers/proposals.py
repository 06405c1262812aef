"""The parts every kernel composes, written once: the kernel preamble (validation at the
boundary), per-chain broadcasting, the gradient-caching State, the finiteness test, per-chain
and whole-state selection (accept/reject, holding non-finite chains), and the Langevin move
with its gradient clipping and box.

Step sizes (and similar per-chain hyperparameters) are a positive float or a tensor of shape ()
or (C,); a (C,) tensor is broadcast over the event dimensions, so ``eps * grad`` works for any
event shape (C, *D).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from torch import Tensor

from torchenergy._checks import check_positive, check_tensor
from torchenergy._ops import row_sum
from torchenergy.energies import energy_and_grad
from torchenergy.samplers.base import BaseInfo, NonFiniteStartError, unadjusted_info
from torchenergy.types import EnergyFn, Generator, StepSize

__all__ = [
    "GradState",
    "accept_select",
    "all_finite_eager",
    "chain_view",
    "check_clamp",
    "check_energy_fn",
    "check_finite_start",
    "check_gradient_kernel",
    "check_init_x",
    "check_langevin_config",
    "check_per_chain",
    "check_step_size",
    "clamp_box",
    "clip_grad_per_chain",
    "finite_chains",
    "hold_nonfinite",
    "init_grad_state",
    "langevin_move",
    "langevin_proposal",
    "moved_info",
    "select_state",
    "sqrt_of",
    "where_chains",
]


class GradState(NamedTuple):
    """State of the gradient-based kernels (Langevin, MALA, HMC, gradient descent).

    Attributes:
        x: current points, (C, *D).
        energy: ``E(x)``, (C,), cached so each transition evaluates the energy once.
        grad: ``grad_x E(x)``, (C, *D), cached likewise.
    """

    x: Tensor
    energy: Tensor
    grad: Tensor


def check_energy_fn(energy_fn: Any) -> None:
    """Raise ``TypeError`` unless ``energy_fn`` is callable ``(C, *D) -> (C,)``."""
    if not callable(energy_fn):
        raise TypeError(
            f"energy_fn must be a callable mapping (C, *D) -> (C,), got {type(energy_fn).__name__}"
        )


def check_step_size(name: str, value: Any, *, allow_zero: bool = False) -> None:
    """Raise unless ``value`` is a positive float or a positive tensor of shape () or (C,)."""
    check_positive(name, value, allow_zero=allow_zero)
    if isinstance(value, Tensor):
        if value.dim() > 1:
            raise ValueError(
                f"{name} must be a float or a tensor of shape () or (C,), got shape "
                f"{tuple(value.shape)}"
            )
        if not value.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")


def check_per_chain(name: str, value: Any, x: Tensor) -> None:
    """Raise ``ValueError`` when a (C,) tensor ``value`` does not match the C of ``x`` (C, *D)."""
    if isinstance(value, Tensor) and value.dim() == 1 and value.shape[0] != x.shape[0]:
        raise ValueError(
            f"{name} has shape {tuple(value.shape)} but x has C = {x.shape[0]} chains "
            f"(x of shape {tuple(x.shape)}); a per-chain {name} must have shape (C,)"
        )


def check_init_x(x: Any) -> Tensor:
    """Validate the initial points ``x`` (C, *D): a floating tensor with at least one dimension."""
    check_tensor("x", x, min_dim=1, floating=True)
    if x.shape[0] == 0:
        raise ValueError(f"x must hold at least one chain, got shape {tuple(x.shape)}")
    return x


def chain_view(value: float | Tensor, x: Tensor) -> float | Tensor:
    """``value`` ready to multiply ``x`` (C, *D): a float stays a float; a tensor is moved to
    ``x``'s device/dtype and a (C,) tensor is reshaped to (C, 1, ..., 1)."""
    if not isinstance(value, Tensor):
        return value
    value = value.to(device=x.device, dtype=x.dtype)
    if value.dim() == 1:
        return value.reshape(-1, *([1] * (x.dim() - 1)))
    return value


def sqrt_of(value: float | Tensor) -> float | Tensor:
    """Square root of a float or a tensor."""
    return value.sqrt() if isinstance(value, Tensor) else math.sqrt(value)


def finite_chains(*tensors: Tensor) -> Tensor:
    """(C,) bool: True where every entry of every tensor (each (C,) or (C, *D)) is finite.

    Computed as ``isfinite`` of one per-chain sum of all entries (a NaN or inf anywhere makes the
    sum non-finite): tensors of the same shape are added elementwise first, so the usual
    ``(x, energy, grad)`` check costs one reduction. A chain whose entries are finite but sum
    past the dtype's range (about 1e38 in float32, 1e308 in float64) also counts as non-finite,
    which only happens to a chain that is diverging anyway.
    """
    total: Tensor | None = None
    pending: Tensor | None = None
    for t in tensors:
        if t.dim() <= 1:
            total = t if total is None else total + t
        elif pending is None:
            pending = t
        elif pending.shape == t.shape:
            pending = pending + t
        else:
            s = row_sum(t.flatten(1))
            total = s if total is None else total + s
    if pending is not None:
        s = row_sum(pending.flatten(1))
        total = s if total is None else total + s
    return torch.isfinite(total)  # type: ignore[arg-type]


# a chain's row of 8 or 16 bytes read as one element, for :func:`where_chains`
_ROW_AS = {8: torch.int64, 16: torch.complex128}
_ROW_MIN_CHAINS = 2048


def where_chains(mask: Tensor, new: Tensor, old: Tensor) -> Tensor:
    """Per-chain select: ``new`` where ``mask`` (C,) is True, else ``old``; any trailing shape.

    On CPU ``torch.where`` over many short rows (10,000 chains of 2 float32) runs a slow
    broadcast loop; there each chain's row of 8 or 16 bytes is selected as one int64 / complex128
    element instead: the same bits (NaN and inf included) at about a third of the time.
    """
    if new.dim() == 1:
        return torch.where(mask, new, old)
    c = new.shape[0]
    if (
        c >= _ROW_MIN_CHAINS
        and new.device.type == "cpu"
        and new.dtype == old.dtype
        and new.shape == old.shape
        and new.is_contiguous()
        and old.is_contiguous()
        and not (new.requires_grad or old.requires_grad)  # the row view is not differentiable
    ):
        as_row = _ROW_AS.get(new.numel() // c * new.element_size()) if c else None
        if as_row is not None and new.dtype.is_floating_point:
            picked = torch.where(
                mask, new.view(c, -1).view(as_row).view(c), old.view(c, -1).view(as_row).view(c)
            )
            return picked.view(new.dtype).view(new.shape)
    # An expanded (stride-0) mask is markedly faster than a broadcast one on CPU.
    return torch.where(mask.reshape(-1, *([1] * (new.dim() - 1))).expand_as(new), new, old)


def check_gradient_kernel(energy_fn: Any, **step_sizes: Any) -> None:
    """The preamble of every gradient kernel's constructor: ``energy_fn`` callable and each
    named step size positive (float or a tensor of shape () or (C,)); ``noise_scale`` may be 0."""
    check_energy_fn(energy_fn)
    for name, value in step_sizes.items():
        check_step_size(name, value, allow_zero=name == "noise_scale")


def check_langevin_config(
    energy_fn: Any, step_size: Any, noise_scale: Any, grad_clip: Any, clamp: Any
) -> None:
    """The constructor checks of a Langevin-move kernel (Langevin, AnnealedLangevin)."""
    check_gradient_kernel(energy_fn, step_size=step_size, noise_scale=noise_scale)
    if grad_clip is not None:
        check_positive("grad_clip", grad_clip)
    check_clamp(clamp)


def init_grad_state(energy_fn: EnergyFn, x: Tensor, **per_chain: Any) -> GradState:
    """Validate ``x`` (C, *D) and evaluate (and cache) ``E(x)`` and ``grad_x E(x)``.

    Each keyword (e.g. ``step_size=...``) names a per-chain hyperparameter whose (C,) tensor
    form must match the C of ``x``.
    """
    check_init_x(x)
    x = x.detach()
    for name, value in per_chain.items():
        check_per_chain(name, value, x)
    check_finite_start(x)
    energy, grad = energy_and_grad(energy_fn, x)
    check_finite_start(x, energy, grad)
    return GradState(x, energy, grad)


def _finite_rows(t: Tensor) -> Tensor:
    """(C,) bool: every entry of chain ``i`` of ``t`` (C, *D) is finite (exact, no sum)."""
    return torch.isfinite(t).reshape(t.shape[0], -1).all(1)


def _show_chains(bad: Tensor, values: Tensor, label: str) -> str:
    """``label[i] = value`` for the first few chains ``i`` flagged in ``bad`` (C,)."""
    idx = torch.nonzero(bad).flatten()[:4].tolist()
    parts = []
    for i in idx:
        v = values[i].detach().flatten()
        shown = v[:6].tolist()
        parts.append(f"{label}[{i}] = {shown if v.numel() > 1 else shown[0]}")
    more = ", ..." if int(bad.sum()) > len(idx) else ""
    return ", ".join(parts) + more


def check_finite_start(
    x: Tensor, energy: Tensor | None = None, grad: Tensor | None = None, *, name: str = "x"
) -> None:
    """Refuse a non-finite start: raise :class:`NonFiniteStartError` (a ``ValueError``) naming the chains of ``x`` (C, *D) that
    hold NaN or inf, or at which ``energy`` (C,) or ``grad`` (C, *D) is not finite.

    One reduction and one host read per tensor, at ``init`` only (a chain must start where the
    energy and its gradient are finite: the kernels hold or reject non-finite moves, so a chain
    started there could never be told apart from a diverged one).

    Example:
        >>> check_finite_start(torch.tensor([[0.0, float("nan")]]))
        Traceback (most recent call last):
        ...
        torchenergy.samplers.base.NonFiniteStartError: x must be finite at the start: 1 of 1 chains hold NaN or inf (x[0] = [0.0, nan])
    """
    if energy is None:
        ok = _finite_rows(x)
        if not bool(ok.all()):
            raise NonFiniteStartError(
                f"{name} must be finite at the start: {int((~ok).sum())} of {x.shape[0]} chains "
                f"hold NaN or inf ({_show_chains(~ok, x, name)})"
            )
        return
    ok = torch.isfinite(energy)
    if not bool(ok.all()):
        raise NonFiniteStartError(
            f"the energy is not finite at the start {name}: {int((~ok).sum())} of {x.shape[0]} "
            f"chains have E({name}) NaN or inf ({_show_chains(~ok, energy, 'E')}); start the "
            "chains where the energy is finite"
        )
    if grad is not None:
        ok = _finite_rows(grad)
        if not bool(ok.all()):
            raise NonFiniteStartError(
                f"the energy's gradient is not finite at the start {name}: {int((~ok).sum())} of "
                f"{x.shape[0]} chains ({_show_chains(~ok, grad, 'grad')}); start the chains where "
                "the energy and its gradient are finite"
            )


def select_state(mask: Tensor, new: Any, old: Any) -> Any:
    """Whole-state per-chain select: each field of ``new`` where ``mask`` (C,) is True, else
    ``old``'s (both NamedTuples of the same type with (C,) or (C, *D) fields).

    The accept/reject of every Metropolis kernel and the hold of non-finite chains.
    """
    return type(new)(*(where_chains(mask, n, o) for n, o in zip(new, old)))


def accept_select(mh: Any, new: Any, old: Any) -> tuple[Any, BaseInfo]:
    """A Metropolis kernel's last move: ``new`` for the chains ``mh`` (a
    :class:`~torchenergy.samplers.metropolis.MetropolisResult`) accepted, ``old`` for the rest,
    and the step's :class:`BaseInfo` (an adjusted kernel never diverges)."""
    acc = mh.accepted
    return select_state(acc, new, old), BaseInfo(
        mh.accept_prob, acc, mh.nonfinite, torch.zeros_like(acc)
    )


def all_finite_eager(energy: Tensor, grad: Tensor) -> bool:
    """True when every entry of ``energy`` (C,) and ``grad`` (C, *D) is finite, by one host
    read of a 0-dim sum, on CPU outside tracing; False otherwise (also when the sum of finite
    entries overflows, or on other devices and in compiled steps, which always select).

    The fast test of the unadjusted kernels: True lets a step skip the per-chain check and the
    select (which would return the new state bit for bit); False sends it to them.
    """
    if energy.device.type != "cpu" or torch.compiler.is_compiling():
        return False
    return math.isfinite(energy.sum().add_(grad.sum()).item())


def moved_info(energy: Tensor) -> BaseInfo:
    """:func:`unadjusted_info` for a step in which every chain of ``energy`` (C,) moved."""
    c, dev = energy.shape[0], energy.device
    held = torch.zeros(c, dtype=torch.bool, device=dev)
    return BaseInfo(
        torch.ones(c, dtype=torch.get_default_dtype(), device=dev),
        torch.ones(c, dtype=torch.bool, device=dev),
        held,
        held,
    )


def hold_nonfinite(state: GradState, new: GradState) -> tuple[GradState, BaseInfo]:
    """Take ``new`` for the chains whose energy and gradient are finite; the others keep
    ``state`` and are flagged ``diverged`` (used by every unadjusted kernel)."""
    if all_finite_eager(new.energy, new.grad):
        # every chain moves: the select would return ``new`` bit for bit, so skip its kernels
        # (one host read, which on CPU is no device sync; traced/compiled steps and other
        # devices always select, keeping the step free of data-dependent branches there)
        return new, moved_info(new.energy)
    ok = finite_chains(new.energy, new.grad)  # a non-finite x gives a non-finite E or ∇E
    return select_state(ok, new, state), unadjusted_info(~ok)


def clip_grad_per_chain(grad: Tensor, max_norm: float) -> Tensor:
    """Rescale each chain's gradient (C, *D) so its Euclidean norm is at most ``max_norm``."""
    norm = grad.flatten(1).norm(dim=1)
    factor = torch.clamp(max_norm / (norm + 1e-12), max=1.0)
    return grad * factor.reshape(-1, *([1] * (grad.dim() - 1)))


def check_clamp(clamp: Any) -> None:
    """Validate a ``(low, high)`` box: numbers or tensors broadcastable to the event shape."""
    if clamp is None:
        return
    if not isinstance(clamp, (tuple, list)) or len(clamp) != 2:
        raise ValueError(f"clamp must be a (low, high) pair, got {clamp!r}")
    lo, hi = clamp
    for name, v in (("clamp low", lo), ("clamp high", hi)):
        if isinstance(v, bool) or not isinstance(v, (int, float, Tensor)):
            raise TypeError(f"{name} must be a number or a tensor, got {v!r}")
    if not bool(torch.all(torch.as_tensor(lo) < torch.as_tensor(hi))):
        raise ValueError(f"clamp must satisfy low < high, got low={lo!r}, high={hi!r}")


def clamp_box(x: Tensor, clamp: Any) -> Tensor:
    """``x`` clamped to the box ``clamp = (low, high)`` (see :func:`check_clamp`)."""
    lo, hi = clamp
    if isinstance(lo, Tensor):
        lo = lo.to(device=x.device, dtype=x.dtype)
    if isinstance(hi, Tensor):
        hi = hi.to(device=x.device, dtype=x.dtype)
    return torch.clamp(x, min=lo, max=hi)


def langevin_move(
    x: Tensor, grad: Tensor, step_size: float, noise: float, *, generator: Generator = None
) -> Tensor:
    """The plain Langevin move ``x − ε·g + noise·z`` for float ε and ``noise = sqrt(2ε)·s``, in
    three kernels (one draw, one fused add, one in-place add). Shapes (C, *D)."""
    z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    x_new = torch.add(x, grad, alpha=-step_size)
    return x_new.add_(z, alpha=noise)


def langevin_proposal(
    x: Tensor,
    grad: Tensor,
    step_size: StepSize,
    noise_scale: StepSize = 1.0,
    *,
    grad_clip: float | None = None,
    clamp: Any = None,
    generator: Generator = None,
) -> Tensor:
    """One Langevin move ``x − ε·g + sqrt(2ε)·s·z`` (then clamped to the box when given).

    Shapes: ``x``, ``grad`` (C, *D); ``step_size`` ε and ``noise_scale`` s float, () or (C,).
    ``grad`` is clipped per chain to norm ``grad_clip`` first when given. With float ε and s
    this is :func:`langevin_move` (the same arithmetic and draws).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> langevin_proposal(torch.zeros(3, 2), torch.ones(3, 2), 0.1, generator=g).shape
        torch.Size([3, 2])
    """
    if grad_clip is not None:
        grad = clip_grad_per_chain(grad, grad_clip)
    if isinstance(step_size, Tensor) or isinstance(noise_scale, Tensor):
        eps = chain_view(step_size, x)
        noise = sqrt_of(2.0 * eps) * chain_view(noise_scale, x)
        z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x_new = x - eps * grad if isinstance(eps, Tensor) else torch.add(x, grad, alpha=-eps)
        # x_new is a fresh tensor here: update it in place (one allocation fewer per step)
        if isinstance(noise, Tensor):
            x_new = x_new.addcmul_(noise, z)
        else:
            x_new = x_new.add_(z, alpha=noise)
    else:
        noise = math.sqrt(2.0 * step_size) * noise_scale
        x_new = langevin_move(x, grad, step_size, noise, generator=generator)
    if clamp is not None:
        x_new = clamp_box(x_new, clamp)
    return x_new
