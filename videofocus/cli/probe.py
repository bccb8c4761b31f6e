"""``videofocus probe PATH ...``: one JSON line of measured metadata per video (no torch)."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Print one JSON line per input: path, ok, fps, num_frames, duration, width, height, codec,
rotation, and error when not ok. The metadata is measured (fps = frames / duration, so variable
frame rates are right; the size as displayed, rotation applied) after reading a sample of frames
through the reader the jobs use, in a child process per file: ok means that label and training
can read it. The exit status is 0 even when some inputs fail.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from videofocus.io.backends import BACKENDS  # numpy and PyAV, no torch

    parser.description = DESCRIPTION
    parser.add_argument("paths", nargs="+", metavar="PATH", help="video files")
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds per file before giving up"
    )
    parser.add_argument(
        "--backend",
        default="auto",
        choices=["auto", *BACKENDS],  # the registry, as it is when the command runs
        help="decoder used for probing; auto reads as the jobs do",
    )


def run(args: argparse.Namespace) -> int:
    """Print one JSON line of metadata per input; exit 0 even when some inputs fail."""
    import json

    from videofocus.io.probe import probe_video

    for path in args.paths:
        result = probe_video(path, timeout=args.timeout, backend=args.backend)
        print(json.dumps(result.to_json()), flush=True)
    return 0
