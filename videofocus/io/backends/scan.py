"""Measure a video by demuxing it once: metadata plus the packet index that sparse reads need.

Demuxing reads packets without decoding them, a small fraction of a decode. Every backend starts
from this scan, so all agree on what frame ``i`` is and how many frames there are.

Frame ``i`` is, by definition, the ``i``-th frame a plain sequential decode puts out. Timestamps
only find it faster, and are trusted only where the container stores real presentation times
(AVI invents them, raw streams have none). Elsewhere frames are counted in decoding order, and
seeking is allowed only without B-frames, where a keyframe's index is its packet's position.
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
    :param pts: ``int64 [num_frames]`` packet timestamps sorted ascending, or ``None`` when
        packets carry no (or no unique) timestamps.
    :param timestamps_trusted: ``pts`` are the frames' real presentation times, which identify
        decoded frames (else frames are counted in decoding order).
    :param keyframes: presentation indices of the keyframes a seek may start from, ascending;
        ``(0,)`` where seeking cannot be trusted.
    :param reordered: decode order differs from presentation order (the stream has B-frames).
    :param pixel_format: FFmpeg pixel format of the decoded frames, e.g. ``"yuv420p10le"``.
    :param keyframes_known: ``keyframes`` lists every keyframe; ``False`` where seeking cannot
        be trusted and only frame 0 is listed (the others exist, but cannot be located without
        decoding).
    """

    metadata: VideoMetadata
    container_format: str
    stream_index: int
    time_base: Fraction | None
    pts: np.ndarray | None
    timestamps_trusted: bool
    keyframes: tuple[int, ...]
    reordered: bool
    pixel_format: str
    keyframes_known: bool = True

    @property
    def has_timestamps(self) -> bool:
        """Whether packets carry unique timestamps (trusted or not) that seeks can aim at."""
        return self.pts is not None

    @property
    def bit_depth(self) -> int:
        """Bits per sample of the decoded frames (8 for ordinary video, 10 for HDR / 10-bit)."""
        try:
            return max(c.bits for c in av.VideoFormat(self.pixel_format).components)
        except (ValueError, av.FFmpegError):
            return 8

    def keyframe_at_or_before(self, index: int) -> int:
        """Presentation index of the last keyframe not after frame ``index`` (0 if none)."""
        position = bisect.bisect_right(self.keyframes, index) - 1
        return self.keyframes[position] if position >= 0 else 0

    def timestamps(self) -> np.ndarray:
        """``float64 [num_frames]`` presentation time of each frame in seconds, first frame at 0.

        Real times where they are trusted (variable frame rates included), else ``i / fps``.
        """
        if not self.timestamps_trusted or self.pts is None or self.time_base is None:
            return np.arange(self.metadata.num_frames, dtype=np.float64) / self.metadata.fps
        return (self.pts - self.pts[0]).astype(np.float64) * float(self.time_base)


class ScannedDecoder:
    """Base of the backends' decoders: a file, its scan and its measured metadata.

    :param path: the video file.
    :param num_threads: decoding threads.
    :param scan: a scan of ``path`` already made; scanned here when ``None``.
    """

    def __init__(self, path: str | Path, num_threads: int = 1, scan: VideoScan | None = None):
        self.path = Path(path)
        self.scan = scan if scan is not None else scan_video(self.path)
        self.num_threads = num_threads

    @property
    def metadata(self) -> VideoMetadata:
        """Measured metadata of the file (from the demuxer scan)."""
        return self.scan.metadata


#: Demuxers whose packet timestamps are not stored presentation times: FFmpeg guesses them for AVI,
#: wrongly with packed B-frames (Xvid/DivX).
INVENTED_TIMESTAMPS = frozenset({"avi"})


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
        last_duration = 0
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
                last_duration = packet.duration or 0
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
        pts = _sorted_unique(packet_pts)
        in_decode_order = pts is not None and bool(np.all(np.diff(packet_pts) > 0))
        reordered = bool(stream.codec_context.has_b_frames) or (
            pts is not None and not in_decode_order
        )
        trusted = pts is not None and container.format.name not in INVENTED_TIMESTAMPS
        # counted frames may seek only where presentation order is packet order
        seekable = trusted or (in_decode_order and not reordered)
        keyframes = _keyframe_indices(pts, key_pts) if seekable else (0,)
        rotation = int(round(first_frame.rotation)) % 360
        width, height = first_frame.width, first_frame.height
        if rotation % 180:
            width, height = height, width  # frames are returned upright
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        nominal = float(rate) if rate else 0.0
        duration = 0.0
        if trusted and not _constant_rate(pts, stream.time_base, nominal):
            duration = _duration(pts, stream.time_base, last_duration)
        if duration <= 0:
            if nominal <= 0:
                raise VideoDecodeError(path, "frame rate is unknown")
            duration = num_frames / nominal
        metadata = VideoMetadata(
            path=str(path),
            fps=num_frames / duration,
            num_frames=num_frames,
            duration=duration,
            width=width,
            height=height,
            rotation=rotation,
            codec=codec,
        )
        return VideoScan(
            metadata=metadata,
            container_format=container.format.name,
            stream_index=stream.index,
            time_base=stream.time_base,
            pts=pts,
            timestamps_trusted=trusted,
            keyframes=keyframes,
            reordered=reordered,
            pixel_format=first_frame.format.name,
            keyframes_known=seekable,
        )


def _sorted_unique(packet_pts: list[int | None]) -> np.ndarray | None:
    """Packet timestamps in ascending order; ``None`` if any is missing or repeated."""
    if any(p is None for p in packet_pts) or len(set(packet_pts)) != len(packet_pts):
        return None
    return np.sort(np.asarray(packet_pts, dtype=np.int64))


def _keyframe_indices(pts: np.ndarray, key_pts: list[int | None]) -> tuple[int, ...]:
    """Presentation indices of the keyframe packets (frame 0 always counts as one)."""
    keyframes = np.searchsorted(pts, np.asarray(key_pts, dtype=np.int64))
    return tuple(sorted({0, *keyframes.tolist()}))


def _constant_rate(pts: np.ndarray | None, time_base: Fraction | None, fps: float) -> bool:
    """Whether every timestamp is where a constant ``fps`` puts it, up to the time base's
    rounding (a millisecond in Matroska): then the nominal rate is the exact one."""
    if pts is None or time_base is None or fps <= 0:
        return fps > 0
    times = (pts - pts[0]).astype(np.float64) * float(time_base)
    tolerance = max(1.5 * float(time_base), 0.05 / fps)
    return bool(np.all(np.abs(times - np.arange(len(pts)) / fps) <= tolerance))


def _duration(pts: np.ndarray | None, time_base: Fraction | None, last_duration: int) -> float:
    """Seconds from the first frame's start to the last frame's end (which lasts its packet's
    duration, else the median frame interval); 0 when the timestamps cannot tell."""
    if pts is None or time_base is None:
        return 0.0
    if last_duration <= 0 and len(pts) > 1:
        last_duration = int(np.median(np.diff(pts)))
    return float((int(pts[-1]) - int(pts[0]) + max(last_duration, 0)) * time_base)
