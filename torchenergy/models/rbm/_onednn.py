"""Accelerator: the RBM products as oneDNN ``linear + pointwise`` calls (an :class:`RBMProducts`).

``torch.ops.mkldnn._linear_pointwise(x, w, bias, "sigmoid", [], "")`` computes
``sigmoid(x wᵀ + bias)`` in one call on CPU (float32 or bf16), without the separate bias add and
sigmoid pass of ``torch.addmm(...).sigmoid_()``. The op is private to PyTorch, so it is probed
once per dtype against ``torch.addmm`` (:func:`onednn_linear_ok`) and used only where it exists and
gives the right numbers; :class:`~torchenergy.models.rbm.protocols.PlainProducts` otherwise.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["OneDNNProducts", "native_bf16", "onednn_linear_ok"]

_ONEDNN_OK: dict[torch.dtype, bool] = {}


def onednn_linear_ok(dtype: torch.dtype) -> bool:
    """Whether oneDNN's fused ``linear + pointwise`` op runs (and is right) for CPU ``dtype``.

    Probed once per dtype on small tensors against ``torch.addmm``; any failure (a build without
    mkldnn, a CPU without bf16, a PyTorch without the op) means the plain-PyTorch products.
    """
    if dtype not in _ONEDNN_OK:
        ok = False
        try:
            op = torch.ops.mkldnn._linear_pointwise
            if torch.backends.mkldnn.is_available() and dtype in (torch.float32, torch.bfloat16):
                if dtype == torch.bfloat16 and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
                    raise RuntimeError("no bf16")
                g = torch.Generator().manual_seed(0)
                x = torch.rand(5, 7, generator=g).to(dtype)
                w = torch.randn(7, 3, generator=g).to(dtype)
                c = torch.randn(3, generator=g).to(dtype)
                got = op(x, w.T, c, "sigmoid", [], "").float()
                ref = torch.sigmoid(torch.addmm(c.float(), x.float(), w.float()))
                ok = bool(torch.allclose(got, ref, atol=2e-2 if dtype != torch.float32 else 1e-5))
        except (AttributeError, RuntimeError):
            ok = False
        _ONEDNN_OK[dtype] = ok
    return _ONEDNN_OK[dtype]


def native_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX512-BF16 or AMX); elsewhere oneDNN emulates
    bf16 products, which is no faster than float32."""
    cpu = getattr(torch, "cpu", None)
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        fn = getattr(cpu, probe, None)
        try:
            if fn is not None and fn():
                return True
        except RuntimeError:  # pragma: no cover - depends on the build
            pass
    return False


class OneDNNProducts:
    """:class:`RBMProducts` by ``torch.ops.mkldnn._linear_pointwise`` (CPU, float32 or bf16).

    ``accumulate`` widens a lower-precision product into a kept buffer of ``buf``'s dtype (no
    fresh temporary per update) before ``buf ← beta·buf + pt x``.
    """

    def __init__(self) -> None:
        self._wide: Tensor | None = None

    def hidden(self, x: Tensor, wt: Tensor, c: Tensor) -> Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, wt, c, "sigmoid", [], "")

    def visible(self, h: Tensor, wt: Tensor, b: Tensor) -> Tensor:
        return torch.ops.mkldnn._linear_pointwise(h, wt.T, b, "sigmoid", [], "")

    def accumulate(self, buf: Tensor, pt: Tensor, x: Tensor, beta: float) -> Tensor:
        g = torch.ops.mkldnn._linear_pointwise(pt, x.T, None, "none", [], "")
        if g.dtype != buf.dtype:
            if self._wide is None or self._wide.shape != buf.shape:
                self._wide = torch.empty_like(buf)
            g = self._wide.copy_(g)
        return torch.add(g, buf, alpha=beta, out=buf)
