"""Plots (matplotlib, headless Agg figures): energy landscapes, densities, samples over data,
score fields, image grids, training curves and training animations, reliability diagrams and
OOD score histograms.

Every plotting function takes an optional ``ax`` and returns the axes it drew on; save with
:func:`savefig`.
"""

from torchenergy.viz.animation import Frame, save_training_animation, snapshot_frame
from torchenergy.viz.calibration import plot_reliability_diagram, plot_score_histograms
from torchenergy.viz.curves import plot_training_curves, read_log
from torchenergy.viz.grid import Grid, energy_grid, score_grid
from torchenergy.viz.image_animation import save_image_animation
from torchenergy.viz.images import make_grid, plot_image_grid
from torchenergy.viz.landscape import new_axes, plot_density, plot_energy, plot_samples
from torchenergy.viz.save import savefig
from torchenergy.viz.score import plot_score_field

__all__ = [
    "Frame",
    "Grid",
    "energy_grid",
    "make_grid",
    "new_axes",
    "plot_density",
    "plot_energy",
    "plot_image_grid",
    "plot_reliability_diagram",
    "plot_samples",
    "plot_score_field",
    "plot_score_histograms",
    "plot_training_curves",
    "read_log",
    "save_image_animation",
    "save_training_animation",
    "savefig",
    "score_grid",
    "snapshot_frame",
]
