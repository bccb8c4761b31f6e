"""Video I/O: frame-accurate reading over PyAV/decord, isolated probing, writing.

Names are imported on first use, so that ``import videofocus.io.probe`` (run in probing child
processes) loads neither torch nor a decoder it does not need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from videofocus.io.errors import VideoDecodeError
    from videofocus.io.metadata import VideoMetadata
    from videofocus.io.probe import ProbeResult, probe_video
    from videofocus.io.reader import VideoReader, available_backends
    from videofocus.io.writer import write_video

_EXPORTS = {
    "VideoReader": "videofocus.io.reader",
    "available_backends": "videofocus.io.backends",
    "VideoMetadata": "videofocus.io.metadata",
    "VideoDecodeError": "videofocus.io.errors",
    "ProbeResult": "videofocus.io.probe",
    "probe_video": "videofocus.io.probe",
    "write_video": "videofocus.io.writer",
}

__all__ = [
    "ProbeResult",
    "VideoDecodeError",
    "VideoMetadata",
    "VideoReader",
    "available_backends",
    "probe_video",
    "write_video",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
