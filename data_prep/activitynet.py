"""ActivityNet v1.3 from activity_net.v1-3.min.json (or BSN/BMN's anet_anno_action.json), at
video or segment level.

Two annotation layouts are read:
  official   ``{"version", "taxonomy", "database": {<id>: {"subset", "duration",
             "annotations": [{"segment": [s, e], "label"}, ...]}}}``
  BSN / BMN  ``{"v_<id>": {"subset", "duration_second", "duration_frame", "feature_frame",
             "annotations": [...]}}`` (anet_anno_action.json, gt.json: no ``database`` wrapper)
Classes are the sorted names of every label used in the annotations (the 200 leaf classes for the
official file). Videos are found as ``v_<id>.<ext>`` or ``<id>.<ext>`` anywhere under --videos;
manifest ids are the bare YouTube ids, without ``v_`` (the official evaluator's convention), in
both layouts.

  --level video    one row per video; labels = the set of its segments' labels (multi-label)
  --level segment  one row per segment, id ``<id>#<k>`` (k = its position in the JSON), with
                   start/end in seconds clamped to the probed duration (the JSON's duration can
                   be wrong); a segment starting past the real end of the file is rejected

Testing videos have no annotations: they become unlabelled whole-video rows, split "test".

Writes into --out:
  manifest.jsonl   the rows
  classes.txt      the sorted label names
  rejects.jsonl    missing files, probe errors, empty segments, segments past the end
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from videofocus.data_prep.probing import (
    AnnotationError,
    Sample,
    VideoIndex,
    add_common_arguments,
    normalise_split,
    read_json,
    write_dataset,
)

from videofocus.data.video_ids import bare_youtube_id


@dataclass(frozen=True)
class Segment:
    """One annotated segment: ``[start, end]`` seconds and its label name."""

    start: float
    end: float
    label: str


@dataclass(frozen=True)
class Entry:
    """One video of the ``database``."""

    youtube_id: str
    split: str
    duration: float | None
    segments: tuple[Segment, ...]


def _number(value: Any, path: Path, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise AnnotationError(path, key, f"expected a finite number, got {value!r}")
    return float(value)


def _segment(obj: Any, path: Path, key: str) -> Segment:
    if not isinstance(obj, dict):
        raise AnnotationError(path, key, f"expected an object, got {type(obj).__name__}")
    seg = obj.get("segment")
    if not isinstance(seg, list) or len(seg) != 2:
        raise AnnotationError(path, f"{key}.segment", f"expected [start, end], got {seg!r}")
    start = _number(seg[0], path, f"{key}.segment[0]")
    end = _number(seg[1], path, f"{key}.segment[1]")
    label = obj.get("label")
    if not isinstance(label, str) or not label.strip():
        raise AnnotationError(path, f"{key}.label", f"expected a class name, got {label!r}")
    return Segment(start, end, label.strip())


def read_activitynet(path: str | Path) -> list[Entry]:
    """Parse ActivityNet annotations in either layout (see the module docstring); errors name
    the key path of the bad value (``database.<id>.subset``, or ``v_<id>.subset`` for BSN)."""
    path = Path(path)
    data = read_json(path)
    if isinstance(data, dict) and "database" in data:
        database = data["database"]
        if not isinstance(database, dict):
            raise AnnotationError(
                path, "database", "expected an object mapping video ids to entries"
            )
        return _entries(database, path, "database.", "duration", lambda key: key)
    if isinstance(data, dict) and any(
        isinstance(v, dict) and "duration_second" in v for v in data.values()
    ):
        return _entries(data, path, "", "duration_second", bare_youtube_id)
    raise AnnotationError(
        path,
        "database",
        "expected ActivityNet's {'database': {<id>: entry}} or BSN/BMN's "
        "{'v_<id>': {'duration_second': ..., 'subset': ..., 'annotations': [...]}}",
    )


def _entries(
    database: dict[str, Any],
    path: Path,
    prefix: str,
    duration_key: str,
    video_id: Callable[[str], str],
) -> list[Entry]:
    """The entries of a ``{key: entry}`` mapping; ``video_id`` turns a key into the YouTube id."""
    entries = []
    first_key: dict[str, str] = {}
    for name, obj in database.items():
        key = f"{prefix}{name}"
        youtube_id = video_id(name)
        if youtube_id in first_key:
            raise AnnotationError(
                path, key, f"video {youtube_id!r} is also annotated at {first_key[youtube_id]}"
            )
        first_key[youtube_id] = key
        if not isinstance(obj, dict):
            raise AnnotationError(path, key, f"expected an object, got {type(obj).__name__}")
        if not isinstance(obj.get("subset"), str):
            raise AnnotationError(
                path, f"{key}.subset", f"expected a string, got {obj.get('subset')!r}"
            )
        split = normalise_split(obj["subset"], path, f"{key}.subset")
        duration = obj.get(duration_key)
        duration = None if duration is None else _number(duration, path, f"{key}.{duration_key}")
        annotations = obj.get("annotations", [])
        if not isinstance(annotations, list):
            raise AnnotationError(path, f"{key}.annotations", "expected a list")
        segments = tuple(
            _segment(a, path, f"{key}.annotations[{k}]") for k, a in enumerate(annotations)
        )
        entries.append(Entry(youtube_id, split, duration, segments if split != "test" else ()))
    return entries


def entry_samples(
    entries: Sequence[Entry], classes: Sequence[str], videos: VideoIndex, level: str, probe: bool
) -> list[Sample]:
    """One sample per video (``level="video"``: labelled with the set of its segments' labels) or
    per segment (testing videos and videos without segments: one whole-video sample).

    Without probing, segments are clamped to the JSON's duration, the best length known then.
    """
    index = {name: i for i, name in enumerate(classes)}
    samples = []
    for e in entries:
        path = videos.find([f"v_{e.youtube_id}", e.youtube_id])
        if level == "video" or not e.segments:  # testing videos have no segments
            labels = tuple(sorted({index[s.label] for s in e.segments}))
            reject = "no annotations" if e.split != "test" and not labels else None
            samples.append(Sample(e.youtube_id, path, labels, e.split, reject=reject))
            continue
        for k, seg in enumerate(e.segments):
            start, end = max(seg.start, 0.0), seg.end
            reject = f"empty segment [{seg.start:g}, {seg.end:g}]" if end <= start else None
            if not probe and e.duration is not None and reject is None:
                if start >= e.duration:
                    reject = f"segment starts at {start:g}s, past the duration ({e.duration:g}s)"
                end = min(end, e.duration)
            samples.append(
                Sample(
                    f"{e.youtube_id}#{k}",
                    path,
                    (index[seg.label],),
                    e.split,
                    start=start,
                    end=end,
                    meta={"video_id": e.youtube_id},
                    reject=reject,
                )
            )
    return samples


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``videofocus prepare activitynet``."""
    parser.add_argument(
        "--annotations",
        required=True,
        type=Path,
        help="activity_net.v1-3.min.json, or BSN/BMN's anet_anno_action.json",
    )
    parser.add_argument(
        "--level",
        choices=("video", "segment"),
        default="video",
        help="one row per video or segment",
    )
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run the ActivityNet v1.3 conversion; return the exit code (2 on bad input)."""
    entries = read_activitynet(args.annotations)
    classes = sorted({seg.label for e in entries for seg in e.segments})
    samples = entry_samples(entries, classes, VideoIndex(args.videos), args.level, args.probe)
    write_dataset(f"activitynet ({args.level})", samples, classes, args)
    return 0
