"""Machinery shared by the converters: errors, finding video files, probing, writing outputs.

A converter parses its annotation format into :class:`Sample` objects (labels already mapped to
class indices, video file already looked up), then hands them to :func:`write_dataset`, which
probes the files in parallel, clamps segments to the probed duration, and writes
``manifest.jsonl``, ``classes.txt`` and ``rejects.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from videofocus.data.manifest import ManifestRow, write_classes, write_manifest
from videofocus.io.atomic_files import write_atomic

#: Extensions recognised as videos, in order of preference when one stem has several files.
VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".mpg")

_SPLIT_ALIASES = {
    **dict.fromkeys(("train", "training"), "train"),
    **dict.fromkeys(("val", "valid", "validate", "validation"), "val"),
    **dict.fromkeys(("test", "testing"), "test"),
}


class PrepareError(ValueError):
    """A converter cannot run (bad arguments, unreadable input); the CLI exits with code 2."""


class AnnotationError(PrepareError):
    """An annotation file is malformed.

    :param path: the annotation file.
    :param where: the 1-based line number, or a JSON key path such as ``database.abc.subset``.
    :param message: what is wrong, ideally with what was expected.
    """

    def __init__(self, path: str | Path, where: int | str | None, message: str) -> None:
        self.path = str(path)
        self.where = where
        self.message = message
        if where is None:
            loc = self.path
        elif isinstance(where, int):
            loc = f"{self.path}:{where}"
        else:
            loc = f"{self.path} at {where}"
        super().__init__(f"{loc}: {message}")

    def __reduce__(self):
        return (type(self), (self.path, self.where, self.message))


def normalise_split(value: str, path: str | Path, where: int | str | None) -> str:
    """Map a dataset's split name (``training``, ``validate``, ...) to train/val/test."""
    split = _SPLIT_ALIASES.get(value.strip().lower())
    if split is None:
        raise AnnotationError(
            path, where, f"unknown split {value!r}; expected one of train/val/test"
        )
    return split


def read_json(path: str | Path) -> Any:
    """Load a JSON annotation file; syntax errors name the line and column."""
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(path, None, "file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise AnnotationError(
            path, exc.lineno, f"invalid JSON (column {exc.colno}): {exc.msg}"
        ) from None


def read_lines(path: str | Path) -> list[tuple[int, str]]:
    """The non-blank lines of a text file as ``(1-based line number, stripped text)``."""
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(path, None, "file not found")
    with open(path, encoding="utf-8") as fh:
        return [(n, t.strip()) for n, t in enumerate(fh, start=1) if t.strip()]


def strip_video_extension(name: str) -> str:
    """``"abc.mp4"`` -> ``"abc"``; names without a video extension are returned unchanged."""
    root, ext = os.path.splitext(name)
    return root if ext.lower() in VIDEO_EXTENSIONS else name


class VideoIndex:
    """Every video file under a folder (any layout, any of :data:`VIDEO_EXTENSIONS`), found by
    stem in one walk of the tree.

    :param root: the folder to search (recursively, following symlinked folders).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise PrepareError(f"videos folder not found: {self.root}")
        rank = {ext: i for i, ext in enumerate(VIDEO_EXTENSIONS)}
        found: dict[str, list[tuple[int, str]]] = {}
        for folder, _, files in os.walk(self.root, followlinks=True):
            for name in files:
                stem, ext = os.path.splitext(name)
                if ext.lower() in rank:
                    found.setdefault(stem, []).append(
                        (rank[ext.lower()], os.path.join(folder, name))
                    )
        # Several files with one stem: prefer the extension order, then the shortest path.
        self._by_stem = {
            stem: Path(min(hits, key=lambda hit: (hit[0], len(hit[1]), hit[1]))[1])
            for stem, hits in found.items()
        }

    def __len__(self) -> int:
        return len(self._by_stem)

    def find(self, stems: Iterable[str]) -> Path | None:
        """The file of the first stem (file name without extension) that exists, else ``None``."""
        for stem in stems:
            hit = self._by_stem.get(stem)
            if hit is not None:
                return hit
        return None

    def find_relative(self, relpath: str) -> Path | None:
        """A path relative to the root (with or without extension), else its stem anywhere."""
        direct = self.root / relpath
        if direct.suffix.lower() in VIDEO_EXTENSIONS and direct.is_file():
            return direct
        for ext in VIDEO_EXTENSIONS:
            candidate = self.root / (relpath + ext)
            if candidate.is_file():
                return candidate
        return self.find([strip_video_extension(Path(relpath).name)])


@dataclass
class Sample:
    """A parsed annotation entry, before probing.

    :param path: the video file, or ``None`` when no file was found for it.
    :param start: segment start in seconds (``None``: whole video).
    :param end: segment end in seconds; clamped to the probed duration.
    :param reject: a reason to drop the sample found while parsing (unknown label, ...).
    :param may_be_trimmed: the file may be the full video or a clip already cut to
        ``[start, end]`` (the file name does not say); probing decides which
        (:func:`is_trimmed_clip`), and a cut clip keeps no ``start``/``end``.
    """

    id: str
    path: Path | None
    labels: tuple[int, ...]
    split: str | None
    start: float | None = None
    end: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    reject: str | None = None
    may_be_trimmed: bool = False


@dataclass(frozen=True)
class Reject:
    """A sample left out of the manifest, and why."""

    id: str
    path: str | None
    split: str | None
    reason: str

    def to_json(self) -> dict[str, Any]:
        """The ``rejects.jsonl`` line: ``id``, ``path``, ``split``, ``reason``."""
        return asdict(self)


def add_common_arguments(
    parser: argparse.ArgumentParser, videos: bool = True, optional_probe: bool = True
) -> None:
    """``--videos`` (unless ``videos=False``), ``--out``, ``--workers``, ``--timeout`` and
    ``--no-probe`` (unless ``optional_probe=False``: then probing always happens)."""
    if videos:
        parser.add_argument("--videos", required=True, type=Path, help="folder holding the videos")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--workers", type=int, default=4, help="videos processed in parallel")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per probe")
    if optional_probe:
        parser.add_argument(
            "--no-probe",
            dest="probe",
            action="store_false",
            help="skip probing (rows then lack num_frames/fps; missing files are still rejected)",
        )
    else:
        parser.set_defaults(probe=True)


def probe_files(paths: Sequence[Path], workers: int, timeout: float) -> dict:
    """Probe distinct files in parallel threads (each probe runs in a child process); returns
    ``{path: ProbeResult}``."""
    from videofocus.io.probe import probe_video

    results = {}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(probe_video, str(p), timeout): p for p in paths}
        for fut in tqdm(as_completed(futures), total=len(futures), desc="probe", disable=None):
            results[futures[fut]] = fut.result()
    return results


def manifest_path(video: Path, out_dir: Path) -> str:
    """The path written in the manifest: relative when the video lies inside the output folder
    (so the folder can move), absolute otherwise."""
    video, out_dir = video.resolve(), out_dir.resolve()
    try:
        return video.relative_to(out_dir).as_posix()
    except ValueError:
        return str(video)


def is_trimmed_clip(duration: float, start: float, end: float) -> bool:
    """Whether a file of ``duration`` seconds is the clip ``[start, end]`` cut out of its video
    rather than the full video: a cut clip lasts about ``end - start``, a full video at least until
    ``end``. The closer fit wins, a tie going to the cut clip (both then hold the same frames).
    """
    return abs(duration - (end - start)) <= max(0.0, end - duration)


def _finish(sample: Sample, probe: Any, out_dir: Path) -> ManifestRow | str:
    """Turn a sample and its probe into a row, or return the reason to reject it."""
    start, end = sample.start, sample.end
    fps = num_frames = None
    if probe is not None:
        if not probe.ok:
            return f"probe failed: {probe.error}"
        fps, num_frames = probe.fps, probe.num_frames
        duration = probe.duration
        if sample.may_be_trimmed and None not in (start, end, duration):
            if is_trimmed_clip(duration, start, end):
                start = end = None  # the file is the segment: read all of it
        if start is not None and duration is not None:
            if start >= duration:
                return f"segment starts at {start:g}s, past the end of the video ({duration:g}s)"
            end = duration if end is None else min(end, duration)
    return ManifestRow(
        id=sample.id,
        path=manifest_path(sample.path, out_dir),
        labels=sample.labels,
        split=sample.split,
        start=start,
        end=end,
        num_frames=num_frames,
        fps=fps,
        meta=sample.meta,
    )


def build_rows(
    samples: Sequence[Sample],
    out_dir: Path,
    probe: bool = True,
    workers: int = 4,
    timeout: float = 60.0,
) -> tuple[list[ManifestRow], list[Reject]]:
    """Probe the samples' files (each distinct file once) and split samples, in order, into rows
    and rejects (missing file, failed probe, segment starting past the probed end)."""
    ids = Counter(s.id for s in samples)
    dup = [i for i, n in ids.items() if n > 1]
    if dup:
        raise PrepareError(f"duplicate sample ids, e.g. {dup[:3]}")
    files = sorted({s.path for s in samples if s.path is not None and s.reject is None})
    probes = probe_files(files, workers, timeout) if probe else {}
    rows: list[ManifestRow] = []
    rejects: list[Reject] = []
    for s in samples:
        reason: str | None = s.reject or ("missing file" if s.path is None else None)
        if reason is None:
            done = _finish(s, probes.get(s.path), out_dir)
            if isinstance(done, ManifestRow):
                rows.append(done)
                continue
            reason = done
        rejects.append(Reject(s.id, None if s.path is None else str(s.path), s.split, reason))
    return rows, rejects


def write_jsonl(path: Path, objects: Iterable[dict[str, Any]]) -> None:
    """Write JSON Lines atomically (temp file + rename), so a rerun never leaves half a file."""
    write_atomic(path, "".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objects))


def write_dataset(
    name: str, samples: Sequence[Sample], classes: Sequence[str] | None, args: argparse.Namespace
) -> tuple[list[ManifestRow], list[Reject]]:
    """Probe, then write ``manifest.jsonl``, ``classes.txt`` (unless ``classes`` is ``None``) and
    ``rejects.jsonl`` into ``args.out`` and print one line of kept/rejected counts per split.

    :param args: the parsed :func:`add_common_arguments` (``out``, ``probe``, ``workers``,
        ``timeout``).
    """
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, rejects = build_rows(samples, out, args.probe, args.workers, args.timeout)
    if classes is not None:
        write_classes(out / "classes.txt", classes)
    write_manifest(out / "manifest.jsonl", rows)
    write_jsonl(out / "rejects.jsonl", (r.to_json() for r in rejects))
    kept = Counter(r.split for r in rows)
    dropped = Counter(r.split for r in rejects)
    order = [s for s in ("train", "val", "test", None) if s in kept or s in dropped]
    parts = [f"{s or 'no split'} {kept[s]} kept/{dropped[s]} rejected" for s in order]
    print(f"{name}: {', '.join(parts) or 'no samples'} -> {out / 'manifest.jsonl'}", flush=True)
    return rows, rejects
