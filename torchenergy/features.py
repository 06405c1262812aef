"""A small Fashion-MNIST feature network, trained once by the project and cached on disk.

Inception features (for FID) cannot be had offline, so sample quality on Fashion-MNIST is measured
on the 128-d penultimate features of :class:`FeatureNet`, a plain CNN (ReLU, max pooling) trained
for two epochs on the training set (88 % test accuracy as cached here). It is deliberately a different
architecture from the models being judged.

Cache: ``$TORCHENERGY_CACHE``, else ``$XDG_CACHE_HOME/torchenergy``, else
``~/.cache/torchenergy``; the file ``fashion_mnist_features_v1.pt`` holds the weights and the
test accuracy and is read with ``torch.load(weights_only=True)`` (no code can run from it).

Example:
    >>> net = FeatureNet()
    >>> net.features(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 128])
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchenergy._checks import check_positive_int, check_tensor

__all__ = ["FeatureNet", "cache_dir", "fashion_feature_net", "image_features", "train_feature_net"]

_FILE = "fashion_mnist_features_v1.pt"
_FORMAT = "torchenergy.features/1"


def cache_dir() -> Path:
    """The folder for cached artefacts (see the module docstring); created on first use."""
    root = os.environ.get("TORCHENERGY_CACHE")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(xdg, "torchenergy")
    return Path(root)


class FeatureNet(nn.Module):
    """CNN for (C, 1, 28, 28) images in [0, 1]: features (C, 128) and logits (C, 10)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.fc = nn.Linear(64 * 3 * 3, 128)
        self.out = nn.Linear(128, 10)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features (C, 128) of images (C, 1, 28, 28) in [0, 1]."""
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(f"FeatureNet expects images (C, 1, 28, 28), got {tuple(x.shape)}")
        return F.relu(self.fc(self.conv(x).flatten(1)))

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.features(x))


def train_feature_net(
    *, epochs: int = 2, batch_size: int = 128, seed: int = 0, verbose: bool = False
) -> tuple[FeatureNet, float]:
    """Train :class:`FeatureNet` on Fashion-MNIST (needs the data set); returns (net, test acc)."""
    from torchenergy.data import load_fashion_mnist

    check_positive_int("epochs", epochs)
    x, y = load_fashion_mnist("train", flatten=False)
    xt, yt = load_fashion_mnist("test", flatten=False)
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = FeatureNet()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    t0 = time.perf_counter()
    for ep in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x) - batch_size + 1, batch_size):
            idx = perm[i : i + batch_size]
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if verbose:
            print(f"feature net epoch {ep + 1}: {time.perf_counter() - t0:.0f} s")
    net.eval()
    with torch.no_grad():
        acc = float(torch.cat([net(c).argmax(1) for c in xt.split(1000)]).eq(yt).float().mean())
    return net, acc


def fashion_feature_net(
    *,
    path: str | os.PathLike[str] | None = None,
    train_if_missing: bool = True,
    verbose: bool = False,
) -> FeatureNet:
    """The cached feature network (trained and saved on first use when ``train_if_missing``).

    Raises:
        FileNotFoundError: no cached file and ``train_if_missing=False`` (or no Fashion-MNIST).
        ValueError: a cached file that is not a torchenergy feature-net file.
    """
    p = Path(path) if path is not None else cache_dir() / _FILE
    if not p.is_file():
        if not train_if_missing:
            raise FileNotFoundError(f"no cached feature network at {str(p)!r}")
        net, acc = train_feature_net(verbose=verbose)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
        torch.save({"format": _FORMAT, "state_dict": net.state_dict(), "test_accuracy": acc}, tmp)
        os.replace(tmp, p)
    blob: Any = torch.load(p, map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or blob.get("format") != _FORMAT:
        raise ValueError(f"{str(p)!r} is not a torchenergy feature-net file (format {_FORMAT!r})")
    net = FeatureNet()
    net.load_state_dict(blob["state_dict"])
    net.requires_grad_(False)
    net.eval()
    net.test_accuracy = float(blob.get("test_accuracy", float("nan")))  # type: ignore[attr-defined]
    return net


@torch.no_grad()
def image_features(
    net: FeatureNet,
    images: Tensor,
    *,
    value_range: tuple[float, float] = (0.0, 1.0),
    batch_size: int = 500,
) -> Tensor:
    """Features (C, 128) of images (C, 1, 28, 28) (or (C, 784)) whose pixels span ``value_range``."""
    check_tensor("images", images, min_dim=2, floating=True)
    x = images.reshape(-1, 1, 28, 28) if images.dim() == 2 else images
    lo, hi = value_range
    if not hi > lo:
        raise ValueError(f"value_range must be (low, high) with low < high, got {value_range!r}")
    x = ((x - lo) / (hi - lo)).clamp(0, 1).to(torch.float32)
    return torch.cat([net.features(c) for c in x.split(batch_size)])
