"""Mini-Kinetics (the 200-class Kinetics-400 subset of AR-Net and AdaFocus) from CSVs + id lists.

The id lists give one YouTube id per line; lines from AR-Net style lists
(``<path>/<youtube_id>_<start>_<end> <num_frames> <label>``, comma- or semicolon-separated too)
are read as the path's stem, without the ``_<start>_<end>`` suffix. The split comes from the list
an id is in; classes are the sorted labels of the training ids found in the CSVs (whether or not
their files were downloaded, so the indices do not depend on the download).

Writes into --out:
  manifest.jsonl   one row per listed clip found and decodable
  classes.txt      the sorted training labels (200 for the real lists)
  rejects.jsonl    listed clips left out: not in any CSV, missing file, probe error
"""

from __future__ import annotations

import argparse
import re
from dataclasses import replace
from pathlib import Path, PurePosixPath

from videofocus.data_prep.kinetics import (
    KineticsClip,
    clip_samples,
    read_kinetics_csv,
    training_classes,
)
from videofocus.data_prep.probing import (
    AnnotationError,
    PrepareError,
    Sample,
    VideoIndex,
    add_common_arguments,
    read_lines,
    strip_video_extension,
    write_dataset,
)

_CLIP_SUFFIX = re.compile(r"_\d{6}_\d{6}$")


def parse_id_line(text: str) -> str:
    """The YouTube id in one line of an id list (plain id or AR-Net style list line)."""
    for sep in (",", ";"):
        if sep in text:
            text = text.split(sep)[0]
    tokens = text.split()
    # AR-Net lines end with integer fields (frame count, label); the path may hold spaces.
    while len(tokens) > 1 and tokens[-1].lstrip("-").isdigit():
        tokens.pop()
    name = PurePosixPath(" ".join(tokens).replace("\\", "/").rstrip("/")).name
    return _CLIP_SUFFIX.sub("", strip_video_extension(name))


def read_id_list(path: str | Path) -> list[str]:
    """The YouTube ids of an id list, in order, without repeats."""
    ids: dict[str, None] = {}
    for line, text in read_lines(path):
        youtube_id = parse_id_line(text)
        if not youtube_id:
            raise AnnotationError(path, line, f"no YouTube id in {text!r}")
        ids.setdefault(youtube_id)
    return list(ids)


def select_clips(
    clips: list[KineticsClip], ids_by_split: dict[str, list[str]]
) -> tuple[list[KineticsClip], list[Sample]]:
    """The CSV clips of the listed ids, with the split of their list; listed ids with no CSV row
    become rejects."""
    by_id: dict[str, list[KineticsClip]] = {}
    for clip in clips:
        by_id.setdefault(clip.youtube_id, []).append(clip)
    chosen: list[KineticsClip] = []
    absent: list[Sample] = []
    for split, ids in ids_by_split.items():
        for youtube_id in ids:
            if youtube_id not in by_id:
                absent.append(Sample(youtube_id, None, (), split, reject="id not in the CSVs"))
                continue
            chosen += [replace(clip, split=split) for clip in by_id[youtube_id]]
    return chosen, absent


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``videofocus prepare minikinetics``."""
    parser.add_argument(
        "--csv", action="append", required=True, type=Path, help="a Kinetics-400 CSV (repeatable)"
    )
    parser.add_argument("--train-ids", required=True, type=Path, help="training id list")
    parser.add_argument("--val-ids", type=Path, help="validation id list")
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run the Mini-Kinetics conversion; return the exit code (2 on bad input)."""
    clips = [clip for path in args.csv for clip in read_kinetics_csv(path)]
    lists = {"train": args.train_ids, "val": args.val_ids}
    ids = {split: read_id_list(path) for split, path in lists.items() if path is not None}
    chosen, absent = select_clips(clips, ids)
    classes = training_classes(chosen)
    if not classes:
        raise PrepareError(f"none of the ids in {args.train_ids} has a labelled row in the CSVs")
    samples = clip_samples(chosen, classes, VideoIndex(args.videos)) + absent
    write_dataset("minikinetics", samples, classes, args)
    return 0
