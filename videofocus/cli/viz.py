"""``videofocus viz VIDEO (--checkpoint CKPT | --config C) --out FILE``; ``run`` calls
:mod:`videofocus.viz.command` (imported only then: it loads torch)."""

from __future__ import annotations

import argparse

from videofocus.cli.arguments import add_model_arguments, add_overrides
from videofocus.viz import MIN_SIDE

DESCRIPTION = """\
Draw the glimpses a model takes on one video, as a GIF or an MP4.

VIDEO is decoded exactly as inference and labeling do (same sampler, frame size and square crop);
the model's policy runs on it one step per chunk (so an early exit stops at the very step it
happens), and each step becomes one output frame: the glimpse box in its option's colour, skipped
frames dimmed, the running top-1 class and its confidence, and the frames after an early exit
marked "exited".

--config C instead of --checkpoint runs the config's model with RANDOM weights (to check a config
or the drawing, never to read the labels); --policy swaps the model's policy for a heuristic;
--thresholds turns on early exit; trailing KEY=VALUE are dotted config overrides.
"""


def _positive(kind: type):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    parser.add_argument("video", metavar="VIDEO", help="the video to run the model on")
    add_model_arguments(parser, "draw")
    parser.add_argument("--out", required=True, help="output .gif or .mp4")
    parser.add_argument(
        "--fps", type=_positive(float), default=2.0, help="output frames per second"
    )
    parser.add_argument(
        "--scale",
        type=_positive(int),
        help=f"integer upscale of the frames (default: short side >= {MIN_SIDE} px)",
    )
    add_overrides(parser, help="config overrides")


def run(args: argparse.Namespace) -> int:
    """Load the model, draw the video's glimpses, print one line saying what was written."""
    from videofocus.viz.command import run as run_viz

    return run_viz(args)
