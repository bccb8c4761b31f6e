"""Frames/s of each video decoder backend, on typical clips, long videos and JPEG folders.

Cases (each timing covers opening the file and decoding it, as a DataLoader worker does per sample;
generating, re-encoding and extracting the inputs happen beforehand and are not timed):

  full_decode       every frame of a short clip, in order
  sparse            one frame per segment (TSN-style) from a long video whose keyframes are far
                    apart, as in videos found in the wild
  sparse_keyframe   the same segments read with keyframe sampling (``data.sampling: keyframe``):
                    the keyframe nearest each, decoded alone; the notes give the speed-up over
                    ``sparse`` (exact sampling) and how many distinct keyframes were read
  sparse_resize     the same frames, resized at decode time to a short side
  sparse_short_gop  the same frames from the long video re-encoded with a short keyframe interval
                    (what ``videofocus prepare reencode`` produces)
  sparse_jpeg       the same frames read with PIL from a folder of JPEGs extracted beforehand, the
                    way earlier adaptive-inference code (AR-Net, AdaFocus) loads its data

With ``--per-codec``, sparse reads of one video per codec and container (H.264 and HEVC in MP4,
VP9 in WebM, MPEG-4 Part 2 in AVI with and without B-frames), to decide ``auto`` per codec:

  sparse8 / sparse16  8 / 16 frames, one per segment, on a reader already open
  open_sparse8        open the file, read those 8 frames, close

A backend that refuses a file (it would return other frames) gets a row saying why, untimed.

Inputs are synthetic videos (made by :mod:`videofocus.benchmarks.decode_inputs`) written into
``--workdir``; they are kept there, so a second run with the same workdir only repeats the timings.
``--cases`` times some cases only, and builds only their inputs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from videofocus.benchmarks.decode_inputs import (
    INPUTS,
    BenchInputs,
    DecodeBenchConfig,
    prepare_codec_inputs,
    prepare_inputs,
)
from videofocus.io.atomic_files import write_atomic
from videofocus.io.errors import VideoDecodeError
from videofocus.io.reader import VideoReader, available_backends
from videofocus.io.samplers import SegmentSampler, snap_to_keyframes
from videofocus.runtime import torch_threads

CASES = (
    "full_decode",
    "sparse",
    "sparse_keyframe",
    "sparse_resize",
    "sparse_short_gop",
    "sparse_jpeg",
)
#: the inputs (:data:`~videofocus.benchmarks.decode_inputs.INPUTS`) each case reads; every
#: sparse case samples the long video's frame count
CASE_INPUTS: dict[str, tuple[str, ...]] = {
    "full_decode": ("clip",),
    "sparse": ("long",),
    "sparse_keyframe": ("long",),
    "sparse_resize": ("long",),
    "sparse_short_gop": ("long", "long_short_gop"),
    "sparse_jpeg": ("long", "jpeg_dir"),
}
assert set(CASE_INPUTS) == set(CASES) and {i for c in CASE_INPUTS.values() for i in c} <= {*INPUTS}
CODEC_CASES = ("sparse8", "sparse16", "open_sparse8")

FULL = DecodeBenchConfig()
QUICK = DecodeBenchConfig(
    width=170,
    height=128,
    clip_seconds=1.0,
    long_seconds=6.0,
    codec_seconds=2.0,
    long_gop=75,
    short_gop=8,
    short_side=64,
)


@dataclass(frozen=True)
class Timing:
    """Medians over the timed calls, in seconds: ``wall`` (``time.perf_counter``) is what the
    table reports; ``cpu``, this process's CPU time (all its threads), is the steadier number on
    a shared machine, and ``wall`` well above it with one decoding thread means the run waited
    for a core."""

    wall: float
    cpu: float


def _time_interleaved(
    samples: dict[str, Callable[[], object]], repeats: int, warmup: int
) -> dict[str, Timing]:
    """Time each callable ``repeats`` times, after ``warmup`` untimed calls each.

    The callables take turns within every round, so load from other processes that comes and goes
    during the run slows all of them alike instead of whichever happened to run at that moment.
    """
    for _ in range(warmup):
        for fn in samples.values():
            fn()
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in samples}  # (wall, cpu)
    for _ in range(repeats):
        for name, fn in samples.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            runs[name].append((time.perf_counter() - start, time.process_time() - start_cpu))
    return {
        name: Timing(*map(statistics.median, zip(*times, strict=True)))
        for name, times in runs.items()
    }


def _checked_read(
    reader: VideoReader,
    indices: Sequence[int],
    short_side: int | None,
    expected_short_side: int,
    sampling: str = "exact",
) -> None:
    """Read ``indices``, failing where a backend silently returns fewer or unresized frames
    (it would look fast)."""
    frames = reader.read_frames(indices, short_side, sampling)
    t, h, w, _ = frames.shape
    if t != len(indices) or min(h, w) != expected_short_side:
        raise RuntimeError(f"{reader.path}: {reader.backend} returned {tuple(frames.shape)}")


def _video_sample(
    backend: str,
    path: Path,
    threads: int,
    indices: Sequence[int],
    short_side: int | None,
    expected_short_side: int,
    resolved: list[str],
    sampling: str = "exact",
) -> None:
    """One DataLoader-like sample: open ``path``, decode ``indices`` (keyframes with
    ``sampling="keyframe"``), close; the backend actually used is appended to ``resolved`` (it
    tells what ``auto`` chose)."""
    with VideoReader(path, backend=backend, num_threads=threads) as reader:
        _checked_read(reader, indices, short_side, expected_short_side, sampling)
        resolved.append(reader.backend)


def _jpeg_sample(folder: Path, indices: Sequence[int]) -> None:
    """One sample the way JPEG-folder loaders do it: PIL decode, RGB, stack into a tensor."""
    images = []
    for i in indices:
        with Image.open(folder / f"img_{i + 1:05d}.jpg") as image:
            images.append(np.asarray(image.convert("RGB")))
    torch.from_numpy(np.stack(images))  # uint8 [T, H, W, 3], as VideoReader returns


def _mb(num_bytes: int) -> str:
    return f"{num_bytes / 1e6:.1f} MB"


def run_benchmark(
    inputs: BenchInputs,
    config: DecodeBenchConfig,
    backends: Sequence[str],
    threads: int = 1,
    repeats: int = 5,
    warmup: int = 1,
    cases: Sequence[str] = CASES,
) -> list[dict]:
    """Time the cases with every backend and return one row dict per (case, backend).

    :param inputs: from :func:`~videofocus.benchmarks.decode_inputs.prepare_inputs`, with the
        :data:`CASE_INPUTS` of ``cases``.
    :param backends: VideoReader backends to time (``"auto"`` included where wanted).
    :param threads: decoder threads per reader, and torch threads while timing.
    :param cases: the :data:`CASES` to time, in table order.
    :returns: rows with keys ``case``, ``backend``, ``resolved_backend``, ``frames``,
        ``frames_per_s``, ``ms_per_video``, ``cpu_ms_per_video``, ``notes`` (plus ``disk_bytes``,
        ``video_bytes`` and ``extract_s`` for the JPEG case, and ``speedup_vs_exact`` for the
        keyframe case when ``sparse`` is timed too).
    """
    c = config
    cases = [case for case in CASES if case in cases]
    full = min(c.height, c.width)
    video_cases = []
    if "full_decode" in cases:
        assert inputs.clip is not None
        with VideoReader(inputs.clip) as reader:
            clip_frames = reader.metadata.num_frames
        video_cases.append(("full_decode", inputs.clip, list(range(clip_frames)), None, full,
                            "exact", f"{clip_frames} frames, {c.width}x{c.height}"))  # fmt: skip
    sparse: list[int] = []
    if inputs.long is not None:
        with VideoReader(inputs.long) as reader:
            long_frames = reader.metadata.num_frames
            keyframes = reader.keyframes
        sparse = SegmentSampler(num_segments=c.num_segments)(long_frames).tolist()
        snapped = snap_to_keyframes(sparse, keyframes).tolist()
        of_long = f"{len(sparse)} of {long_frames} frames"
        long_mb = _mb(inputs.long.stat().st_size)
        short_gop_mb = _mb(inputs.long_short_gop.stat().st_size) if inputs.long_short_gop else ""
        video_cases += [
            ("sparse", inputs.long, sparse, None, full, "exact",
             f"{of_long}, keyframe every {c.long_gop}, mp4 {long_mb}"),
            ("sparse_keyframe", inputs.long, snapped, None, full, "keyframe",
             f"{len(set(snapped))} distinct keyframes for {len(sparse)} segments, "
             f"keyframe every {c.long_gop}"),
            ("sparse_resize", inputs.long, sparse, c.short_side, c.short_side, "exact",
             f"{of_long}, short side {c.short_side}"),
            ("sparse_short_gop", inputs.long_short_gop, sparse, None, full, "exact",
             f"{of_long}, keyframe every {c.short_gop}, mp4 {short_gop_mb}"),
        ]  # fmt: skip
        video_cases = [case for case in video_cases if case[0] in cases]

    rows: list[dict] = []
    # A DataLoader worker runs with one torch thread; mirror whatever the reader is given.
    with torch_threads(threads):
        for case, path, indices, short_side, expected, sampling, notes in video_cases:
            resolved: dict[str, list[str]] = {backend: [] for backend in backends}
            args = (path, threads, indices, short_side, expected)
            samples = {b: partial(_video_sample, b, *args, resolved[b], sampling) for b in backends}
            timings = _time_interleaved(samples, repeats, warmup)
            for backend in backends:
                used = resolved[backend][-1]
                rows.append(_row(case, backend, used, len(indices), timings[backend], notes))
        if "sparse_jpeg" in cases:
            assert inputs.jpeg_dir is not None and inputs.long is not None
            jpeg = {"jpeg": partial(_jpeg_sample, inputs.jpeg_dir, sparse)}
            timing = _time_interleaved(jpeg, repeats, warmup)["jpeg"]
    _add_speedups(rows)
    if "sparse_jpeg" in cases:
        assert inputs.jpeg_dir is not None and inputs.long is not None
        assert inputs.jpeg_extract_s is not None
        disk = sum(p.stat().st_size for p in inputs.jpeg_dir.glob("*.jpg"))
        video = inputs.long.stat().st_size
        notes = (
            f"{of_long}; folder {_mb(disk)} vs mp4 {_mb(video)}; "
            f"extraction took {inputs.jpeg_extract_s:.1f} s"
        )
        row = _row("sparse_jpeg", "jpeg (PIL)", "jpeg (PIL)", len(sparse), timing, notes)
        row.update(disk_bytes=disk, video_bytes=video, extract_s=round(inputs.jpeg_extract_s, 2))
        rows.append(row)
    return rows


def _add_speedups(rows: list[dict]) -> None:
    """Give each ``sparse_keyframe`` row its speed-up over the same backend's ``sparse`` row
    (exact sampling of the same segments): ``speedup_vs_exact``, and in its notes."""
    exact = {r["backend"]: r["ms_per_video"] for r in rows if r["case"] == "sparse"}
    for row in rows:
        if row["case"] == "sparse_keyframe" and exact.get(row["backend"]):
            row["speedup_vs_exact"] = round(exact[row["backend"]] / row["ms_per_video"], 1)
            row["notes"] += f"; {row['speedup_vs_exact']:.1f}x faster than sparse (exact)"


def run_codec_benchmark(
    videos: dict[str, Path],
    backends: Sequence[str],
    threads: int = 1,
    repeats: int = 5,
    warmup: int = 1,
) -> list[dict]:
    """Time :data:`CODEC_CASES` on every video with every backend that accepts it.

    :param videos: input name -> file, from
        :func:`~videofocus.benchmarks.decode_inputs.prepare_codec_inputs`.
    :returns: rows as :func:`run_benchmark`'s, cases named ``"<case> <input>"``; a backend that
        refuses a file gets one row per case with ``None`` timings and the reason in ``notes``.
    """
    rows: list[dict] = []
    with torch_threads(threads):
        for name, path in videos.items():
            readers: dict[str, VideoReader] = {}
            refused: dict[str, str] = {}
            for backend in backends:
                try:
                    readers[backend] = VideoReader(path, backend=backend, num_threads=threads)
                except VideoDecodeError as err:
                    refused[backend] = err.reason
            try:
                meta = next(iter(readers.values())).metadata
                eight = SegmentSampler(num_segments=8)(meta.num_frames).tolist()
                sixteen = SegmentSampler(num_segments=16)(meta.num_frames).tolist()
                full = min(meta.width, meta.height)
                notes = f"{meta.codec}, {meta.num_frames} frames, {_mb(path.stat().st_size)}"
                reads = zip(CODEC_CASES, (eight, sixteen, eight), (False, False, True), strict=True)
                for case, indices, reopen in reads:  # reopen: open and close in each sample
                    used: dict[str, list[str]] = {b: [readers[b].backend] for b in readers}
                    samples = {
                        b: partial(_video_sample, b, path, threads, indices, None, full, used[b])
                        if reopen
                        else partial(_checked_read, reader, indices, None, full)
                        for b, reader in readers.items()
                    }
                    timings = _time_interleaved(samples, repeats, warmup)
                    for b in backends:  # a backend that refused the file: a row without numbers
                        chose = used[b][-1] if b in used else None
                        note = f"refused: {refused[b]}" if b in refused else notes
                        rows.append(
                            _row(f"{case} {name}", b, chose, len(indices), timings.get(b), note)
                        )
            finally:
                for reader in readers.values():
                    reader.close()
    return rows


def _row(
    case: str, backend: str, used: str | None, frames: int, timing: Timing | None, notes: str
) -> dict:
    if backend == "auto" and used is not None:
        notes = f"{notes}; auto chose {used}"
    return {
        "case": case,
        "backend": backend,
        "resolved_backend": used,
        "frames": frames,
        "frames_per_s": None if timing is None else round(frames / timing.wall, 1),
        "ms_per_video": None if timing is None else round(timing.wall * 1000, 2),
        "cpu_ms_per_video": None if timing is None else round(timing.cpu * 1000, 2),
        "notes": notes,
    }


def format_table(rows: Sequence[dict]) -> str:
    """Render rows as a Markdown table (``cpu ms/video``: see :class:`Timing`)."""
    lines = [
        "| case | backend | frames/s | ms/video | cpu ms/video | notes |",
        "|---|---|---:|---:|---:|---|",
    ]
    lines += [
        f"| {r['case']} | {r['backend']} | {r['frames_per_s']:.0f} | "
        f"{r['ms_per_video']:.1f} | {r['cpu_ms_per_video']:.1f} | {r['notes']} |"
        for r in rows
    ]
    return "\n".join(lines)


def format_codec_table(rows: Sequence[dict]) -> str:
    """Render :func:`run_codec_benchmark`'s rows as one line per input and read: each backend's
    ``ms/video (cpu ms/video)``, ``refused`` where it refuses the file, and the fastest backend
    (by ms/video, ``auto`` aside) among those that read it."""
    backends = list(dict.fromkeys(r["backend"] for r in rows))
    lines = [
        f"| input | read | {' | '.join(backends)} | fastest |",
        f"|---|---|{'---:|' * len(backends)}---|",
    ]
    for label in dict.fromkeys(r["case"] for r in rows):
        case, name = label.split(" ", 1)
        timed = {r["backend"]: r for r in rows if r["case"] == label}
        cells = [
            "refused"
            if timed[b]["ms_per_video"] is None
            else f"{timed[b]['ms_per_video']:.0f} ({timed[b]['cpu_ms_per_video']:.0f})"
            for b in backends
        ]
        candidates = [b for b in backends if b != "auto" and timed[b]["ms_per_video"] is not None]
        fastest = min(candidates, key=lambda b: timed[b]["ms_per_video"])
        lines.append(f"| {name} | {case} | {' | '.join(cells)} | {fastest} |")
    return "\n".join(lines)


def _count(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer of at least ``minimum``."""

    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def _cases(text: str) -> tuple[str, ...]:
    """An argparse type: comma-separated names of :data:`CASES`."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in CASES]
    if unknown or not names:
        what = f"unknown case {unknown[0]!r}" if unknown else "no case given"
        raise argparse.ArgumentTypeError(f"{what}; choose from {', '.join(CASES)}")
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``videofocus bench decode``."""
    parser.add_argument(
        "--workdir",
        type=Path,
        help="folder for the generated videos, kept for reruns (default: a temporary folder)",
    )
    parser.add_argument("--repeats", type=_count(1), default=5, help="timed runs per row (median)")
    parser.add_argument("--warmup", type=_count(0), default=1, help="untimed runs per row first")
    parser.add_argument(
        "--threads",
        type=_count(1),
        default=1,
        help="decoder threads (1 mirrors a DataLoader worker)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny videos, for smoke tests")
    parser.add_argument(
        "--cases",
        type=_cases,
        default=CASES,
        metavar="CASE,...",
        help=f"cases to time, comma-separated, of: {', '.join(CASES)} (default: all)",
    )
    parser.add_argument(
        "--per-codec",
        action="store_true",
        help="also time sparse reads of one video per codec (h264/hevc mp4, vp9 webm, mpeg4 avi)",
    )
    parser.add_argument("--json", type=Path, metavar="OUT", help="write rows here")


def run(args: argparse.Namespace) -> int:
    """Generate the inputs, time every case, print the table and optionally write JSON."""
    config = QUICK if args.quick else FULL
    backends = [*available_backends(), "auto"]
    log = partial(print, file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="videofocus-bench-decode-") as tmp:
        workdir = args.workdir or Path(tmp)
        needed = {name for case in args.cases for name in CASE_INPUTS[case]}
        inputs = prepare_inputs(workdir, config, log, needed)
        videos = prepare_codec_inputs(workdir, config, log) if args.per_codec else {}
        load_before = os.getloadavg()[0]
        rows = run_benchmark(
            inputs, config, backends, args.threads, args.repeats, args.warmup, args.cases
        )
        codec_rows = run_codec_benchmark(videos, backends, args.threads, args.repeats, args.warmup)
        load_after = os.getloadavg()[0]
    print(
        f"decode benchmark: threads={args.threads}, median of {args.repeats} runs "
        f"after {args.warmup} warm-up; 1-min load average {load_before:.1f} before, "
        f"{load_after:.1f} after (on {os.cpu_count()} cores)\n"
        f"config {json.dumps(asdict(config))}\n"
    )
    print(format_table(rows))
    if codec_rows:
        print("\nper codec: ms/video (cpu ms/video)\n")
        print(format_codec_table(codec_rows))
    if args.json is not None:
        write_atomic(args.json, json.dumps(rows + codec_rows, indent=2) + "\n")
    return 0
