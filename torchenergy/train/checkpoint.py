"""Checkpoints: atomic writes in a safe format, clear errors on a missing or corrupt file.

A checkpoint is a nested dict of tensors and plain Python values (dict, list, tuple, str, int,
float, bool, None) written with :func:`torch.save` and read back with ``weights_only=True``, so
loading never runs arbitrary pickled code. Writes go to a temporary file in the same folder that
is flushed, synced and then moved over the target with :func:`os.replace` (atomic on POSIX and
Windows), so a crash mid-write leaves the previous checkpoint intact.

Random-number states are stored too (:func:`rng_state` / :func:`set_rng_state`): the torch CPU
generator, any named :class:`torch.Generator`, NumPy's legacy global generator and Python's
``random`` module, so that a resumed run continues bit-identically.

Example:
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "ckpt.pt")
    >>> _ = save_checkpoint(path, {"step": 3, "w": torch.ones(2)})
    >>> load_checkpoint(path)["step"]
    3
"""

from __future__ import annotations

import os
import pickle
import random
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "FORMAT",
    "CheckpointError",
    "check_state_fits",
    "load_checkpoint",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
]

FORMAT = "torchenergy.checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, corrupt, or not a torchenergy checkpoint."""


def save_checkpoint(path: str | os.PathLike[str], payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically (temporary file + ``os.replace``).

    Args:
        path: target file; its folder is created when missing.
        payload: nested dict of tensors and plain Python values (no arbitrary objects: they
            could not be read back with ``weights_only=True``).

    Returns:
        The path written.

    Raises:
        TypeError: if ``payload`` holds a value that a safe load could not restore.
    """
    path = Path(path)
    _check_safe("payload", payload)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"format": FORMAT, **payload}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_checkpoint(
    path: str | os.PathLike[str], *, map_location: str | torch.device | None = "cpu"
) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only=True``).

    Raises:
        CheckpointError: the file does not exist, is not a torchenergy checkpoint, or is corrupt.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {str(path)!r} is a folder, not a file")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} not found (no such file)")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise CheckpointError(
            f"{str(path)!r} is not a torchenergy checkpoint ({_why_unreadable(path, exc)})"
        ) from None
    if not isinstance(data, dict):
        raise CheckpointError(
            f"{str(path)!r} is not a torchenergy checkpoint (it holds a {type(data).__name__})"
        )
    if data.get("format") != FORMAT:
        found = data.get("format")
        what = "no 'format' entry" if found is None else f"format {found!r}"
        raise CheckpointError(
            f"{str(path)!r} is not a torchenergy checkpoint (a dict with {what}, expected "
            f"{FORMAT!r}; a bare state_dict loads with module.load_state_dict)"
        )
    return data


def _why_unreadable(path: Path, exc: Exception) -> str:
    """A short reason for a file that ``torch.load(weights_only=True)`` refused. Torch's own
    message is not passed on: it suggests ``weights_only=False``, which would run the file's
    pickled code."""
    with open(path, "rb") as f:
        head = f.read(4)
    refused = isinstance(exc, pickle.UnpicklingError) and "weights_only" in str(exc).lower()
    if not head:
        return "the file is empty"
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":  # torch zip / legacy pickle
        if refused:
            return "it holds Python objects that a safe load does not run"
        return "a torch file that is truncated or corrupt"
    return "not a file written by torch.save"


_SAFE_SCALARS = (str, int, float, bool, type(None), torch.dtype, torch.Size)


def _check_safe(where: str, value: Any) -> None:
    if isinstance(value, torch.Tensor) or isinstance(value, _SAFE_SCALARS):
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"{where} has a key of type {type(k).__name__}; use str or int")
            _check_safe(f"{where}[{k!r}]", v)
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_safe(f"{where}[{i}]", v)
        return
    raise TypeError(
        f"{where} is a {type(value).__name__}, which a weights_only load cannot restore; "
        "store tensors and plain Python values only"
    )


def rng_state(generators: Mapping[str, torch.Generator] | None = None) -> dict[str, Any]:
    """Snapshot of every random-number state a run may use.

    Args:
        generators: named generators (for example the one passed as ``generator=`` to samplers).

    Returns:
        ``{"torch": ByteTensor, "cuda": [...], "numpy": {...}, "python": [...], "generators":
            {name: ByteTensor}}``, all safe for :func:`save_checkpoint`.
    """
    np_state = np.random.get_state()  # noqa: NPY002 - the legacy global state is what users seed
    py_version, py_internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": str(np_state[0]),
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64).copy()),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": [py_version, list(py_internal), py_gauss],
        "generators": {k: g.get_state() for k, g in (generators or {}).items()},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(
    state: Mapping[str, Any], generators: Mapping[str, torch.Generator] | None = None
) -> None:
    """Restore a snapshot made by :func:`rng_state` (the named generators in place).

    Raises:
        CheckpointError: if a named generator is missing from the snapshot.
    """
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        (
            n["name"],
            n["keys"].numpy().astype(np.uint32),
            n["pos"],
            n["has_gauss"],
            n["cached_gaussian"],
        )
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    saved = state.get("generators", {})
    for name, g in (generators or {}).items():
        if name not in saved:
            raise CheckpointError(
                f"checkpoint has no state for generator {name!r} (it has {sorted(saved)})"
            )
        g.set_state(saved[name])


def check_state_fits(what: str, module: torch.nn.Module, saved: Any) -> None:
    """Refuse another model's weights before loading them: the message names the first tensor
    whose shape differs and both shapes (or the missing and unexpected names).

    Raises:
        CheckpointError: ``saved`` is not a state dict that fits ``module``.
    """
    if not isinstance(saved, Mapping):
        raise CheckpointError(f"the checkpoint's {what} weights are a {type(saved).__name__}")
    own = module.state_dict()
    missing = [k for k in own if k not in saved]
    extra = [k for k in saved if k not in own]
    if missing or extra:
        raise CheckpointError(
            f"checkpoint does not fit this model: {what} tensors missing from the checkpoint "
            f"{missing[:4]}, in the checkpoint but not the model {extra[:4]}"
        )
    for k, v in own.items():
        s = saved[k]
        if isinstance(s, torch.Tensor) and tuple(s.shape) != tuple(v.shape):
            raise CheckpointError(
                f"checkpoint does not fit this model: {what} tensor {k!r} has shape "
                f"{tuple(s.shape)} in the checkpoint and {tuple(v.shape)} in the model"
            )
