"""Re-encode a manifest's videos for fast sparse sampling (short side, short keyframe interval).

Every distinct video of --manifest is decoded with PyAV, resized so its short side is
--short-side (aspect kept, dimensions even; display rotation applied to the pixels) and written
as H.264 with a keyframe every --gop frames at the source's average frame rate, without audio.
Long GOPs make seeking to a sparse frame decode hundreds of frames; with --gop 16 it decodes at
most 15. Videos run in parallel processes (--workers). Existing outputs are kept (so an
interrupted run resumes) unless --overwrite; files appear only once complete.

Writes into --out:
  videos/...       the new .mp4 files, laid out as the sources below their common folder
  manifest.jsonl   the rows with ids/labels/splits/segments kept, paths to the new files,
                   num_frames/fps measured on them, meta.source = the original file
  classes.txt      a copy of the manifest's class file, when there is one
  rejects.jsonl    rows whose video failed to decode or encode
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import av
import numpy as np
from tqdm import tqdm
from videofocus.data_prep.probing import (
    PrepareError,
    Sample,
    add_common_arguments,
    write_dataset,
)

from videofocus.data.manifest import read_classes, read_manifest
from videofocus.io.writer import write_video


def scaled_size(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    """``(width, height)`` with the short side set to ``short_side`` (``None``: unchanged), both
    rounded to even numbers as 4:2:0 chroma needs."""
    if short_side:
        scale = short_side / min(width, height)
        width, height = width * scale, height * scale
    return max(2, 2 * round(width / 2)), max(2, 2 * round(height / 2))


def _frames(container: av.container.InputContainer, short_side: int | None) -> Iterator[np.ndarray]:
    """Decoded RGB frames, upright and resized, one at a time (a video never sits in memory)."""
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    for frame in container.decode(stream):
        quarter_turns = round((frame.rotation or 0) / 90) % 4  # counter-clockwise, as displayed
        # scaled_size treats width and height alike, so the stored frame scales as displayed
        tw, th = scaled_size(frame.width, frame.height, short_side)
        image = frame.reformat(width=tw, height=th, format="rgb24").to_ndarray()
        yield np.rot90(image, k=quarter_turns) if quarter_turns else image


def reencode_video(src: str, dst: str, short_side: int | None, gop: int, crf: int) -> str | None:
    """Re-encode one file; return ``None`` on success or the reason it failed.

    The output is written under a temporary name and renamed when complete.
    """
    dst_path = Path(dst)
    tmp = dst_path.with_name(f".{dst_path.stem}.partial.mp4")
    if not os.path.isfile(src):
        return "missing file"
    try:
        with av.open(src) as container:
            if not container.streams.video:
                return "no video stream"
            stream = container.streams.video[0]
            fps = stream.average_rate or stream.guessed_rate or 25
            write_video(tmp, _frames(container, short_side), fps=float(fps), crf=crf, gop=gop)
        os.replace(tmp, dst_path)
        return None
    except Exception as exc:  # any failure of one video becomes its reject, not the run's end
        tmp.unlink(missing_ok=True)
        return f"{type(exc).__name__}: {exc}"


def output_names(sources: Sequence[Path]) -> dict[Path, str]:
    """Each source's output path (posix, relative to ``videos/``): its path below the sources'
    common folder with a ``.mp4`` suffix, keeping the old suffix too when two would collide."""
    if not sources:
        return {}
    common = Path(os.path.commonpath([p.parent for p in sources]))
    rel = {p: p.relative_to(common) for p in sources}
    names = {p: r.with_suffix(".mp4").as_posix() for p, r in rel.items()}
    counts = Counter(names.values())
    return {p: (n if counts[n] == 1 else rel[p].as_posix() + ".mp4") for p, n in names.items()}


def encode_all(
    jobs: dict[Path, Path], short_side: int | None, gop: int, crf: int, workers: int
) -> dict[Path, str | None]:
    """Run :func:`reencode_video` for ``{source: destination}`` in parallel processes."""
    errors: dict[Path, str | None] = {}
    if not jobs:
        return errors
    for dst in jobs.values():
        dst.parent.mkdir(parents=True, exist_ok=True)
    # "spawn": forking a process that holds tqdm's and executor threads is unsafe.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=max(1, workers), mp_context=ctx) as pool:
        futures = {
            pool.submit(reencode_video, str(src), str(dst), short_side, gop, crf): src
            for src, dst in jobs.items()
        }
        for fut in tqdm(as_completed(futures), total=len(futures), desc="reencode", disable=None):
            errors[futures[fut]] = fut.result()
    return errors


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``videofocus prepare reencode``."""
    parser.add_argument("--manifest", required=True, type=Path, help="manifest to re-encode")
    parser.add_argument(
        "--short-side", type=int, default=256, help="short side in pixels (0: keep the size)"
    )
    parser.add_argument("--gop", type=int, default=16, help="keyframe interval in frames")
    parser.add_argument("--crf", type=int, default=23, help="x264 constant rate factor")
    parser.add_argument("--overwrite", action="store_true", help="re-encode existing outputs")
    add_common_arguments(parser, videos=False, optional_probe=False)


def run(args: argparse.Namespace) -> int:
    """Run the re-encode conversion; return the exit code (2 on bad input)."""
    if args.gop < 1 or args.short_side < 0:
        raise PrepareError("--gop must be >= 1 and --short-side >= 0")
    root = args.manifest.parent
    rows = read_manifest(args.manifest)
    sources = sorted({row.resolved_path(root).resolve() for row in rows})
    out_videos = Path(args.out) / "videos"
    targets = {src: out_videos / name for src, name in output_names(sources).items()}
    todo = {s: d for s, d in targets.items() if args.overwrite or not d.is_file()}
    errors = encode_all(todo, args.short_side or None, args.gop, args.crf, args.workers)
    samples = []
    for row in rows:
        src = row.resolved_path(root).resolve()
        error = errors.get(src)
        samples.append(
            Sample(
                id=row.id,
                path=src if error else targets[src],
                labels=row.labels,
                split=row.split,
                start=row.start,
                end=row.end,
                meta={**row.meta, "source": str(src)},
                reject=f"re-encode failed: {error}" if error else None,
            )
        )
    classes_file = root / "classes.txt"
    classes = read_classes(classes_file) if classes_file.is_file() else None
    write_dataset("reencode", samples, classes, args)
    return 0
