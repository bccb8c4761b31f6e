"""Optional decoder: torchcodec (PyTorch's FFmpeg binding; imported lazily, with torch).

torchcodec does not bundle FFmpeg. Its wheel holds one core library per FFmpeg major version,
each linked to that version's shared libraries on the system (``apt-get install ffmpeg``,
``conda install ffmpeg``), so an installed torchcodec may still be unusable.
:func:`library_problem` finds that out without importing torch, by looking for the FFmpeg
libraries one of those core libraries needs, and the backend then counts as not available.

Frame identity. torchcodec finds frame ``i`` by its timestamp, which is frame ``i`` of a
sequential decode only where the timestamps are the real presentation times (checked on
index-coded files by ``tests/test_io_torchcodec.py``). :func:`known_problem` refuses, cheaply from
the scan, every file whose timestamps the scan does not trust and every container not checked;
the decoder also refuses files whose frame count torchcodec and the scan disagree on. torchcodec
applies the display rotation itself; frames are rotated back here, as every backend returns them
as stored.
"""

from __future__ import annotations

import functools
import glob
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from videofocus.io.backends.scan import ScannedDecoder, VideoScan
from videofocus.io.errors import VideoDecodeError

#: Demuxers torchcodec is checked on (frames equal to a sequential PyAV decode).
TORCHCODEC_CONTAINERS = frozenset({"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm"})

_FFMPEG_LIBRARIES = tuple("avutil avcodec avformat avdevice avfilter swscale swresample".split())

#: FFmpeg major version -> soname versions of :data:`_FFMPEG_LIBRARIES` that torchcodec's
#: ``libtorchcodec_core<major>.so`` links to (``readelf -d``; checked by the tests).
FFMPEG_SONAME_VERSIONS: dict[int, tuple[int, ...]] = {
    4: (56, 58, 58, 58, 7, 5, 3),
    5: (57, 59, 59, 59, 8, 6, 4),
    6: (58, 60, 60, 60, 9, 7, 4),
    7: (59, 61, 61, 61, 10, 8, 5),
    8: (60, 62, 62, 62, 11, 9, 6),
    9: (61, 63, 63, 63, 12, 10, 7),
}

FFMPEG_HINT = (
    "torchcodec needs the FFmpeg shared libraries (major version 4 to 9) of the system: "
    "install them with `apt-get install ffmpeg` (Debian/Ubuntu) or `conda install ffmpeg`"
)


def ffmpeg_sonames(major: int) -> tuple[str, ...]:
    """The shared libraries torchcodec's core library for FFmpeg ``major`` loads (Linux)."""
    versions = FFMPEG_SONAME_VERSIONS[major]
    return tuple(f"lib{lib}.so.{v}" for lib, v in zip(_FFMPEG_LIBRARIES, versions, strict=True))


@functools.cache
def library_problem() -> str | None:
    """``None`` when torchcodec can decode here, else why not; cached, and torch is not imported.

    On Linux, looks for the FFmpeg libraries of each core library the wheel ships where the
    dynamic loader will, without loading them (slow). Elsewhere nothing is checked beforehand; a
    missing FFmpeg then shows as a :class:`VideoDecodeError` when a file is opened.
    """
    spec = importlib.util.find_spec("torchcodec")
    if spec is None or not spec.submodule_search_locations:
        return "torchcodec is not installed"
    if not sys.platform.startswith("linux"):
        return None
    package = Path(next(iter(spec.submodule_search_locations)))
    torch = importlib.util.find_spec("torch")
    if torch is None or not torch.submodule_search_locations:
        return "torchcodec needs torch, which is not installed"
    mismatch = cuda_mismatch(package, Path(next(iter(torch.submodule_search_locations))))
    if mismatch is not None:
        return mismatch
    shipped = [m for m in FFMPEG_SONAME_VERSIONS if any(package.glob(f"libtorchcodec_core{m}.*"))]
    return None if loadable_ffmpeg(shipped, library_dirs()) is not None else FFMPEG_HINT


def cuda_mismatch(torchcodec_package: Path, torch_package: Path) -> str | None:
    """Why a CUDA build of torchcodec (``pip``'s default on Linux) cannot load next to this
    torch, which is a CPU build; ``None`` when the builds fit."""
    version_file = torchcodec_package / "version.py"
    version = version_file.read_text(encoding="utf-8") if version_file.is_file() else ""
    if "+cu" in version and not any((torch_package / "lib").glob("libtorch_cuda.*")):
        return (
            "this torchcodec is a CUDA build and torch a CPU build: install torchcodec's CPU "
            "build (pip install torchcodec --index-url https://download.pytorch.org/whl/cpu)"
        )
    return None


def loadable_ffmpeg(majors: Sequence[int], dirs: Sequence[Path]) -> int | None:
    """The highest FFmpeg major version in ``majors`` whose libraries all lie in ``dirs``."""
    for major in sorted(majors, reverse=True):  # the order torchcodec tries them in
        if all(any((d / name).exists() for d in dirs) for name in ffmpeg_sonames(major)):
            return major
    return None


def library_dirs() -> list[Path]:
    """Folders the Linux dynamic loader searches for a library named without a path:
    ``LD_LIBRARY_PATH``, the environment's ``lib`` (``conda install ffmpeg``), the folders of
    ``/etc/ld.so.conf`` and the defaults."""
    dirs = [Path(d) for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") if d]
    dirs.append(Path(sys.prefix) / "lib")
    dirs += _ld_so_conf_dirs(Path("/etc/ld.so.conf"))
    dirs += [Path(d) for d in ("/lib", "/usr/lib", "/lib64", "/usr/lib64")]
    return list(dict.fromkeys(dirs))


def _ld_so_conf_dirs(conf: Path, depth: int = 0) -> list[Path]:
    """Folders listed in an ``ld.so.conf`` file, following its ``include`` lines."""
    try:
        lines = conf.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    dirs: list[Path] = []
    for line in lines:
        words = line.split("#", 1)[0].split()
        if words[:1] == ["include"] and depth < 8:  # depth: a cycle of includes must end
            for pattern in words[1:]:
                for included in sorted(glob.glob(str(conf.parent / pattern))):
                    dirs += _ld_so_conf_dirs(Path(included), depth + 1)
        elif words:
            dirs.append(Path(words[0]))
    return dirs


def known_problem(scan: VideoScan) -> str | None:
    """``None`` when torchcodec returns the same frames as a sequential PyAV decode, else why not
    (from the scan only, without opening the file)."""
    if not scan.timestamps_trusted:
        return (
            f"torchcodec finds frames by timestamp, and {scan.container_format!r} files "
            "have none that can be trusted"
        )
    if scan.container_format not in TORCHCODEC_CONTAINERS:
        return f"torchcodec is not checked on {scan.container_format!r} files"
    return None


class TorchCodecDecoder(ScannedDecoder):
    """Decode frames of one file by presentation index with ``torchcodec.decoders.VideoDecoder``.

    Always on the CPU. Resizing is torchcodec's own (``transforms=[Resize]``), fixed when a
    decoder opens, so one torchcodec decoder is kept per output size.

    Arguments as for :class:`~videofocus.io.backends.scan.ScannedDecoder` (at least one thread:
    never torchcodec's automatic 0).

    :raises VideoDecodeError: torchcodec cannot load or open the file, or would index it
        differently from the scan.
    """

    name = "torchcodec"

    def __init__(self, path: str | Path, num_threads: int = 1, scan: VideoScan | None = None):
        super().__init__(path, max(1, num_threads), scan)
        problem = known_problem(self.scan) or library_problem()
        if problem is not None:
            raise VideoDecodeError(self.path, f"{problem}; use the pyav backend")
        try:  # lazy: optional, and it imports torch
            from torchcodec.decoders import VideoDecoder
            from torchcodec.transforms import Resize
        except (ImportError, OSError, RuntimeError) as err:
            raise VideoDecodeError(
                self.path, f"torchcodec cannot load ({_gist(err)}); use the pyav backend"
            ) from err
        self._video_decoder, self._resize = VideoDecoder, Resize
        # torchcodec turns frames upright; this many quarter turns counter-clockwise undo it
        self._unrotate = (-self.metadata.rotation // 90) % 4
        self._decoders: dict[tuple[int, int], Any] = {}
        count = len(self._decoder(self.metadata.stored_size))
        if count != self.metadata.num_frames:
            raise VideoDecodeError(
                self.path,
                f"torchcodec counts {count} frames where the demuxer finds "
                f"{self.metadata.num_frames}; use the pyav backend",
            )

    def decode(self, indices: Sequence[int], size: tuple[int, int] | None = None) -> np.ndarray:
        """As :meth:`~videofocus.io.backends.FrameDecoder.decode`; torchcodec scales."""
        decoder = self._decoder(size or self.metadata.stored_size)
        try:
            frames = decoder.get_frames_at([int(i) for i in indices]).data.numpy()
        except (RuntimeError, IndexError) as err:
            raise VideoDecodeError(self.path, f"torchcodec failed: {_gist(err)}") from err
        if self._unrotate:
            frames = np.ascontiguousarray(np.rot90(frames, k=self._unrotate, axes=(1, 2)))
        return frames

    def close(self) -> None:
        """Drop the torchcodec decoders."""
        self._decoders.clear()

    def _decoder(self, size: tuple[int, int]) -> Any:
        """The torchcodec decoder giving frames of stored ``(width, height)`` ``size``."""
        decoder = self._decoders.get(size)
        if decoder is None:
            width, height = size
            # torchcodec resizes the upright frame: ask for the rotated size
            upright = (width, height) if self.metadata.rotation % 180 else (height, width)
            transforms = [] if size == self.metadata.stored_size else [self._resize(upright)]
            try:
                decoder = self._video_decoder(
                    str(self.path),
                    stream_index=self.scan.stream_index,
                    dimension_order="NHWC",
                    num_ffmpeg_threads=self.num_threads,
                    device="cpu",
                    seek_mode="exact",
                    transforms=transforms,
                )
            except (RuntimeError, ValueError) as err:
                raise VideoDecodeError(
                    self.path, f"torchcodec cannot open it: {_gist(err)}; use the pyav backend"
                ) from err
            self._decoders[size] = decoder
        return decoder


def _gist(err: Exception) -> str:
    """torchcodec's C++ errors start with the function and source location; keep the message."""
    lines = [line for line in str(err).splitlines() if line.strip()]
    text = lines[0].strip() if lines else type(err).__name__
    return text.rsplit(".cpp:", 1)[-1].split(", ", 1)[-1] if ".cpp:" in text else text
