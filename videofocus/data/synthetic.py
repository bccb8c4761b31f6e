"""The synthetic benchmark: find the red-framed object, read its fine texture.

Every video shows a few moving square objects on a smooth background. The *target* has a thick red
frame; its class is a black/white texture of period 4x4 pixels inside the frame. Every class tile
has two white pixels in each row and column, so any 4x4 area average (and the antialiased 4x
downscale) is the same grey for every class: a glance can *find* the target by its red frame, but
only a full-resolution glimpse can *read* it. Distractors have other frame colours and the
textures of other classes; in a few contiguous runs of frames the target is hidden.

The *memory* variant (``cue_ratio`` < 1, ``configs/synthetic_memory.yaml``) shows the red frame
only at the start and in one later blink, so only a policy that remembers the track can aim in
between. ``background: video`` replaces the smooth field by moving, desaturated real clips.

Rendering lives in :mod:`videofocus.data.synthetic_render` (re-exported here); this module writes
the dataset folder, whose files ``videofocus prepare synthetic`` (``data_prep/synthetic.py``)
lists.
"""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from videofocus.data.manifest import ManifestRow, write_classes, write_manifest
from videofocus.data.synthetic_render import (
    DISTRACTOR_COLOURS,
    GENERATOR_VERSION,
    TARGET_COLOUR,
    TILE_SIZE,
    RenderedVideo,
    SyntheticConfig,
    class_names,
    class_tiles,
    render_video,
)
from videofocus.io.writer import write_video

__all__ = [
    "DISTRACTOR_COLOURS",
    "GENERATOR_VERSION",
    "TARGET_COLOUR",
    "TILE_SIZE",
    "GenerationSummary",
    "RenderedVideo",
    "SyntheticConfig",
    "TargetTrack",
    "class_names",
    "class_tiles",
    "dataset_matches",
    "generate",
    "read_targets",
    "render_video",
]

_VIDEO_NAME = re.compile(r"^s\d{6,}\.mp4$")


@dataclass(frozen=True)
class GenerationSummary:
    """What :func:`generate` produced (or found already complete)."""

    out_dir: Path
    num_videos: int
    num_train: int
    num_val: int
    seconds: float
    reused: bool
    num_test: int = 0

    @property
    def manifest(self) -> Path:
        """The manifest written into ``out_dir``."""
        return self.out_dir / "manifest.jsonl"


@dataclass(frozen=True)
class TargetTrack:
    """Where the target is in each frame of one video (a line of ``targets.jsonl``)."""

    id: str
    width: int
    height: int
    boxes: tuple[tuple[int, int, int, int] | None, ...]


# --------------------------------------------------------------------------- writing


def _write_one(job: tuple[SyntheticConfig, int, str]) -> tuple[int, list[list[int] | None]]:
    config, index, path = job
    video = render_video(config, index)
    # One encoder thread: parallelism comes from the process pool, and tiny frames gain nothing.
    write_video(path, video.frames, fps=config.fps, crf=config.crf, options={"threads": "1"})
    return index, video.boxes


def _record(config: SyntheticConfig) -> dict[str, Any]:
    return {
        "generator": "videofocus.data.synthetic",
        "version": GENERATOR_VERSION,
        **config.to_json(),
    }


def dataset_matches(out_dir: str | Path, config: SyntheticConfig) -> bool:
    """True when ``out_dir`` holds a complete dataset generated from ``config`` by this version."""
    out_dir = Path(out_dir)
    try:
        record = json.loads((out_dir / "synthetic.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    # a field added since the record was written takes its default (e.g. test_fraction 0)
    if {**_record(SyntheticConfig()), **record} != _record(config):
        return False
    names = ("manifest.jsonl", "classes.txt", "targets.jsonl")
    if not all((out_dir / name).is_file() for name in names):
        return False
    videos = out_dir / "videos"
    return all((videos / f"{config.video_id(i)}.mp4").is_file() for i in range(config.num_videos))


def generate(
    out_dir: str | Path,
    config: SyntheticConfig,
    workers: int = 1,
    progress: bool = True,
    force: bool = False,
) -> GenerationSummary:
    """Write the synthetic dataset into ``out_dir`` (its files: ``data_prep/synthetic.py``).

    Does nothing when ``out_dir`` already holds this exact dataset, unless ``force``. Otherwise
    our own files are rewritten and stale ``videos/s*.mp4`` from an earlier, larger run removed.

    :param workers: processes rendering and encoding in parallel (1: in this process).
    :param progress: show a tqdm progress bar on stderr.
    """
    out_dir = Path(out_dir)
    start = time.perf_counter()
    num_val, num_test = config.num_val, config.num_test
    num_train = config.num_videos - num_val - num_test
    if not force and dataset_matches(out_dir, config):
        return GenerationSummary(
            out_dir, config.num_videos, num_train, num_val, 0.0, True, num_test
        )
    # The record marks completion: drop it first so an interrupted run never looks complete.
    (out_dir / "synthetic.json").unlink(missing_ok=True)
    videos = out_dir / "videos"
    videos.mkdir(parents=True, exist_ok=True)

    jobs = [
        (config, i, str(videos / f"{config.video_id(i)}.mp4")) for i in range(config.num_videos)
    ]
    with ProcessPoolExecutor(max_workers=workers) if workers > 1 else nullcontext() as pool:
        chunk = max(1, min(16, len(jobs) // (4 * workers)))
        results = pool.map(_write_one, jobs, chunksize=chunk) if pool else map(_write_one, jobs)
        bar = tqdm(results, total=len(jobs), desc="synthetic", unit="video", disable=not progress)
        boxes: dict[int, list[list[int] | None]] = dict(bar)

    wanted = {Path(path).name for _, _, path in jobs}
    for stale in videos.iterdir():
        if _VIDEO_NAME.match(stale.name) and stale.name not in wanted:
            stale.unlink()

    rows = [
        ManifestRow(
            id=config.video_id(i),
            path=f"videos/{config.video_id(i)}.mp4",
            labels=(config.label(i),),
            split=config.split(i),
            num_frames=config.num_frames,
            fps=float(config.fps),
        )
        for i in range(config.num_videos)
    ]
    write_manifest(out_dir / "manifest.jsonl", rows)
    write_classes(out_dir / "classes.txt", class_names(config.num_classes))
    with open(out_dir / "targets.jsonl", "w", encoding="utf-8") as fh:
        for i in range(config.num_videos):
            line = {"id": config.video_id(i), "width": config.width, "height": config.height}
            fh.write(json.dumps({**line, "boxes": boxes[i]}) + "\n")
    (out_dir / "synthetic.json").write_text(
        json.dumps(_record(config), indent=2) + "\n", encoding="utf-8"
    )
    return GenerationSummary(
        out_dir, config.num_videos, num_train, num_val, time.perf_counter() - start, False, num_test
    )


def read_targets(path: str | Path) -> dict[str, TargetTrack]:
    """Read ``targets.jsonl`` (or the dataset folder holding it) into tracks keyed by video id.

    :raises ValueError: on a malformed line, naming the file and line.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "targets.jsonl"
    tracks: dict[str, TargetTrack] = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
                boxes = tuple(None if b is None else tuple(int(v) for v in b) for b in obj["boxes"])
                if any(b is not None and len(b) != 4 for b in boxes):
                    raise ValueError("a box must have 4 numbers")
                track = TargetTrack(str(obj["id"]), int(obj["width"]), int(obj["height"]), boxes)
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{lineno}: bad target track: {exc}") from None
            tracks[track.id] = track
    return tracks
