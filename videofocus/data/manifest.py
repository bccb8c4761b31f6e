"""The one manifest format: JSON Lines, one sample per line, plus a class-vocabulary file.

A row::

    {"id": "v_abc", "path": "videos/v_abc.mp4", "labels": [3, 17], "split": "train",
     "start": 12.5, "end": 30.0, "num_frames": 750, "fps": 25.0, "meta": {...}}

``labels`` are indices into the class vocabulary (``classes.txt``: one class name per line, the
line number is the index); an empty list means unlabelled (test split, inference lists).
``start``/``end`` (seconds) mark a segment of the video; both absent means the whole video.
A relative ``path`` is resolved against the manifest's own folder, so a dataset folder can move.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from videofocus.io.atomic_files import write_atomic

_KNOWN_KEYS = ("id", "path", "labels", "split", "start", "end", "num_frames", "fps", "meta")


class ManifestError(ValueError):
    """A manifest or class file is malformed; names the file and (1-based) line."""

    def __init__(self, path: str | Path, line: int | None, message: str) -> None:
        self.path = str(path)
        self.line = line
        self.message = message
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")

    def __reduce__(self):
        return (type(self), (self.path, self.line, self.message))


@dataclass(frozen=True)
class ManifestRow:
    """One sample: a video (or a segment of one) and its labels."""

    id: str
    path: str
    labels: tuple[int, ...] = ()
    split: str | None = None
    start: float | None = None
    end: float | None = None
    num_frames: int | None = None
    fps: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The row as a JSON-ready dict, leaving out unset optional fields."""
        out = asdict(self)
        out["labels"] = list(self.labels)
        return {k: v for k, v in out.items() if not (v is None or (k == "meta" and not v))}

    def resolved_path(self, root: str | Path | None) -> Path:
        """The video path, resolved against ``root`` (the manifest's folder) when relative."""
        p = Path(self.path)
        return p if p.is_absolute() or root is None else Path(root) / p


def _number(value: Any, key: str, fail) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        fail(f"'{key}' must be a finite number, got {value!r}")
    return float(value)


def parse_row(obj: Any, path: str | Path = "<manifest>", line: int | None = None) -> ManifestRow:
    """Validate one decoded JSON object as a manifest row; raise :class:`ManifestError` if bad."""

    def fail(msg: str):
        raise ManifestError(path, line, msg)

    if not isinstance(obj, dict):
        fail(f"expected a JSON object, got {type(obj).__name__}")
    unknown = sorted(set(obj) - set(_KNOWN_KEYS))
    if unknown:
        fail(f"unknown key(s) {unknown}; allowed: {list(_KNOWN_KEYS)} (put extras under 'meta')")
    for key in ("id", "path"):
        if not isinstance(obj.get(key), str) or not obj[key]:
            fail(f"'{key}' must be a non-empty string, got {obj.get(key)!r}")
    labels = obj.get("labels", [])
    if not isinstance(labels, list) or not all(
        isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in labels
    ):
        fail(f"'labels' must be a list of non-negative class indices, got {labels!r}")
    split = obj.get("split")
    if split is not None and not isinstance(split, str):
        fail(f"'split' must be a string, got {split!r}")
    start = None if obj.get("start") is None else _number(obj["start"], "start", fail)
    end = None if obj.get("end") is None else _number(obj["end"], "end", fail)
    if start is not None and start < 0:
        fail(f"'start' must be >= 0, got {start}")
    if start is not None and end is not None and end <= start:
        fail(f"'end' ({end}) must be greater than 'start' ({start})")
    num_frames = obj.get("num_frames")
    if num_frames is not None and (
        isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 0
    ):
        fail(f"'num_frames' must be a non-negative integer, got {num_frames!r}")
    fps = None if obj.get("fps") is None else _number(obj["fps"], "fps", fail)
    if fps is not None and fps <= 0:
        fail(f"'fps' must be positive, got {fps}")
    meta = obj.get("meta", {})
    if not isinstance(meta, dict):
        fail(f"'meta' must be an object, got {meta!r}")
    return ManifestRow(
        obj["id"], obj["path"], tuple(labels), split, start, end, num_frames, fps, meta
    )


def iter_manifest(path: str | Path) -> Iterator[ManifestRow]:
    """Yield the rows of a JSONL manifest, validating each (blank lines are allowed)."""
    yield from (row for _, row in _iter_numbered(path))


def _decode_line(path: Path, lineno: int, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(
            path, lineno, f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})"
        ) from None


def _iter_numbered(path: str | Path) -> Iterator[tuple[int, ManifestRow]]:
    path = Path(path)
    if not path.is_file():
        raise ManifestError(path, None, "manifest file not found")
    seen: dict[str, int] = {}
    with open(path, "rb") as fh:  # bytes, so that a non-UTF-8 line is named by its number
        for lineno, raw in enumerate(fh, start=1):
            text = _decode_line(path, lineno, raw)
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ManifestError(path, lineno, f"invalid JSON: {exc.msg}") from None
            row = parse_row(obj, path, lineno)
            if row.id in seen:
                raise ManifestError(
                    path, lineno, f"duplicate id {row.id!r} (first on line {seen[row.id]})"
                )
            seen[row.id] = lineno
            yield lineno, row


def read_manifest(
    path: str | Path, num_classes: int | None = None, split: str | None = None
) -> list[ManifestRow]:
    """Read and validate a manifest.

    :param num_classes: when given, every label must be below it.
    :param split: when given, keep only rows of that split.
    """
    rows = []
    for lineno, row in _iter_numbered(path):
        if num_classes is not None and any(lbl >= num_classes for lbl in row.labels):
            raise ManifestError(
                path, lineno, f"label out of range for {num_classes} classes: {list(row.labels)}"
            )
        if split is None or row.split == split:
            rows.append(row)
    return rows


def write_manifest(path: str | Path, rows: Iterable[ManifestRow | dict[str, Any]]) -> int:
    """Write rows atomically (temp file + rename); return how many were written."""
    valid = [parse_row(r, path, i) if isinstance(r, dict) else r for i, r in enumerate(rows, 1)]
    write_atomic(path, "".join(json.dumps(r.to_json(), ensure_ascii=False) + "\n" for r in valid))
    return len(valid)


def read_classes(path: str | Path) -> list[str]:
    """Read a class vocabulary: one name per line, index = line number (0-based)."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(path, None, "class file not found")
    names: list[str] = []
    seen: dict[str, int] = {}
    for lineno, raw in enumerate(path.read_bytes().splitlines(), start=1):
        name = _decode_line(path, lineno, raw).strip()
        if not name:
            raise ManifestError(path, lineno, "empty class name")
        if name in seen:
            raise ManifestError(
                path, lineno, f"duplicate class {name!r} (first on line {seen[name]})"
            )
        seen[name] = lineno
        names.append(name)
    if not names:
        raise ManifestError(path, None, "class file is empty")
    return names


def write_classes(path: str | Path, names: Iterable[str]) -> None:
    """Write a class vocabulary atomically, one name per line."""
    names = list(names)
    if len(set(names)) != len(names):
        raise ValueError("class names must be unique")
    if any(not n.strip() or "\n" in n for n in names):
        raise ValueError("class names must be non-empty single lines")
    write_atomic(path, "".join(n + "\n" for n in names))
