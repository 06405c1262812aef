"""Accelerator: Bernoulli draws from a numpy SFC64 stream (a :class:`BernoulliSource`, CPU only).

On CPU, making uniforms is the largest cost of a CD update after the matrix products. numpy's
SFC64 generator makes them about 1.7x faster than ``torch.rand``, and float32 draws can skip the
floats altogether: a float32 uniform is ``(next 32 bits >> 8)·2⁻²⁴``, so ``u < p`` is the same
event as ``k < p·2²⁴`` for ``k`` 24 random bits, an integer compare at about half the cost (the
scaling by 2²⁴ is exact, and so is ``k`` in float32). Same law as
:class:`~torchenergy.models.rbm.protocols.TorchBernoulli`, another stream: the stream is seeded
by one draw from the torch generator, so a run is reproducible but not draw-for-draw the same.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from torchenergy.types import Generator

__all__ = ["NumpyBernoulli"]


class NumpyBernoulli:
    """``out = (u < p)`` with ``u`` from a numpy SFC64 stream seeded by one draw from ``generator``.

    float32 (:attr:`int24`): ``u = k·2⁻²⁴`` with ``k`` the low 24 bits of raw 32-bit words of
    the stream, compared as ``k < p·2²⁴``. float64: ``numpy.random.Generator.random`` (53 bits)
    written into a reused buffer and compared with ``p``.
    """

    def __init__(self, generator: Generator, dtype: torch.dtype) -> None:
        seed = int(torch.randint(0, 2**62, (), generator=generator))
        self.rng = np.random.Generator(np.random.SFC64(seed))
        self.dtype = dtype
        self.np_dtype = np.float32 if dtype == torch.float32 else np.float64
        #: float32 uniforms as 24-bit integers
        self.int24 = dtype == torch.float32
        self._bufs: dict[tuple[int, ...], tuple[Any, Tensor]] = {}

    def uniforms(self, shape: torch.Size) -> Tensor:
        """(C, D) uniforms in :attr:`dtype`, in a reused buffer valid until the next call with the
        same shape."""
        key = tuple(shape)
        if key not in self._bufs:
            arr = np.empty(key, dtype=self.np_dtype)
            self._bufs[key] = (arr, torch.from_numpy(arr))
        arr, t = self._bufs[key]
        self.rng.random(out=arr, dtype=self.np_dtype)
        return t

    def bernoulli(self, p: Tensor, out: Tensor, *, scale_p: bool = False) -> Tensor:
        """``out = (u < p)`` for ``p`` (C, D); see the class docstring."""
        if not self.int24:
            return torch.lt(self.uniforms(p.shape), p, out=out)
        n = p.numel()
        raw = self.rng.bit_generator.random_raw((n + 1) // 2)
        k = torch.from_numpy(raw.view("int32")[:n]).view(p.shape).bitwise_and_(0xFFFFFF)
        if p.dtype == torch.float32 and scale_p:
            thr = p.mul_(16777216.0)
        elif p.dtype != torch.float32:
            thr = p.to(torch.float32).mul_(16777216.0)
        else:
            thr = p * 16777216.0
        return torch.lt(k, thr, out=out)
