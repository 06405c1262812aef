"""The energy parameterisation: a network E(x, t) whose score is −∇ₓE, so diffusion energies compose.

With ``s(x, t) = −∇ₓ E(x, t)`` a diffusion model is an EBM at every noise level: energies add
(a product of experts, ``p_t ∝ Π_k p_t^(k)``), and because the sum of diffused energies is *not*
the diffusion of the product, each level is corrected by MCMC on ``exp(−Σ_k E_k(x, t))``:
MALA or HMC from :mod:`torchenergy.samplers`, which are exact for that level's energy.

Annealed MCMC (Du et al. 2023): for levels t₁ < … < t_L (noise to data), optionally a
DDIM/probability-flow move to the level, then ``n_mcmc`` MALA/HMC steps at it.

Reference: Du et al. (2023), "Reduce, reuse, recycle: compositional generation with energy-based
diffusion models and MCMC"; Salimans & Ho (2021), "Should EBMs model the energy or the score?".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from torchenergy._checks import check_positive, check_positive_int
from torchenergy.diffusion.fields import ModelField
from torchenergy.diffusion.flow_sampler import FlowResult, ddim_step
from torchenergy.diffusion.interpolants import Interpolant, get_interpolant
from torchenergy.energies import energy_and_grad
from torchenergy.samplers import HMC, MALA, run_chain
from torchenergy.types import Generator

__all__ = ["EnergyScoreModel", "ProductEnergy", "annealed_mcmc"]

TimeEnergy = Callable[[Tensor, Tensor], Tensor]


class EnergyScoreModel(nn.Module):
    """A score model ``s(x, t) = −∇ₓ E(x, t)`` from a time-conditioned energy ``E: (C, *D), (C,) -> (C,)``.

    In training mode the gradient keeps its graph (for DSM on the score); in eval mode it is
    detached. ``energy(x, t)`` gives E; ``at(t)`` gives the energy function of one level.

    Example:
        >>> m = EnergyScoreModel(lambda x, t: 0.5 * (x ** 2).sum(-1))
        >>> m(torch.ones(2, 3), torch.zeros(2)).tolist()[0]
        [-1.0, -1.0, -1.0]
    """

    def __init__(self, energy: TimeEnergy | nn.Module) -> None:
        super().__init__()
        if not callable(energy):
            raise TypeError(f"energy must be callable (x, t) -> (C,), got {type(energy).__name__}")
        self.net = energy

    def energy(self, x: Tensor, t: Tensor) -> Tensor:
        """E(x, t), (C,)."""
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device).expand(x.shape[0])
        return self.net(x, t)

    def at(self, t: float | Tensor) -> Callable[[Tensor], Tensor]:
        """The energy ``x -> E(x, t)`` of one level (for MALA/HMC)."""
        return lambda x: self.energy(x, torch.as_tensor(t, dtype=x.dtype, device=x.device))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        keep = self.training and torch.is_grad_enabled()
        if keep:
            xg = x if x.requires_grad else x.detach().requires_grad_(True)
            _, grad = energy_and_grad(lambda u: self.energy(u, t), xg, create_graph=True)
        else:
            _, grad = energy_and_grad(lambda u: self.energy(u, t), x)
        return -grad


class ProductEnergy(EnergyScoreModel):
    """The product of experts ``E(x, t) = Σ_k w_k E_k(x, t)`` (scores add).

    Example:
        >>> e = ProductEnergy([lambda x, t: (x ** 2).sum(-1), lambda x, t: x.sum(-1)])
        >>> e.energy(torch.ones(1, 2), torch.zeros(1)).item()
        4.0
    """

    def __init__(
        self, energies: Sequence[TimeEnergy], weights: Sequence[float] | None = None
    ) -> None:
        energies = list(energies)
        if not energies:
            raise ValueError("ProductEnergy needs at least one energy")
        w = [1.0] * len(energies) if weights is None else [float(v) for v in weights]
        if len(w) != len(energies):
            raise ValueError(f"got {len(energies)} energies but {len(w)} weights")
        parts = [e.energy if isinstance(e, EnergyScoreModel) else e for e in energies]
        super().__init__(lambda x, t: sum(wk * ek(x, t) for wk, ek in zip(w, parts)))
        self.experts = nn.ModuleList(e for e in energies if isinstance(e, nn.Module))


def annealed_mcmc(
    energy: EnergyScoreModel | TimeEnergy,
    x0: Tensor,
    times: Tensor,
    *,
    kernel: str = "mala",
    step_size: float = 0.01,
    n_mcmc: int = 10,
    n_leapfrog: int = 5,
    interpolant: Interpolant | str | None = None,
    generator: Generator = None,
    return_trajectory: bool = False,
) -> FlowResult:
    """Sample ``exp(−E(x, t_L))`` by annealing over levels with a MALA/HMC correction at each.

    At each level t_i (increasing towards the data): if ``interpolant`` is given, first a DDIM
    move from t_{i−1} with the energy's score (``x̂`` and ``ε̂`` from ``s = −∇E``); then
    ``n_mcmc`` steps of MALA (step ε) or HMC (``n_leapfrog`` leapfrog steps of size ε) on
    ``E(·, t_i)``. The step size is scaled per level by ``σ(t_i)²/σ(t_L)²`` when the path has
    ``σ(t_L) > 0``, else used as given.

    Shapes: ``x0`` (C, *D) at ``times[0]``; ``times`` (L,) -> samples (C, *D).

    Example:
        >>> e = EnergyScoreModel(lambda x, t: 0.5 * (x ** 2).sum(-1))
        >>> out = annealed_mcmc(e, torch.zeros(500, 2), torch.tensor([0.5, 1.0]), step_size=0.5,
        ...                     n_mcmc=20, generator=torch.Generator().manual_seed(0))
        >>> abs(out.x.var().item() - 1.0) < 0.2
        True
    """
    if kernel not in ("mala", "hmc"):
        raise ValueError(f"kernel must be 'mala' or 'hmc', got {kernel!r}")
    check_positive("step_size", step_size)
    check_positive_int("n_mcmc", n_mcmc)
    check_positive_int("n_leapfrog", n_leapfrog)
    model = energy if isinstance(energy, EnergyScoreModel) else EnergyScoreModel(energy)
    times = torch.as_tensor(times, dtype=torch.float64)
    interp = get_interpolant(interpolant) if interpolant is not None else None
    scale = torch.ones_like(times)
    if interp is not None:
        sig = interp.coefficients(times).sigma
        if float(sig[-1]) > 0:
            scale = sig**2 / sig[-1] ** 2
    x = x0.detach()
    traj = [x] if return_trajectory else None
    n_eval = 0
    for i in range(times.numel()):
        t = times[i].to(x)
        if interp is not None and i > 0:
            was = model.training
            model.eval()
            x = ddim_step(ModelField(model, interp, "score"), x, times[i - 1].to(x), t)
            model.train(was)
            n_eval += 1
        eps = float(step_size * scale[i])
        fn = model.at(t)
        sampler = MALA(fn, eps) if kernel == "mala" else HMC(fn, eps, n_leapfrog)
        x = run_chain(sampler, x, n_mcmc, generator=generator).x.detach()
        n_eval += n_mcmc * (1 if kernel == "mala" else n_leapfrog)
        if traj is not None:
            traj.append(x)
    return FlowResult(x, torch.stack(traj) if traj else None, times, n_eval)
