"""Measure a video by demuxing it once: metadata plus the packet index that sparse reads need.

Demuxing reads packets without decoding them, so it costs a small fraction of a decode. Every
backend starts from this scan, so all of them agree on what frame ``i`` is and on how many frames
there are, whatever the container header claims.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from videofocus.io.errors import VideoDecodeError
from videofocus.io.metadata import VideoMetadata


@dataclass(frozen=True)
class VideoScan:
    """A video's metadata and the presentation-order index of its packets.

    :param metadata: the measured :class:`VideoMetadata`.
    :param container_format: FFmpeg demuxer name (``"mov,mp4,m4a,3gp,3g2,mj2"``, ``"avi"``, ...).
    :param stream_index: index of the video stream among all streams of the container.
    :param time_base: unit of ``pts``.
    :param pts: ``int64 [num_frames]`` presentation timestamps in presentation order, or ``None``
        when packets carry no (or no unique) timestamps; then frames can only be counted in decode
        order and timestamp seeking cannot be trusted.
    :param keyframes: presentation indices of keyframes, ascending (``[0]`` without timestamps).
    :param reordered: decode order differs from presentation order (the stream has B-frames).
    """

    metadata: VideoMetadata
    container_format: str
    stream_index: int
    time_base: Fraction | None
    pts: np.ndarray | None
    keyframes: tuple[int, ...]
    reordered: bool

    @property
    def has_timestamps(self) -> bool:
        """Whether frames can be identified by their presentation timestamp."""
        return self.pts is not None

    def keyframe_at_or_before(self, index: int) -> int:
        """Presentation index of the last keyframe not after frame ``index`` (0 if none)."""
        position = bisect.bisect_right(self.keyframes, index) - 1
        return self.keyframes[position] if position >= 0 else 0

    def next_keyframe_after(self, index: int) -> int | None:
        """Presentation index of the first keyframe after frame ``index``, if any."""
        position = bisect.bisect_right(self.keyframes, index)
        return self.keyframes[position] if position < len(self.keyframes) else None

    def timestamps(self) -> np.ndarray:
        """``float64 [num_frames]`` presentation time of each frame in seconds, first frame at 0."""
        if self.pts is None or self.time_base is None:
            return np.arange(self.metadata.num_frames, dtype=np.float64) / self.metadata.fps
        return (self.pts - self.pts[0]).astype(np.float64) * float(self.time_base)


def check_file(path: Path) -> None:
    """Raise :class:`VideoDecodeError` for paths that cannot hold a video at all."""
    if not path.exists():
        raise VideoDecodeError(path, "file not found")
    if not path.is_file():
        raise VideoDecodeError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise VideoDecodeError(path, "file is empty (0 bytes)")


def open_container(path: Path) -> av.container.InputContainer:
    """``av.open`` with FFmpeg's errors turned into :class:`VideoDecodeError`."""
    try:
        return av.open(str(path), mode="r")
    except av.FFmpegError as err:
        reason = f"not a media file FFmpeg can open ({err.strerror or err})"
        raise VideoDecodeError(path, _mp4_hint(path) or reason) from err


def video_stream(path: Path, container: av.container.InputContainer) -> av.video.VideoStream:
    """The first real video stream (cover art attached to audio files does not count)."""
    kinds = []
    for stream in container.streams:
        if stream.type == "video":
            if stream.disposition & av.stream.Disposition.attached_pic:
                kinds.append("cover art")
                continue
            if stream.codec_context is None:  # codec unknown to FFmpeg, or header cut short
                reason = "video stream has no usable codec parameters"
                raise VideoDecodeError(path, _mp4_hint(path) or reason)
            return stream
        kinds.append(stream.type)
    if not kinds:
        raise VideoDecodeError(path, _mp4_hint(path) or "no video stream (the file has no streams)")
    raise VideoDecodeError(path, f"no video stream (found only: {', '.join(sorted(set(kinds)))})")


def _mp4_hint(path: Path) -> str | None:
    """Why an MP4/MOV file (it starts with an ``ftyp`` box) may have opened badly."""
    with path.open("rb") as file:
        head = file.read(12)
    if head[4:8] == b"ftyp":
        return "MP4/MOV file without a usable index (moov box): truncated, or still being written"
    return None


def scan_video(path: str | Path) -> VideoScan:
    """Open ``path``, demux every video packet and decode the first frame.

    :raises VideoDecodeError: missing/empty file, unknown format, no video stream, packets flagged
        corrupt (typically a truncated file), or a first frame that does not decode.
    """
    path = Path(path)
    check_file(path)
    with open_container(path) as container:
        stream = video_stream(path, container)
        codec = stream.codec_context.name
        stream.codec_context.thread_count = 1  # one frame to decode: threads would cost more
        packet_pts: list[int | None] = []
        key_pts: list[int | None] = []
        first_frame: av.VideoFrame | None = None
        try:
            for packet in container.demux(stream):
                if packet.size == 0:  # the empty packet that signals end of stream
                    continue
                if packet.is_corrupt:
                    raise VideoDecodeError(
                        path, f"truncated or corrupt data at packet {len(packet_pts)}"
                    )
                if first_frame is None:
                    first_frame = next(iter(packet.decode()), None)
                if packet.is_discard:  # cut by an edit list: decoded as a reference, never shown
                    continue
                packet_pts.append(packet.pts)
                if packet.is_keyframe:
                    key_pts.append(packet.pts)
            if first_frame is None and packet_pts:
                first_frame = next(iter(stream.codec_context.decode(None)), None)
        except av.FFmpegError as err:
            raise VideoDecodeError(
                path, f"decoding failed near packet {len(packet_pts)} ({err.strerror or err})"
            ) from err
        if not packet_pts:
            raise VideoDecodeError(path, "video stream holds no frames")
        if first_frame is None:
            raise VideoDecodeError(path, "no frame could be decoded")
        num_frames = len(packet_pts)
        pts, keyframes = _presentation_index(packet_pts, key_pts)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else _fps_from_pts(pts, stream.time_base)
        if not fps or fps <= 0:
            raise VideoDecodeError(path, "frame rate is unknown")
        metadata = VideoMetadata(
            path=str(path),
            fps=fps,
            num_frames=num_frames,
            duration=num_frames / fps,
            width=first_frame.width,
            height=first_frame.height,
            rotation=int(round(first_frame.rotation)) % 360,
            codec=codec,
        )
        return VideoScan(
            metadata=metadata,
            container_format=container.format.name,
            stream_index=stream.index,
            time_base=stream.time_base,
            pts=pts,
            keyframes=keyframes,
            reordered=pts is not None and bool(np.any(np.diff(packet_pts) < 0)),
        )


def _presentation_index(
    packet_pts: list[int | None], key_pts: list[int | None]
) -> tuple[np.ndarray | None, tuple[int, ...]]:
    """Sort packet timestamps into presentation order; locate keyframes in that order."""
    if any(p is None for p in packet_pts) or len(set(packet_pts)) != len(packet_pts):
        return None, (0,)
    pts = np.sort(np.asarray(packet_pts, dtype=np.int64))
    keyframes = np.searchsorted(pts, np.asarray(key_pts, dtype=np.int64))
    return pts, tuple(sorted({0, *keyframes.tolist()}))


def _fps_from_pts(pts: np.ndarray | None, time_base: Fraction | None) -> float:
    if pts is None or time_base is None or len(pts) < 2 or pts[-1] == pts[0]:
        return 0.0
    return (len(pts) - 1) / float((int(pts[-1]) - int(pts[0])) * time_base)
