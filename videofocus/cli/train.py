"""``videofocus train CONFIG --stage S [--resume] [KEY=VALUE ...]``."""

from __future__ import annotations

import argparse

from videofocus.cli.arguments import add_config_arguments

DESCRIPTION = """\
Train one stage of a config, or all of them, and print one JSON line per stage (its checkpoint,
seconds and metrics). Stages: dense and glance_only (the baselines), warmup (the encoders on
random glimpses), policy (the recurrent PPO policy), finetune (the encoders on the policy's
glimpses), differentiable (the AdaFocusV2-style policy trained through the crop), and all:
[dense ->] warmup -> policy -> finetune, skipping the stages already finished. torchrun launches
it on many GPUs or nodes.
"""

STAGES = ["warmup", "dense", "glance_only", "policy", "finetune", "differentiable", "all"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    add_config_arguments(parser)
    parser.add_argument(
        "--stage",
        default="warmup",
        choices=STAGES,
        help="the stage to train; all: [dense ->] warmup -> policy -> finetune, skipping "
        "finished stages",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="skip a finished stage; continue a supervised one from its last checkpoint",
    )


def run(args: argparse.Namespace) -> int:
    """Train the stage(s); print one JSON line per stage."""
    import json

    from videofocus.config import load_config
    from videofocus.train.pipeline import run_stages

    cfg = load_config(args.config, args.overrides)
    # `all` always resumes: finished stages are kept, an interrupted one continues.
    resume = args.resume or args.stage == "all"
    for result in run_stages(cfg, [args.stage], resume=resume):
        seconds = round(result.seconds, 1)
        line = {"stage": result.stage, "checkpoint": str(result.final_dir), "seconds": seconds}
        print(json.dumps({**line, **result.metrics}), flush=True)
    return 0
