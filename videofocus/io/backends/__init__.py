"""Decoder backends behind :class:`~videofocus.io.reader.VideoReader`, and the ``auto`` rule.

A backend is a :class:`FrameDecoder` class, registered here by module path and imported only
when used, so a missing optional decoder costs nothing. Nothing here imports torch: probing child
processes use these classes directly.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from videofocus.io.backends.scan import VideoScan, scan_video
from videofocus.io.errors import VideoDecodeError
from videofocus.io.metadata import VideoMetadata


class FrameDecoder(Protocol):
    """What every backend class provides."""

    name: str
    scan: VideoScan

    @property
    def metadata(self) -> VideoMetadata: ...

    def decode(self, indices: Sequence[int], size: tuple[int, int] | None = None) -> np.ndarray:
        """``uint8 [N, H, W, 3]`` RGB frames, as stored (not rotated), for ascending, unique,
        in-range ``indices``, scaled to ``size`` (``(width, height)``; ``None``: stored size)."""
        ...

    def close(self) -> None: ...


#: backend name -> (module, class, the third-party module it needs)
BACKENDS: dict[str, tuple[str, str, str]] = {
    "pyav": ("videofocus.io.backends.pyav", "PyAVDecoder", "av"),
    "decord": ("videofocus.io.backends.decord_backend", "DecordDecoder", "decord"),
    "torchcodec": ("videofocus.io.backends.torchcodec_backend", "TorchCodecDecoder", "torchcodec"),
}

#: Codecs whose sparse reads decord gets right even through B-frames (checked by the tests on
#: index-coded files). On MPEG-4 Part 2 and MPEG-2 with B-frames it returns other frames than
#: those asked for; without B-frames it is right for those too.
DECORD_ACCURATE_CODECS = frozenset({"h264", "vp9"})

#: Demuxers whose timestamps decord indexes the same way as the scan.
DECORD_CONTAINERS = frozenset({"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "avi"})

#: Codec -> the backend ``auto`` prefers to PyAV for it, being faster on this project's sparse
#: reads (``videofocus bench decode --per-codec``; empty: none is, see docs/benchmarks.md), where
#: it is available and :func:`known_problem` finds it accurate for the file.
AUTO_FASTER: dict[str, str] = {}


def available_backends() -> list[str]:
    """Names of the backends whose decoder library is installed and loads, reference first."""
    return [name for name in BACKENDS if backend_problem(name) is None]


def backend_problem(name: str) -> str | None:
    """``None`` when registered backend ``name`` can run here, else why not (cheap, no torch)."""
    needs = BACKENDS[name][2]
    if importlib.util.find_spec(needs) is None:
        return f"it is not installed (needs the {needs!r} package)"
    if name == "torchcodec":  # an installed wheel still needs the system's FFmpeg libraries
        from videofocus.io.backends.torchcodec_backend import library_problem

        return library_problem()
    return None


def decord_problem(scan: VideoScan) -> str | None:
    """``None`` when decord returns the same frames as PyAV for this file, else why not."""
    meta = scan.metadata
    if not scan.has_timestamps:
        return "decord cannot index a stream without timestamps"
    if scan.bit_depth > 8:
        # its colour conversion of high-bit-depth frames is off by up to 175 levels here
        return f"decord returns wrong colours for {scan.bit_depth}-bit video ({scan.pixel_format})"
    if meta.rotation:
        return f"decord rotates frames with a {meta.rotation} degree display rotation"
    if scan.container_format not in DECORD_CONTAINERS:
        return f"decord is not checked on {scan.container_format!r} files"
    if scan.reordered and not scan.timestamps_trusted:
        return f"decord orders frames by the invented timestamps of {scan.container_format!r} files"
    if scan.reordered and meta.codec not in DECORD_ACCURATE_CODECS:
        return f"decord returns wrong frames on sparse reads of {meta.codec} with B-frames"
    return None


def known_problem(name: str, scan: VideoScan) -> str | None:
    """Why backend ``name`` would return other frames than PyAV for this file (``None``: it
    would not), judged from the scan alone, without opening the file."""
    if name == "pyav":
        return None
    if name == "decord":
        return decord_problem(scan)
    if name == "torchcodec":
        from videofocus.io.backends.torchcodec_backend import known_problem as torchcodec_problem

        return torchcodec_problem(scan)
    raise ValueError(f"unknown video backend {name!r}")


def select_backend(scan: VideoScan) -> str:
    """The ``auto`` rule: the backend measured fastest for this file's codec among those that
    decode it frame-exactly and are available here (:data:`AUTO_FASTER`), else PyAV."""
    name = AUTO_FASTER.get(scan.metadata.codec, "pyav")
    if name != "pyav" and name in available_backends() and known_problem(name, scan) is None:
        return name
    return "pyav"


def open_decoder(path: str | Path, backend: str = "auto", num_threads: int = 1) -> FrameDecoder:
    """Scan ``path`` and open it with ``backend`` (``auto`` or a name in :data:`BACKENDS`).

    With ``auto`` the file is opened with :func:`select_backend`'s choice, falling back to PyAV
    when that backend refuses or fails to open it.

    :raises VideoDecodeError: the file is missing, empty, not a video, or undecodable.
    :raises ValueError: unknown backend name, or a backend whose library is not installed.
    """
    if backend != "auto":
        check_backend(backend)
    scan = scan_video(path)
    name = select_backend(scan) if backend == "auto" else backend
    try:
        return decoder_class(name)(path, num_threads=num_threads, scan=scan)
    except VideoDecodeError:
        if backend != "auto" or name == "pyav":
            raise
    return decoder_class("pyav")(path, num_threads=num_threads, scan=scan)


def check_backend(name: str) -> None:
    """Raise ``ValueError`` unless ``name`` is a registered, installed backend."""
    if name not in BACKENDS:
        raise ValueError(f"unknown video backend {name!r}; choose from auto, {', '.join(BACKENDS)}")
    problem = backend_problem(name)
    if problem is not None:
        raise ValueError(
            f"video backend {name!r} cannot be used: {problem}; "
            f"available: {', '.join(available_backends())}"
        )


def decoder_class(name: str) -> type[FrameDecoder]:
    """Import the class implementing backend ``name``."""
    module, cls, _ = BACKENDS[name]
    return getattr(importlib.import_module(module), cls)
