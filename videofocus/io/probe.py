"""Probe videos safely: measure metadata and check decodability in a child process.

:func:`probe_video` never raises for a bad file; the answer says what is wrong. This module must
not import torch (it is what probing children import); see :mod:`videofocus.io.isolated`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from videofocus.io.errors import VideoDecodeError
from videofocus.io.isolated import run_isolated
from videofocus.io.metadata import VideoMetadata


@dataclass(frozen=True)
class ProbeResult:
    """Outcome of probing one file: metadata when ``ok``, else the reason in ``error``."""

    path: str
    ok: bool
    fps: float | None = None
    num_frames: int | None = None
    duration: float | None = None
    width: int | None = None
    height: int | None = None
    codec: str | None = None
    rotation: int | None = None
    error: str | None = None

    @classmethod
    def from_metadata(cls, metadata: VideoMetadata) -> ProbeResult:
        """A successful probe of ``metadata.path``."""
        return cls(ok=True, **asdict(metadata))

    @classmethod
    def failed(cls, path: str | Path, error: str) -> ProbeResult:
        """A failed probe of ``path``."""
        return cls(path=str(path), ok=False, error=error)

    def to_json(self) -> dict[str, Any]:
        """Keys ``path, ok, fps, num_frames, duration, width, height, codec, rotation``, plus
        ``error`` only when not ok."""
        data = asdict(self)
        if self.ok:
            del data["error"]
        return data


#: How many frames spread over the video a probe reads besides the first and the last.
PROBE_SAMPLES = 8


def probe_video(path: str | Path, timeout: float = 60.0, backend: str = "auto") -> ProbeResult:
    """Measure ``path`` and read a sample of its frames, in a child process.

    A file passes when it opens, holds a video stream, demuxes without corrupt packets, and the
    frames of :func:`probe_indices` decode through :class:`~videofocus.io.reader.VideoReader` with
    ``backend``, the path the training and labeling jobs read frames through.

    :param timeout: seconds before a hanging decoder is killed (the file then fails).
    :param backend: ``auto`` (as the jobs use) or a backend name.
    :raises ValueError: unknown or uninstalled backend (a configuration error, not a bad file).
    """
    from videofocus.io.backends import check_backend

    if backend != "auto":
        check_backend(backend)
    try:
        metadata = run_isolated(_probe, str(path), backend, path=path, timeout=timeout)
    except VideoDecodeError as err:
        return ProbeResult.failed(path, err.reason)
    except Exception as err:  # a decoder library failing in its own way is still a bad file
        return ProbeResult.failed(path, f"{type(err).__name__}: {err}")
    return ProbeResult.from_metadata(metadata)


def probe_indices(num_frames: int) -> list[int]:
    """The frames a probe reads: first, last, and the middles of :data:`PROBE_SAMPLES` equal
    parts (the positions of evaluation-mode TSN sampling), ascending and unique."""
    middles = (2 * np.arange(PROBE_SAMPLES) + 1) * num_frames // (2 * PROBE_SAMPLES)
    return sorted({0, num_frames - 1, *middles.tolist()})


def _probe(path: str, backend: str) -> VideoMetadata:
    """Runs in the child: open with ``backend`` and read the probe's frames."""
    from videofocus.io.reader import VideoReader

    with VideoReader(path, backend=backend) as reader:
        reader.read_frames_numpy(probe_indices(reader.metadata.num_frames))
        return reader.metadata
