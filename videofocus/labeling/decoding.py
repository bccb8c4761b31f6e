"""Decoding for labeling: every input yields a clip or the reason it could not, within a deadline.

:class:`LabelClips` never raises for a bad video (missing, truncated, not a video, too slow to
decode): the item carries an ``error`` string, so the job writes an error row and goes on.

The deadline is a ``SIGALRM`` timer: PyAV returns to Python after every packet, so the alarm
interrupts a decode that crawls or loops, though not a hang inside one FFmpeg call
(``videofocus probe`` isolates files in child processes where that is a risk).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from videofocus.config import DataConfig
from videofocus.data.loaders import SquareClip, sampler_kwargs
from videofocus.io.errors import VideoDecodeError
from videofocus.io.reader import VideoReader
from videofocus.io.samplers import FrameRangeError, create_sampler
from videofocus.labeling.inputs import LabelItem

__all__ = ["DecodeTimeout", "DecodedBatch", "LabelClips", "collate_decoded"]


class DecodeTimeout(Exception):
    """Decoding one video took longer than the deadline."""


@contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Raise :class:`DecodeTimeout` in this block after ``seconds`` (main thread of a process on
    POSIX; elsewhere the block simply runs without a deadline)."""
    usable = (
        seconds is not None
        and seconds > 0
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
    )
    if not usable:
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise DecodeTimeout(f"decoding took longer than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class LabelClips(torch.utils.data.Dataset):
    """Clips of label inputs (in job order), sampled and sized as the model's evaluation clips
    are by ``data`` (``data.sampling``: the sampled frames or their nearest keyframes);
    ``timeout``: seconds allowed to decode one video (None: no deadline).

    An item holds ``frames`` (``uint8 [T, 3, S, S]``, None on error), ``sampled_times`` (the
    presentation time in seconds of each frame read, ``float64 [T]``; None on error),
    ``error``, ``decode_ms`` and its ``index``.
    """

    def __init__(
        self, items: Sequence[LabelItem], data: DataConfig, timeout: float | None = 60.0
    ) -> None:
        self.items = list(items)
        self.sampler = create_sampler(data.sampler, **sampler_kwargs(data)).with_random(False)
        self.transform = SquareClip(data.frame_size, train=False)
        self.data = data
        self.timeout = timeout

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.items[index]
        start = time.perf_counter()
        frames, times, error = None, None, None
        try:
            with deadline(self.timeout):
                frames, times = self._decode(item)
        except (VideoDecodeError, FrameRangeError, DecodeTimeout) as exc:
            error = str(exc)
        except Exception as exc:  # noqa: BLE001 - one bad file must never stop the job
            error = f"{type(exc).__name__}: {exc}"
        if error is not None and str(item.path) not in error:
            error = f"{item.path}: {error}"
        return {
            "index": index,
            "frames": frames,
            "sampled_times": times,
            "error": error,
            "decode_ms": 1000.0 * (time.perf_counter() - start),
        }

    def _decode(self, item: LabelItem) -> tuple[torch.Tensor, np.ndarray]:
        """The clip and the presentation times (seconds) of its frames."""
        if not item.path.is_file():
            raise VideoDecodeError(item.path, "file not found")
        sampling = self.data.sampling
        with VideoReader(item.path, backend=self.data.backend) as reader:
            rng = np.random.default_rng(0)  # evaluation positions are deterministic anyway
            indices = reader.sample_indices(self.sampler, item.start, item.end, rng, sampling)
            frames = reader.read_frames(indices.tolist(), self.data.frame_size, sampling)
            times = reader.frame_boundaries()[indices]
        return self.transform(frames), times


@dataclass
class DecodedBatch:
    """A collated batch: the dataset ``indices`` of the decoded clips, their uint8 ``frames``
    ``[B, T, 3, H, W]`` (None when nothing decoded), ``decode_ms`` and ``sampled_times`` (each
    clip's frame times in seconds), and the ``(index, error, decode_ms)`` of the ``failures``."""

    indices: list[int]
    frames: torch.Tensor | None
    decode_ms: list[float]
    failures: list[tuple[int, str, float]]
    sampled_times: list[list[float]]

    def pin_memory(self) -> DecodedBatch:
        """Page-locked frames, so the copy to the GPU can run asynchronously."""
        if self.frames is not None:
            self.frames = self.frames.pin_memory()
        return self


def collate_decoded(items: Sequence[dict[str, Any]]) -> DecodedBatch:
    """``collate_fn`` of :class:`LabelClips`."""
    good = [it for it in items if it["error"] is None]
    return DecodedBatch(
        indices=[it["index"] for it in good],
        frames=torch.stack([it["frames"] for it in good]) if good else None,
        decode_ms=[it["decode_ms"] for it in good],
        failures=[(it["index"], it["error"], it["decode_ms"]) for it in items if it["error"]],
        sampled_times=[it["sampled_times"].tolist() for it in good],
    )
