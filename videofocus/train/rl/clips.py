"""Where the environments' videos come from: decoded once, glanced at once, cached.

:class:`ClipSource` supplies the clips of a dataset (frames kept as uint8 on the device, glance
outputs of the frozen :class:`~videofocus.models.FocusNet` computed once per video and kept in a
:class:`VideoCache`, in memory or on disk), :class:`VideoStream` the seeded order they come in,
and :func:`fit_projection` fits the observation's PCA projection on their glance maps.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from videofocus.data.transforms import normalise_pixels
from videofocus.models.focusnet import FocusNet, GlanceOutput
from videofocus.policy.observation import GlanceProjection

#: A clip dataset item: ``{"frames": uint8 [T, 3, H, W], "label": int, ...}`` or None (undecodable).
ClipItem = dict[str, Any] | None


class VideoCache:
    """Per-video tensors computed once (decoded frames, glance features), kept by video index.

    In memory by default; with ``directory`` one ``<index>.pt`` file per video, for datasets whose
    frames and glance maps do not fit in memory. A directory holds the ``fingerprint`` of what
    filled it (:func:`glance_fingerprint`); files of another fingerprint are removed on opening,
    so a cache never serves features of other weights.
    """

    def __init__(self, directory: str | Path | None = None, fingerprint: str = "") -> None:
        self.directory = None if directory is None else Path(directory)
        self._memory: dict[int, dict[str, torch.Tensor]] = {}
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            stamp = self.directory / "fingerprint.txt"
            if not stamp.is_file() or stamp.read_text(encoding="utf-8") != fingerprint:
                for stale in self.directory.glob("*.pt"):
                    stale.unlink()
                stamp.write_text(fingerprint, encoding="utf-8")

    def get(self, index: int) -> dict[str, torch.Tensor] | None:
        """The tensors stored for video ``index``, or None."""
        if self.directory is None:
            return self._memory.get(index)
        path = self.directory / f"{index}.pt"
        return torch.load(path, weights_only=True) if path.is_file() else None

    def put(self, index: int, tensors: dict[str, torch.Tensor]) -> None:
        """Store ``tensors`` (moved to the CPU) for video ``index``."""
        # clone(): a view would keep (and torch.save would write) its whole batch's storage.
        tensors = {k: v.detach().cpu().clone() for k, v in tensors.items()}
        if self.directory is None:
            self._memory[index] = tensors
            return
        path = self.directory / f"{index}.pt"
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        torch.save(tensors, partial)
        partial.replace(path)  # atomic: a killed run never leaves a truncated entry

    def clear(self) -> None:
        """Forget the in-memory entries (files on disk are kept for the next run)."""
        self._memory.clear()


class VideoStream:
    """A seeded, endless stream of video indices: a fresh permutation of the dataset per pass.

    It also counts how often each video was drawn (its *visit*), which keys the random baseline
    glimpses of :class:`EpisodeBatch`.
    """

    def __init__(self, num_videos: int, seed: int = 0) -> None:
        if num_videos < 1:
            raise ValueError(f"the video stream needs at least one video, got {num_videos}")
        self.num_videos = num_videos
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        """Restart the stream from its first pass under ``seed`` (and forget the visits)."""
        self.seed = int(seed)
        self.epoch = 0
        self._order = self._permutation()
        self._position = 0
        self._visits: dict[int, int] = {}

    def _permutation(self) -> np.ndarray:
        return np.random.default_rng([self.seed, self.epoch]).permutation(self.num_videos)

    def next(self) -> int:
        """The next video index of the stream."""
        if self._position == self.num_videos:
            self.epoch += 1
            self._order = self._permutation()
            self._position = 0
        index = int(self._order[self._position])
        self._position += 1
        return index

    def visit(self, index: int) -> int:
        """Count a visit of video ``index``; returns how many visits came before it."""
        count = self._visits.get(index, 0)
        self._visits[index] = count + 1
        return count


#: ``uint8 [..., 3, H, W]`` -> the training stages' normalised float32 input, on the frames' device.
normalise_frames = normalise_pixels


class Clips(NamedTuple):
    """A batch of videos on the device, ready for :meth:`EpisodeBatch.start`: dataset indices
    ``[N]``, ``uint8 [N, T, 3, H, W]`` frames (normalised only where glimpsed at), labels ``[N]``
    and the glance output."""

    keys: torch.Tensor
    frames: torch.Tensor
    labels: torch.Tensor
    glance: GlanceOutput


class ClipSource:
    """Videos of a clip dataset as :class:`Clips`, each decoded and glanced at only once.

    :param dataset: a :class:`~videofocus.data.ClipDataset` in evaluation mode (each video's
        frames fixed, so cached features stay valid) or any sequence of :data:`ClipItem`; None
        items (undecodable videos) are skipped by :meth:`valid`.
    :param net: the frozen model whose glance encoder runs on new videos.
    :param cache: where frames and glance features are kept; None: a new in-memory cache.
    """

    def __init__(
        self, dataset: Sequence[ClipItem], net: FocusNet, cache: VideoCache | None = None
    ) -> None:
        if len(dataset) == 0:
            raise ValueError("the clip dataset is empty")
        self.dataset = dataset
        self.net = net
        self.cache = cache if cache is not None else VideoCache()
        self.bad: set[int] = set()

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def device(self) -> torch.device:
        """The device of the model (and of every :class:`Clips` it returns)."""
        return next(self.net.parameters()).device

    def _decoded(self, index: int) -> dict[str, torch.Tensor] | None:
        entry = self.cache.get(index)
        if entry is not None:
            return entry
        item = self.dataset[index]
        if item is None:
            self.bad.add(index)
            return None
        frames, label = item["frames"], int(item["label"])
        if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[1] != 3:
            raise ValueError(
                f"video {index}: frames must be uint8 [T, 3, H, W], got {frames.dtype} "
                f"{tuple(frames.shape)}"
            )
        if label < 0:
            raise ValueError(f"video {index} has no label; rewards need the ground truth")
        entry = {"frames": frames, "label": torch.tensor(label)}
        self.cache.put(index, entry)
        return entry

    def valid(self, index: int) -> bool:
        """Whether video ``index`` decodes (decoding and caching it on first use)."""
        return index not in self.bad and self._decoded(index) is not None

    @torch.no_grad()
    def load(self, indices: Sequence[int]) -> Clips:
        """The videos ``indices`` on the model's device, glance computed for those new to it;
        ValueError when one of them does not decode (check :meth:`valid` first)."""
        device = self.device
        entries = []
        for index in indices:
            entry = self._decoded(index)
            if entry is None:
                raise ValueError(f"video {index} could not be decoded")
            entries.append(entry)
        frames = torch.stack([e["frames"] for e in entries]).to(device)
        missing = [i for i, e in enumerate(entries) if "maps" not in e]
        if missing:
            glance = self.net.glance(normalise_frames(frames[missing]))
            for j, i in enumerate(missing):
                entries[i] = {**entries[i], "maps": glance.maps[j], "pooled": glance.pooled[j]}
                self.cache.put(indices[i], entries[i])
        return Clips(
            keys=torch.tensor(list(indices), dtype=torch.long, device=device),
            frames=frames,
            labels=torch.stack([e["label"] for e in entries]).to(device),
            glance=GlanceOutput(
                torch.stack([e["maps"] for e in entries]).to(device),
                torch.stack([e["pooled"] for e in entries]).to(device),
            ),
        )

    def draw(self, stream: VideoStream, count: int) -> tuple[list[int], list[int]]:
        """The next ``count`` decodable videos of ``stream`` and their visit numbers."""
        indices: list[int] = []
        while len(indices) < count:
            if len(self.bad) == len(self.dataset):
                raise ValueError("no video of the dataset decodes")
            index = stream.next()
            if self.valid(index):
                indices.append(index)
        return indices, [stream.visit(i) for i in indices]


def glance_fingerprint(net: FocusNet, *parts: object) -> str:
    """A digest of ``net``'s glance encoder weights and ``parts`` (e.g. the clip settings), which
    tells a :class:`VideoCache` directory whether its entries still hold."""
    digest = hashlib.sha1(repr(parts).encode())
    for name, tensor in net.global_encoder.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


@torch.no_grad()
def fit_projection(
    source: ClipSource, channels: int, max_videos: int, seed: int = 0, chunk: int = 32
) -> GlanceProjection:
    """Fit the observation's :class:`GlanceProjection` of ``channels`` channels on the glance
    maps of up to ``max_videos`` decodable videos of ``source`` (a ``seed``-ed random subset,
    glanced at ``chunk`` per batch; their glance features stay cached for the episodes)."""
    order = np.random.default_rng(seed).permutation(len(source)).tolist()
    chosen = [i for i in order if source.valid(i)][:max_videos]
    if not chosen:
        raise ValueError("no video of the dataset decodes")
    batches = (
        source.load(chosen[start : start + chunk]).glance.maps
        for start in range(0, len(chosen), chunk)
    )
    return GlanceProjection.fit(batches, channels)
