"""The one experiment runner: a grid of variants -> shared training -> tables and a plot.

``videofocus ablate`` runs grid files; ``videofocus bench policy`` and ``videofocus quickstart``
run the grids they build.

- :mod:`~videofocus.experiment.grid`: the grid file format, validation, variant naming and
  expansion;
- :mod:`~videofocus.experiment.runner`: stage planning by what each stage reads, training with
  shared stages, evaluation, resumable per-variant results;
- :mod:`~videofocus.experiment.report`: ``results.csv``, ``results.md``, ``tradeoff.png``.
"""

from videofocus.experiment.grid import Grid, GridError, Variant, expand_grid, load_grid
from videofocus.experiment.report import write_report
from videofocus.experiment.runner import StagePlan, VariantFailed, plan_stages, run_grid

__all__ = [
    "Grid",
    "GridError",
    "StagePlan",
    "Variant",
    "VariantFailed",
    "expand_grid",
    "load_grid",
    "plan_stages",
    "run_grid",
    "write_report",
]
