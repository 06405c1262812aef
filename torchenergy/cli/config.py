"""``TrainConfig``: the flat, JSON-able description of a training run (what the CLI trains).

A config is read from a JSON or TOML file (TOML through :mod:`tomllib`, Python 3.11+) and
``key=value`` overrides; values are parsed as JSON (``lr=1e-3``, ``hidden=[64,64]``,
``ema=null``, ``grad_clip=1``) and fall back to plain strings (``data=moons``). Every field is
type-checked and range-checked, and unknown keys are refused with the list of known ones.

Example:
    >>> cfg = TrainConfig.from_dict({"data": "moons"}, overrides=["lr=0.01", "hidden=[32,32]"])
    >>> cfg.lr, cfg.hidden
    (0.01, [32, 32])
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ENERGIES",
    "LOSSES",
    "SAMPLERS",
    "SEED_MAX",
    "TrainConfig",
    "load_config_file",
    "parse_overrides",
]

LOSSES = ("pcd", "cd", "short_run", "sm", "ssm", "dsm", "nce", "eqm")
SAMPLERS = ("langevin", "mala", "hmc")
ENERGIES = ("mlp", "conv")
SEED_MAX = 2**63 - 1


@dataclass
class TrainConfig:
    """Hyperparameters of a run (data set, energy network, loss, sampler, optimiser).

    Attributes:
        data: a 2-D toy density name (``torchenergy.data``), e.g. ``"8gaussians"``, ``"moons"``,
            or ``"digits"`` (sklearn 8×8 digits scaled to [-1, 1]; no grid NLL then).
        n_train: size of a fixed training set; 0 draws a fresh batch every step (endless data).
        n_test: held-out points for ``evaluate`` (drawn with ``seed + 1``).
        box: half-width of the square ``[-box, box]²`` used for plots, grid NLL and noise.
        energy, hidden, activation, spectral_norm: the energy network, ``"mlp"`` (``MLPEnergy``,
            ``hidden`` = layer widths) or ``"conv"`` (``ConvEnergy`` for digits, ``hidden`` =
            channels).
        loss: one of :data:`LOSSES` (pcd, cd, short_run: contrastive divergence with persistent,
            data-started or noise-started chains; sm / ssm / dsm: exact, sliced, denoising
            score matching; nce: noise-contrastive estimation; eqm: equilibrium matching).
        sampler, step_size, n_sampler_steps, noise_scale, n_leapfrog: the MCMC kernel for the
            CD negatives and for ``sample`` (Langevin rule ``x' = x − ε∇E + sqrt(2ε)·noise_scale·z``).
        buffer_size, reinit_prob: the replay buffer of ``pcd``.
        l2_reg: weight of the L2 penalty on energies (CD losses).
        sigma: noise level of ``dsm``; n_projections: of ``ssm``; nce_noise_scale: std of the
            Gaussian NCE noise relative to the data's.
        lr, beta1, beta2, weight_decay, batch_size, steps, grad_clip, ema: the optimiser (Adam),
            the budget and the training sugar (``ema`` a decay or None).
        seed: seeds the weights, the data and every sampler generator.
        log_every, snapshot_every, checkpoint_every: CSV/TensorBoard, animation, checkpoint cadence.
    """

    data: str = "8gaussians"
    n_train: int = 0
    n_test: int = 5000
    box: float = 4.5
    energy: str = "mlp"
    hidden: list[int] = field(default_factory=lambda: [128, 128])
    activation: str = "silu"
    spectral_norm: bool = False
    loss: str = "pcd"
    sampler: str = "langevin"
    step_size: float = 0.01
    n_sampler_steps: int = 20
    noise_scale: float = 1.0
    n_leapfrog: int = 5
    buffer_size: int = 10000
    reinit_prob: float = 0.05
    l2_reg: float = 0.1
    sigma: float = 0.1
    n_projections: int = 1
    nce_noise_scale: float = 1.5
    lr: float = 1e-3
    beta1: float = 0.0
    beta2: float = 0.999
    weight_decay: float = 0.0
    batch_size: int = 256
    steps: int = 2000
    grad_clip: float | None = None
    ema: float | None = None
    seed: int = 0
    log_every: int = 10
    snapshot_every: int = 0
    checkpoint_every: int = 0

    def __post_init__(self) -> None:
        self.validate()

    @classmethod
    def keys(cls) -> list[str]:
        """The names of all fields."""
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(
        cls, values: Mapping[str, Any] | None = None, *, overrides: Sequence[str] = ()
    ) -> TrainConfig:
        """Build from a mapping plus ``key=value`` overrides (overrides win).

        Raises:
            ValueError: unknown key, malformed override, or a value of the wrong type or range.
        """
        merged = dict(values or {})
        merged.update(parse_overrides(overrides))
        unknown = sorted(set(merged) - set(cls.keys()))
        if unknown:
            raise ValueError(
                f"unknown config key(s) {unknown}; known keys: {', '.join(cls.keys())}"
            )
        types = {f.name: f.type for f in dataclasses.fields(cls)}
        return cls(**{k: _coerce(k, v, types[k]) for k, v in merged.items()})

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (lists for sequences)."""
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """Range and choice checks; raises ValueError naming the field and the value."""
        _choice("loss", self.loss, LOSSES)
        _choice("sampler", self.sampler, SAMPLERS)
        _choice("energy", self.energy, ENERGIES)
        for name in ("box", "step_size", "noise_scale", "sigma", "lr", "nce_noise_scale"):
            _positive(name, getattr(self, name))
        for name in ("l2_reg", "weight_decay"):
            _positive(name, getattr(self, name), allow_zero=True)
        for name in (
            "n_test",
            "n_sampler_steps",
            "n_leapfrog",
            "buffer_size",
            "n_projections",
            "batch_size",
            "log_every",
        ):
            _positive_int(name, getattr(self, name))
        for name in ("n_train", "steps", "snapshot_every", "checkpoint_every", "seed"):
            _positive_int(name, getattr(self, name), allow_zero=True)
        if self.seed > SEED_MAX:  # torch generators take at most 64 bits (seed + offsets)
            raise ValueError(f"seed must be an int in [0, 2**63 - 1], got {self.seed!r}")
        for name in ("beta1", "beta2", "reinit_prob"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0 or (name != "reinit_prob" and v >= 1.0):
                raise ValueError(f"{name} must lie in [0, 1), got {v!r}")
        if self.grad_clip is not None:
            _positive("grad_clip", self.grad_clip)
        if self.ema is not None and not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema must be a decay in [0, 1) or null, got {self.ema!r}")
        if not self.hidden or any(
            isinstance(h, bool) or not isinstance(h, int) or h <= 0 for h in self.hidden
        ):
            raise ValueError(
                f"hidden must be a non-empty list of positive ints, got {self.hidden!r}"
            )
        if self.loss == "pcd" and self.batch_size > self.buffer_size:
            raise ValueError(
                f"batch_size ({self.batch_size}) must be <= buffer_size ({self.buffer_size}) for pcd"
            )
        if self.n_train and self.n_train < self.batch_size:
            raise ValueError(
                f"n_train ({self.n_train}) must be 0 or >= batch_size ({self.batch_size})"
            )


def _choice(name: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")


def _positive(name: str, value: Any, *, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")


def _positive_int(name: str, value: Any, *, allow_zero: bool = False) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < 0
        or (value == 0 and not allow_zero)
    ):
        bound = ">= 0" if allow_zero else ">= 1"
        raise ValueError(f"{name} must be an int {bound}, got {value!r}")


def _coerce(name: str, value: Any, typ: Any) -> Any:
    """Check a parsed value against the field's annotation (ints widen to floats)."""
    typ = str(typ)
    optional = "None" in typ
    if value is None:
        if optional:
            return None
        raise ValueError(f"{name} cannot be null")
    if typ.startswith("float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name} must be a number, got {value!r}")
        return float(value)
    if typ == "int":
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an int, got {value!r}")
        return value
    if typ == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, got {value!r}")
        return value
    if typ == "str":
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a string, got {value!r}")
        return value
    if typ.startswith("list"):
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{name} must be a list like [64, 64], got {value!r}")
        return list(value)
    return value  # pragma: no cover - every field is covered above


def parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """``["lr=1e-3", "data=moons"]`` -> ``{"lr": 0.001, "data": "moons"}`` (JSON, else string).

    Raises:
        ValueError: an item without ``=`` or with an empty key.
    """
    out: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"bad override {item!r}; expected key=value, e.g. lr=0.001")
        raw = raw.strip()
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            lowered = raw.lower()
            out[key] = {"true": True, "false": False, "none": None}.get(lowered, raw)
    return out


def load_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a ``.json`` or ``.toml`` config file into a dict.

    Raises:
        ValueError: missing file, unknown suffix, or a file that does not parse (with the reason).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file {str(path)!r} not found")
    text = path.read_text()
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        elif path.suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            raise ValueError(f"config file {str(path)!r} must end in .json or .toml")
    except (json.JSONDecodeError, ValueError) as exc:
        if str(exc).startswith("config file"):
            raise
        raise ValueError(f"config file {str(path)!r} does not parse: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(
            f"config file {str(path)!r} must hold a table/object, got {type(data).__name__}"
        )
    return data
