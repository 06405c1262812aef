"""The ``torchenergy`` command line: ``demo`` (more commands arrive with training)."""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="torchenergy", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the demo and write plots and metrics")
    demo.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        print(f"torchenergy demo: nothing to run yet (output folder {args.out})", file=sys.stderr)
        return 0
    return 2
