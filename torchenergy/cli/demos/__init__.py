"""Demos that run the library end to end and write plots and tables (``torchenergy demo``)."""

from torchenergy.cli.demos.samplers import run_sampler_demo

__all__ = ["run_sampler_demo"]
