"""Results JSONL -> formats other tools read: a flat CSV and ActivityNet's classification JSON
(derived views of the complete JSONL record, written atomically)."""

from __future__ import annotations

import csv
import io
import math
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from videofocus.data.manifest import ManifestError
from videofocus.data.video_ids import bare_youtube_id
from videofocus.io.atomic_files import write_atomic
from videofocus.labeling.inputs import is_video_file
from videofocus.labeling.results import json_bytes

CSV_COLUMNS: tuple[str, ...] = (
    "id",
    "path",
    "status",
    "top1",
    "top1_score",
    "labels",
    "scores",
    "exit_step",
    "frames_read",
    "sampled_times",
    "gmacs",
    "decode_ms",
    "model_ms",
    "error",
)
#: joins the ranked ``labels`` and ``scores`` inside one CSV cell
LIST_SEPARATOR = ";"
#: the ``#<k>`` ending of segment-level manifest ids (``data_prep.activitynet --level segment``)
_SEGMENT_SUFFIX = re.compile(r"#\d+$")


class ExportError(ManifestError):
    """Result rows that cannot be written in an export format; names the export file (a
    :class:`ManifestError`, so the command line prints it as one line, without a traceback)."""


def _cell(value: Any) -> str:
    """A CSV cell: empty for a missing / null value, ``str`` otherwise (floats keep full
    precision, so the CSV round-trips the JSONL's numbers exactly)."""
    return "" if value is None else str(value)


def csv_row(row: dict[str, Any]) -> dict[str, str]:
    """One result row as the CSV's :data:`CSV_COLUMNS`: ``labels`` and ``scores`` hold the ranked
    predictions joined by ``;``, ``top1``/``top1_score`` the first, ``sampled_times`` the frame
    times joined by ``;``; missing values are empty.

    :raises ValueError: a label name contains ``;`` (the ``labels`` cell would be ambiguous).
    """
    labels = [str(x) for x in row.get("labels") or []]
    scores = list(row.get("scores") or [])
    bad = [x for x in labels if LIST_SEPARATOR in x]
    if bad:
        raise ValueError(
            f"row {row.get('id')!r}: label {bad[0]!r} contains {LIST_SEPARATOR!r}, the CSV's "
            f"list separator"
        )
    out = {key: _cell(row.get(key)) for key in CSV_COLUMNS}
    out["top1"] = labels[0] if labels else ""
    out["top1_score"] = _cell(scores[0]) if scores else ""
    out["labels"] = LIST_SEPARATOR.join(labels)
    out["scores"] = LIST_SEPARATOR.join(_cell(s) for s in scores)
    out["sampled_times"] = LIST_SEPARATOR.join(_cell(t) for t in row.get("sampled_times") or [])
    return out


def export_csv(rows: Iterable[dict[str, Any]], path: str | Path) -> int:
    """Write result rows as a CSV with a header line (:func:`csv_row`); returns the row count."""
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    rows = list(rows)
    writer.writerows(map(csv_row, rows))
    write_atomic(path, buf.getvalue().encode("utf-8"))
    return len(rows)


def activitynet_video_id(row_id: str) -> str:
    """The bare YouTube id under which ActivityNet's evaluator looks up a result row.

    Row ids are manifest ids (``abc-_123456``, ``v_abc-_123456``, segment rows
    ``abc-_123456#2``) or, for folder and list inputs, file paths (``sub/v_abc-_123456.mp4``,
    ``/data/abc-_123456.mkv``): the folder, a video extension, a segment's ``#<k>`` and the
    ``v_`` prefix (:func:`~videofocus.data.video_ids.bare_youtube_id`) are removed.
    """
    return _video_key(row_id)[0]


def _video_key(row_id: str) -> tuple[str, bool]:
    """``(bare video id, whether the row is a segment of that video)``."""
    name = row_id.replace("\\", "/").rsplit("/", 1)[-1]
    if is_video_file(name):
        name = os.path.splitext(name)[0]
    video = _SEGMENT_SUFFIX.sub("", name)
    return bare_youtube_id(video), video != name


def export_activitynet(
    rows: Iterable[dict[str, Any]], path: str | Path, version: str = "VERSION 1.3"
) -> int:
    """Write ActivityNet's untrimmed-classification submission JSON.

    ``{"version": ..., "results": {id: [{"label": name, "score": s}, ...]}, "external_data":
    ...}`` of the ``ok`` rows, each keyed by its bare YouTube id (:func:`activitynet_video_id`)
    as the official evaluator expects. The segment rows of one video (``<id>#<k>``) become one
    entry, each label with its best score over them, ranked by score.

    :returns: the number of videos written.
    :raises ExportError: two rows that are not segments of one video map to the same id, or a
        row's labels and scores differ in number.
    """
    results: dict[str, dict[str, float]] = {}  # video id -> label -> best score
    first: dict[str, tuple[str, bool]] = {}  # video id -> (its first row id, a segment row)
    for row in rows:
        if row.get("status") != "ok":
            continue
        row_id = str(row["id"])
        vid, segment = _video_key(row_id)
        if vid in first and not (segment and first[vid][1]):
            raise ExportError(
                path,
                None,
                f"duplicate id: rows {first[vid][0]!r} and {row_id!r} are both ActivityNet "
                f"video {vid!r} (its bare YouTube id); export them to separate files",
            )
        first.setdefault(vid, (row_id, segment))
        labels, scores = row.get("labels") or [], row.get("scores") or []
        if len(labels) != len(scores):
            raise ExportError(
                path, None, f"row {row_id!r}: {len(labels)} labels but {len(scores)} scores"
            )
        best = results.setdefault(vid, {})
        for name, score in zip(labels, scores, strict=True):
            best[name] = max(float(score), best.get(name, -math.inf))
    doc = {
        "version": version,
        "results": {
            vid: [
                {"label": name, "score": score}
                for name, score in sorted(best.items(), key=lambda item: -item[1])
            ]
            for vid, best in results.items()
        },
        "external_data": {"used": False, "details": ""},
    }
    write_atomic(path, json_bytes(doc))
    return len(results)
