"""Joint energy models (JEM): a classifier's logits read as an energy over inputs and labels.

For a classifier with logits ``f(x)`` (shape (C, K))::

    E(x, y) = -f(x)[y]                     p(x, y) ∝ exp(f(x)[y])
    E(x)    = -logsumexp_y f(x)[y]         p(x)    ∝ sum_y exp(f(x)[y])
    p(y | x) = softmax(f(x))               (the normalising constant cancels)

so one network classifies, generates (sample ``exp(-E(x))`` or ``exp(-E(x, y))`` with any sampler)
and scores inputs for out-of-distribution detection. :class:`JEM` is an
:class:`~torchenergy.energies.Energy` (its ``forward`` is the unconditional ``E(x)``); the
class-conditional ``p(x | y)`` is the view ``jem.conditional(y)``. :class:`ConvClassifier` is a
small convolutional classifier without batch norm (batch statistics make ``E(x)`` depend on the
rest of the batch, which breaks MCMC), optionally spectrally normalised.

Reference: W. Grathwohl et al., *Your Classifier is Secretly an Energy Based Model and You Should
Treat it Like One*, ICLR 2020.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from torchenergy._checks import check_positive_int, check_tensor
from torchenergy.energies import Energy
from torchenergy.energies.neural import make_activation

__all__ = ["JEM", "ConditionalEnergy", "ConvClassifier"]


def _check_logits(logits: Tensor, x: Tensor) -> Tensor:
    if not isinstance(logits, Tensor) or logits.dim() != 2 or logits.shape[0] != x.shape[0]:
        got = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(
            f"the classifier must map x of shape (C, *D) = {tuple(x.shape)} to logits of shape "
            f"(C, K) = ({x.shape[0]}, K), got {got}"
        )
    return logits


def _labels(y: Tensor | int, n: int, n_classes: int | None, device: torch.device) -> Tensor:
    """Labels as a (n,) long tensor (an int is broadcast); checked against the class count."""
    if isinstance(y, bool) or not isinstance(y, (int, Tensor)):
        raise TypeError(f"y must be an int or a (C,) integer tensor, got {type(y).__name__}")
    if isinstance(y, int):
        t = torch.full((n,), y, dtype=torch.long, device=device)
    else:
        if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
            raise TypeError(f"y must hold integer class labels, got dtype {y.dtype}")
        t = y.to(device=device, dtype=torch.long)
        if t.dim() == 0:
            t = t.expand(n)
        if t.shape != (n,):
            raise ValueError(f"y must have shape (C,) = ({n},), got {tuple(y.shape)}")
    if n_classes is not None and t.numel() and bool(((t < 0) | (t >= n_classes)).any()):
        raise ValueError(f"labels must lie in [0, {n_classes}), got values {t.unique().tolist()}")
    return t


class JEM(Energy):
    """A classifier as a joint energy model: ``E(x) = -logsumexp f(x)``, ``E(x, y) = -f(x)[y]``.

    Shapes: ``x`` (C, *D); ``logits`` (C, K); ``energy`` (C,); ``y`` (C,) long or an int.

    Args:
        classifier: any ``nn.Module`` mapping (C, *D) to logits (C, K).
        n_classes: K, used to validate labels (None: not checked).

    Example:
        >>> jem = JEM(torch.nn.Linear(2, 3), n_classes=3)
        >>> x = torch.randn(4, 2)
        >>> bool(torch.allclose(jem(x), -jem.logits(x).logsumexp(-1)))
        True
        >>> jem.energy(x, 1).shape, jem.predict(x).shape
        (torch.Size([4]), torch.Size([4]))

    Reference:
        Grathwohl et al., *Your Classifier is Secretly an Energy Based Model*, ICLR 2020.
    """

    def __init__(self, classifier: nn.Module, n_classes: int | None = None) -> None:
        super().__init__()
        if not isinstance(classifier, nn.Module):
            raise TypeError(f"classifier must be an nn.Module, got {type(classifier).__name__}")
        if n_classes is not None:
            check_positive_int("n_classes", n_classes)
        self.classifier = classifier
        self.n_classes = n_classes

    def logits(self, x: Tensor) -> Tensor:
        """``f(x)``, shape (C, K)."""
        check_tensor("x", x, min_dim=1, floating=True)
        return _check_logits(self.classifier(x), x)

    def energy(self, x: Tensor, y: Tensor | int | None = None) -> Tensor:
        """``-logsumexp_y f(x)[y]`` (y None) or ``-f(x)[y]``, shape (C,)."""
        f = self.logits(x)
        if y is None:
            return -torch.logsumexp(f, dim=-1)
        t = _labels(y, f.shape[0], self.n_classes or f.shape[1], f.device)
        return -f.gather(1, t[:, None]).squeeze(1)

    def forward(self, x: Tensor) -> Tensor:
        """The unconditional energy ``E(x)``, (C, *D) -> (C,)."""
        return self.energy(x)

    def log_prob_y(self, x: Tensor) -> Tensor:
        """``log p(y | x) = log_softmax(f(x))``, shape (C, K)."""
        return torch.log_softmax(self.logits(x), dim=-1)

    def probs(self, x: Tensor) -> Tensor:
        """``p(y | x) = softmax(f(x))``, shape (C, K)."""
        return torch.softmax(self.logits(x), dim=-1)

    @torch.no_grad()
    def predict(self, x: Tensor, *, batch_size: int | None = None) -> Tensor:
        """Most likely labels ``argmax_y f(x)[y]``, shape (C,) long (in batches when given)."""
        if batch_size is None:
            return self.logits(x).argmax(-1)
        check_positive_int("batch_size", batch_size)
        return torch.cat([self.logits(c).argmax(-1) for c in x.split(batch_size)])

    def conditional(self, y: Tensor | int) -> ConditionalEnergy:
        """The class-conditional energy ``x -> E(x, y) = -f(x)[y]`` as an Energy (for samplers)."""
        return ConditionalEnergy(self, y)


class ConditionalEnergy(Energy):
    """``E(x | y) = -f(x)[y]`` for fixed labels: sample ``p(x | y)`` with any sampler.

    ``y`` is an int (every chain the same class) or a (C,) tensor (one class per chain; the chains
    then number C). Shapes: (C, *D) -> (C,).

    Example:
        >>> jem = JEM(torch.nn.Linear(2, 3))
        >>> e = jem.conditional(torch.tensor([0, 2]))
        >>> e(torch.zeros(2, 2)).shape
        torch.Size([2])
    """

    def __init__(self, jem: JEM, y: Tensor | int) -> None:
        super().__init__()
        if not isinstance(jem, JEM):
            raise TypeError(f"jem must be a JEM, got {type(jem).__name__}")
        if isinstance(y, Tensor):
            _labels(y, int(y.numel()) if y.dim() else 1, jem.n_classes, y.device)
        else:
            _labels(y, 1, jem.n_classes, torch.device("cpu"))
        self.jem = jem
        self.y = y

    def forward(self, x: Tensor) -> Tensor:
        return self.jem.energy(x, self.y)


class ConvClassifier(nn.Module):
    """Small CNN classifier for (C, channels, H, W) images, no batch norm (MCMC-safe).

    ``len(channels)`` blocks of a 3×3 convolution and the activation with the given ``strides``
    (default: 1 for the first block, 2 after), then global average pooling (``pool="mean"``) or
    flattening (``pool="flatten"``, needs ``image_size``), an optional hidden layer and a linear
    layer to K logits. Optional spectral normalisation on every layer (a Lipschitz bound that keeps the JEM
    energy smooth).

    Shapes: x (C, in_channels, H, W) -> logits (C, n_classes).

    Args:
        in_channels: image channels.
        n_classes: K.
        channels: widths of the convolutions.
        activation: one of :data:`torchenergy.energies.neural.ACTIVATIONS` (smooth ones suit SGLD).
        spectral_norm: wrap every layer in spectral normalisation.
        hidden: width of a hidden linear layer before the logits (0: none).
        strides: one stride per block (default ``(1, 2, 2, ...)``).
        pool: ``"mean"`` (global average, any image size) or ``"flatten"``.
        image_size: (H, W) of the input, needed for ``pool="flatten"``.
        energy_head: add a scalar head ``b(x)`` (zero-initialised) to every logit. Softmax, hence
            ``p(y|x)``, does not see it, while ``E(x) = −logsumexp f(x)`` shifts by ``−b(x)``: the
            JEM's generative term can set the energy's level without rescaling the class logits
            (and a classifier's weights load into it unchanged, ``strict=False``).

    Example:
        >>> ConvClassifier(1, 10, (8, 16))(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        in_channels: int = 1,
        n_classes: int = 10,
        channels: Sequence[int] = (32, 64, 128),
        activation: str = "silu",
        spectral_norm: bool = False,
        hidden: int = 0,
        strides: Sequence[int] | None = None,
        pool: str = "mean",
        image_size: tuple[int, int] = (28, 28),
        energy_head: bool = False,
    ) -> None:
        super().__init__()
        check_positive_int("in_channels", in_channels)
        check_positive_int("n_classes", n_classes)
        check_positive_int("hidden", hidden, allow_zero=True)
        chans = tuple(channels)
        if not chans:
            raise ValueError("channels must hold at least one width, got ()")
        for c in chans:
            check_positive_int("channels entries", c)
        strd = tuple(strides) if strides is not None else (1,) + (2,) * (len(chans) - 1)
        if len(strd) != len(chans) or any(st not in (1, 2) for st in strd):
            raise ValueError(f"strides must hold {len(chans)} entries of 1 or 2, got {strides!r}")
        if pool not in ("mean", "flatten"):
            raise ValueError(f"pool must be 'mean' or 'flatten', got {pool!r}")

        def sn(layer: nn.Module) -> nn.Module:
            return nn.utils.parametrizations.spectral_norm(layer) if spectral_norm else layer

        layers: list[nn.Module] = []
        prev = in_channels
        h, w = image_size
        for c, stride in zip(chans, strd):
            layers += [sn(nn.Conv2d(prev, c, 3, stride, 1)), make_activation(activation)]
            prev = c
            h, w = (h - 1) // stride + 1, (w - 1) // stride + 1
        self.features = nn.Sequential(*layers)
        self.pool = pool
        if pool == "flatten":
            prev = prev * h * w
        head: list[nn.Module] = []
        if hidden:
            head += [sn(nn.Linear(prev, hidden)), make_activation(activation)]
            prev = hidden
        self.offset: nn.Module | None = None
        if energy_head:
            self.offset = nn.Linear(prev, 1)
            nn.init.zeros_(self.offset.weight)
            nn.init.zeros_(self.offset.bias)
        head.append(sn(nn.Linear(prev, n_classes)))
        self.head = nn.Sequential(*head)
        self.in_channels = in_channels
        self.n_classes = n_classes

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"ConvClassifier expects x of shape (C, {self.in_channels}, H, W), "
                f"got {tuple(x.shape)}"
            )
        h = self.features(x)
        h = h.mean(dim=(2, 3)) if self.pool == "mean" else h.flatten(1)
        if self.offset is None:
            return self.head(h)
        return self.head(h) + self.offset(h)
