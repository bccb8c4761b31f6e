"""Re-encode the synthetic benchmark's test videos with a long keyframe interval, so that
``data.sampling: keyframe`` has something to snap (issue 14's accuracy cost of keyframe sampling).

    python docs/probes/keyframe_accuracy.py SRC_ROOT DST_ROOT --gop 4
    videofocus eval synthetic_tiny --checkpoint RUN/finetune/final data.root=DST_ROOT \
        data.synthetic=null data.val_split=test data.sampling=exact|keyframe

The frames are decoded exactly and re-encoded losslessly (crf 0), so the two evaluations differ
only in which frames they read.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from videofocus.io.reader import VideoReader
from videofocus.io.writer import write_video


def main() -> None:
    """Copy the manifest and classes of SRC_ROOT to DST_ROOT and re-encode its test videos."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("dst", type=Path)
    parser.add_argument("--gop", type=int, default=4, help="keyframe interval in frames")
    parser.add_argument("--split", default="test")
    args = parser.parse_args()
    args.dst.mkdir(parents=True, exist_ok=True)
    shutil.copy(args.src / "classes.txt", args.dst / "classes.txt")
    rows = [json.loads(line) for line in (args.src / "manifest.jsonl").read_text().splitlines()]
    kept = [r for r in rows if r["split"] == args.split]
    with open(args.dst / "manifest.jsonl", "w") as out:
        for row in kept:
            with VideoReader(args.src / row["path"]) as reader:
                n = reader.metadata.num_frames
                frames = reader.read_frames_numpy(list(range(n)))
            write_video(args.dst / row["path"], list(frames), fps=row["fps"], crf=0, gop=args.gop)
            out.write(json.dumps(row) + "\n")
    print(f"{len(kept)} {args.split} videos re-encoded with a keyframe every {args.gop} frames")


if __name__ == "__main__":
    main()
