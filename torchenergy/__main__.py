"""``python -m torchenergy``: the command line (see :mod:`torchenergy.cli`)."""

from torchenergy.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    raise SystemExit(main())
