"""Policy ablations: a YAML grid of variants -> shared training -> tables and a trade-off plot.

- :mod:`~videofocus.ablation.grid`: the grid file format, validation, variant naming and expansion;
- :mod:`~videofocus.ablation.runner`: stage planning by config hash, training with shared stages,
  evaluation, resumable per-variant results;
- :mod:`~videofocus.ablation.report`: ``results.csv``, ``results.md``, ``tradeoff.png``;
- :mod:`~videofocus.ablation.command`: ``videofocus ablate GRID.yaml --out DIR``.
"""

from videofocus.ablation.grid import Grid, GridError, Variant, expand_grid, load_grid
from videofocus.ablation.report import write_report
from videofocus.ablation.runner import StagePlan, VariantFailed, plan_stages, run_grid

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
