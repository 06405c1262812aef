"""Save a figure atomically as PNG (or any format matplotlib knows from the suffix).

Example:
    >>> import tempfile, os
    >>> from torchenergy.viz import new_axes
    >>> ax = new_axes()
    >>> p = savefig(ax, os.path.join(tempfile.mkdtemp(), "x.png"))
    >>> p.suffix
    '.png'
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["savefig"]


def savefig(fig_or_ax: Any, path: str | os.PathLike[str], *, dpi: int = 110) -> Path:
    """Write the figure holding ``fig_or_ax`` (a Figure, an Axes or an array of axes) to ``path``."""
    obj = fig_or_ax
    if isinstance(obj, np.ndarray):
        obj = obj.flat[0]
    fig = getattr(obj, "figure", obj)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=dpi)
    os.replace(tmp, path)
    return path
