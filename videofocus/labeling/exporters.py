"""Results JSONL -> formats other tools read: a flat CSV and ActivityNet's classification JSON.

The JSONL written by the job stays the complete record; exports are derived views, written
atomically so a half-written export never looks finished.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from videofocus.labeling.results import write_atomic

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
    "gmacs",
    "decode_ms",
    "model_ms",
    "error",
)
#: joins the ranked ``labels`` and ``scores`` inside one CSV cell
LIST_SEPARATOR = ";"


def _cell(value: Any) -> str:
    """A CSV cell: empty for a missing / null value, ``str`` otherwise (floats keep full
    precision, so the CSV round-trips the JSONL's numbers exactly)."""
    return "" if value is None else str(value)


def csv_row(row: dict[str, Any]) -> dict[str, str]:
    """One result row as the CSV's columns (see :data:`CSV_COLUMNS`).

    :raises ValueError: a label name contains ``;``, which would make the ``labels`` cell
        ambiguous (use the JSONL or the ActivityNet export for such vocabularies).
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
    return out


def export_csv(rows: Iterable[dict[str, Any]], path: str | Path) -> int:
    """Write result rows (ok and error alike) as a CSV with a header line.

    Columns: :data:`CSV_COLUMNS`; ``labels`` and ``scores`` hold the ranked predictions joined
    by ``;``, ``top1``/``top1_score`` the first of them; missing values are empty cells.

    :param rows: result rows, e.g. :func:`~videofocus.labeling.results.read_results`.
    :param path: the CSV file (written atomically).
    :returns: the number of rows written.
    """
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    count = 0
    for row in rows:
        writer.writerow(csv_row(row))
        count += 1
    write_atomic(path, buf.getvalue().encode("utf-8"))
    return count


def export_activitynet(
    rows: Iterable[dict[str, Any]], path: str | Path, version: str = "VERSION 1.3"
) -> int:
    """Write ActivityNet's untrimmed-classification submission JSON.

    ``{"version": ..., "results": {id: [{"label": name, "score": s}, ...]},
    "external_data": {"used": false, "details": ""}}``, with only the rows of status ``ok``.
    Videos are keyed by the row's ``id`` as is: ActivityNet's own evaluation expects the YouTube
    id, which is the id of our video-level ActivityNet manifests (``data_prep.activitynet
    --level video``); segment-level ids (``<id>#<k>``) are not what that evaluation looks up.

    :param rows: result rows.
    :param path: the JSON file (written atomically).
    :param version: the ``version`` field the evaluation checks.
    :returns: the number of videos written.
    :raises ValueError: two ok rows with the same id.
    """
    results: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("status") != "ok":
            continue
        vid = row["id"]
        if vid in results:
            raise ValueError(f"duplicate id {vid!r} in the rows to export")
        labels, scores = row.get("labels") or [], row.get("scores") or []
        if len(labels) != len(scores):
            raise ValueError(f"row {vid!r}: {len(labels)} labels but {len(scores)} scores")
        results[vid] = [{"label": name, "score": s} for name, s in zip(labels, scores, strict=True)]
    doc = {
        "version": version,
        "results": results,
        "external_data": {"used": False, "details": ""},
    }
    write_atomic(path, json.dumps(doc, ensure_ascii=False, allow_nan=False).encode("utf-8"))
    return len(results)
