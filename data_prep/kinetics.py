"""Kinetics 400/600/700 from the official CSVs.

Reads ``label,youtube_id,time_start,time_end,split`` CSVs (an extra ``is_cc`` column is fine) and
finds each clip as ``<youtube_id>_<start:06d>_<end:06d>.<ext>`` (flat or in any class folder),
read whole, or ``<youtube_id>.<ext>``, a full download whose row gets ``start``/``end`` =
``time_start``/``time_end`` (unless its probed duration says it was already cut to the clip;
with --no-probe it always gets them). Class index = position of the label in the sorted set of
training labels (or the order of ``--classes``). Test rows are unlabelled.

Writes into --out:
  manifest.jsonl   one row per clip found and decodable (id = <youtube_id>_<start>_<end>)
  classes.txt      the sorted training labels
  rejects.jsonl    clips left out: missing file, probe error, label not among the classes
"""

from __future__ import annotations

import argparse
import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from videofocus.data_prep.probing import (
    AnnotationError,
    PrepareError,
    Sample,
    VideoIndex,
    add_common_arguments,
    normalise_split,
    write_dataset,
)

from videofocus.data.manifest import read_classes

_REQUIRED = ("youtube_id", "time_start", "time_end", "split")  # test CSVs may lack "label"


@dataclass(frozen=True)
class KineticsClip:
    """One CSV row. ``label`` is ``None`` for the test split."""

    youtube_id: str
    time_start: int
    time_end: int
    split: str
    label: str | None

    @property
    def clip_name(self) -> str:
        """The file stem of the trimmed clip, also used as the manifest id."""
        return f"{self.youtube_id}_{self.time_start:06d}_{self.time_end:06d}"


def _seconds(text: str, path: Path, line: int, key: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise AnnotationError(path, line, f"'{key}' must be a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise AnnotationError(path, line, f"'{key}' must be a non-negative number, got {text!r}")
    return int(value)


def read_kinetics_csv(path: str | Path) -> list[KineticsClip]:
    """Parse one Kinetics CSV; raise :class:`AnnotationError` naming the line of a bad row."""
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(path, None, "file not found")
    clips = []
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [k for k in _REQUIRED if k not in (reader.fieldnames or [])]
        if missing:
            expected = "label," + ",".join(_REQUIRED)
            raise AnnotationError(path, 1, f"header lacks {missing}; expected {expected}")
        for row in reader:
            line = reader.line_num
            if None in row or any(v is None for v in row.values()):
                fields = ",".join(reader.fieldnames or [])
                raise AnnotationError(
                    path, line, f"expected {len(fields.split(','))} fields ({fields})"
                )
            split = normalise_split(row["split"], path, line)
            youtube_id = row["youtube_id"].strip()
            if not youtube_id:
                raise AnnotationError(path, line, "empty youtube_id")
            label = (row.get("label") or "").strip() or None
            if label is None and split != "test":
                raise AnnotationError(path, line, f"empty label in the {split} split")
            start = _seconds(row["time_start"], path, line, "time_start")
            end = _seconds(row["time_end"], path, line, "time_end")
            if end <= start:
                raise AnnotationError(
                    path, line, f"time_end ({end}) must exceed time_start ({start})"
                )
            clips.append(
                KineticsClip(youtube_id, start, end, split, label if split != "test" else None)
            )
    return clips


def training_classes(clips: Iterable[KineticsClip]) -> list[str]:
    """The sorted set of labels of the training clips."""
    return sorted({c.label for c in clips if c.split == "train" and c.label is not None})


def clip_samples(
    clips: Sequence[KineticsClip], classes: Sequence[str], videos: VideoIndex
) -> list[Sample]:
    """Look up each clip's file and map its label to a class index.

    A trimmed clip (``<youtube_id>_<start>_<end>.<ext>``) is read whole; a ``<youtube_id>.<ext>``
    file becomes the segment ``[time_start, time_end]`` of the video, unless probing finds it
    lasts as long as the clip (:func:`~videofocus.data_prep.probing.is_trimmed_clip`). Clips
    listed twice (the same clip in two CSVs) are kept once.
    """
    index = {name: i for i, name in enumerate(classes)}
    samples: dict[str, Sample] = {}
    for clip in clips:
        if clip.clip_name in samples:
            continue
        labels: tuple[int, ...] = ()
        reject = None
        if clip.label is not None:
            if clip.label in index:
                labels = (index[clip.label],)
            else:
                reject = f"label {clip.label!r} is not among the {len(classes)} classes"
        path = videos.find([clip.clip_name])
        segment: dict[str, Any] = {}
        if path is None:  # the full download, or one already cut to the clip
            path = videos.find([clip.youtube_id])
            segment = dict(
                start=float(clip.time_start), end=float(clip.time_end), may_be_trimmed=True
            )
        samples[clip.clip_name] = Sample(
            clip.clip_name, path, labels, clip.split, reject=reject, **segment
        )
    return list(samples.values())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``videofocus prepare kinetics``."""
    parser.add_argument(
        "--csv", action="append", required=True, type=Path, help="a Kinetics CSV (repeatable)"
    )
    parser.add_argument(
        "--classes", type=Path, help="class vocabulary to use instead of the sorted training labels"
    )
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run the Kinetics conversion; return the exit code (2 on bad input)."""
    clips = [clip for path in args.csv for clip in read_kinetics_csv(path)]
    classes = read_classes(args.classes) if args.classes else training_classes(clips)
    if not classes:
        raise PrepareError("no training rows to take the classes from; pass --classes FILE")
    samples = clip_samples(clips, classes, VideoIndex(args.videos))
    write_dataset("kinetics", samples, classes, args)
    return 0
