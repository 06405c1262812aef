"""Bit-for-bit comparison of two checkpoints (nested dicts of tensors and plain values)."""

from __future__ import annotations

from typing import Any

import torch


def assert_same_tree(a: Any, b: Any, where: str = "checkpoint") -> None:
    """``a`` and ``b`` hold the same keys, types and values; tensors ``torch.equal`` and of one
    dtype. The assertion names the first path that differs."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype, where
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and sorted(a) == sorted(b), where
        for k in a:
            assert_same_tree(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (u, v) in enumerate(zip(a, b)):
            assert_same_tree(u, v, f"{where}[{i}]")
    else:
        assert type(a) is type(b) and a == b, (where, a, b)
