"""Something-Something v2 from the official label and split JSON files.

The class of an entry is ``labels[template without brackets]``, its index as given (a string) in
``something-something-v2-labels.json``. Videos are ``<id>.webm``; their headers often carry no
frame count, so the counts come from probing (which decodes). The test list is unlabelled.

Writes into --out:
  manifest.jsonl   one row per video found and decodable
  classes.txt      the templates, ordered by their index
  rejects.jsonl    missing files, probe errors
"""

from __future__ import annotations

import argparse
from pathlib import Path

from videofocus.data_prep.probing import (
    AnnotationError,
    PrepareError,
    Sample,
    VideoIndex,
    add_common_arguments,
    read_json,
    write_dataset,
)


def read_labels(path: str | Path) -> list[str]:
    """The class names ordered by index; indices must be exactly ``0..N-1``."""
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict) or not data:
        raise AnnotationError(path, None, 'expected a non-empty object {template: "index"}')
    by_index: dict[int, str] = {}
    for name, value in data.items():
        try:
            index = int(value)
        except (TypeError, ValueError):
            raise AnnotationError(path, name, f"index must be an integer, got {value!r}") from None
        if index in by_index:
            raise AnnotationError(path, name, f"index {index} already used by {by_index[index]!r}")
        by_index[index] = name
    if sorted(by_index) != list(range(len(by_index))):
        raise AnnotationError(path, None, f"indices must be 0..{len(by_index) - 1} without gaps")
    return [by_index[i] for i in range(len(by_index))]


def split_samples(
    path: str | Path, split: str, classes: list[str], videos: VideoIndex
) -> list[Sample]:
    """The samples of one split file; ``split == "test"`` reads ids only."""
    path = Path(path)
    index = {name: i for i, name in enumerate(classes)}
    entries = read_json(path)
    if not isinstance(entries, list):
        raise AnnotationError(path, None, "expected a list of {id, label, template, ...} objects")
    samples = []
    for k, obj in enumerate(entries):
        if not isinstance(obj, dict):
            raise AnnotationError(path, f"[{k}]", f"expected an object, got {type(obj).__name__}")
        video_id = obj.get("id")
        if isinstance(video_id, int) and not isinstance(video_id, bool):
            video_id = str(video_id)
        if not isinstance(video_id, str) or not video_id:
            raise AnnotationError(path, f"[{k}].id", f"expected a video id, got {video_id!r}")
        labels: tuple[int, ...] = ()
        if split != "test":
            template = obj.get("template")
            if not isinstance(template, str):
                raise AnnotationError(
                    path, f"[{k}].template", f"expected a string, got {template!r}"
                )
            name = template.replace("[", "").replace("]", "")
            if name not in index:
                raise AnnotationError(
                    path, f"[{k}].template", f"{name!r} is not in the labels file"
                )
            labels = (index[name],)
        samples.append(Sample(video_id, videos.find([video_id]), labels, split))
    return samples


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``videofocus prepare sthv2``."""
    parser.add_argument(
        "--labels", required=True, type=Path, help="something-something-v2-labels.json"
    )
    parser.add_argument("--train", type=Path, help="something-something-v2-train.json")
    parser.add_argument("--validation", type=Path, help="something-something-v2-validation.json")
    parser.add_argument("--test", type=Path, help="something-something-v2-test.json")
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run the Something-Something v2 conversion; return the exit code (2 on bad input)."""
    classes = read_labels(args.labels)
    videos = VideoIndex(args.videos)
    splits = {"train": args.train, "val": args.validation, "test": args.test}
    if all(path is None for path in splits.values()):
        raise PrepareError("give at least one of --train, --validation, --test")
    samples = [
        sample
        for split, path in splits.items()
        if path is not None
        for sample in split_samples(path, split, classes, videos)
    ]
    write_dataset("sthv2", samples, classes, args)
    return 0
