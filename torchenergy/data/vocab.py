"""Vocabularies for token and tag sequences, with unknown-word handling.

A :class:`Vocabulary` maps strings to contiguous ids. Index 0 is the padding symbol and index 1
the unknown symbol (when enabled); tokens seen fewer than ``min_count`` times map to unknown,
so the model learns an embedding for rare words that it can use for unseen ones. Tag
vocabularies are built with ``pad=None, unk=None`` so the ids are exactly ``0 .. K-1``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence

import torch
from torch import Tensor

__all__ = ["Vocabulary", "pad_sequences"]


class Vocabulary:
    """String <-> id map.

    Args:
        tokens: an iterable of tokens (counted), e.g. every word of the training set.
        min_count: tokens seen fewer times are left out (map to ``unk``).
        pad: padding symbol (id 0), or ``None`` for none.
        unk: unknown symbol (next id), or ``None``: then :meth:`encode` raises on unseen tokens.
        normalize: optional function applied to every token before counting and lookup
            (e.g. ``str.lower``).

    Example:
        >>> v = Vocabulary(["a", "b", "a"], min_count=2)
        >>> v.encode(["a", "b", "zzz"]), len(v)
        ([2, 1, 1], 3)
    """

    def __init__(
        self,
        tokens: Iterable[str],
        *,
        min_count: int = 1,
        pad: str | None = "<pad>",
        unk: str | None = "<unk>",
        normalize: Callable[[str], str] | None = None,
    ) -> None:
        if not isinstance(min_count, int) or min_count < 1:
            raise ValueError(f"min_count must be an int >= 1, got {min_count!r}")
        self.normalize = normalize
        self.pad, self.unk = pad, unk
        norm = normalize or (lambda s: s)
        counts = Counter(norm(t) for t in tokens)
        specials = [s for s in (pad, unk) if s is not None]
        kept = sorted(
            (t for t, c in counts.items() if c >= min_count and t not in specials),
            key=lambda t: (-counts[t], t),
        )
        self.itos: list[str] = [*specials, *kept]
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(self.itos)}
        self.counts = counts

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return (self.normalize(token) if self.normalize else token) in self.stoi

    @property
    def pad_id(self) -> int | None:
        """Id of the padding symbol (0) or ``None``."""
        return None if self.pad is None else self.stoi[self.pad]

    @property
    def unk_id(self) -> int | None:
        """Id of the unknown symbol or ``None``."""
        return None if self.unk is None else self.stoi[self.unk]

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Ids of ``tokens``; unseen ones map to ``unk`` (``KeyError`` naming them without one)."""
        norm = self.normalize or (lambda s: s)
        unk = self.unk_id
        ids = []
        for t in tokens:
            i = self.stoi.get(norm(t), unk)
            if i is None:
                raise KeyError(f"token {t!r} is not in the vocabulary and it has no unk symbol")
            ids.append(i)
        return ids

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens of ``ids`` (negative ids, i.e. padding tags, are skipped)."""
        return [self.itos[i] for i in ids if i >= 0]


def pad_sequences(seqs: Sequence[Sequence[int]], pad_value: int = 0) -> tuple[Tensor, Tensor]:
    """Stack id lists into a (B, T) long tensor and its (B, T) bool mask.

    Example:
        >>> x, m = pad_sequences([[1, 2, 3], [4]])
        >>> x.tolist(), m.sum(1).tolist()
        ([[1, 2, 3], [4, 0, 0]], [3, 1])
    """
    if not seqs:
        raise ValueError("seqs must not be empty")
    width = max(len(s) for s in seqs)
    out = torch.full((len(seqs), width), pad_value, dtype=torch.long)
    mask = torch.zeros(len(seqs), width, dtype=torch.bool)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.as_tensor(list(s), dtype=torch.long)
        mask[i, : len(s)] = True
    return out, mask
