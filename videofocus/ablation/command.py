"""Run a grid of policy ablations; write results.csv, results.md and tradeoff.png.

``videofocus ablate GRID.yaml --out DIR [--dry-run] [--no-progress] [KEY=VALUE ...]`` expands the
grid (see :mod:`videofocus.ablation.grid`) into named variants, trains each variant's stages under
``DIR/stages/`` (a stage shared by several variants is trained once), evaluates every variant on
the validation split (one row per exit-threshold entry) and rewrites the report after each
variant. Running the same command again reuses every finished stage and result, and continues an
interrupted stage. ``--dry-run`` lists the variants and their stages without training.

Shipped grids: ``configs/ablations/*.yaml``, e.g.
``videofocus ablate configs/ablations/reward.yaml --out runs/ablations/reward``.
"""

from __future__ import annotations

import argparse
import sys

from videofocus.ablation.grid import expand_grid, load_grid
from videofocus.ablation.report import format_markdown
from videofocus.ablation.runner import describe_plan, run_grid

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    """Run (or list) the grid; print the results table.

    A failed variant raises :class:`~videofocus.ablation.runner.VariantFailed` (its cause
    chained), which ``videofocus`` reports in one line with the status of the cause;
    ``videofocus --debug ablate ...`` shows where it broke.
    """

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    grid = load_grid(args.grid)
    if args.dry_run:
        print(describe_plan(expand_grid(grid, args.overrides), args.out))
        return 0
    rows = run_grid(grid, args.out, args.overrides, progress=not args.no_progress, log=log)
    print(format_markdown(rows))
    return 0
