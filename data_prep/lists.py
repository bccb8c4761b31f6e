"""Lists of earlier adaptive-inference code (AdaFocus, AR-Net) and mmaction2 video lists.

Formats (--format):
  adafocus-comma      <frame_dir>,<num_frames>,<label>[,<label>...]   ActivityNet, FCVID
  adafocus-semicolon  <frame_dir>;<num_frames>;<label>[;<label>...]   Kinetics
  adafocus-space      <frame_dir> <num_frames> <label>                 Mini-Kinetics (the path may
                                                                       hold spaces)
  mmaction            <relpath> [<label> ...]                          video lists, or unlabelled
A frame_dir is mapped to the video with its basename (any video extension) under --videos, trying
the frame_dir as a path relative to --videos first; an mmaction relpath is relative to --videos.
Ids are the frame_dir's basename, or the relpath without extension. The frame counts in the list
(of extracted frames) are ignored: probing measures the videos. Labels are indices into
--classes, or, without it, classes are named by index ("0", "1", ...).

A line repeating an earlier one (same video, same labels, as in mmaction2's own test lists) is
kept once, and the number of repeats is reported; one id with another video or other labels is an
error naming both lines. mmaction2 rawframe lists (``<frame_dir> <total_frames> <label>...``, a
folder of extracted JPEGs per line) are refused: this project decodes the videos themselves.

Several lists may be given, each with its split: --list train.txt --split train --list val.txt
--split val.

Writes into --out:
  manifest.jsonl   one row per listed video found and decodable
  classes.txt      --classes' names, or "0".."N-1"
  rejects.jsonl    missing files, probe errors
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from videofocus.data_prep.probing import (
    AnnotationError,
    PrepareError,
    Sample,
    VideoIndex,
    add_common_arguments,
    normalise_split,
    read_lines,
    strip_video_extension,
    write_dataset,
)

from videofocus.data.manifest import read_classes

FORMATS = ("adafocus-comma", "adafocus-semicolon", "adafocus-space", "mmaction")
RAWFRAME_LIST = (
    "this is an mmaction2 rawframe list (<frame_dir> <total_frames> <label>...: folders of "
    "extracted frames), not a video list; videofocus decodes the videos themselves: give the "
    "video list (<video path> <label>...) instead"
)


@dataclass(frozen=True)
class ListEntry:
    """One list line: the frame folder or video path as written, and its class indices."""

    line: int
    name: str
    labels: tuple[int, ...]

    def sample_id(self, fmt: str) -> str:
        """Frame-folder basename (AdaFocus formats) or relpath without extension (mmaction)."""
        posix = self.name.replace("\\", "/").rstrip("/")
        if fmt == "mmaction":
            return strip_video_extension(posix)
        return strip_video_extension(PurePosixPath(posix).name)


def _labels(fields: Sequence[str], path: Path, line: int) -> tuple[int, ...]:
    for field in (f.strip() for f in fields):
        if not field.isdigit():
            raise AnnotationError(
                path, line, f"label must be a non-negative integer, got {field!r}"
            )
    return tuple(map(int, fields))


def parse_line(text: str, fmt: str, path: Path, line: int) -> ListEntry:
    """Parse one line of a list in format ``fmt``; raise :class:`AnnotationError` if malformed."""
    if fmt == "mmaction":
        tokens = text.split()
        n = len(tokens)
        while n > 1 and tokens[n - 1].isdigit():  # trailing integers are the labels
            n -= 1
        name = " ".join(tokens[:n])
        # video lists name files with their extension; a bare folder followed by a frame count
        # and a label is a rawframe line, which would otherwise pass as two labels
        if len(tokens) - n >= 2 and strip_video_extension(name) == name:
            raise AnnotationError(path, line, f"{RAWFRAME_LIST}; got {text!r}")
        return ListEntry(line, name, _labels(tokens[n:], path, line))
    if fmt == "adafocus-space":
        fields = text.rsplit(None, 2)  # from the right: the folder may contain spaces
        expected = "<frame_dir> <num_frames> <label>"
    else:
        sep = "," if fmt == "adafocus-comma" else ";"
        fields = text.split(sep)
        expected = f"<frame_dir>{sep}<num_frames>{sep}<label>[{sep}<label>...]"
    if len(fields) < 3 or not fields[0].strip():
        raise AnnotationError(path, line, f"expected {expected}, got {text!r}")
    if not fields[1].strip().isdigit():
        raise AnnotationError(path, line, f"num_frames must be an integer, got {fields[1]!r}")
    return ListEntry(line, fields[0].strip(), _labels(fields[2:], path, line))


@dataclass(frozen=True)
class ListFile:
    """A parsed list: its entries in order, each id once, and how many repeated lines (the same
    video with the same labels as an earlier line) were collapsed into them."""

    path: Path
    entries: list[ListEntry]
    repeats: int


def read_list(path: str | Path, fmt: str) -> ListFile:
    """Parse a whole list; an id seen again with another video or other labels is an error
    naming both lines, an identical repeat is kept once (counted in ``repeats``)."""
    if fmt not in FORMATS:
        raise PrepareError(f"unknown list format {fmt!r}; choose from {FORMATS}")
    path = Path(path)
    first: dict[str, ListEntry] = {}
    lines = read_lines(path)
    for line, text in lines:
        e = parse_line(text, fmt, path, line)
        sid = e.sample_id(fmt)
        seen = first.setdefault(sid, e)
        if seen is e or (seen.name, seen.labels) == (e.name, e.labels):
            continue
        clash = (
            f"labels {list(e.labels)} here, {list(seen.labels)} there"
            if seen.name == e.name
            else f"{e.name!r} here, {seen.name!r} there"
        )
        raise AnnotationError(
            path, line, f"duplicate id {sid!r} (first on line {seen.line}): {clash}"
        )
    entries = list(first.values())
    return ListFile(path, entries, len(lines) - len(entries))


def find_video(entry: ListEntry, fmt: str, videos: VideoIndex) -> Path | None:
    """The video of a list entry (see the module docstring for the rules)."""
    posix = entry.name.replace("\\", "/").rstrip("/")
    if PurePosixPath(posix).is_absolute():
        return videos.find([strip_video_extension(PurePosixPath(posix).name)])
    return videos.find_relative(posix)


def list_dataset(
    lists: Sequence[tuple[Path, str]], fmt: str, classes_file: Path | None, videos: VideoIndex
) -> tuple[list[Sample], list[str]]:
    """Samples and class names from ``(list file, split)`` pairs.

    :param classes_file: class names; labels must index into it. ``None``: classes "0".."max".
    """
    classes = read_classes(classes_file) if classes_file is not None else None
    samples = []
    max_label = -1
    for path, split in lists:
        parsed = read_list(path, fmt)
        if parsed.repeats:
            print(
                f"{path}: {parsed.repeats} repeated line(s) (same video and labels as an "
                f"earlier line) kept once",
                file=sys.stderr,
            )
        for e in parsed.entries:
            if classes is not None and any(label >= len(classes) for label in e.labels):
                raise AnnotationError(
                    path,
                    e.line,
                    f"label out of range for the {len(classes)} classes of {classes_file}",
                )
            max_label = max([max_label, *e.labels])
            video = find_video(e, fmt, videos)
            if video is None and fmt == "mmaction" and (videos.root / e.name).is_dir():
                raise AnnotationError(path, e.line, f"{RAWFRAME_LIST}; {e.name!r} is a folder")
            samples.append(Sample(e.sample_id(fmt), video, e.labels, split))
    if classes is None:
        if max_label < 0:
            raise PrepareError("the lists hold no labels; pass --classes to name the classes")
        classes = [str(i) for i in range(max_label + 1)]
    return samples, classes


def pair_lists(lists: Sequence[Path], splits: Sequence[str] | None) -> list[tuple[Path, str]]:
    """Pair each ``--list`` with its ``--split`` (default: every list is "train")."""
    splits = list(splits or ["train"] * len(lists))
    if len(splits) != len(lists):
        raise PrepareError(f"got {len(lists)} --list but {len(splits)} --split; give one per list")
    return [
        (Path(p), normalise_split(s, "--split", None)) for p, s in zip(lists, splits, strict=True)
    ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``videofocus prepare list``."""
    parser.add_argument(
        "--list", action="append", required=True, type=Path, help="a list file (repeatable)"
    )
    parser.add_argument("--format", required=True, choices=FORMATS, help="the list's format")
    parser.add_argument(
        "--split", action="append", help="split of each --list, in order (default: train)"
    )
    parser.add_argument("--classes", type=Path, help="class names, one a line (index = line)")
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run the list-file conversion; return the exit code (2 on bad input)."""
    lists = pair_lists(args.list, args.split)
    samples, classes = list_dataset(lists, args.format, args.classes, VideoIndex(args.videos))
    write_dataset(f"list ({args.format})", samples, classes, args)
    return 0
