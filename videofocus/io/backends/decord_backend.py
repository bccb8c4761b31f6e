"""Optional decoder: decord (wheels exist for Linux x86-64 only; imported lazily).

decord keeps its own frame index, built from the container. This decoder refuses the files where
decord is known to return other frames than PyAV (see
:func:`videofocus.io.backends.decord_problem`) and files where decord's frame count and the
demuxer scan disagree, so that frame ``i`` means the same frame whichever backend decodes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from videofocus.io.backends import decord_problem
from videofocus.io.backends.scan import ScannedDecoder, VideoScan
from videofocus.io.errors import VideoDecodeError


class DecordDecoder(ScannedDecoder):
    """Decode frames of one file by presentation index with ``decord.VideoReader``.

    Arguments as for :class:`~videofocus.io.backends.scan.ScannedDecoder` (at least one thread:
    never decord's automatic 0).

    :raises VideoDecodeError: decord cannot open the file, or would index it differently.
    """

    name = "decord"

    def __init__(self, path: str | Path, num_threads: int = 1, scan: VideoScan | None = None):
        import decord  # lazy: optional dependency

        self._decord = decord
        super().__init__(path, max(1, num_threads), scan)
        problem = decord_problem(self.scan)
        if problem is not None:
            raise VideoDecodeError(self.path, f"{problem}; use the pyav backend")
        # one reader per output size: decord resizes inside its decoder, fixed at open time
        self._readers: dict[tuple[int, int] | None, Any] = {}
        count = len(self._reader(None))
        if count != self.metadata.num_frames:
            raise VideoDecodeError(
                self.path,
                f"decord counts {count} frames where the demuxer finds {self.metadata.num_frames}",
            )

    def decode(self, indices: Sequence[int], size: tuple[int, int] | None = None) -> np.ndarray:
        """As :meth:`~videofocus.io.backends.FrameDecoder.decode`; decord's decoder scales."""
        reader = self._reader(None if size == self.metadata.stored_size else size)
        try:
            return reader.get_batch(list(indices)).asnumpy()
        except self._decord.DECORDError as err:
            raise VideoDecodeError(self.path, f"decord failed: {_first_line(err)}") from err

    def close(self) -> None:
        """Drop the decord readers."""
        self._readers.clear()

    def _reader(self, size: tuple[int, int] | None) -> Any:
        reader = self._readers.get(size)
        if reader is None:
            width, height = size if size is not None else (-1, -1)
            try:
                reader = self._decord.VideoReader(
                    str(self.path),
                    ctx=self._decord.cpu(0),
                    width=width,
                    height=height,
                    num_threads=self.num_threads,
                )
            except self._decord.DECORDError as err:
                raise VideoDecodeError(
                    self.path, f"decord cannot open it: {_first_line(err)}"
                ) from err
            self._readers[size] = reader
        return reader


def _first_line(err: Exception) -> str:
    """decord's messages start with a timestamp and source location; keep the gist."""
    lines = [line for line in str(err).splitlines() if line.strip()]
    text = lines[0] if lines else type(err).__name__
    return text.rsplit(": ", 1)[-1] if "video_reader.cc" in text else text
