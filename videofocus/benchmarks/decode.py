"""Frames/s of each video decoder backend, on typical clips, long videos and JPEG folders.

Cases (each timing covers opening the file and decoding it, as a DataLoader worker does per sample;
generating, re-encoding and extracting the inputs happen beforehand and are not timed):

  full_decode       every frame of a short clip, in order
  sparse            one frame per segment (TSN-style) from a long video whose keyframes are far
                    apart, as in videos found in the wild
  sparse_resize     the same frames, resized at decode time to a short side
  sparse_short_gop  the same frames from the long video re-encoded with a short keyframe interval
                    (what ``videofocus prepare reencode`` produces)
  sparse_jpeg       the same frames read with PIL from a folder of JPEGs extracted beforehand, the
                    way earlier adaptive-inference code (AR-Net, AdaFocus) loads its data

Inputs are synthetic H.264 videos written into ``--workdir``; they are kept there, so a second run
with the same workdir only repeats the timings.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image

from videofocus.io.reader import VideoReader, available_backends
from videofocus.io.samplers import SegmentSampler
from videofocus.io.writer import write_video

CASES = ("full_decode", "sparse", "sparse_resize", "sparse_short_gop", "sparse_jpeg")


@dataclass(frozen=True)
class DecodeBenchConfig:
    """What the benchmark generates and reads.

    :param clip_seconds: length of the short clip decoded in full.
    :param long_seconds: length of the long video sampled sparsely.
    :param long_gop: keyframe interval of the long video, in frames (long, as in the wild).
    :param short_gop: keyframe interval after re-encoding, in frames.
    :param num_segments: frames sampled from the long video, one per segment.
    :param short_side: short side of frames resized at decode time.
    :param crf: x264 constant rate factor of the generated videos.
    :param jpeg_quality: PIL quality of the extracted JPEG frames.
    """

    width: int = 340
    height: int = 256
    fps: float = 25.0
    clip_seconds: float = 10.0
    long_seconds: float = 150.0
    long_gop: int = 250
    short_gop: int = 16
    num_segments: int = 16
    short_side: int = 128
    crf: int = 18
    jpeg_quality: int = 95


FULL = DecodeBenchConfig()
QUICK = DecodeBenchConfig(
    width=170,
    height=128,
    clip_seconds=1.0,
    long_seconds=6.0,
    long_gop=75,
    short_gop=8,
    short_side=64,
)


@dataclass(frozen=True)
class BenchInputs:
    """Files the cases read, and what it cost to make the JPEG folder."""

    clip: Path
    long: Path
    long_short_gop: Path
    jpeg_dir: Path
    jpeg_extract_s: float


def synthetic_frames(
    num_frames: int, width: int, height: int, fps: float, seed: int = 0
) -> Iterator[np.ndarray]:
    """Yield ``uint8 [height, width, 3]`` frames that compress and decode like camera footage.

    Flat or static frames decode unrealistically fast, so the frames pan over smooth textured
    scenes, carry a moving object and a little sensor noise, and cut to another scene every 8 s.
    """
    rng = np.random.default_rng(seed)
    scenes = []
    for _ in range(4):
        coarse = rng.integers(0, 256, size=(height // 6, width // 6, 3), dtype=np.uint8)
        smooth = Image.fromarray(coarse).resize((2 * width, 2 * height), Image.Resampling.BICUBIC)
        scene = np.asarray(smooth, dtype=np.int16)
        scenes.append(scene + rng.integers(-12, 13, size=scene.shape, dtype=np.int16))
    shot_frames = max(1, int(8 * fps))
    side = max(4, min(width, height) // 4)
    for i in range(num_frames):
        t = i / fps
        scene = scenes[(i // shot_frames) % len(scenes)]
        x = int(width / 2 * (1 + np.sin(0.35 * t)))
        y = int(height / 2 * (1 + np.sin(0.23 * t + 1.0)))
        frame = scene[y : y + height, x : x + width].copy()
        ox = int((width - side) * (0.5 + 0.5 * np.sin(1.3 * t)))
        oy = int((height - side) * (0.5 + 0.5 * np.cos(0.9 * t)))
        frame[oy : oy + side, ox : ox + side] = (230, 40, 40)
        frame += rng.integers(-3, 4, size=frame.shape, dtype=np.int16)
        yield np.clip(frame, 0, 255).astype(np.uint8)


def _decoded_frames(path: Path) -> Iterator[av.VideoFrame]:
    with av.open(str(path)) as container:
        yield from container.decode(video=0)


def _decoded_rgb(path: Path) -> Iterator[np.ndarray]:
    for frame in _decoded_frames(path):
        yield frame.to_ndarray(format="rgb24")


def _build_once(
    target: Path, build: Callable[[Path], object], what: str, log: Callable[[str], None]
) -> None:
    """Run ``build(partial)`` and move the result to ``target``, unless ``target`` exists.

    Building under another name first keeps an interrupted run from leaving a truncated input
    that a later run would take for a finished one.
    """
    if target.exists():
        return
    start = time.perf_counter()
    partial = target.with_name("partial_" + target.name)
    if partial.is_dir():
        shutil.rmtree(partial)
    build(partial)
    os.replace(partial, target)
    log(f"built {what} in {time.perf_counter() - start:.1f} s: {target}")


def _extract_jpegs(video: Path, folder: Path, quality: int) -> None:
    folder.mkdir(parents=True)
    start = time.perf_counter()
    # 1-based img_00001.jpg names, as TSN-style extraction scripts write them with ffmpeg.
    for i, frame in enumerate(_decoded_frames(video)):
        frame.to_image().save(folder / f"img_{i + 1:05d}.jpg", quality=quality)
    elapsed = time.perf_counter() - start
    (folder / "extract.json").write_text(json.dumps({"seconds": elapsed}), encoding="utf-8")


def prepare_inputs(
    workdir: Path, config: DecodeBenchConfig, log: Callable[[str], None] = print
) -> BenchInputs:
    """Generate (or find from an earlier run) every file the cases read.

    :param workdir: folder that keeps the inputs; names encode the config, so configs never mix.
    :param log: called with one line per input that has to be built.
    """
    c = config
    size = f"{c.width}x{c.height}_{c.fps:g}fps_crf{c.crf}"
    clip = workdir / f"clip_{size}_{c.clip_seconds:g}s.mp4"
    long = workdir / f"long_{size}_{c.long_seconds:g}s_gop{c.long_gop}.mp4"
    short_gop = long.with_name(f"{long.stem}_reencoded_gop{c.short_gop}.mp4")
    jpeg_dir = long.with_name(f"{long.stem}_jpeg_q{c.jpeg_quality}")
    workdir.mkdir(parents=True, exist_ok=True)

    def frames(seconds: float, seed: int) -> Iterator[np.ndarray]:
        return synthetic_frames(round(seconds * c.fps), c.width, c.height, c.fps, seed)

    _build_once(
        clip,
        lambda p: write_video(p, frames(c.clip_seconds, 0), fps=c.fps, crf=c.crf),
        "clip",
        log,
    )
    _build_once(
        long,
        lambda p: write_video(p, frames(c.long_seconds, 1), fps=c.fps, crf=c.crf, gop=c.long_gop),
        "long video",
        log,
    )
    _build_once(
        short_gop,
        lambda p: write_video(p, _decoded_rgb(long), fps=c.fps, crf=c.crf, gop=c.short_gop),
        "re-encoded long video",
        log,
    )
    _build_once(jpeg_dir, lambda p: _extract_jpegs(long, p, c.jpeg_quality), "JPEG folder", log)
    extract_s = json.loads((jpeg_dir / "extract.json").read_text(encoding="utf-8"))["seconds"]
    return BenchInputs(clip, long, short_gop, jpeg_dir, extract_s)


@dataclass(frozen=True)
class Timing:
    """Medians over the timed calls, in seconds.

    :param wall: elapsed time (``time.perf_counter``), what the table reports.
    :param cpu: CPU time of this process (all its threads); ``cpu`` well below ``wall`` with one
        decoding thread means other processes competed for the cores during the run.
    """

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
    wall: dict[str, list[float]] = {name: [] for name in samples}
    cpu: dict[str, list[float]] = {name: [] for name in samples}
    for _ in range(repeats):
        for name, fn in samples.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return {
        name: Timing(statistics.median(wall[name]), statistics.median(cpu[name]))
        for name in samples
    }


def _video_sample(
    path: Path,
    backend: str,
    threads: int,
    indices: Sequence[int],
    short_side: int | None,
    expected_short_side: int,
    resolved: list[str],
) -> Callable[[], None]:
    """One DataLoader-like sample: open ``path``, decode ``indices``, close.

    The backend actually used is appended to ``resolved`` (it tells what ``auto`` chose).
    """

    def sample() -> None:
        with VideoReader(path, backend=backend, num_threads=threads) as reader:
            frames = reader.read_frames(indices, short_side=short_side)
            resolved.append(reader.backend)
        # A backend that silently returns fewer or unresized frames would look fast.
        t, h, w, _ = frames.shape
        if t != len(indices) or min(h, w) != expected_short_side:
            raise RuntimeError(f"{path}: {backend} returned frames of shape {tuple(frames.shape)}")

    return sample


def _jpeg_sample(folder: Path, indices: Sequence[int]) -> Callable[[], None]:
    """One sample the way JPEG-folder loaders do it: PIL decode, RGB, stack into a tensor."""

    def sample() -> None:
        images = []
        for i in indices:
            with Image.open(folder / f"img_{i + 1:05d}.jpg") as image:
                images.append(np.asarray(image.convert("RGB")))
        torch.from_numpy(np.stack(images))  # uint8 [T, H, W, 3], as VideoReader returns

    return sample


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("*.jpg"))


def _mb(num_bytes: int) -> str:
    return f"{num_bytes / 1e6:.1f} MB"


def run_benchmark(
    inputs: BenchInputs,
    config: DecodeBenchConfig,
    backends: Sequence[str],
    threads: int = 1,
    repeats: int = 5,
    warmup: int = 1,
) -> list[dict]:
    """Time every case with every backend and return one row dict per (case, backend).

    :param backends: VideoReader backends to time (``"auto"`` included where wanted).
    :param threads: decoder threads per reader, and torch threads while timing.
    :returns: rows with keys ``case``, ``backend``, ``resolved_backend``, ``frames``,
        ``frames_per_s``, ``ms_per_video``, ``cpu_ms_per_video``, ``notes`` (plus ``disk_bytes``,
        ``video_bytes`` and ``extract_s`` for the JPEG case).
    """
    c = config
    with VideoReader(inputs.clip) as reader:
        clip_frames = reader.metadata.num_frames
    with VideoReader(inputs.long) as reader:
        long_frames = reader.metadata.num_frames
    sparse = SegmentSampler(num_segments=c.num_segments)(long_frames).tolist()
    full = min(c.height, c.width)
    of_long = f"{len(sparse)} of {long_frames} frames"
    video_cases = [
        ("full_decode", inputs.clip, list(range(clip_frames)), None, full,
         f"{clip_frames} frames, {c.width}x{c.height}"),
        ("sparse", inputs.long, sparse, None, full,
         f"{of_long}, keyframe every {c.long_gop}, mp4 {_mb(inputs.long.stat().st_size)}"),
        ("sparse_resize", inputs.long, sparse, c.short_side, c.short_side,
         f"{of_long}, short side {c.short_side}"),
        ("sparse_short_gop", inputs.long_short_gop, sparse, None, full,
         f"{of_long}, keyframe every {c.short_gop}, "
         f"mp4 {_mb(inputs.long_short_gop.stat().st_size)}"),
    ]  # fmt: skip

    rows: list[dict] = []
    previous_threads = torch.get_num_threads()
    # A DataLoader worker runs with one torch thread; mirror whatever the reader is given.
    torch.set_num_threads(threads)
    try:
        for case, path, indices, short_side, expected, notes in video_cases:
            resolved: dict[str, list[str]] = {backend: [] for backend in backends}
            samples = {
                backend: _video_sample(
                    path, backend, threads, indices, short_side, expected, resolved[backend]
                )
                for backend in backends
            }
            timings = _time_interleaved(samples, repeats, warmup)
            for backend in backends:
                used = resolved[backend][-1]
                note = f"{notes}; auto chose {used}" if backend == "auto" else notes
                rows.append(_row(case, backend, used, len(indices), timings[backend], note))
        jpeg = {"jpeg": _jpeg_sample(inputs.jpeg_dir, sparse)}
        timing = _time_interleaved(jpeg, repeats, warmup)["jpeg"]
    finally:
        torch.set_num_threads(previous_threads)
    disk, video = _folder_bytes(inputs.jpeg_dir), inputs.long.stat().st_size
    notes = (
        f"{of_long}; folder {_mb(disk)} vs mp4 {_mb(video)}; "
        f"extraction took {inputs.jpeg_extract_s:.1f} s"
    )
    row = _row("sparse_jpeg", "jpeg (PIL)", "jpeg (PIL)", len(sparse), timing, notes)
    row.update(disk_bytes=disk, video_bytes=video, extract_s=round(inputs.jpeg_extract_s, 2))
    rows.append(row)
    return rows


def _row(case: str, backend: str, used: str, frames: int, timing: Timing, notes: str) -> dict:
    return {
        "case": case,
        "backend": backend,
        "resolved_backend": used,
        "frames": frames,
        "frames_per_s": round(frames / timing.wall, 1),
        "ms_per_video": round(timing.wall * 1000, 2),
        "cpu_ms_per_video": round(timing.cpu * 1000, 2),
        "notes": notes,
    }


def format_table(rows: Sequence[dict]) -> str:
    """Render rows as a Markdown table.

    ``cpu ms/video`` is this process's CPU time; on a machine shared with other jobs it is the
    steadier number, and ``ms/video`` well above it means the run waited for a core.
    """
    lines = [
        "| case | backend | frames/s | ms/video | cpu ms/video | notes |",
        "|---|---|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['backend']} | {r['frames_per_s']:.0f} | "
            f"{r['ms_per_video']:.1f} | {r['cpu_ms_per_video']:.1f} | {r['notes']} |"
        )
    return "\n".join(lines)


def _count(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer of at least ``minimum``."""

    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``videofocus bench decode``."""
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
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
    parser.add_argument("--json", type=Path, default=None, metavar="OUT", help="write rows here")


def run(args: argparse.Namespace) -> int:
    """Generate the inputs, time every case, print the table and optionally write JSON."""
    config = QUICK if args.quick else FULL
    backends = [*available_backends(), "auto"]

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="videofocus-bench-decode-") as tmp:
        workdir = args.workdir or Path(tmp)
        inputs = prepare_inputs(workdir, config, log)
        load_before = os.getloadavg()[0]
        rows = run_benchmark(inputs, config, backends, args.threads, args.repeats, args.warmup)
        load_after = os.getloadavg()[0]
    print(
        f"decode benchmark: threads={args.threads}, median of {args.repeats} runs "
        f"after {args.warmup} warm-up; 1-min load average {load_before:.1f} before, "
        f"{load_after:.1f} after (on {os.cpu_count()} cores)\n"
        f"config {json.dumps(asdict(config))}\n"
    )
    print(format_table(rows))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0
