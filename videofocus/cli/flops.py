"""``videofocus flops CONFIG [--json] [KEY=VALUE ...]``."""

from __future__ import annotations

import argparse

from videofocus.cli.arguments import add_config_arguments

DESCRIPTION = """\
Per-component and per-video GMACs (multiply-accumulates, the papers' "GFLOPs") of a config's
model: the networks are built with shapes only (no weights, no data) and measured by the same
cost table that eval, label and bench use.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    add_config_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    """Print the cost report."""
    from videofocus.evaluation.flops_report import run_flops

    return run_flops(args.config, args.overrides, args.json)
