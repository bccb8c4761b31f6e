"""An in-memory cache of decoded frames, so that epochs after the first decode nothing.

Meant for datasets that fit in memory decoded (the synthetic benchmark). It keeps each video's
timeline (which the samplers need) and every frame it has decoded, keyed by file, resize and frame
index, so any later clip of the same frames, random training clips too, opens no file. It is
bounded in bytes and evicts the least recently used frames. A cache lives in one process:
DataLoader workers each fill their own (persistent workers keep theirs across epochs).

:func:`shared_frame_cache` is the one cache of a process that the config-built datasets share
(:func:`~videofocus.data.loaders.build_dataset`): the stages of ``train --stage all`` and the
train, val and test splits read the same files at the same resize, so the dense stage's first
epoch decodes what warm-up, the policy stage and fine-tuning then read from memory.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = ["FrameCache", "Timeline", "shared_frame_cache"]


@dataclass(frozen=True)
class Timeline:
    """What samplers read of a video: its frame count, ``float64 [num_frames + 1]``
    presentation-time boundaries in seconds and, for keyframe sampling, its ``int64`` keyframe
    indices (``None`` where not needed)."""

    num_frames: int
    boundaries: np.ndarray
    keyframes: np.ndarray | None = None


class FrameCache:
    """Decoded ``uint8 [H, W, 3]`` frames and video timelines, at most ``max_bytes`` of frames.

    :param max_bytes: the frame budget; the least recently used frames go first beyond it.
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._frames: OrderedDict[tuple[str, int | None, int], torch.Tensor] = OrderedDict()
        self._timelines: dict[str, Timeline] = {}

    def __len__(self) -> int:
        return len(self._frames)

    def timeline(self, path: Path) -> Timeline | None:
        """The cached timeline of ``path``, or None."""
        return self._timelines.get(str(path))

    def put_timeline(self, path: Path, timeline: Timeline) -> None:
        """Remember the timeline of ``path`` (a few bytes per frame: never evicted)."""
        self._timelines[str(path)] = timeline

    def get(
        self, path: Path, indices: Sequence[int], short_side: int | None
    ) -> torch.Tensor | None:
        """``uint8 [T, H, W, 3]``, the frames at ``indices`` when every one is cached, else None."""
        keys = [(str(path), short_side, int(i)) for i in indices]
        if not all(key in self._frames for key in keys):
            self.misses += 1
            return None
        for key in keys:
            self._frames.move_to_end(key)
        self.hits += 1
        return torch.stack([self._frames[key] for key in keys])

    def put(
        self, path: Path, indices: Sequence[int], short_side: int | None, frames: torch.Tensor
    ) -> None:
        """Remember ``frames`` (``uint8 [T, H, W, 3]``, in the order of ``indices``)."""
        for i, frame in zip(indices, frames, strict=True):
            key = (str(path), short_side, int(i))
            if key in self._frames:
                self._frames.move_to_end(key)
                continue
            frame = frame.clone()  # not a view that keeps the whole clip alive
            self._frames[key] = frame
            self.bytes += frame.numel() * frame.element_size()
        while self.bytes > self.max_bytes and self._frames:
            _, old = self._frames.popitem(last=False)
            self.bytes -= old.numel() * old.element_size()


_shared: FrameCache | None = None


def shared_frame_cache(max_bytes: int) -> FrameCache | None:
    """This process's shared cache, holding at least ``max_bytes`` of frames (None for 0).

    The first call makes it; a later call with a larger budget raises the budget (keys name the
    file, resize and frame, so datasets of any split or stage can share it).
    """
    global _shared
    if max_bytes <= 0:
        return None
    if _shared is None:
        _shared = FrameCache(max_bytes)
    _shared.max_bytes = max(_shared.max_bytes, max_bytes)
    return _shared
