"""``videofocus eval CONFIG --checkpoint DIR [--manifest M] [--json OUT] [KEY=VALUE ...]``
(not called ``eval``, which would shadow the builtin where it is imported)."""

from __future__ import annotations

import argparse

from videofocus.cli.arguments import add_config_arguments

DESCRIPTION = """\
Evaluate a checkpoint on the config's validation rows (or every row of --manifest) and print the
result as JSON: top-1 and top-5 as hit@k (a video counts when any of its labels is in the top k),
mAP over every label of a row, GMACs per video counted from the actions taken, and videos/s.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    add_config_arguments(parser)
    parser.add_argument(
        "--checkpoint", required=True, help="a checkpoint folder (e.g. runs/x/finetune/final)"
    )
    parser.add_argument("--manifest", help="evaluate all rows of this manifest instead of val rows")
    parser.add_argument("--json", metavar="OUT", help="also write the result to this file")


def run(args: argparse.Namespace) -> int:
    """Evaluate; print the result (and write it to --json)."""
    from videofocus.config import load_config
    from videofocus.evaluation.evaluate import evaluate_checkpoint, write_json

    cfg = load_config(args.config, args.overrides)
    write_json(evaluate_checkpoint(cfg, args.checkpoint, args.manifest), args.json)
    return 0
