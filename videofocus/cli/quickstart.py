"""``videofocus quickstart [--out DIR] [--config C] [--fresh] [KEY=VALUE ...]``."""

from __future__ import annotations

import argparse

from videofocus.cli.arguments import CONFIG_HELP, add_overrides

DESCRIPTION = """\
The whole pipeline on the built-in synthetic benchmark, from nothing to a report: generate the
data, train the glance-only and dense baselines, the three AdaFocus stages (warm-up, recurrent
PPO policy, fine-tune) and the plain-PPO and differentiable policies, evaluate every method on
the validation split, label the validation videos and draw the learned policy's glimpses. It
writes report.json, report.md, tradeoff.png, glimpses.gif and labels.jsonl into OUT and prints
the table. A rerun with the same OUT reuses every finished stage (--fresh retrains them).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    parser.add_argument("--out", default="runs/quickstart", help="output folder")
    parser.add_argument(
        "--config", help=f"the config to run: {CONFIG_HELP} (default: synthetic_tiny)"
    )
    parser.add_argument(
        "--fresh", action="store_true", help="retrain stages already finished in OUT"
    )
    add_overrides(parser)


def run(args: argparse.Namespace) -> int:
    """Run the quickstart into OUT."""
    from videofocus.quickstart import run_quickstart

    run_quickstart(args.out, args.config, args.overrides, resume=not args.fresh)
    return 0
