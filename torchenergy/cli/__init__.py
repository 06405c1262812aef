"""The application: the ``torchenergy`` command line and the config-driven runs behind it.

``torchenergy/train`` is the library loop (``Trainer``, callbacks, checkpoints, EMA,
distributed); this package builds runs on it from a flat config and drives them from the command
line (also ``python -m torchenergy``):

* :mod:`torchenergy.cli.main`: argparse and dispatch (``train / sample / evaluate / demo``);
* :mod:`torchenergy.cli.config`: ``TrainConfig``, the JSON-able description of a run;
* :mod:`torchenergy.cli.recipe`: ``build_run`` / ``load_run`` / ``draw_samples`` / ``evaluate_run``;
* :mod:`torchenergy.cli.run_io`: ``train_to_folder`` (config.json, log.csv, checkpoint.pt);
* :mod:`torchenergy.cli.demo` and :mod:`torchenergy.cli.demos`: what ``torchenergy demo`` runs.

The library never imports this package.
"""

from torchenergy.cli.config import TrainConfig
from torchenergy.cli.main import main
from torchenergy.cli.recipe import EBM, Run, build_run, draw_samples, evaluate_run, load_run
from torchenergy.cli.run_io import train_to_folder

__all__ = [
    "EBM",
    "Run",
    "TrainConfig",
    "build_run",
    "draw_samples",
    "evaluate_run",
    "load_run",
    "main",
    "train_to_folder",
]
