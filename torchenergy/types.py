"""Type aliases and the sign/shape glossary, stated once for the whole library.

Signs:
    ``log p(x) = -E(x) - log Z``; ``score(x) = grad_x log p(x) = -grad_x E(x)``.
    Lower energy means more likely. Functions are called ``energy_fn``.

Shapes (letters used in every public docstring):
    C  chains / batch size
    D  event shape (any number of trailing dimensions, e.g. (2,) or (1, 28, 28))
    T  steps (time)
    K  states / classes / tags

An energy maps ``(C, *D) -> (C,)``, always.

Langevin step-size convention (one for the whole library):
    ``x' = x - eps * grad E(x) + sqrt(2 * eps) * z``.
    Papers that write ``x - (alpha / 2) grad E + sqrt(alpha) z`` use the same rule with alpha = 2 eps.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["EnergyFn", "Generator", "ScoreFn", "StepSize"]

#: ``(C, *D) -> (C,)`` energies; lower is more likely.
EnergyFn = Callable[[Tensor], Tensor]
#: ``(C, *D) -> (C, *D)``: ``grad_x log p(x) = -grad_x E(x)``.
ScoreFn = Callable[[Tensor], Tensor]
#: A positive float, or a tensor broadcastable to the chains (e.g. shape (C,)) for per-chain sizes.
StepSize = float | Tensor
#: The ``generator=`` keyword of every random function: a ``torch.Generator`` or None.
Generator = torch.Generator | None
