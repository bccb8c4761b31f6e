"""``videofocus ablate GRID.yaml --out DIR [--dry-run] [--no-progress] [KEY=VALUE ...]``;
``run`` imports the experiment runner (:mod:`videofocus.experiment`, torch) only then."""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

from videofocus.cli.arguments import add_overrides

DESCRIPTION = """\
Run a grid of policy ablations; write results.csv, results.md and tradeoff.png.

The grid YAML expands into named variants. Each variant's stages train under DIR/stages/ (a stage
shared by several variants is trained once), every variant is evaluated on the held-out test
split when the data has one, else on the validation split (one row per exit-threshold entry; each
result.json also keeps the validation numbers, which is what a choice between variants reads),
and the report is rewritten after each variant. Running the
same command again reuses every finished stage and result, and continues an interrupted stage.
--dry-run lists the variants and their stages without training.

Shipped grids: configs/ablations/*.yaml, e.g.
videofocus ablate configs/ablations/reward.yaml --out runs/ablations/reward
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    parser.add_argument("grid", type=Path, help="grid YAML, e.g. configs/ablations/reward.yaml")
    parser.add_argument(
        "--out", type=Path, required=True, help="output folder; finished work in it is reused"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="list the variants and their stages, train nothing"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_overrides(
        parser,
        help="dotted overrides for every variant (after the grid's own), e.g. train.device=cpu",
    )


def run(args: argparse.Namespace) -> int:
    """Run (or list) the grid; print the results table. A failed variant raises
    :class:`~videofocus.experiment.runner.VariantFailed`, reported with its cause's status."""
    from videofocus.experiment.grid import expand_grid, load_grid
    from videofocus.experiment.report import format_markdown
    from videofocus.experiment.runner import describe_plan, run_grid

    grid = load_grid(args.grid)
    if args.dry_run:
        print(describe_plan(expand_grid(grid, args.overrides), args.out))
        return 0
    log = functools.partial(print, file=sys.stderr, flush=True)
    rows = run_grid(grid, args.out, args.overrides, progress=not args.no_progress, log=log)
    print(format_markdown(rows))
    return 0
