"""The clip dataset: manifest rows -> sampled, decoded (and transformed) clips with their labels.

Each item opens its own :class:`~videofocus.io.reader.VideoReader` (decoders cannot be shared across
DataLoader workers) and decodes only the frames its :class:`~videofocus.io.samplers.FrameSampler`
picks. Randomness (sampler and transform) is seeded by ``(seed, epoch, index)``, so an epoch
yields the same clips whatever the number of workers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from videofocus.data.frame_cache import FrameCache, Timeline
from videofocus.data.manifest import ManifestRow, read_manifest
from videofocus.io.errors import VideoDecodeError
from videofocus.io.reader import VideoReader
from videofocus.io.samplers import SAMPLINGS, FrameRangeError, FrameSampler, snap_to_keyframes

__all__ = ["ClipDataset", "collate_clips"]

logger = logging.getLogger(__name__)

_ON_ERROR = ("raise", "skip")


class ClipDataset(Dataset):
    """Clips of the videos (or video segments) listed in a manifest.

    An item is a dict:

    - ``"frames"``: ``uint8 [T, H, W, 3]`` RGB, or whatever ``transform`` makes of it;
    - ``"label"``: ``int64`` scalar, the row's first label, ``-1`` when unlabelled;
    - ``"target"``: ``float32 [num_classes]``, multi-hot of all labels when ``multilabel``, else
      one-hot of the first label (all zeros when unlabelled);
    - ``"index"``: the item's position; ``"id"``: the row's id;
    - ``"frame_indices"``: ``int64 [T]``, the decoded frames' indices in the file (keyframes
      with keyframe sampling).

    With ``on_error="skip"`` a video that cannot be decoded (or whose segment lies outside the
    file) yields ``None`` and a logged warning; :func:`collate_clips` drops such items.

    :param manifest: a ``manifest.jsonl`` path (relative video paths resolve against its folder),
        or a sequence of :class:`ManifestRow`.
    :param sampler: picks each clip's frame indices; ``train`` sets its mode (random positions
        or the deterministic evaluation ones).
    :param num_classes: size of the class vocabulary (labels are checked against it).
    :param root: folder that relative video paths resolve against; defaults to the manifest's
        folder for a path, and to the working directory for a list of rows.
    :param split: keep only rows of this split (manifest paths only).
    :param short_side: resize frames at decode time so their short side has this many pixels.
    :param backend: the :class:`VideoReader` backend.
    :param transform: applied to the ``uint8 [T, H, W, 3]`` frames (e.g. the loaders'
        ``SquareClip``).
    :param multilabel: build ``"target"`` from all labels instead of the first one.
    :param on_error: ``"raise"`` (the error, naming the file, propagates) or ``"skip"``.
    :param cache_bytes: keep up to this many bytes of decoded frames in memory (a
        :class:`~videofocus.data.frame_cache.FrameCache` of this dataset's); 0: no cache.
    :param frame_cache: a cache to share with other datasets instead (e.g.
        :func:`~videofocus.data.frame_cache.shared_frame_cache`); overrides ``cache_bytes``.
    :param sampling: ``"exact"`` (the sampled frames) or ``"keyframe"`` (the keyframe nearest
        each, decoded alone: :func:`~videofocus.io.samplers.snap_to_keyframes`); a file whose
        keyframes cannot be located is then a ``VideoDecodeError``.
    """

    def __init__(
        self,
        manifest: str | Path | Sequence[ManifestRow],
        sampler: FrameSampler,
        num_classes: int,
        *,
        root: str | Path | None = None,
        split: str | None = None,
        short_side: int | None = None,
        backend: str = "auto",
        transform: Callable[[torch.Tensor], Any] | None = None,
        multilabel: bool = False,
        train: bool = False,
        seed: int = 0,
        on_error: str = "raise",
        cache_bytes: int = 0,
        frame_cache: FrameCache | None = None,
        sampling: str = "exact",
    ) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        if on_error not in _ON_ERROR:
            raise ValueError(f"on_error must be one of {_ON_ERROR}, got {on_error!r}")
        if seed < 0:
            raise ValueError(f"seed must be non-negative, got {seed}")
        if sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {list(SAMPLINGS)}, got {sampling!r}")
        if isinstance(manifest, (str, Path)):
            self.rows = read_manifest(manifest, num_classes=num_classes, split=split)
            self.root = Path(manifest).parent if root is None else Path(root)
        else:
            if split is not None:
                raise ValueError("split filters a manifest file; filter a list of rows yourself")
            self.rows = list(manifest)
            for row in self.rows:
                if any(label >= num_classes for label in row.labels):
                    raise ValueError(
                        f"row {row.id!r}: label out of range for {num_classes} classes: "
                        f"{list(row.labels)}"
                    )
            self.root = None if root is None else Path(root)
        self.sampler = sampler.with_random(train)
        self.num_classes = num_classes
        self.short_side = short_side
        self.backend = backend
        self.transform = transform
        self.multilabel = multilabel
        self.seed = seed
        self.on_error = on_error
        self.sampling = sampling
        self.cache = frame_cache
        if frame_cache is None and cache_bytes > 0:
            self.cache = FrameCache(cache_bytes)
        # A shared-memory tensor, so that set_epoch in the main process reaches persistent
        # DataLoader workers (they hold copies of this dataset, but share this storage).
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    @property
    def epoch(self) -> int:
        """The epoch that seeds random sampling and transforms."""
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random clips the dataset yields (call before each epoch)."""
        if epoch < 0:
            raise ValueError(f"epoch must be non-negative, got {epoch}")
        self._epoch.fill_(epoch)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        index = range(len(self.rows))[index]  # negative -> positive, so it can seed
        row = self.rows[index]
        path = row.resolved_path(self.root)
        # Seeded by (seed, epoch, index) only, so the clip never depends on which worker loads it.
        sample_seq, transform_seq = np.random.SeedSequence([self.seed, self.epoch, index]).spawn(2)
        try:
            indices, frames = self._decode(row, path, np.random.default_rng(sample_seq))
        except (VideoDecodeError, FrameRangeError) as exc:
            if self.on_error == "raise":
                raise
            logger.warning("skipping item %d (id %r): %s", index, row.id, exc)
            return None
        if self.transform is not None:
            with torch.random.fork_rng(devices=[]):
                # the CPU generator only: torch.manual_seed would also reseed every GPU (which
                # fork_rng(devices=[]) does not restore) and costs ~1.5 ms per item in lazy calls
                torch.default_generator.manual_seed(int(transform_seq.generate_state(1)[0]))
                frames = self.transform(frames)
        return {
            "frames": frames,
            "label": torch.tensor(row.labels[0] if row.labels else -1, dtype=torch.int64),
            "target": self._target(row.labels),
            "index": index,
            "id": row.id,
            "frame_indices": torch.from_numpy(indices),
        }

    def _decode(
        self, row: ManifestRow, path: Path, rng: np.random.Generator
    ) -> tuple[np.ndarray, torch.Tensor]:
        """Sample the clip's indices and decode them: ``int64 [T]``, ``uint8 [T, H, W, 3]``."""
        timeline = None if self.cache is None else self.cache.timeline(path)
        if timeline is not None and self.sampling == "keyframe" and timeline.keyframes is None:
            timeline = None  # cached by an exact-sampling dataset sharing the cache
        if timeline is not None:
            _check_count(row, path, timeline.num_frames)
            indices = self._sample(row, path, timeline, rng)
            frames = self.cache.get(path, indices.tolist(), self.short_side)
            if frames is not None:
                return indices, frames
        with VideoReader(path, backend=self.backend) as reader:
            if timeline is None:
                _check_count(row, path, reader.metadata.num_frames)
                keyframes = reader.keyframes if self.sampling == "keyframe" else None
                timeline = Timeline(
                    reader.metadata.num_frames, reader.frame_boundaries(), keyframes
                )
                if self.cache is not None:
                    self.cache.put_timeline(path, timeline)
                indices = self._sample(row, path, timeline, rng)
            frames = reader.read_frames(indices.tolist(), self.short_side, self.sampling)
        if self.cache is not None:
            self.cache.put(path, indices.tolist(), self.short_side, frames)
        return indices, frames

    def _sample(
        self, row: ManifestRow, path: Path, timeline: Timeline, rng: np.random.Generator
    ) -> np.ndarray:
        """The sampler's frame indices for ``row``'s segment, chosen by presentation time (each
        moved to its nearest keyframe with keyframe sampling)."""
        try:
            indices = self.sampler(
                timeline.num_frames,
                start=row.start,
                end=row.end,
                rng=rng,
                boundaries=timeline.boundaries,
            )
        except FrameRangeError as exc:
            raise FrameRangeError(f"{path}: {exc}") from None
        if self.sampling == "keyframe":
            assert timeline.keyframes is not None  # the timeline was made for keyframe sampling
            indices = snap_to_keyframes(indices, timeline.keyframes)
        return indices

    def _target(self, labels: tuple[int, ...]) -> torch.Tensor:
        target = torch.zeros(self.num_classes, dtype=torch.float32)
        if labels:
            target[list(labels) if self.multilabel else labels[0]] = 1.0
        return target


def collate_clips(batch: Sequence[dict[str, Any] | None]) -> dict[str, Any] | None:
    """DataLoader ``collate_fn`` for :class:`ClipDataset`: drop skipped (``None``) items, stack
    the rest with ``default_collate``; ``None`` when every item of the batch was skipped."""
    items = [item for item in batch if item is not None]
    return default_collate(items) if items else None


def _check_count(row: ManifestRow, path: Path, num_frames: int) -> None:
    """A manifest count that disagrees with the file means it changed since it was probed."""
    if row.num_frames is not None and row.num_frames != num_frames:
        raise VideoDecodeError(
            path,
            f"the manifest says {row.num_frames} frames but the file has {num_frames}; re-probe it",
        )
