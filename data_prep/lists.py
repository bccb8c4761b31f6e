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

Several lists may be given, each with its split: --list train.txt --split train --list val.txt
--split val.

Writes into --out:
  manifest.jsonl   one row per listed video found and decodable
  classes.txt      --classes' names, or "0".."N-1"
  rejects.jsonl    missing files, probe errors
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from data_prep.probing import (
    AnnotationError,
    PrepareError,
    Sample,
    VideoIndex,
    add_common_arguments,
    normalise_split,
    read_lines,
    reports_errors,
    strip_video_extension,
    write_dataset,
)
from videofocus.data.manifest import read_classes

FORMATS = ("adafocus-comma", "adafocus-semicolon", "adafocus-space", "mmaction")


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
    labels = []
    for field in fields:
        field = field.strip()
        if not field.isdigit():
            raise AnnotationError(
                path, line, f"label must be a non-negative integer, got {field!r}"
            )
        labels.append(int(field))
    return tuple(labels)


def parse_line(text: str, fmt: str, path: Path, line: int) -> ListEntry:
    """Parse one line of a list in format ``fmt``; raise :class:`AnnotationError` if malformed."""
    if fmt == "mmaction":
        tokens = text.split()
        n = len(tokens)
        while n > 1 and tokens[n - 1].isdigit():  # trailing integers are the labels
            n -= 1
        return ListEntry(line, " ".join(tokens[:n]), _labels(tokens[n:], path, line))
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


def read_list(path: str | Path, fmt: str) -> list[ListEntry]:
    """Parse a whole list; duplicate ids are an error naming both lines."""
    if fmt not in FORMATS:
        raise PrepareError(f"unknown list format {fmt!r}; choose from {FORMATS}")
    path = Path(path)
    entries = [parse_line(text, fmt, path, line) for line, text in read_lines(path)]
    seen: dict[str, int] = {}
    for e in entries:
        sid = e.sample_id(fmt)
        if sid in seen:
            raise AnnotationError(path, e.line, f"duplicate id {sid!r} (first on line {seen[sid]})")
        seen[sid] = e.line
    return entries


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
        for e in read_list(path, fmt):
            if classes is not None and any(label >= len(classes) for label in e.labels):
                raise AnnotationError(
                    path,
                    e.line,
                    f"label out of range for the {len(classes)} classes of {classes_file}",
                )
            max_label = max([max_label, *e.labels])
            samples.append(Sample(e.sample_id(fmt), find_video(e, fmt, videos), e.labels, split))
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


@reports_errors
def run(args: argparse.Namespace) -> int:
    """Run the list-file conversion; return the exit code (2 on bad input)."""
    lists = pair_lists(args.list, args.split)
    samples, classes = list_dataset(lists, args.format, args.classes, VideoIndex(args.videos))
    write_dataset(f"list ({args.format})", samples, classes, args)
    return 0
