"""Validation and packing of variable-length CRF batches.

A mask (B, T) selects the positions that belong to each sequence. It may start with False (a
``[CLS]`` token), have padding after the end, and even have gaps (for example only the first
sub-word of each word selected): the sequence is the selected positions in order, and the chain
links consecutive selected positions. :func:`pack` moves the selected positions of every row to
the front (a stable sort of the mask), so the dynamic programs in :mod:`torchenergy.models.crf.dp` see ordinary
left-aligned sequences; :func:`unpack` scatters per-position results back and pads the rest.

Every sequence must select at least one position (an empty tagging has no score).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

__all__ = [
    "PAD_TAG",
    "REDUCTIONS",
    "Packed",
    "check_reduction",
    "check_tags",
    "pack",
    "reduce_loss",
    "unpack",
]

#: Tag value at positions outside a sequence (and of taggings that do not exist).
PAD_TAG = -1

#: How a per-sequence loss (B,) is reduced: over sequences, summed, kept, or per selected token.
REDUCTIONS = ("mean", "sum", "none", "token_mean")


class Packed(NamedTuple):
    """A batch packed to the left, time-major.

    Attributes:
        emissions: (T', B, K) with ``T' = max length``.
        mask: (T', B) bool, ``mask[t, b] = t < lengths[b]``.
        lengths: (B,) long, number of selected positions per sequence (>= 1).
        order: (B, T') long positions of the selected tokens in the original rows, or ``None``
            when the original mask already is a prefix mask (no reordering needed).
        mask_bt: (B, T) the original boolean mask.
    """

    emissions: Tensor
    mask: Tensor
    lengths: Tensor
    order: Tensor | None
    mask_bt: Tensor


def _as_mask(emissions: Tensor, mask: Tensor | None, lengths: Tensor | None) -> Tensor:
    batch, steps = emissions.shape[:2]
    if mask is not None and lengths is not None:
        raise ValueError("give either mask or lengths, not both")
    if lengths is not None:
        if not isinstance(lengths, Tensor):
            raise TypeError(f"lengths must be a tensor of shape (B,), got {type(lengths).__name__}")
        if lengths.shape != (batch,) or lengths.is_floating_point() or lengths.dtype == torch.bool:
            raise ValueError(
                f"lengths must be an integer tensor of shape (B,) = ({batch},), got shape "
                f"{tuple(lengths.shape)} and dtype {lengths.dtype}"
            )
        bad = (lengths < 1) | (lengths > steps)
        if bool(bad.any()):
            raise ValueError(
                f"lengths must lie in [1, T={steps}], got {lengths[bad].tolist()} at batch "
                f"indices {bad.nonzero().flatten().tolist()}"
            )
        ar = torch.arange(steps, device=emissions.device)
        return ar.unsqueeze(0) < lengths.to(emissions.device).unsqueeze(1)
    if mask is None:
        return torch.ones(batch, steps, dtype=torch.bool, device=emissions.device)
    if not isinstance(mask, Tensor):
        raise TypeError(f"mask must be a bool tensor of shape (B, T), got {type(mask).__name__}")
    if mask.shape != (batch, steps):
        raise ValueError(
            f"mask must have shape (B, T) = {(batch, steps)} like emissions (B, T, K), got "
            f"{tuple(mask.shape)}"
        )
    if mask.dtype != torch.bool:
        if mask.is_floating_point() or mask.is_complex():
            raise TypeError(f"mask must be bool (or 0/1 integers), got dtype {mask.dtype}")
        if bool(((mask != 0) & (mask != 1)).any()):
            raise ValueError("an integer mask must hold only 0 and 1")
        mask = mask != 0
    empty = ~mask.any(dim=1)
    if bool(empty.any()):
        raise ValueError(
            "every sequence must select at least one position; mask rows "
            f"{empty.nonzero().flatten().tolist()} are all False"
        )
    return mask


def pack(emissions: Tensor, mask: Tensor | None, lengths: Tensor | None, num_tags: int) -> Packed:
    """Validate ``emissions`` (B, T, K) and ``mask`` (B, T) / ``lengths`` (B,), and pack them.

    Raises:
        TypeError: non-tensor or non-floating emissions, non-bool mask.
        ValueError: wrong shapes, empty sequences, lengths out of range.

    Example:
        >>> e = torch.arange(6.0).view(1, 3, 2)
        >>> p = pack(e, torch.tensor([[False, True, True]]), None, 2)  # a masked [CLS] token
        >>> p.emissions[:, 0].tolist(), p.order.tolist(), p.lengths.tolist()
        ([[2.0, 3.0], [4.0, 5.0]], [[1, 2]], [2])
    """
    if not isinstance(emissions, Tensor):
        raise TypeError(f"emissions must be a tensor (B, T, K), got {type(emissions).__name__}")
    if not emissions.is_floating_point():
        raise TypeError(f"emissions must be floating point, got dtype {emissions.dtype}")
    if emissions.dim() != 3 or emissions.shape[2] != num_tags:
        raise ValueError(
            f"emissions must have shape (B, T, K) with K = num_tags = {num_tags}, got "
            f"{tuple(emissions.shape)}"
        )
    if emissions.shape[1] == 0:
        raise ValueError(
            f"emissions must have T >= 1 positions, got shape {tuple(emissions.shape)}"
        )
    mask_bt = _as_mask(emissions, mask, lengths).to(emissions.device)
    lengths = mask_bt.sum(dim=1)
    steps = int(lengths.max()) if lengths.numel() else 1
    prefix = torch.arange(emissions.shape[1], device=emissions.device).unsqueeze(
        0
    ) < lengths.unsqueeze(1)
    if bool((prefix == mask_bt).all()):
        order = None
        e = emissions[:, :steps]
    else:
        order = torch.argsort((~mask_bt).to(torch.int8), dim=1, stable=True)[:, :steps]
        e = emissions.gather(1, order.unsqueeze(2).expand(-1, -1, num_tags))
    return Packed(e.transpose(0, 1), prefix[:, :steps].t(), lengths, order, mask_bt)


def check_tags(tags: Tensor, packed: Packed, num_tags: int) -> Tensor:
    """Validate ``tags`` (B, T) and return them packed, (T', B), with 0 outside the sequences."""
    mask_bt = packed.mask_bt
    if not isinstance(tags, Tensor):
        raise TypeError(f"tags must be a long tensor of shape (B, T), got {type(tags).__name__}")
    if tags.shape != mask_bt.shape:
        raise ValueError(
            f"tags must have shape (B, T) = {tuple(mask_bt.shape)} like emissions, got "
            f"{tuple(tags.shape)}"
        )
    if tags.is_floating_point() or tags.dtype == torch.bool:
        raise TypeError(f"tags must be an integer tensor, got dtype {tags.dtype}")
    tags = tags.to(device=mask_bt.device, dtype=torch.long)
    bad = mask_bt & ((tags < 0) | (tags >= num_tags))
    if bool(bad.any()):
        raise ValueError(
            f"tags at selected positions must lie in [0, {num_tags - 1}], got "
            f"{tags[bad][:6].tolist()} at (b, t) = {bad.nonzero()[:6].tolist()}"
        )
    tags = tags.masked_fill(~mask_bt, 0)
    steps = packed.mask.shape[0]
    tags = tags[:, :steps] if packed.order is None else tags.gather(1, packed.order)
    return tags.t()


def unpack(values: Tensor, packed: Packed) -> Tensor:
    """Scatter packed per-position values (..., B, T') back to (..., B, T), ``PAD_TAG`` elsewhere."""
    mask_bt = packed.mask_bt
    shape = (*values.shape[:-1], mask_bt.shape[1])
    out = torch.full(shape, PAD_TAG, dtype=values.dtype, device=values.device)
    if packed.order is None:
        out[..., : values.shape[-1]] = values
    else:
        out.scatter_(-1, packed.order.expand(values.shape), values)
    return out.masked_fill(~mask_bt, PAD_TAG)


def check_reduction(reduction: str) -> None:
    """Raise ``ValueError`` unless ``reduction`` is one of :data:`REDUCTIONS`."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def reduce_loss(loss: Tensor, reduction: str, lengths: Tensor) -> Tensor:
    """Reduce a per-sequence loss (B,): ``"mean"`` over sequences, ``"sum"``, ``"none"`` (B,), or
    ``"token_mean"`` (the sum divided by the number of selected tokens, ``lengths`` (B,)).

    Example:
        >>> reduce_loss(torch.tensor([1.0, 3.0]), "token_mean", torch.tensor([1, 3])).item()
        1.0
    """
    check_reduction(reduction)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean()
    return loss.sum() / lengths.sum()
