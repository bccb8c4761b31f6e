"""One frame-reading API over several decoders: :class:`VideoReader`.

Backends: ``pyav`` (reference, every format FFmpeg reads), ``decord`` and ``torchcodec``
(optional). All start from one demuxer scan (:mod:`videofocus.io.backends.scan`), so they agree on
frame indices and counts, and return the same frames (up to colour-conversion rounding), upright.
Frame ``i`` is the ``i``-th frame of a sequential decode; a backend that cannot guarantee that for
a file refuses it (:func:`videofocus.io.backends.known_problem`). ``backend="auto"`` picks per
file (:func:`videofocus.io.backends.select_backend`) and falls back to PyAV whenever another
backend refuses, fails to open or fails to decode a file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from videofocus.io.backends import (
    FrameDecoder,
    available_backends,
    decoder_class,
    open_decoder,
)
from videofocus.io.errors import VideoDecodeError
from videofocus.io.metadata import VideoMetadata
from videofocus.io.samplers import SAMPLINGS, FrameSampler, snap_to_keyframes

if TYPE_CHECKING:  # torch is imported where tensors are made: probing children never need it
    import torch

__all__ = ["VideoReader", "available_backends"]


class VideoReader:
    """Read frames of one video by index or by time, as ``uint8 [T, H, W, 3]`` RGB tensors.

    A reader keeps its decoder open between reads, so reading a video's frames in ascending chunks
    decodes each frame once. Not thread-safe; give every DataLoader worker its own reader.

    :param path: the video file.
    :param backend: ``"auto"`` (fastest accurate decoder for this file), ``"pyav"``,
        ``"decord"`` or ``"torchcodec"``.
    :param num_threads: decoding threads per reader.
    :raises VideoDecodeError: the file is missing, not a video or undecodable, or the backend
        asked for cannot decode it frame-exactly.
    :raises ValueError: unknown or uninstalled backend.
    """

    def __init__(self, path: str | Path, backend: str = "auto", num_threads: int = 1) -> None:
        self.path = Path(path)
        self.num_threads = num_threads
        self._auto = backend == "auto"
        self._decoder: FrameDecoder | None = open_decoder(self.path, backend, num_threads)

    @property
    def backend(self) -> str:
        """The backend actually decoding (``"pyav"``, ``"decord"`` or ``"torchcodec"``)."""
        return self._open_decoder().name

    @property
    def metadata(self) -> VideoMetadata:
        """Measured metadata (fps, frame count, displayed size, rotation, codec)."""
        return self._open_decoder().metadata

    def frame_boundaries(self) -> np.ndarray:
        """``float64 [num_frames + 1]`` seconds: frame ``i`` is shown from entry ``i`` to entry
        ``i + 1`` (first frame at 0; the last entry is the end of the video)."""
        scan = self._open_decoder().scan
        return np.append(scan.timestamps(), scan.metadata.duration)

    @property
    def keyframes(self) -> np.ndarray:
        """``int64`` presentation indices of the video's keyframes, ascending (frame 0 first).

        :raises VideoDecodeError: the keyframes cannot be located without decoding (frames
            counted in a stream with B-frames, e.g. AVI with packed B-frames).
        """
        scan = self._open_decoder().scan
        if not scan.keyframes_known and scan.metadata.num_frames > 1:
            raise VideoDecodeError(
                self.path,
                f"keyframe sampling needs the keyframes' frame indices, which this "
                f"{scan.container_format} file's B-frames hide until decoded; use exact sampling",
            )
        return np.asarray(scan.keyframes, dtype=np.int64)

    def read_frames(
        self, indices: Sequence[int], short_side: int | None = None, sampling: str = "exact"
    ) -> torch.Tensor:
        """Decode the frames at ``indices`` (presentation order, 0-based).

        :param indices: frame indices in any order; duplicates allowed.
        :param short_side: resize while decoding so that the shorter side has this length,
            keeping the aspect ratio; ``None`` keeps the size.
        :param sampling: ``"exact"``, or ``"keyframe"`` for indices that are all keyframes (as
            ``sample_indices(..., sampling="keyframe")`` gives them): each is then decoded alone
            after a seek, without the frames before it in its GOP (PyAV; other backends read
            them as any frames). Each distinct index is decoded once in both modes.
        :return: ``uint8 [T, H, W, 3]`` RGB, frames in the order of ``indices``.
        :raises IndexError: an index outside ``[0, num_frames)``.
        :raises ValueError: ``sampling="keyframe"`` with an index that is not a keyframe.
        :raises VideoDecodeError: the frames cannot be decoded, or not told apart.
        """
        import torch

        return torch.from_numpy(self.read_frames_numpy(indices, short_side, sampling))

    def read_frames_numpy(
        self, indices: Sequence[int], short_side: int | None = None, sampling: str = "exact"
    ) -> np.ndarray:
        """:meth:`read_frames` as a NumPy array (the path probing uses, without torch)."""
        if sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {list(SAMPLINGS)}, got {sampling!r}")
        meta = self.metadata
        wanted = np.asarray(indices, dtype=np.int64).reshape(-1)
        bad = wanted[(wanted < 0) | (wanted >= meta.num_frames)]
        if bad.size:
            raise IndexError(
                f"{self.path}: frame index {int(bad[0])} out of range [0, {meta.num_frames})"
            )
        width, height = meta.resized_size(short_side)
        if wanted.size == 0:
            return np.empty((0, height, width, 3), dtype=np.uint8)
        unique, order = np.unique(wanted, return_inverse=True)
        stored = (height, width) if meta.rotation % 180 else (width, height)
        if sampling == "keyframe":
            not_key = np.setdiff1d(unique, self.keyframes)
            if not_key.size:
                raise ValueError(f"{self.path}: frame {int(not_key[0])} is not a keyframe")
        frames = self._decode(unique.tolist(), stored, sampling)  # [U, h, w, 3] as stored
        if meta.rotation:
            frames = np.ascontiguousarray(np.rot90(frames, k=meta.rotation // 90, axes=(1, 2)))
        return frames if np.array_equal(unique, wanted) else frames[order]

    def sample_indices(
        self,
        sampler: FrameSampler,
        start: float | None = None,
        end: float | None = None,
        rng: np.random.Generator | None = None,
        sampling: str = "exact",
    ) -> np.ndarray:
        """The clip ``sampler`` picks from this video or from its segment ``[start, end)`` s, by
        presentation time; with ``sampling="keyframe"`` each index moved to its nearest keyframe
        (:func:`~videofocus.io.samplers.snap_to_keyframes`). Raises ``FrameRangeError`` when the
        segment holds no frame, ``VideoDecodeError`` when keyframes cannot be located."""
        if sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {list(SAMPLINGS)}, got {sampling!r}")
        indices = sampler(
            self.metadata.num_frames,
            start=start,
            end=end,
            rng=rng,
            boundaries=self.frame_boundaries(),
        )
        return snap_to_keyframes(indices, self.keyframes) if sampling == "keyframe" else indices

    def read_segment(
        self,
        start: float,
        end: float,
        num_frames: int | None = None,
        short_side: int | None = None,
    ) -> torch.Tensor:
        """Frames whose presentation times fall in ``[start, end)`` seconds (first frame at 0).

        :param num_frames: take this many frames spread uniformly over the segment's frames
            (repeating frames when the segment holds fewer); ``None`` takes all of them.
        :param short_side: as in :meth:`read_frames`.
        :return: ``uint8 [T, H, W, 3]`` (``T`` may be 0 when ``num_frames`` is ``None``).
        :raises ValueError: ``end <= start`` or ``num_frames < 1``.
        :raises IndexError: ``num_frames`` asked of a segment holding no frame.
        """
        if end <= start:
            raise ValueError(f"segment end {end} must be after its start {start}")
        if num_frames is not None and num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        times = self.frame_boundaries()[:-1]
        first, stop = np.searchsorted(times, [start, end], side="left")
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

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = self._decoder.name if self._decoder is not None else "closed"
        return f"VideoReader({str(self.path)!r}, backend={state})"

    def _open_decoder(self) -> FrameDecoder:
        if self._decoder is None:
            raise RuntimeError(f"{self.path}: reader is closed")
        return self._decoder

    def _decode(self, indices: list[int], size: tuple[int, int], sampling: str) -> np.ndarray:
        decoder = self._open_decoder()
        try:
            return self._checked(decoder, indices, size, sampling)
        except VideoDecodeError:
            if not self._auto or decoder.name == "pyav":
                raise
        # auto mode: another backend failed mid-file; the reference decoder takes over for good
        decoder.close()
        self._decoder = decoder_class("pyav")(self.path, self.num_threads, scan=decoder.scan)
        return self._checked(self._decoder, indices, size, sampling)

    def _checked(
        self, decoder: FrameDecoder, indices: list[int], size: tuple[int, int], sampling: str
    ) -> np.ndarray:
        """``decoder``'s frames, refused unless they have exactly the shape asked for."""
        # only PyAV reads a keyframe alone; other backends' sparse reads find the same frames
        alone = getattr(decoder, "decode_keyframes", None) if sampling == "keyframe" else None
        frames = (alone or decoder.decode)(indices, size)
        expected = (len(indices), size[1], size[0], 3)
        if frames.shape != expected or frames.dtype != np.uint8:
            raise VideoDecodeError(
                self.path,
                f"{decoder.name} returned {frames.dtype} frames {frames.shape}, not uint8 "
                f"{expected}",
            )
        return frames
