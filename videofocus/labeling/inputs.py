"""What ``videofocus label`` labels: a manifest, a folder of videos, a text list, or one video.

INPUT is read into :class:`LabelItem` s in a deterministic order, so that shards and resumed
runs agree on which item is which:

- ``*.jsonl``: a manifest (:mod:`videofocus.data.manifest`), segments and labels kept;
- a directory: every file with a :data:`VIDEO_EXTENSIONS` suffix below it (symlinks followed,
  each real folder scanned once), id = its posix path relative to the directory, sorted;
- a file with a video suffix: that one video, id = its file name;
- any other file: a text list, one path per line (blank lines and ``#`` comments skipped), id =
  the path as written. mmaction2 video lists (``<video> <label> ...``) keep their labels, an
  identical repeated line is labelled once; rawframe lists are refused.

Relative paths resolve against the manifest's or list's folder. Missing files are not errors
here: the job reports them as error rows, so one never stops a long run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from videofocus.data.manifest import ManifestError, read_manifest

VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    ".mp4 .mkv .webm .avi .mov .m4v .mpg .mpeg .flv .wmv .ts .3gp".split()
)


@dataclass(frozen=True)
class LabelItem:
    """One video (or segment of one) to label: its unique ``id`` in the results, the video file's
    absolute ``path``, a manifest segment's ``start`` and ``end`` in seconds, and its ground-truth
    class indices ``labels`` (empty when INPUT gives none)."""

    id: str
    path: Path
    start: float | None = None
    end: float | None = None
    labels: tuple[int, ...] = ()


def is_video_file(path: str | Path) -> bool:
    """True when ``path`` has one of :data:`VIDEO_EXTENSIONS` (case-insensitive)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def read_inputs(source: str | Path, num_classes: int | None = None) -> list[LabelItem]:
    """Read INPUT (manifest, directory, video file or text list; see the module docs) into label
    items.

    :param num_classes: for manifests, every ground-truth label must be below it.
    :raises FileNotFoundError: ``source`` does not exist.
    :raises ManifestError: duplicate ids (naming both lines), a malformed manifest or list.
    """
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"labeling input not found: {source}")
    source = source.absolute()
    if source.is_dir():
        return _scan_directory(source)
    if source.suffix.lower() == ".jsonl":
        return _read_manifest(source, num_classes)
    if is_video_file(source):
        return [LabelItem(id=source.name, path=source)]
    return _read_list(source)


def _read_manifest(path: Path, num_classes: int | None) -> list[LabelItem]:
    # read_manifest already rejects duplicate ids, naming both lines
    return [
        LabelItem(
            id=row.id,
            path=row.resolved_path(path.parent),
            start=row.start,
            end=row.end,
            labels=row.labels,
        )
        for row in read_manifest(path, num_classes=num_classes)
    ]


def _scan_directory(root: Path) -> list[LabelItem]:
    found: list[str] = []
    seen_dirs: set[str] = set()
    # followlinks=True so symlinked sub-folders count; the realpath guard stops link cycles and
    # keeps a folder linked twice from being labelled twice
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen_dirs:
            dirnames[:] = []
            continue
        seen_dirs.add(real)
        dirnames.sort()  # walk order decides which of two links to one folder wins
        rel_dir = Path(dirpath).relative_to(root)
        found.extend((rel_dir / f).as_posix() for f in filenames if is_video_file(f))
    return [LabelItem(id=rel, path=root / rel) for rel in sorted(found)]


def _read_list(path: Path) -> list[LabelItem]:
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: tolerate a BOM from Windows editors
    except UnicodeDecodeError:
        raise ManifestError(
            path, None, "not a UTF-8 text list (expected one video path per line)"
        ) from None
    items: dict[str, tuple[int, LabelItem]] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        entry = raw.strip()
        if not entry or entry.startswith("#"):
            continue
        item = _list_item(path, lineno, entry)
        if item.id in items:
            first, seen = items[item.id]
            if seen.labels == item.labels:
                continue  # an identical repeat: one video, one row
            raise ManifestError(
                path, lineno, f"duplicate id {item.id!r} (first on line {first}) with other labels"
            )
        items[item.id] = (lineno, item)
    return [item for _, item in items.values()]


def _list_item(path: Path, lineno: int, entry: str) -> LabelItem:
    """One list line: a path, or an mmaction2 ``<video> <label> ...`` line."""
    name, labels = entry, ()
    tokens = entry.split()
    if not _resolve(path, entry).exists() and len(tokens) > 1 and tokens[-1].isdigit():
        count = len(tokens)
        while count > 1 and tokens[count - 1].isdigit():
            count -= 1
        name, labels = " ".join(tokens[:count]), tuple(int(t) for t in tokens[count:])
    video = _resolve(path, name)
    if video.is_dir() or (labels and not is_video_file(name) and len(labels) >= 2):
        raise ManifestError(
            path,
            lineno,
            f"{name!r} looks like a rawframe list line (a folder of extracted frames, a frame "
            "count, a label); videofocus labels videos: list the video files instead",
        )
    return LabelItem(id=name, path=video, labels=labels)


def _resolve(listing: Path, name: str) -> Path:
    video = Path(name)
    return video if video.is_absolute() else listing.parent / video
