"""Your own videos in class folders: ROOT/<class>/**/<video>.

Classes are the sorted names of the sub-folders of --root (hidden ones skipped); every file with a
video extension inside a class folder, at any depth, is a sample of that class (files directly in
--root, and the output folder, are ignored). Each class's videos go to "val" in a fixed proportion
(--val-fraction, rounded), chosen by a shuffle seeded with --seed and the class name, so the split
is the same on every run and machine.

Writes into --out:
  manifest.jsonl   one row per decodable video, id = <class>/<path without extension>
  classes.txt      the sorted class folder names
  rejects.jsonl    videos that failed to probe
"""

from __future__ import annotations

import argparse
import os
import random
from pathlib import Path

from videofocus.data_prep.probing import (
    VIDEO_EXTENSIONS,
    PrepareError,
    Sample,
    add_common_arguments,
    write_dataset,
)


def class_videos(root: str | Path, exclude: Path | None = None) -> dict[str, list[Path]]:
    """``{class name: sorted video paths}`` for every non-hidden sub-folder of ``root``.

    :param exclude: a folder that is not a class (the output folder, when it lies in ``root``).
    """
    root = Path(root)
    if not root.is_dir():
        raise PrepareError(f"root folder not found: {root}")
    skip = exclude.resolve() if exclude is not None else None
    out = {}
    folders = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    for folder in sorted(p for p in folders if p.resolve() != skip):
        files = []
        for parent, dirs, names in os.walk(folder, followlinks=True):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            files += [
                Path(parent, n)
                for n in names
                if not n.startswith(".") and os.path.splitext(n)[1].lower() in VIDEO_EXTENSIONS
            ]
        out[folder.name] = sorted(files)
    if not out:
        raise PrepareError(f"no class folders in {root}")
    return out


def folder_samples(
    root: str | Path, val_fraction: float, seed: int, exclude: Path | None = None
) -> tuple[list[Sample], list[str]]:
    """Samples (in class, then path order) and the class names (see :func:`class_videos`)."""
    if not 0.0 <= val_fraction < 1.0:
        raise PrepareError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    root = Path(root)
    by_class = class_videos(root, exclude)
    classes = list(by_class)
    samples = []
    for index, name in enumerate(classes):
        files = by_class[name]
        order = list(range(len(files)))
        random.Random(f"{seed}:{name}").shuffle(order)
        val = set(order[: round(len(files) * val_fraction)])
        for i, path in enumerate(files):
            sample_id = os.path.splitext(path.relative_to(root).as_posix())[0]
            split = "val" if i in val else "train"
            samples.append(Sample(sample_id, path, (index,), split))
    return samples, classes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``videofocus prepare folder``."""
    parser.add_argument("--root", required=True, type=Path, help="folder of class folders")
    parser.add_argument(
        "--val-fraction", type=float, default=0.1, help="share of each class put in val"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the train/val split")
    add_common_arguments(parser, videos=False)


def run(args: argparse.Namespace) -> int:
    """Run the folder-of-classes conversion; return the exit code (2 on bad input)."""
    samples, classes = folder_samples(args.root, args.val_fraction, args.seed, exclude=args.out)
    write_dataset("folder", samples, classes, args)
    return 0
