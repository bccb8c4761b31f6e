"""Typed errors of the video I/O layer."""

from __future__ import annotations

from pathlib import Path


class VideoDecodeError(RuntimeError):
    """A video could not be opened, probed or decoded.

    :param path: the file that failed.
    :param reason: a short human-readable reason (``"file is empty"``, ``"no video stream"``, ...).
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # keep the two fields when pickled across processes
        return (type(self), (self.path, self.reason))
