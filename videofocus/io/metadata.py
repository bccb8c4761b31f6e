"""What a video is, as measured by demuxing it: :class:`VideoMetadata`.

Kept free of heavy imports (no torch, no decoder) so that probing child processes stay light.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VideoMetadata:
    """Properties of a video's first video stream.

    Counts and timings are *measured* by demuxing the whole file (headers are often missing or
    wrong): ``num_frames`` counts the video packets, ``duration`` runs from the first frame's
    presentation time to the end of the last, and ``fps`` is ``num_frames / duration`` (the
    header's rate for containers without real timestamps, such as AVI).

    :param path: the file described.
    :param fps: measured average frame rate in frames per second.
    :param num_frames: number of frames a full decode yields.
    :param duration: length in seconds.
    :param width: width in pixels of the frames as displayed (after the display rotation), as
        readers return them.
    :param height: displayed height in pixels.
    :param rotation: display rotation in degrees counter-clockwise (0, 90, 180 or 270).
    :param codec: FFmpeg decoder name, e.g. ``"h264"``, ``"vp9"``, ``"mpeg4"``.
    """

    path: str
    fps: float
    num_frames: int
    duration: float
    width: int
    height: int
    rotation: int
    codec: str

    def resized_size(self, short_side: int | None) -> tuple[int, int]:
        """``(width, height)`` of frames whose shorter side is ``short_side`` (``None``: as they
        are), aspect kept."""
        if short_side is None:
            return self.width, self.height
        if short_side < 1:
            raise ValueError(f"short_side must be a positive number of pixels, got {short_side}")
        scale = short_side / min(self.width, self.height)
        if self.width <= self.height:
            return short_side, max(1, round(self.height * scale))
        return max(1, round(self.width * scale)), short_side

    @property
    def stored_size(self) -> tuple[int, int]:
        """``(width, height)`` of the frames as stored in the stream, before display rotation."""
        return (self.height, self.width) if self.rotation % 180 else (self.width, self.height)
