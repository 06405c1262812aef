"""Hard transition constraints for linear-chain CRFs (for example BIO / IOB2 tagging).

A constraint set says which first tags, which steps ``i -> j`` and which last tags are allowed;
:class:`~torchenergy.models.LinearChainCRF` gives the forbidden ones a score of ``-inf`` (energy
``+inf``) in every method, so no decoded, sampled or k-best tagging ever contains one and they
carry zero probability in ``log Z`` and the marginals.

Reference: L. Ramshaw, M. Marcus, "Text chunking using transformation-based learning", 1995
(the IOB scheme); E. Tjong Kim Sang, J. Veenstra, "Representing text chunks", EACL 1999.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["TransitionConstraints", "bio_constraints"]


class TransitionConstraints(NamedTuple):
    """Allowed moves of a tag chain, as boolean tensors.

    Attributes:
        transitions: (K, K) bool, ``transitions[i, j]`` is True when tag ``j`` may follow tag ``i``.
        start: (K,) bool, tags allowed at the first position.
        end: (K,) bool, tags allowed at the last position.
    """

    transitions: Tensor
    start: Tensor
    end: Tensor


def bio_constraints(labels: Sequence[str]) -> TransitionConstraints:
    """Constraints of the BIO (IOB2) scheme: ``I-X`` only after ``B-X`` or ``I-X``.

    Tags are named ``"O"``, ``"B-<type>"`` or ``"I-<type>"``; ``I-X`` may not start a sequence.
    Any other name (e.g. ``"<pad>"``) is left unconstrained.

    Args:
        labels: the K tag names, in index order.

    Returns:
        :class:`TransitionConstraints` with (K, K) and (K,) boolean tensors.

    Raises:
        ValueError: if a ``B-``/``I-`` label has an empty type or labels repeat.

    Example:
        >>> c = bio_constraints(["O", "B-PER", "I-PER"])
        >>> c.transitions.int().tolist()
        [[1, 1, 0], [1, 1, 1], [1, 1, 1]]
        >>> c.start.tolist()
        [True, True, False]
    """
    labels = list(labels)
    if len(set(labels)) != len(labels):
        raise ValueError(f"labels must be distinct, got {labels!r}")
    k = len(labels)
    if k == 0:
        raise ValueError("labels must not be empty")
    kinds: list[tuple[str, str]] = []
    for name in labels:
        if name[:2] in ("B-", "I-"):
            if not name[2:]:
                raise ValueError(f"label {name!r} has an empty entity type; expected e.g. 'B-PER'")
            kinds.append((name[0], name[2:]))
        else:
            kinds.append(("", name))
    trans = torch.ones(k, k, dtype=torch.bool)
    start = torch.ones(k, dtype=torch.bool)
    for j, (kind_j, type_j) in enumerate(kinds):
        if kind_j != "I":
            continue
        start[j] = False
        for i, (kind_i, type_i) in enumerate(kinds):
            trans[i, j] = kind_i in ("B", "I") and type_i == type_j
    end = torch.ones(k, dtype=torch.bool)
    return TransitionConstraints(trans, start, end)
