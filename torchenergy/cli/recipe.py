"""Config-driven runs: build the energy, sampler, loss step and ``Trainer`` from a ``TrainConfig``.

This is what ``torchenergy train / sample / evaluate / demo`` run, written with the public pieces
a user would combine by hand (``MLPEnergy``, a sampler, a negative maker or a score loss, Adam,
``Trainer``). A run's checkpoint stores its config, so ``load_run(path)`` rebuilds the same run.

Example:
    >>> cfg = TrainConfig(data="moons", hidden=[16], steps=2, batch_size=32, buffer_size=64,
    ...                   n_sampler_steps=2, n_test=100)
    >>> run = build_run(cfg)
    >>> _ = run.trainer.fit(run.data, max_steps=cfg.steps)
    >>> run.trainer.step
    2
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from torchenergy._checks import check_positive_int
from torchenergy.cli.config import TrainConfig
from torchenergy.losses import uniform_noise
from torchenergy.train import Callback, CheckpointError, Trainer, load_checkpoint

__all__ = [
    "EBM",
    "IMAGE_DATA",
    "Run",
    "box_noise",
    "build_run",
    "build_sampler",
    "draw_samples",
    "evaluate_run",
    "event_shape",
    "is_image_run",
    "load_run",
    "noise_box",
]


class EBM(nn.Module):
    """What a run trains: the energy network, plus a learnable ``log_z`` for NCE.

    ``EBM(x)`` is the energy ``(C, *D) -> (C,)``.
    """

    def __init__(self, energy: nn.Module, *, learn_log_z: bool = False) -> None:
        super().__init__()
        self.energy = energy
        self.log_z = nn.Parameter(torch.zeros(())) if learn_log_z else None

    def forward(self, x: Tensor) -> Tensor:
        return self.energy(x)


class Run(NamedTuple):
    """A built run. ``data`` is the training stream (a zero-argument callable or a DataLoader);
    ``heldout`` (n_test, 2) are test points; ``generator`` drives data, buffer and chains."""

    config: TrainConfig
    model: EBM
    sampler: Any
    buffer: Any
    trainer: Trainer
    data: Any
    heldout: Tensor
    generator: torch.Generator


IMAGE_DATA = ("digits",)


def is_image_run(cfg: TrainConfig) -> bool:
    """True for image data (``digits``: (1, 8, 8) in [-1, 1]), False for 2-D densities."""
    return cfg.data in IMAGE_DATA


def event_shape(cfg: TrainConfig) -> tuple[int, ...]:
    """The event shape D of the run's data: (1, 8, 8) for digits, (2,) for 2-D densities."""
    return (1, 8, 8) if is_image_run(cfg) else (2,)


def noise_box(cfg: TrainConfig) -> float:
    """Half-width of the uniform noise chains start from: 1 for images in [-1, 1], else ``box``."""
    return 1.0 if is_image_run(cfg) else cfg.box


def _digits(cfg: TrainConfig) -> tuple[Tensor, Tensor]:
    """Digits scaled to [-1, 1]: (train, held-out) split by a permutation seeded from ``seed``."""
    from torchenergy.data import load_digits

    x, _ = load_digits()
    x = 2.0 * x - 1.0
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(cfg.seed + 1_000_003))
    n_test = min(cfg.n_test, len(x) // 3)
    test, train = x[perm[:n_test]], x[perm[n_test:]]
    if cfg.n_train:
        train = train[: cfg.n_train]
    return train, test


def _energy(cfg: TrainConfig) -> nn.Module:
    from torchenergy.energies import ConvEnergy, MLPEnergy

    shape = event_shape(cfg)
    if cfg.energy == "conv":
        if not is_image_run(cfg):
            raise ValueError(
                f"energy 'conv' needs image data (data=digits), got data={cfg.data!r}; use energy=mlp"
            )
        return ConvEnergy(
            shape[0], tuple(cfg.hidden), activation=cfg.activation, spectral_norm=cfg.spectral_norm
        )
    n_in = 1
    for d in shape:
        n_in *= d
    return MLPEnergy(
        n_in, tuple(cfg.hidden), activation=cfg.activation, spectral_norm=cfg.spectral_norm
    )


def build_sampler(
    cfg: TrainConfig, energy_fn: Any, *, sampler: str | None = None, step_size: float | None = None
) -> Any:
    """The MCMC kernel named by ``cfg.sampler`` (or ``sampler``) bound to ``energy_fn``."""
    from torchenergy import samplers

    name = sampler or cfg.sampler
    eps = cfg.step_size if step_size is None else step_size
    if name == "langevin":
        return samplers.Langevin(energy_fn, step_size=eps, noise_scale=cfg.noise_scale)
    if name == "mala":
        return samplers.MALA(energy_fn, step_size=eps)
    if name == "hmc":
        return samplers.HMC(energy_fn, step_size=eps, n_leapfrog=cfg.n_leapfrog)
    raise ValueError(f"unknown sampler {name!r}; choose one of langevin, mala, hmc")


def box_noise(cfg: TrainConfig) -> Callable[..., Tensor]:
    """Uniform noise on ``[-b, b]`` with ``b = noise_box(cfg)``: ``noise(n, shape, *, generator)``."""
    box = noise_box(cfg)
    return uniform_noise(-box, box)


def _step_fn(
    cfg: TrainConfig, model: EBM, sampler: Any, buffer: Any, g: torch.Generator, data_std: Tensor
) -> Callable[[Tensor], Any]:
    from torchenergy import losses

    energy = model.energy
    if cfg.loss in ("pcd", "cd", "short_run"):
        if cfg.loss == "pcd":
            make = losses.PersistentNegatives(sampler, buffer, n_steps=cfg.n_sampler_steps)
        elif cfg.loss == "cd":
            make = losses.DataNegatives(sampler, n_steps=cfg.n_sampler_steps)
        else:
            make = losses.ShortRunNegatives(
                sampler, n_steps=cfg.n_sampler_steps, noise=box_noise(cfg)
            )
        return lambda x: losses.contrastive_divergence(
            energy, x, make(x, generator=g), l2_reg=cfg.l2_reg
        )
    if cfg.loss == "sm":
        return lambda x: losses.score_matching(energy, x)
    if cfg.loss == "ssm":
        return lambda x: losses.sliced_score_matching(
            energy, x, n_projections=cfg.n_projections, generator=g
        )
    if cfg.loss == "dsm":
        return lambda x: losses.denoising_score_matching(energy, x, sigma=cfg.sigma, generator=g)
    if cfg.loss == "eqm":
        return lambda x: losses.equilibrium_matching(energy, x, generator=g)
    if cfg.loss == "nce":
        scale = (cfg.nce_noise_scale * data_std.clamp_min(0.05)).to(torch.get_default_dtype())
        noise = torch.distributions.Independent(
            torch.distributions.Normal(torch.zeros_like(scale), scale), scale.dim()
        )
        return lambda x: losses.noise_contrastive_estimation(
            energy, x, noise, log_z=model.log_z, generator=g
        )
    raise ValueError(f"unknown loss {cfg.loss!r}")  # pragma: no cover - validated by TrainConfig


def build_run(cfg: TrainConfig, *, callbacks: Sequence[Callback] = ()) -> Run:
    """Build model, sampler, buffer, optimiser, data and ``Trainer`` for ``cfg`` (seeded by ``cfg.seed``).

    Raises:
        ValueError: unknown data set (the message lists the choices).
    """
    from torchenergy.data import sample_toy
    from torchenergy.train.distributed import distributed_loader, is_distributed, rank_seed

    ddp = is_distributed()  # under torchrun: per-rank streams, a DistributedSampler, DDP
    g = torch.Generator().manual_seed(rank_seed(cfg.seed) if ddp else cfg.seed)
    if is_image_run(cfg):
        train_x, heldout = _digits(cfg)
        if cfg.batch_size > len(train_x):
            raise ValueError(
                f"batch_size ({cfg.batch_size}) exceeds the {len(train_x)} training images"
            )
    else:
        heldout = sample_toy(
            cfg.data, cfg.n_test, generator=torch.Generator().manual_seed(cfg.seed + 1_000_003)
        )
        train_x = sample_toy(cfg.data, cfg.n_train, generator=g) if cfg.n_train else None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        energy = _energy(cfg)
    model = EBM(energy, learn_log_z=cfg.loss == "nce")
    sampler = build_sampler(cfg, energy)
    buffer = None
    state: dict[str, Any] = {}
    shape = event_shape(cfg)
    if cfg.loss == "pcd":
        from torchenergy.samplers import ReplayBuffer

        noise = box_noise(cfg)
        buffer = ReplayBuffer(
            cfg.buffer_size,
            shape,
            lambda n, generator=None: noise(n, shape, generator=generator),
            reinit_prob=cfg.reinit_prob,
            generator=g,
        )
        state["buffer"] = buffer
    if train_x is not None and ddp:
        data: Any = distributed_loader(train_x, cfg.batch_size, seed=cfg.seed)
    elif train_x is not None:
        data = torch.utils.data.DataLoader(
            train_x, batch_size=cfg.batch_size, shuffle=True, drop_last=True, generator=g
        )
    else:
        data = lambda: sample_toy(cfg.data, cfg.batch_size, generator=g)  # noqa: E731
    data_std = heldout.std(0)
    step_fn = _step_fn(cfg, model, sampler, buffer, g, data_std)
    opt = torch.optim.Adam(
        model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay
    )
    trainer = Trainer(
        model,
        opt,
        step_fn,
        grad_clip=cfg.grad_clip,
        ema=cfg.ema,
        callbacks=callbacks,
        generators={"main": g},
        state=state,
        config=cfg.to_dict(),
        distributed=ddp,
    )
    return Run(cfg, model, sampler, buffer, trainer, data, heldout, g)


def load_run(path: str | os.PathLike[str]) -> Run:
    """Rebuild a run from its checkpoint (config, weights, EMA, buffer, RNG states, step).

    Raises:
        CheckpointError: missing/corrupt file, or one without a run config.
    """
    ckpt = load_checkpoint(path)
    config = ckpt.get("config")
    if not isinstance(config, dict) or not config:
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds no run config (not written by `torchenergy train`)"
        )
    try:
        cfg = TrainConfig.from_dict(config)
    except ValueError as exc:
        raise CheckpointError(f"checkpoint {str(path)!r} has an invalid config: {exc}") from None
    run = build_run(cfg)
    run.trainer.load_state_dict(ckpt)
    return run


def _eval_energy(run: Run) -> nn.Module:
    """The energy to sample and evaluate: the EMA weights when the run keeps an average."""
    ema = run.trainer.ema
    return ema.module.energy if ema is not None else run.model.energy


def draw_samples(
    run: Run,
    n: int,
    *,
    n_steps: int = 500,
    sampler: str | None = None,
    step_size: float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``n`` model samples (n, *D): chains from uniform noise on the box, ``n_steps`` MCMC steps."""
    from torchenergy.samplers import run_chain

    check_positive_int("n", n)
    check_positive_int("n_steps", n_steps)
    energy = _eval_energy(run)
    kernel = build_sampler(run.config, energy, sampler=sampler, step_size=step_size)
    x0 = box_noise(run.config)(n, event_shape(run.config), generator=generator)
    return run_chain(kernel, x0, n_steps, generator=generator, on_divergence="warn").x


def evaluate_run(
    run: Run,
    *,
    n_samples: int = 2000,
    n_steps: int = 500,
    seed: int = 0,
    grid: int = 400,
    samples: Tensor | None = None,
) -> dict[str, Any]:
    """Held-out metrics: for 2-D data the exact NLL (log Z by grid quadrature on the box, with the
    mass on the box's edge); for all data the unbiased MMD² (RBF kernel, median heuristic), sliced
    Wasserstein and energy distance between model samples and held-out data (flattened).

    ``samples`` (n, *D) are used when given (else :func:`draw_samples` with ``n_steps``).

    Returns:
        ``{"heldout_nll", "log_z", "edge_mass" (2-D only), "mmd2", "sliced_wasserstein",
        "energy_distance", "step"}`` (floats, nats for the NLL; ``step`` an int).
    """
    from torchenergy import metrics

    g = torch.Generator().manual_seed(seed)
    energy = _eval_energy(run)
    box = run.config.box
    heldout = run.heldout
    if samples is None:
        samples = draw_samples(run, min(n_samples, len(heldout)), n_steps=n_steps, generator=g)
    n = min(len(samples), len(heldout))
    flat_s, flat_ref = samples[:n].flatten(1), heldout[:n].flatten(1)
    out: dict[str, Any] = {}
    if not is_image_run(run.config):
        out.update(_grid_metrics(metrics, energy, heldout, box, grid))
    out["mmd2"] = float(metrics.mmd2(flat_s, flat_ref))
    out["sliced_wasserstein"] = float(metrics.sliced_wasserstein(flat_s, flat_ref, generator=g))
    out["energy_distance"] = float(metrics.energy_distance(flat_s, flat_ref))
    out["step"] = run.trainer.step  # an int, also in the JSON
    return out


def _grid_metrics(
    metrics: Any, energy: Any, heldout: Tensor, box: float, grid: int
) -> dict[str, float]:
    # log Z on the box; the edge mass is reported rather than refused (an EBM early in training
    # can put mass at the box's border; the NLL is then that of the model restricted to the box)
    logz = metrics.grid_log_partition(energy, bounds=box, resolution=grid, max_edge_mass=1.0)
    return {
        "heldout_nll": float(metrics.grid_nll(energy, heldout, log_z=logz.log_z)),
        "log_z": float(logz.log_z),
        "edge_mass": float(logz.edge_mass),
    }
