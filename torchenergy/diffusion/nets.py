"""Time-conditioned networks: an MLP for low-dimensional data and a small DiT for images.

Both map ``(x (C, *D), t (C,)[, y (C,)]) -> (C, *D)`` and are smooth in t (sinusoidal time
features), so the forward-mode endpoint limits of :class:`~torchenergy.diffusion.ModelField`
apply. Labels run over ``0..K−1`` plus a null label ``K`` for classifier-free guidance.

The DiT follows Peebles & Xie (2023): patch embedding (a strided convolution), fixed 2-D
sine-cosine position embeddings, transformer blocks whose LayerNorms are modulated by the time
and label embedding (adaLN-Zero: shift, scale and a gate per sub-layer, all initialised to zero
so every block starts as the identity), and a zero-initialised final modulated linear layer.

Reference: Peebles & Xie (2023), "Scalable diffusion models with transformers"; Vaswani et al.
(2017) for the sinusoidal embedding.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from torchenergy._checks import check_positive_int

__all__ = ["DiT", "TimeMLP", "sinusoidal_embedding"]


def sinusoidal_embedding(t: Tensor, dim: int, *, max_period: float = 10_000.0) -> Tensor:
    """Sinusoidal features of ``1000 t``, (C,) -> (C, dim).

    Example:
        >>> sinusoidal_embedding(torch.zeros(3), 8).shape
        torch.Size([3, 8])
    """
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=t.dtype, device=t.device) / half
    )
    arg = (1000.0 * t)[:, None] * freqs[None, :]
    emb = torch.cat([torch.cos(arg), torch.sin(arg)], -1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], -1)
    return emb


class _Embed(nn.Module):
    """Time (and optional label) embedding to a width ``dim``."""

    def __init__(self, dim: int, n_classes: int | None, freq_dim: int = 128) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.time = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.label = nn.Embedding(n_classes + 1, dim) if n_classes else None

    def forward(self, t: Tensor, y: Tensor | None) -> Tensor:
        t = torch.as_tensor(t)
        emb = self.time(sinusoidal_embedding(t, self.freq_dim).to(self.time[0].weight.dtype))
        if self.label is not None:
            if y is None:
                raise ValueError("this model is conditional: pass labels y (C,) (null label = K)")
            emb = emb + self.label(y)
        return emb


class TimeMLP(nn.Module):
    """``f(x, t[, y])`` for flat data: an MLP on ``[x, emb(t, y)]`` with SiLU activations.

    Shapes: x (C, D), t (C,), y (C,) -> (C, D).

    Args:
        dim: D.
        hidden: width (default 256).
        depth: number of hidden layers (default 3).
        n_classes: K for a conditional model (labels 0..K−1, null label K), else None.

    Example:
        >>> net = TimeMLP(2, hidden=16, depth=2)
        >>> net(torch.zeros(5, 2), torch.rand(5)).shape
        torch.Size([5, 2])
    """

    def __init__(
        self, dim: int, hidden: int = 256, depth: int = 3, n_classes: int | None = None
    ) -> None:
        super().__init__()
        check_positive_int("dim", dim)
        check_positive_int("hidden", hidden)
        check_positive_int("depth", depth)
        self.dim, self.n_classes = dim, n_classes
        self.embed = _Embed(hidden, n_classes, freq_dim=64)
        self.inp = nn.Linear(dim, hidden)
        self.layers = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(depth))
        self.out = nn.Linear(hidden, dim)
        self.act = nn.SiLU()

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        emb = self.embed(t, y)
        h = self.inp(x) + emb
        for layer in self.layers:
            h = layer(self.act(h))
        return self.out(self.act(h))


def _pos_embed(dim: int, grid: int) -> Tensor:
    """Fixed 2-D sine-cosine position embedding, (grid², dim)."""
    q = dim // 4
    omega = 1.0 / 10_000 ** (torch.arange(q, dtype=torch.float64) / q)
    coords = torch.arange(grid, dtype=torch.float64)
    gy, gx = torch.meshgrid(coords, coords, indexing="ij")
    parts = []
    for g in (gy.reshape(-1), gx.reshape(-1)):
        arg = g[:, None] * omega[None, :]
        parts += [torch.sin(arg), torch.cos(arg)]
    emb = torch.cat(parts, 1)
    if emb.shape[1] < dim:
        emb = torch.cat([emb, torch.zeros(emb.shape[0], dim - emb.shape[1], dtype=emb.dtype)], 1)
    return emb.float()


def _modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return x * (1.0 + scale[:, None, :]) + shift[:, None, :]


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        hid = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hid), nn.GELU(approximate="tanh"), nn.Linear(hid, dim)
        )
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        s1, sc1, g1, s2, sc2, g2 = self.ada(c).chunk(6, dim=1)
        h = _modulate(self.norm1(x), s1, sc1)
        x = x + g1[:, None, :] * self.attn(h, h, h, need_weights=False)[0]
        h = _modulate(self.norm2(x), s2, sc2)
        return x + g2[:, None, :] * self.mlp(h)


class DiT(nn.Module):
    """A small diffusion transformer with adaLN-Zero conditioning on time and label.

    Shapes: x (C, channels, H, W) with H = W = ``image_size``, t (C,), y (C,) -> same as x.

    Args:
        image_size: H = W (divisible by ``patch``).
        channels: image channels.
        patch: patch side p (tokens = (H/p)²).
        dim: token width.
        depth: number of blocks.
        heads: attention heads.
        n_classes: K (labels 0..K−1, null label K) or None for an unconditional model.
        mlp_ratio: hidden width of the block MLP over ``dim``.

    Example:
        >>> net = DiT(8, 1, patch=4, dim=32, depth=1, heads=2, n_classes=3)
        >>> net(torch.zeros(2, 1, 8, 8), torch.rand(2), torch.tensor([0, 3])).shape
        torch.Size([2, 1, 8, 8])
    """

    def __init__(
        self,
        image_size: int = 28,
        channels: int = 1,
        *,
        patch: int = 4,
        dim: int = 128,
        depth: int = 4,
        heads: int = 4,
        n_classes: int | None = 10,
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        for name, v in (
            ("image_size", image_size),
            ("channels", channels),
            ("patch", patch),
            ("dim", dim),
            ("depth", depth),
            ("heads", heads),
        ):
            check_positive_int(name, v)
        if image_size % patch:
            raise ValueError(f"image_size={image_size} must be divisible by patch={patch}")
        if dim % heads:
            raise ValueError(f"dim={dim} must be divisible by heads={heads}")
        self.image_size, self.channels, self.patch, self.n_classes = (
            image_size,
            channels,
            patch,
            n_classes,
        )
        self.grid = image_size // patch
        self.embed_patches = nn.Conv2d(channels, dim, patch, stride=patch)
        self.register_buffer("pos", _pos_embed(dim, self.grid)[None], persistent=False)
        self.cond = _Embed(dim, n_classes)
        self.blocks = nn.ModuleList(_Block(dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))
        self.head = nn.Linear(dim, patch * patch * channels)
        for m in (self.ada[1], self.head):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        c = self.cond(t, y)
        h = self.embed_patches(x).flatten(2).transpose(1, 2) + self.pos.to(x.dtype)
        for blk in self.blocks:
            h = blk(h, c)
        shift, scale = self.ada(c).chunk(2, dim=1)
        h = self.head(_modulate(self.norm(h), shift, scale))  # (C, N, p*p*ch)
        n, g, p, ch = x.shape[0], self.grid, self.patch, self.channels
        h = h.reshape(n, g, g, p, p, ch).permute(0, 5, 1, 3, 2, 4)
        return h.reshape(n, ch, g * p, g * p)
