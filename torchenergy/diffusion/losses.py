"""Regression losses for flow and diffusion models: flow matching, DSM over time, DDPM noise loss.

Draw ``t ~ U[0, 1)``, ``ε ~ N(0, I)`` (optionally re-paired to the batch by minibatch optimal
transport), form ``x_t = α x_data + σ ε`` and regress the model's prediction on its conditional
target (each is the conditional expectation's unbiased target, so the minimiser is the exact
marginal field)::

    velocity  α' x_data + σ' ε         (conditional flow matching)
    data      x_data
    noise     ε                         (DDPM's simple loss)
    score     −ε/σ                      (denoising score matching, weighted by λ(t))

Score weightings λ(t): ``"sigma2"`` (λ = σ², Song & Ermon; the loss is ``‖σ s + ε‖²``, finite at
σ = 0), ``"likelihood"`` (λ = g², the natural diffusion; Song et al. 2021b), ``"none"`` (λ = 1).
Sums run over event dimensions, means over the batch.

References: Lipman et al. (2023), "Flow matching"; Tong et al. (2024), "Improving and generalizing
flow-based generative models with minibatch optimal transport"; Vincent (2011); Ho et al. (2020);
Song et al. (2021), "Maximum likelihood training of score-based diffusion models".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from torchenergy._checks import check_tensor
from torchenergy.diffusion.fields import PREDICTIONS
from torchenergy.diffusion.interpolants import Interpolant, _bc, get_interpolant
from torchenergy.diffusion.sde import diffusion_coefficient
from torchenergy.types import Generator

__all__ = [
    "COUPLINGS",
    "WEIGHTINGS",
    "DiffusionLossOutput",
    "ddpm_loss",
    "drop_labels",
    "dsm_loss",
    "flow_matching_loss",
    "interpolant_loss",
    "ot_pairing",
]

COUPLINGS = ("independent", "ot")
WEIGHTINGS = ("none", "sigma2", "likelihood")


class DiffusionLossOutput(NamedTuple):
    """Result of the regression losses.

    Attributes:
        loss: scalar, differentiable in the parameters.
        per_sample: per-example weighted squared error (C,), detached.
        t: the times drawn (C,).
        noise: the paired noise ε (C, *D), detached.
    """

    loss: Tensor
    per_sample: Tensor
    t: Tensor
    noise: Tensor


def ot_pairing(x_data: Tensor, noise: Tensor) -> Tensor:
    """Reorder ``noise`` to the exact minibatch OT assignment with ``x_data`` (squared cost).

    Solves ``min_π Σ_i ‖x_data_i − noise_π(i)‖²`` exactly (Hungarian algorithm, scipy) and
    returns ``noise[π]``. Shapes: both (C, *D) -> (C, *D).

    Example:
        >>> x = torch.tensor([[0.0], [10.0]])
        >>> ot_pairing(x, torch.tensor([[9.0], [1.0]])).tolist()
        [[1.0], [9.0]]
    """
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError as err:  # pragma: no cover - optional
        raise ImportError("coupling='ot' needs scipy: pip install scipy") from err
    cost = torch.cdist(x_data.detach().flatten(1).double(), noise.detach().flatten(1).double()) ** 2
    _, cols = linear_sum_assignment(cost.cpu().numpy())
    return noise[torch.as_tensor(cols, device=noise.device)]


def drop_labels(y: Tensor, null_label: int, p: float, *, generator: Generator = None) -> Tensor:
    """Replace each label by ``null_label`` with probability p (classifier-free guidance training).

    Example:
        >>> drop_labels(torch.arange(4), 10, 1.0).tolist()
        [10, 10, 10, 10]
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"label dropout must be in [0, 1], got {p!r}")
    if p == 0.0:
        return y
    drop = torch.rand(y.shape, generator=generator, device=y.device) < p
    return torch.where(drop, torch.full_like(y, null_label), y)


def interpolant_loss(
    model: Callable[..., Tensor],
    x_data: Tensor,
    interpolant: Interpolant | str,
    prediction: str = "velocity",
    *,
    weighting: str = "none",
    coupling: str = "independent",
    t: Tensor | None = None,
    y: Tensor | None = None,
    generator: Generator = None,
) -> DiffusionLossOutput:
    """``mean_i λ(t_i) ‖model(x_t, t) − target‖²`` for any prediction type.

    Shapes: ``x_data`` (C, *D); ``t`` (C,) (drawn U[0, 1) when None); ``y`` (C,) labels.

    Args:
        model: ``(x, t[, y]) -> (C, *D)``.
        x_data: a data batch.
        interpolant: the path.
        prediction: one of ``PREDICTIONS``.
        weighting: λ(t) for ``"score"`` (``"none"``, ``"sigma2"``, ``"likelihood"``); other
            predictions accept ``"none"`` only.
        coupling: ``"independent"`` or ``"ot"`` (exact minibatch OT pairing of noise to data).
        t: times to use instead of drawing them.
        y: labels passed to the model (apply :func:`drop_labels` first for CFG).
        generator: random stream for t and ε.

    Returns:
        :class:`DiffusionLossOutput`.

    Example:
        >>> out = interpolant_loss(lambda x, t: 0 * x, torch.zeros(8, 2), "linear", "data")
        >>> out.loss.item()
        0.0
    """
    check_tensor("x_data", x_data, min_dim=2, floating=True)
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    if weighting != "none" and prediction != "score":
        raise ValueError(f"weighting={weighting!r} applies to prediction='score' only")
    if coupling not in COUPLINGS:
        raise ValueError(f"coupling must be one of {COUPLINGS}, got {coupling!r}")
    interp = get_interpolant(interpolant)
    n = x_data.shape[0]
    if t is None:
        t = torch.rand(n, generator=generator, device=x_data.device, dtype=x_data.dtype)
    elif t.shape != (n,):
        raise ValueError(f"t must have shape ({n},), got {tuple(t.shape)}")
    eps = torch.randn(x_data.shape, generator=generator, device=x_data.device, dtype=x_data.dtype)
    if coupling == "ot":
        eps = ot_pairing(x_data, eps)
    c = interp.coefficients(t)
    a, s, da, ds = (_bc(v, x_data) for v in c[:4])
    xt = a * x_data + s * eps
    out = model(xt, t) if y is None else model(xt, t, y)
    if out.shape != x_data.shape:
        raise ValueError(f"model must return shape {tuple(x_data.shape)}, got {tuple(out.shape)}")
    if prediction == "velocity":
        resid = out - (da * x_data + ds * eps)
        lam = torch.ones_like(t)
    elif prediction == "data":
        resid, lam = out - x_data, torch.ones_like(t)
    elif prediction == "noise":
        resid, lam = out - eps, torch.ones_like(t)
    else:  # score: λ ‖s + ε/σ‖² = (λ/σ²) ‖σ s + ε‖²
        resid = s * out + eps
        if weighting == "sigma2":
            lam = torch.ones_like(t)
        elif weighting == "likelihood":
            lam = diffusion_coefficient(interp, "natural")(t) / c.sigma**2
        else:
            lam = 1.0 / c.sigma**2
    per = lam * resid.flatten(1).square().sum(1)
    return DiffusionLossOutput(per.mean(), per.detach(), t, eps.detach())


def flow_matching_loss(
    model: Callable[..., Tensor],
    x_data: Tensor,
    interpolant: Interpolant | str = "linear",
    *,
    coupling: str = "independent",
    y: Tensor | None = None,
    generator: Generator = None,
) -> DiffusionLossOutput:
    """Conditional flow matching: ``‖v(x_t, t) − (α' x_data + σ' ε)‖²`` (velocity prediction).

    Example:
        >>> out = flow_matching_loss(lambda x, t: 0 * x, torch.zeros(4, 2), coupling="ot")
        >>> out.per_sample.shape
        torch.Size([4])
    """
    return interpolant_loss(
        model, x_data, interpolant, "velocity", coupling=coupling, y=y, generator=generator
    )


def dsm_loss(
    model: Callable[..., Tensor],
    x_data: Tensor,
    interpolant: Interpolant | str = "vp",
    *,
    weighting: str = "sigma2",
    y: Tensor | None = None,
    generator: Generator = None,
) -> DiffusionLossOutput:
    """Denoising score matching over time, ``λ(t) ‖s(x_t, t) + ε/σ‖²`` (score prediction).

    Example:
        >>> out = dsm_loss(lambda x, t: -x, torch.zeros(4, 2), "ve")
        >>> out.loss.item() >= 0
        True
    """
    return interpolant_loss(
        model, x_data, interpolant, "score", weighting=weighting, y=y, generator=generator
    )


def ddpm_loss(
    model: Callable[..., Tensor],
    x_data: Tensor,
    interpolant: Interpolant | str = "vp",
    *,
    y: Tensor | None = None,
    generator: Generator = None,
) -> DiffusionLossOutput:
    """DDPM's simple loss ``‖ε̂(x_t, t) − ε‖²`` (noise prediction), continuous t.

    Example:
        >>> ddpm_loss(lambda x, t: 0 * x, torch.zeros(4, 2)).per_sample.shape
        torch.Size([4])
    """
    return interpolant_loss(model, x_data, interpolant, "noise", y=y, generator=generator)
