"""The reference decoder: PyAV (FFmpeg), frame-accurate for every format FFmpeg reads.

Sparse reads decode little more than needed: for each requested frame, in ascending order, the
decoder seeks to the keyframe at or before it (from the scan, :mod:`.scan`) only when that
keyframe lies beyond the current decode position, and otherwise keeps decoding forward.
Keyframes can also be read alone (:meth:`PyAVDecoder.decode_keyframes`, keyframe sampling):
seek to the keyframe, decode its one packet, drain the decoder; no other frame is decoded.

Frame identity: where the scan trusts the container's timestamps, a decoded frame is identified by
its timestamp, verified as frames come out (timestamps that go backwards switch the file to
counting). Elsewhere frames are counted in output order from the start, or from a keyframe the
seek is checked to have landed on (no B-frames). When none of this finds the frame, the read
fails with :class:`VideoDecodeError`: it never returns another frame instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from videofocus.io.backends.scan import ScannedDecoder, VideoScan, open_container, video_stream
from videofocus.io.errors import VideoDecodeError


class _FrameIdentityLost(Exception):
    """Timestamps or a seek turned out unreliable for identifying frames in this file."""


#: Scaler used when resizing at decode time (swscale, inside the conversion to RGB). Bicubic is
#: what FFmpeg's ``scale`` filter uses by default, and so what decord's resizing does.
INTERPOLATION = "BICUBIC"


class PyAVDecoder(ScannedDecoder):
    """Decode frames of one file by presentation index (arguments as for
    :class:`~videofocus.io.backends.scan.ScannedDecoder`; 1 thread suits many DataLoader
    workers)."""

    name = "pyav"

    def __init__(self, path: str | Path, num_threads: int = 1, scan: VideoScan | None = None):
        super().__init__(path, num_threads, scan)
        self._pts_to_index = (
            {int(p): i for i, p in enumerate(self.scan.pts)} if self.scan.has_timestamps else {}
        )
        self._by_pts = self.scan.timestamps_trusted  # else frames are counted
        self._seekable = len(self.scan.keyframes) > 1
        self._seek_check: int | None = None  # pts the first frame after a counted seek must have
        self._run_last = -1  # index of the last frame out since the last seek (order check)
        self._container: av.container.InputContainer | None = None
        self._stream: av.video.VideoStream | None = None
        self._frames: Iterator[av.VideoFrame] | None = None
        self._position = -1  # presentation index of the frame decoded last
        # keeps swscale's context between frames (frame.reformat() rebuilds it every frame)
        self._reformatter = VideoReformatter()
        # skipped frames never come out, so only frames identified by timestamp may be skipped
        self._skip_nonref = self._by_pts
        self._wanted_pts: set[int] = set()  # timestamps of the frames being read
        self._last_wanted_pts = 0
        #: frames out of the decoder, packets fed to it and seeks made, for tests and benchmarks
        self.frames_decoded = 0
        self.packets_decoded = 0
        self.seeks = 0

    def decode(self, indices: Sequence[int], size: tuple[int, int] | None = None) -> np.ndarray:
        """As :meth:`~videofocus.io.backends.FrameDecoder.decode`; scales while converting to
        RGB."""
        return self._identified(indices, size, self._frame_at)

    def decode_keyframes(
        self, indices: Sequence[int], size: tuple[int, int] | None = None
    ) -> np.ndarray:
        """As :meth:`decode`, for keyframes (``scan.keyframes``) only: each is read by seeking to
        it and decoding its packet alone, so no frame between keyframes is decoded.

        A keyframe whose packet the seek does not find, or whose decoded frame has another
        timestamp, is read as :meth:`decode` reads frames (slower, same frame).

        :raises ValueError: an index that is not a keyframe.
        """
        keys = set(self.scan.keyframes)
        missing = [int(i) for i in indices if int(i) not in keys]
        if missing:
            raise ValueError(f"{self.path}: frame {missing[0]} is not a keyframe")
        return self._identified(indices, size, self._keyframe_at)

    def _identified(
        self,
        indices: Sequence[int],
        size: tuple[int, int] | None,
        locate: Callable[[int], av.VideoFrame],
    ) -> np.ndarray:
        """:meth:`_decode`, run again counting frames if timestamps or a seek prove unreliable."""
        try:
            return self._decode(indices, size, locate)
        except _FrameIdentityLost:
            # Identify frames by counting from the very start from now on: slower, never wrong.
            self._by_pts = self._skip_nonref = self._seekable = False
            self.close()
            return self._decode(indices, size, locate)

    def _decode(
        self,
        indices: Sequence[int],
        size: tuple[int, int] | None,
        locate: Callable[[int], av.VideoFrame],
    ) -> np.ndarray:
        width, height = size if size is not None else self.metadata.stored_size
        out = np.empty((len(indices), height, width, 3), dtype=np.uint8)
        if self.scan.pts is not None:
            self._wanted_pts = {int(self.scan.pts[i]) for i in indices}
            self._last_wanted_pts = max(self._wanted_pts, default=0)
        for slot, index in enumerate(indices):
            frame = locate(int(index))
            try:
                rgb = self._reformatter.reformat(
                    frame,
                    width=width,
                    height=height,
                    format="rgb24",
                    interpolation=INTERPOLATION,
                    threads=self.num_threads,
                )
                out[slot] = rgb.to_ndarray()
            except (av.FFmpegError, ValueError) as err:
                raise VideoDecodeError(self.path, f"cannot convert frame {index}: {err}") from err
        return out

    def close(self) -> None:
        """Release the open container."""
        if self._container is not None:
            self._container.close()
        self._container = self._stream = self._frames = None
        self._position = -1

    # -- positioning -------------------------------------------------------------------------

    def _frame_at(self, target: int) -> av.VideoFrame:
        """Decode forward to frame ``target``, seeking first when a seek saves work."""
        keyframe = self.scan.keyframe_at_or_before(target) if self._seekable else 0
        # If the target does not come out, retry from its keyframe, then from the very start,
        # the last time decoding every frame: a demuxer may land elsewhere than asked (MPEG-PS
        # seeks by guessing byte offsets) and frame timestamps may differ from packet timestamps.
        forward = self._frames is not None and self._position < target
        forward = forward and keyframe <= self._position + 1
        plans: list[tuple[int | None, bool]] = [(None, self._skip_nonref)] if forward else []
        plans += [(start, self._skip_nonref) for start in dict.fromkeys((keyframe, 0))]
        if self._skip_nonref:  # if even this fails, skipping stays off for this file
            plans.append((0, False))
        reached = None  # the first frame out at or past the target, None at the end of the stream
        for start, skip_nonref in plans:
            if start is not None:
                self._skip_nonref = skip_nonref
                self._seek(start)
            reached = next((out for out in iter(self._next_frame, None) if out[1] >= target), None)
            if reached is not None and reached[1] == target:
                return reached[0]
        got = "the end of the stream" if reached is None else f"frame {reached[1]}"
        raise VideoDecodeError(self.path, f"decoder never produced frame {target} (got {got})")

    def _keyframe_at(self, keyframe: int) -> av.VideoFrame:
        """Keyframe ``keyframe`` decoded alone: seek to it, feed the decoder its packet only,
        drain the decoder; falls back to :meth:`_frame_at` where that does not find it."""
        if not self._seekable and keyframe > 0:
            return self._frame_at(keyframe)
        self._seek(keyframe)
        # the generator _seek made would decode forward from here: the next read seeks anew
        self._frames, self._position = None, -1
        assert self._container is not None and self._stream is not None
        want = None if self.scan.pts is None else int(self.scan.pts[keyframe])
        packet = None
        for candidate in self._container.demux(self._stream):
            if candidate.size == 0 or candidate.is_discard:
                continue  # the end-of-stream marker; a packet an edit list cuts
            if want is not None and candidate.pts is not None and candidate.pts < want:
                continue  # the seek landed before the keyframe (a keyframe needs no earlier one)
            packet = candidate
            break
        if packet is None or (want is not None and packet.pts != want) or not packet.is_keyframe:
            return self._frame_at(keyframe)  # the packet is not where the scan put it
        context = self._stream.codec_context
        context.skip_frame = "DEFAULT"
        try:
            self.packets_decoded += 1
            frames = [*packet.decode(), *context.decode(None)]  # None drains the decoder
        except av.FFmpegError as err:
            raise VideoDecodeError(
                self.path, f"decoding keyframe {keyframe} failed ({err.strerror or err})"
            ) from err
        self.frames_decoded += len(frames)
        # the one frame out must be this packet's (by timestamp where timestamps identify frames)
        if len(frames) != 1 or (self._by_pts and frames[0].pts != want):
            return self._frame_at(keyframe)
        return frames[0]

    def _decoded_frames(self) -> Iterator[av.VideoFrame]:
        """Frames out of the decoder, fed packet by packet from the current position.

        Packets before the last frame asked for that are not asked for are decoded with
        ``skip_frame = NONREF``: frames no other frame references are then not decoded at all.
        """
        assert self._container is not None and self._stream is not None
        context = self._stream.codec_context
        for packet in self._container.demux(self._stream):
            # later frames are decoded in full: the next read may well ask for them
            pts = packet.pts
            skip = self._skip_nonref and pts is not None and pts < self._last_wanted_pts
            skip = skip and bool(self._wanted_pts) and pts not in self._wanted_pts
            context.skip_frame = "NONREF" if skip else "DEFAULT"
            self.packets_decoded += 1
            yield from packet.decode()

    def _next_frame(self) -> tuple[av.VideoFrame, int] | None:
        """The next decoded frame and its presentation index; ``None`` at the end of the stream."""
        assert self._frames is not None
        while True:
            try:
                frame = next(self._frames)
            except StopIteration:
                return None
            except av.FFmpegError as err:
                raise VideoDecodeError(
                    self.path,
                    f"decoding failed after frame {self._position} ({err.strerror or err})",
                ) from err
            self.frames_decoded += 1
            if self._seek_check is not None:
                landed, self._seek_check = frame.pts == self._seek_check, None
                if not landed:
                    raise _FrameIdentityLost("the seek did not land on the keyframe")
            if not self._by_pts or frame.pts is None:
                index = self._position + 1
            else:
                found = self._pts_to_index.get(int(frame.pts))
                if found is None:  # a frame the index does not list (e.g. cut by an edit list)
                    continue
                if found <= self._run_last:
                    raise _FrameIdentityLost("timestamps go backwards in presentation order")
                index = found
            self._position = self._run_last = index
            return frame, index

    def _seek(self, keyframe: int) -> None:
        """Position the decoder so that the next frame out is keyframe ``keyframe`` (or earlier)."""
        self._run_last, self._seek_check = -1, None
        if keyframe == 0 or not self.scan.has_timestamps or self._container is None:
            # Reopening is the one way back to the start that works for every container,
            # including raw streams without timestamps.
            self.close()
            self._container = open_container(self.path)
            self._stream = video_stream(self.path, self._container)
            # FFmpeg's default (0) takes every core; a reader gets exactly what it was given
            self._stream.codec_context.thread_count = self.num_threads
            if self.num_threads > 1:
                self._stream.codec_context.thread_type = "AUTO"
            if keyframe == 0 or not self.scan.has_timestamps:
                self._frames = self._decoded_frames()
                return
        assert self.scan.pts is not None
        try:
            self._container.seek(
                int(self.scan.pts[keyframe]), stream=self._stream, backward=True, any_frame=False
            )
        except av.FFmpegError:
            self._seek(0)  # decoding from the start is slower, but always possible
            return
        self.seeks += 1
        self._frames = self._decoded_frames()
        self._position = keyframe - 1
        if not self._by_pts:  # counting from the keyframe is right only if the seek landed on it
            self._seek_check = int(self.scan.pts[keyframe])
