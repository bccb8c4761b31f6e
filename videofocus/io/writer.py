"""Write uint8 frames to a compressed video with PyAV (tests, synthetic data, re-encoding)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

_MILLISECOND = Fraction(1, 1000)

# per-encoder speed settings (a rate factor, when given, is added)
_DEFAULT_OPTIONS = {
    "libx264": {"preset": "veryfast"},
    "libvpx-vp9": {"deadline": "realtime", "cpu-used": "8", "row-mt": "1"},
    "libx265": {"preset": "ultrafast", "x265-params": "log-level=error"},
}


def write_video(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: float = 25.0,
    codec: str = "libx264",
    crf: int | None = 18,
    gop: int | None = None,
    bframes: int | None = None,
    pix_fmt: str = "yuv420p",
    options: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
    rotation: int = 0,
    times: Sequence[float] | None = None,
) -> int:
    """Encode ``frames`` (each ``uint8 [H, W, 3]`` RGB) into ``path`` and return the frame count.

    :param codec: an FFmpeg encoder name (``libx264``, ``mpeg4``, ``libvpx-vp9``, ...).
    :param crf: constant rate factor for codecs that take one (``mpeg4`` gets a fixed quantiser).
    :param gop: keyframe interval in frames (``None`` keeps the encoder default).
    :param bframes: maximum consecutive B-frames (``None`` keeps the encoder default).
    :param options: extra encoder options.
    :param container_options: muxer options, e.g. ``{"movflags": "faststart"}`` for MP4.
    :param rotation: display rotation in degrees counter-clockwise (frames are encoded as given).
    :param times: increasing presentation time of each frame in seconds, for a variable frame
        rate (millisecond precision); ``None`` spaces frames ``1 / fps`` apart.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), mode="w", options=container_options or {}) as container:
        stream = None
        for frame in frames:
            frame = np.ascontiguousarray(frame)
            if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
                raise ValueError(f"frames must be uint8 [H, W, 3], got {frame.dtype} {frame.shape}")
            if stream is None:
                stream = container.add_stream(codec, rate=rate)
                stream.height, stream.width = frame.shape[:2]
                stream.pix_fmt = pix_fmt
                if rotation % 360:
                    stream.set_display_rotation(rotation % 360)
                if times is not None:
                    stream.codec_context.time_base = stream.time_base = _MILLISECOND
                opts = dict(_DEFAULT_OPTIONS.get(codec, {}))
                if crf is not None and codec in ("libx264", "libx265", "libvpx-vp9"):
                    opts["crf"] = str(crf)
                    if codec == "libvpx-vp9":
                        stream.bit_rate = 0
                if codec == "mpeg4":
                    opts.setdefault("qscale", "2")
                    stream.codec_context.qmin = 1
                    stream.codec_context.qmax = 3
                if gop is not None:
                    stream.codec_context.gop_size = gop
                    if codec == "libx264":
                        opts["keyint_min"] = str(gop)
                        opts["sc_threshold"] = "0"
                if bframes is not None:
                    stream.codec_context.max_b_frames = bframes
                    if codec == "libx264":
                        opts["bf"] = str(bframes)
                opts.update(options or {})
                stream.options = opts
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
            if times is not None:
                picture.pts, picture.time_base = round(times[count] * 1000), _MILLISECOND
            for packet in stream.encode(picture):
                container.mux(packet)
            count += 1
        if stream is None:
            raise ValueError(f"{path}: no frames to write")
        for packet in stream.encode():
            container.mux(packet)
    return count
