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
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} not found (no such file)")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupt or not a safe torch checkpoint ({reason[:200]})"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(
            f"{str(path)!r} is not a torchenergy checkpoint (format {found!r}, expected {FORMAT!r})"
        )
    return data


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
