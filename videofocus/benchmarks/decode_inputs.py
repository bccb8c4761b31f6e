"""Inputs of ``videofocus bench decode``: the synthetic videos and JPEG folder it times.

``prepare_inputs`` writes a short clip, a long video with far-apart keyframes, that video
re-encoded with a short keyframe interval, and its frames extracted as JPEGs;
``prepare_codec_inputs`` writes one video per codec of :data:`CODEC_INPUTS`. Each is built once
per config under the work folder and reused by later runs; building is never timed.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image

from videofocus.io.writer import write_video

#: name -> (FFmpeg encoder, file extension, max consecutive B-frames or None for the encoder's
#: default) of the per-codec inputs: the codecs and containers found in video datasets
CODEC_INPUTS: dict[str, tuple[str, str, int | None]] = {
    "h264-mp4": ("libx264", "mp4", None),
    "hevc-mp4": ("libx265", "mp4", None),
    "vp9-webm": ("libvpx-vp9", "webm", None),
    "mpeg4-avi": ("mpeg4", "avi", 2),
    "mpeg4-avi-no-bframes": ("mpeg4", "avi", 0),
}


@dataclass(frozen=True)
class DecodeBenchConfig:
    """What the benchmark generates and reads (GOPs: keyframe intervals, in frames)."""

    width: int = 340
    height: int = 256
    fps: float = 25.0
    clip_seconds: float = 10.0  # the short clip decoded in full
    long_seconds: float = 150.0  # the long video sampled sparsely
    long_gop: int = 250  # of the long and the per-codec videos (long, as in the wild)
    short_gop: int = 16  # of the long video re-encoded
    num_segments: int = 16  # frames sampled from the long video, one per segment
    codec_seconds: float = 60.0  # each per-codec video
    short_side: int = 128  # of frames resized at decode time
    crf: int = 18  # x264 constant rate factor of the generated videos
    jpeg_quality: int = 95  # PIL quality of the extracted JPEG frames


@dataclass(frozen=True)
class BenchInputs:
    """Files the cases read, and what it cost to make the JPEG folder (``None``: not asked for)."""

    clip: Path | None
    long: Path | None
    long_short_gop: Path | None
    jpeg_dir: Path | None
    jpeg_extract_s: float | None


#: The inputs of :func:`prepare_inputs`, by :class:`BenchInputs` field.
INPUTS = ("clip", "long", "long_short_gop", "jpeg_dir")


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
    workdir: Path,
    config: DecodeBenchConfig,
    log: Callable[[str], None] = print,
    needed: Iterable[str] = INPUTS,
) -> BenchInputs:
    """Generate (or find from an earlier run) the files the cases read.

    :param workdir: folder that keeps the inputs; names encode the config, so configs never mix.
    :param log: called with one line per input that has to be built.
    :param needed: the :data:`INPUTS` to make; the others are ``None`` (the long video is made
        for the two made from it too).
    """
    needed = set(needed)
    unknown = needed - set(INPUTS)
    if unknown:
        raise ValueError(f"unknown bench inputs {sorted(unknown)}; choose from {list(INPUTS)}")
    c = config
    size = f"{c.width}x{c.height}_{c.fps:g}fps_crf{c.crf}"
    clip = workdir / f"clip_{size}_{c.clip_seconds:g}s.mp4"
    long = workdir / f"long_{size}_{c.long_seconds:g}s_gop{c.long_gop}.mp4"
    short_gop = long.with_name(f"{long.stem}_reencoded_gop{c.short_gop}.mp4")
    jpeg_dir = long.with_name(f"{long.stem}_jpeg_q{c.jpeg_quality}")
    workdir.mkdir(parents=True, exist_ok=True)

    def frames(seconds: float, seed: int) -> Iterator[np.ndarray]:
        return synthetic_frames(round(seconds * c.fps), c.width, c.height, c.fps, seed)

    def encode(partial: Path, source: Iterable[np.ndarray], gop: int | None = None) -> int:
        return write_video(partial, source, fps=c.fps, crf=c.crf, gop=gop)

    decoded = (frame.to_ndarray(format="rgb24") for frame in _decoded_frames(long))
    if "clip" in needed:
        _build_once(clip, lambda p: encode(p, frames(c.clip_seconds, 0)), "clip", log)
    if needed & {"long", "long_short_gop", "jpeg_dir"}:  # the other two are made from it
        long_frames = frames(c.long_seconds, 1)
        _build_once(long, lambda p: encode(p, long_frames, c.long_gop), "long video", log)
    if "long_short_gop" in needed:
        _build_once(
            short_gop, lambda p: encode(p, decoded, c.short_gop), "re-encoded long video", log
        )
    extract_s = None
    if "jpeg_dir" in needed:
        _build_once(jpeg_dir, lambda p: _extract_jpegs(long, p, c.jpeg_quality), "JPEG folder", log)
        extract_s = json.loads((jpeg_dir / "extract.json").read_text(encoding="utf-8"))["seconds"]
    return BenchInputs(
        clip if "clip" in needed else None,
        long if "long" in needed else None,
        short_gop if "long_short_gop" in needed else None,
        jpeg_dir if "jpeg_dir" in needed else None,
        extract_s,
    )


def prepare_codec_inputs(
    workdir: Path, config: DecodeBenchConfig, log: Callable[[str], None] = print
) -> dict[str, Path]:
    """Generate (or find) one video per entry of :data:`CODEC_INPUTS` whose encoder this FFmpeg
    build has: the same synthetic footage, ``codec_seconds`` long, a keyframe every ``long_gop``.

    :returns: input name -> file, in :data:`CODEC_INPUTS` order.
    """
    c = config
    workdir.mkdir(parents=True, exist_ok=True)
    size = f"{c.width}x{c.height}_{c.fps:g}fps_crf{c.crf}"  # names encode the config
    videos: dict[str, Path] = {}
    for name, (encoder, extension, bframes) in CODEC_INPUTS.items():
        if encoder not in av.codecs_available:
            log(f"skipping {name}: this FFmpeg build has no {encoder} encoder")
            continue
        path = workdir / f"codec_{name}_{size}_{c.codec_seconds:g}s_gop{c.long_gop}.{extension}"
        frames = synthetic_frames(round(c.codec_seconds * c.fps), c.width, c.height, c.fps, 2)
        video = dict(frames=frames, fps=c.fps, codec=encoder, crf=c.crf, gop=c.long_gop)
        _build_once(
            path, functools.partial(write_video, **video, bframes=bframes), f"{name} video", log
        )
        videos[name] = path
    return videos
