"""FCVID (239 classes, multi-label) from AdaFocus-style comma lists or mmaction2 lists.

A thin layer over ``videofocus prepare list``: the lists are ``<frame_dir>,<num_frames>,<label>
[,<label>...]`` (or ``--format mmaction``: ``<relpath> <label> [<label> ...]``), labels index
into the class-name file, videos are found by the frame folder's basename under --videos.

Writes into --out:
  manifest.jsonl   one row per listed video found and decodable (multi-label)
  classes.txt      the names of --classes (239 for FCVID)
  rejects.jsonl    missing files, probe errors
"""

from __future__ import annotations

import argparse
from pathlib import Path

from videofocus.data_prep.lists import list_dataset
from videofocus.data_prep.probing import (
    PrepareError,
    VideoIndex,
    add_common_arguments,
    write_dataset,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``videofocus prepare fcvid``."""
    parser.add_argument("--train", type=Path, help="training list")
    parser.add_argument("--val", type=Path, help="validation list")
    parser.add_argument("--test", type=Path, help="test list")
    parser.add_argument(
        "--classes", required=True, type=Path, help="class names, one a line (239 for FCVID)"
    )
    parser.add_argument(
        "--format",
        choices=("adafocus-comma", "mmaction"),
        default="adafocus-comma",
        help="list format (default: adafocus-comma)",
    )
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run the FCVID conversion; return the exit code (2 on bad input)."""
    lists = [
        (p, s) for s, p in (("train", args.train), ("val", args.val), ("test", args.test)) if p
    ]
    if not lists:
        raise PrepareError("give at least one of --train, --val, --test")
    samples, classes = list_dataset(lists, args.format, args.classes, VideoIndex(args.videos))
    write_dataset("fcvid", samples, classes, args)
    return 0
