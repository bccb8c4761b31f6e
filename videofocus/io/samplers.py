"""Frame-index samplers: which frames of a video (or of a segment of it) make up a clip.

Every sampler is a small frozen dataclass called as::

    indices = sampler(num_frames, fps=25.0, start=12.5, end=30.0, rng=rng)   # int64 [T]
    indices = sampler(num_frames, boundaries=times, start=12.5, end=30.0)       # by real times

It turns the optional segment (seconds) into an inclusive frame range (:func:`frame_range`), then
picks ``sampler.clip_length`` indices in it. Given the frames' real presentation times
(``boundaries``, from :meth:`VideoReader.frame_boundaries`), both steps work in time, so a
variable frame rate samples the right moments; at a constant rate this is the same as indices.
``random=True`` is the training mode (positions drawn from ``rng``), ``random=False`` the
deterministic evaluation mode. Build one from a config with :func:`create_sampler`.

Keyframe sampling (``data.sampling: keyframe``) moves each sampled index to the nearest keyframe
(:func:`snap_to_keyframes`), so that a reader can decode every frame of the clip alone after a
seek, without the frames between keyframes (:meth:`VideoReader.read_frames`).
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "DenseSampler",
    "FrameRangeError",
    "FrameSampler",
    "SAMPLINGS",
    "SegmentSampler",
    "UniformSampler",
    "create_sampler",
    "frame_range",
    "snap_to_keyframes",
]

#: How sampled indices become the frames read: ``exact`` reads the sampled frames themselves,
#: ``keyframe`` the keyframe nearest each (:func:`snap_to_keyframes`).
SAMPLINGS = ("exact", "keyframe")

# Tolerance (in frames) for segment boundaries that land on a frame boundary up to float noise,
# e.g. 0.28 s * 25 fps = 7.000000000000001 must still mean "frame 7".
_EPS = 1e-6
_PAD_MODES = ("loop", "clamp")


class FrameRangeError(ValueError):
    """The requested frame range is empty (a segment past the end of the video, no frames, ...)."""


def frame_range(
    num_frames: int,
    fps: float | None = None,
    start: float | None = None,
    end: float | None = None,
    boundaries: np.ndarray | None = None,
) -> tuple[int, int]:
    """The inclusive frame range ``[first, last]`` of a video or of a segment of it.

    A segment keeps every frame whose display interval overlaps ``[start, end)`` (so even a
    sub-frame segment keeps the frame shown at ``start``), clamped to the frames the file really
    has: annotations can extend past its end.

    :param num_frames: the number of frames the video really has.
    :param fps: frames per second; with ``start`` or ``end``, it or ``boundaries`` is required.
    :param start: segment start in seconds (``None``: the first frame).
    :param end: segment end in seconds (``None``: the last frame).
    :param boundaries: ``[num_frames + 1]`` seconds, frame ``i`` shown from ``boundaries[i]`` to
        ``boundaries[i + 1]``; takes precedence over ``fps``.
    :raises FrameRangeError: when the video has no frames or the segment holds none of them.
    """
    if num_frames <= 0:
        raise FrameRangeError(f"the video has no frames (num_frames={num_frames})")
    if start is None and end is None:
        return 0, num_frames - 1
    if boundaries is None and (fps is None or not fps > 0):
        raise FrameRangeError(f"a segment [{start}, {end}] s needs a positive fps, got {fps}")
    if start is not None and end is not None and end <= start:
        raise FrameRangeError(f"segment end ({end} s) must be greater than its start ({start} s)")
    if boundaries is not None:
        times = np.asarray(boundaries, dtype=np.float64)
        if times.shape != (num_frames + 1,) or np.any(np.diff(times) <= 0):
            raise ValueError(
                f"boundaries must be {num_frames + 1} increasing times, got shape {times.shape}"
            )
        tol = _EPS * times[-1] / num_frames  # the index tolerance below, in seconds
        # frames i with times[i + 1] <= start end before it; frames with times[i] < end overlap
        first = 0 if start is None else int(np.searchsorted(times[1:], start + tol, "right"))
        last = num_frames - 1 if end is None else int(np.searchsorted(times[:-1], end - tol)) - 1
        where = f"{times[-1]:.3f} s long"
    else:
        assert fps is not None
        first = 0 if start is None else max(0, math.floor(start * fps + _EPS))
        last = num_frames - 1 if end is None else math.ceil(end * fps - _EPS) - 1
        where = f"at {fps} fps"
    if first > num_frames - 1:
        raise FrameRangeError(
            f"segment [{start}, {end}] s starts at frame {first}, past the last frame "
            f"{num_frames - 1} of the video ({num_frames} frames, {where})"
        )
    if last < 0:
        raise FrameRangeError(f"segment [{start}, {end}] s ends before the first frame")
    # The tolerance can make a sub-frame segment empty; it still shows the frame at `start`.
    return first, min(max(last, first), num_frames - 1)


def _shown_at(times: np.ndarray, first: int, last: int, offsets: np.ndarray) -> np.ndarray:
    """Indices of the frames shown at the moments ``(k + 1/2) / L`` of the way through the range
    (``k``: the offsets, ``L``: the range's length), i.e. frame ``first + k`` at a constant rate."""
    length = last - first + 1
    moments = times[first] + (offsets + 0.5) * (times[last + 1] - times[first]) / length
    shown = np.searchsorted(times, moments, side="right") - 1
    return np.clip(shown, first, last)


def _pad(offsets: np.ndarray, length: int, mode: str) -> np.ndarray:
    """Fold offsets that run past a range of ``length`` frames back into it."""
    if mode == "loop":
        return offsets % length
    return np.minimum(offsets, length - 1)


def snap_to_keyframes(indices: Sequence[int] | np.ndarray, keyframes: Sequence[int]) -> np.ndarray:
    """Each index replaced by the keyframe nearest to it in frame index, a tie going to the
    earlier keyframe: ``snap_to_keyframes([0, 124, 125, 126, 900], [0, 250, 500])`` is
    ``[0, 0, 0, 250, 500]``.

    Several indices may land on one keyframe (the clip then repeats that frame), and a short
    segment's index may land on a keyframe outside the segment: the nearest keyframe is the
    closest frame that can be decoded alone.

    :param indices: frame indices, e.g. a sampler's output.
    :param keyframes: presentation indices of the video's keyframes, strictly ascending
        (:attr:`VideoReader.keyframes`).
    :return: ``int64`` keyframe indices, one per index, in the order of ``indices``.
    :raises ValueError: ``keyframes`` is empty or not strictly ascending.
    """
    keys = np.asarray(keyframes, dtype=np.int64).reshape(-1)
    if keys.size == 0 or np.any(np.diff(keys) <= 0):
        raise ValueError(f"keyframes must be non-empty and strictly ascending, got {keys[:8]}")
    wanted = np.asarray(indices, dtype=np.int64)
    before = np.maximum(np.searchsorted(keys, wanted, side="right") - 1, 0)  # last one <= index
    after = np.minimum(before + 1, keys.size - 1)
    # strictly nearer only: a tie keeps the earlier keyframe
    later = np.abs(keys[after] - wanted) < np.abs(wanted - keys[before])
    return np.where(later, keys[after], keys[before])


class FrameSampler(ABC):
    """Base class: maps a video's frame count (and an optional segment) to int64 frame indices.

    Subclasses are frozen dataclasses with a ``random`` field, optionally a ``pad`` mode, and
    positive integers for every other field; they implement :meth:`_offsets`.
    """

    random: bool

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, field.name)
            if field.name == "pad":
                if value not in _PAD_MODES:
                    raise ValueError(f"pad must be one of {_PAD_MODES}, got {value!r}")
            elif field.name != "random" and (
                isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1
            ):
                raise ValueError(f"{field.name} must be a positive integer, got {value!r}")

    @property
    @abstractmethod
    def clip_length(self) -> int:
        """How many indices each call returns (the clip's T)."""

    @abstractmethod
    def _offsets(self, length: int, rng: np.random.Generator | None) -> np.ndarray:
        """Indices relative to the range's first frame, each in ``[0, length)``."""

    def __call__(
        self,
        num_frames: int,
        *,
        fps: float | None = None,
        start: float | None = None,
        end: float | None = None,
        rng: np.random.Generator | None = None,
        boundaries: np.ndarray | None = None,
    ) -> np.ndarray:
        """Sample the clip's frame indices; the other arguments are as in :func:`frame_range`.

        :param rng: the generator random mode draws from (``None``: a fresh one from OS entropy).
        :return: ``int64 [clip_length]`` indices within the frame range, in temporal order per clip.
        :raises FrameRangeError: when the frame range is empty.
        """
        first, last = frame_range(num_frames, fps, start, end, boundaries)
        if self.random and rng is None:
            rng = np.random.default_rng()
        offsets = self._offsets(last - first + 1, rng if self.random else None)
        if boundaries is not None:
            return _shown_at(np.asarray(boundaries, np.float64), first, last, offsets)
        return (first + offsets).astype(np.int64)

    def with_random(self, random: bool) -> FrameSampler:
        """The same sampler in training (``True``) or evaluation (``False``) mode."""
        return self if self.random == random else dataclasses.replace(self, random=random)


@dataclass(frozen=True)
class SegmentSampler(FrameSampler):
    """TSN sampling: split the range into ``num_segments`` equal parts, one frame from each.

    Segment ``k`` of a range of ``L`` frames owns the frames ``i`` with ``k*L/n <= i < (k+1)*L/n``,
    so segments partition the range. Evaluation takes each segment's middle frame (100 frames,
    8 segments -> 6, 18, 31, 43, 56, 68, 81, 93); training takes a uniformly random frame of each.
    With fewer frames than segments, frames are repeated evenly in both modes
    (3 frames, 8 segments -> 0, 0, 0, 1, 1, 2, 2, 2).

    :param num_segments: frames per clip.
    """

    num_segments: int = 8
    random: bool = False

    @property
    def clip_length(self) -> int:
        return self.num_segments

    def _offsets(self, length: int, rng: np.random.Generator | None) -> np.ndarray:
        n = self.num_segments
        k = np.arange(n, dtype=np.int64)
        if length < n:
            # Middle of each (sub-frame) segment: floor((k + 1/2) * L / n), exact in integers.
            return (2 * k + 1) * length // (2 * n)
        lo = -((-k * length) // n)  # ceil(k * L / n)
        hi = -((-(k + 1) * length) // n) - 1  # ceil((k + 1) * L / n) - 1
        if rng is None:
            return (lo + hi) // 2
        return rng.integers(lo, hi + 1)


@dataclass(frozen=True)
class UniformSampler(FrameSampler):
    """``num_samples`` frames, one every ``stride`` frames, as one contiguous strided window.

    Evaluation centres the window in the range; training places it at a random start. When the
    window is longer than the range, its indices wrap around (``pad="loop"``; training then starts
    the wrap at a random frame) or stop at the last frame (``pad="clamp"``).

    :param num_samples: frames per clip.
    :param stride: distance between consecutive frames.
    :param pad: ``"loop"`` or ``"clamp"`` for ranges shorter than the window.
    """

    num_samples: int = 8
    stride: int = 1
    random: bool = False
    pad: str = "loop"

    @property
    def clip_length(self) -> int:
        return self.num_samples

    def _offsets(self, length: int, rng: np.random.Generator | None) -> np.ndarray:
        steps = np.arange(self.num_samples, dtype=np.int64) * self.stride
        span = int(steps[-1]) + 1
        if span <= length:
            start = (length - span) // 2 if rng is None else int(rng.integers(0, length - span + 1))
            return start + steps
        start = 0 if rng is None or self.pad == "clamp" else int(rng.integers(0, length))
        return _pad(start + steps, length, self.pad)


@dataclass(frozen=True)
class DenseSampler(FrameSampler):
    """``num_clips`` windows of ``clip_len`` frames taken every ``frame_interval`` frames.

    The result is the windows' indices concatenated (``clip_length = num_clips * clip_len``),
    windows in temporal order. Evaluation spaces the window starts evenly over the range (one
    window: centred); training draws each start uniformly. Windows longer than the range wrap
    around (``pad="loop"``) or stop at the last frame (``pad="clamp"``).

    :param clip_len: frames per window.
    :param frame_interval: distance between consecutive frames of a window.
    :param num_clips: windows per clip.
    :param pad: ``"loop"`` or ``"clamp"`` for ranges shorter than a window.
    """

    clip_len: int = 8
    frame_interval: int = 1
    num_clips: int = 1
    random: bool = False
    pad: str = "loop"

    @property
    def clip_length(self) -> int:
        return self.num_clips * self.clip_len

    def _offsets(self, length: int, rng: np.random.Generator | None) -> np.ndarray:
        steps = np.arange(self.clip_len, dtype=np.int64) * self.frame_interval
        slack = max(length - (int(steps[-1]) + 1), 0)  # how far a window's start can move
        if rng is not None:
            starts = np.sort(rng.integers(0, slack + 1, size=self.num_clips))
        elif self.num_clips == 1:
            starts = np.array([slack // 2], dtype=np.int64)
        else:
            starts = np.round(np.linspace(0, slack, self.num_clips)).astype(np.int64)
        offsets = (starts[:, None] + steps[None, :]).reshape(-1)  # "clips t -> (clips t)"
        return _pad(offsets, length, self.pad)


_SAMPLERS: dict[str, type[FrameSampler]] = {
    "tsn": SegmentSampler,
    "uniform": UniformSampler,
    "dense": DenseSampler,
}


def create_sampler(name: str, **kwargs: Any) -> FrameSampler:
    """Build a sampler by name, for configs: ``create_sampler("tsn", num_segments=16)``.

    Arguments set to ``None`` keep the sampler's default.

    :param name: ``"tsn"``, ``"uniform"`` or ``"dense"``.
    :raises ValueError: for an unknown name or argument.
    """
    if name not in _SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {sorted(_SAMPLERS)}")
    cls = _SAMPLERS[name]
    allowed = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ValueError(f"unknown argument(s) {unknown} for sampler {name!r}; allowed: {allowed}")
    return cls(**{k: v for k, v in kwargs.items() if v is not None})
