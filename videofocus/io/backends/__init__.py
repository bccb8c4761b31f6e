"""Decoder backends behind :class:`~videofocus.io.reader.VideoReader`, and the ``auto`` rule.

A backend is a class with ``name``, ``metadata``, ``scan``, ``decode(indices, size) -> uint8
[N, H, W, 3]`` (ascending unique indices) and ``close()``; it is registered here by module path
and imported only when used, so a missing optional decoder costs nothing. Nothing here imports
torch: probing child processes use these classes directly.
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
        """``uint8 [N, H, W, 3]`` RGB frames for ascending unique ``indices``."""
        ...

    def close(self) -> None: ...


#: backend name -> (module, class, the third-party module it needs)
BACKENDS: dict[str, tuple[str, str, str]] = {
    "pyav": ("videofocus.io.backends.pyav", "PyAVDecoder", "av"),
    "decord": ("videofocus.io.backends.decord_backend", "DecordDecoder", "decord"),
}

#: Codecs whose sparse reads decord gets right even through B-frames (checked by the tests on
#: index-coded files). On MPEG-4 Part 2 and MPEG-2 with B-frames it returns other frames than
#: those asked for; without B-frames it is right for those too.
DECORD_ACCURATE_CODECS = frozenset({"h264", "vp9"})

#: Demuxers whose timestamps decord indexes the same way as the scan.
DECORD_CONTAINERS = frozenset({"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "avi"})

#: Codecs for which ``auto`` prefers decord: none, because PyAV was measured faster on sparse
#: reads of every file tried (timings in :mod:`videofocus.io.reader`). A codec may only be added
#: here if :func:`decord_problem` finds no problem with its files.
AUTO_DECORD_CODECS: frozenset[str] = frozenset()


def available_backends() -> list[str]:
    """Names of the backends whose decoder library is installed, reference (``pyav``) first."""
    return [name for name, (*_, needs) in BACKENDS.items() if importlib.util.find_spec(needs)]


def decord_problem(scan: VideoScan) -> str | None:
    """``None`` when decord returns the same frames as PyAV for this file, else why not."""
    meta = scan.metadata
    if not scan.has_timestamps:
        return "decord cannot index a stream without timestamps"
    if meta.rotation:
        return f"decord rotates frames with a {meta.rotation} degree display rotation"
    if scan.container_format not in DECORD_CONTAINERS:
        return f"decord is not checked on {scan.container_format!r} files"
    if scan.reordered and meta.codec not in DECORD_ACCURATE_CODECS:
        return f"decord returns wrong frames on sparse reads of {meta.codec} with B-frames"
    return None


def select_backend(scan: VideoScan) -> str:
    """The ``auto`` rule: the fastest backend known to be frame-accurate for this file."""
    if (
        scan.metadata.codec in AUTO_DECORD_CODECS
        and "decord" in available_backends()
        and decord_problem(scan) is None
    ):
        return "decord"
    return "pyav"


def open_decoder(path: str | Path, backend: str = "auto", num_threads: int = 1) -> FrameDecoder:
    """Scan ``path`` and open it with ``backend`` (``auto``, ``pyav`` or ``decord``).

    With ``auto`` the file is opened with :func:`select_backend`'s choice, falling back to PyAV
    when decord refuses or fails to open it.

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
    if name not in available_backends():
        raise ValueError(
            f"video backend {name!r} is not installed (needs the {BACKENDS[name][2]!r} package); "
            f"available: {', '.join(available_backends())}"
        )


def decoder_class(name: str) -> type[FrameDecoder]:
    """Import the class implementing backend ``name``."""
    module, cls, _ = BACKENDS[name]
    return getattr(importlib.import_module(module), cls)
