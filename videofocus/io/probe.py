"""Probe videos safely: measure metadata and check decodability in a child process.

:func:`probe_video` never raises for a bad file; the answer says what is wrong. This module must
not import torch (it is what probing children import); see :mod:`videofocus.io.isolated`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from videofocus.io.errors import VideoDecodeError
from videofocus.io.isolated import run_isolated
from videofocus.io.metadata import VideoMetadata

_METADATA_KEYS = ("fps", "num_frames", "duration", "width", "height", "codec", "rotation")


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
        return cls(path=metadata.path, ok=True, **{k: getattr(metadata, k) for k in _METADATA_KEYS})

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


def probe_video(path: str | Path, timeout: float = 60.0, backend: str = "pyav") -> ProbeResult:
    """Measure ``path`` and decode its first and last frames, in a child process.

    A file passes when it opens, holds a video stream, demuxes without corrupt packets and its
    first and last frames decode with ``backend``.

    :param timeout: seconds before a hanging decoder is killed (the file then fails).
    :param backend: ``pyav``, ``decord`` or ``auto``, as for
        :class:`~videofocus.io.reader.VideoReader`.
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


def _probe(path: str, backend: str) -> VideoMetadata:
    """Runs in the child: open with ``backend``, decode the first and the last frame."""
    from videofocus.io.backends import open_decoder

    decoder = open_decoder(path, backend)
    try:
        last = decoder.metadata.num_frames - 1
        decoder.decode(sorted({0, last}))
        return decoder.metadata
    finally:
        decoder.close()
