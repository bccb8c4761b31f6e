"""Datasets and loaders for the training and evaluation stages, built from a :class:`DataConfig`.

Clips travel as ``uint8 [T, 3, S, S]`` (S = ``data.frame_size``) from the DataLoader workers and
become normalised float on the device (:func:`frames_to_input`), so host-to-device copies stay
four times smaller than float frames.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torchvision.transforms.v2.functional as TF
from einops import rearrange
from torch.utils.data import DataLoader, DistributedSampler

from videofocus.config import Config, DataConfig
from videofocus.data.dataset import ClipDataset, collate_clips
from videofocus.data.frame_cache import shared_frame_cache
from videofocus.data.manifest import ManifestError, read_classes, read_manifest
from videofocus.data.transforms import normalise_pixels
from videofocus.io.samplers import create_sampler
from videofocus.runtime import DistInfo, select_device

log = logging.getLogger(__name__)


def ensure_dataset(cfg: DataConfig, workers: int = 2, progress: bool = True) -> None:
    """Generate the synthetic benchmark into ``cfg.root`` when the config asks for it.

    Nothing happens when ``cfg.synthetic`` is unset or the folder already holds exactly that
    dataset; a missing real dataset is left for the manifest reader to report.
    """
    if cfg.synthetic is None:
        return
    from videofocus.data.synthetic import SyntheticConfig, generate

    summary = generate(
        cfg.root, SyntheticConfig(**asdict(cfg.synthetic)), workers=workers, progress=progress
    )
    if not summary.reused:
        log.info("generated %d synthetic videos in %s", cfg.synthetic.num_videos, cfg.root)


def recorded_class_names(cfg: DataConfig, num_classes: int) -> list[str] | None:
    """The class names a trained checkpoint records in its ``meta.json`` (so that inference never
    depends on where the classes file is): the config's classes file, or None (with a logged
    warning) when it cannot be read or does not name ``num_classes`` classes."""
    path = cfg.resolve(cfg.classes)
    try:
        names = read_classes(path)
    except ManifestError as err:
        problem = str(err)
    else:
        if len(names) == num_classes:
            return names
        problem = f"{path} names {len(names)} classes, the model has {num_classes}"
    log.warning("the checkpoint records no class names: %s", problem)
    return None


@dataclass(frozen=True)
class SquareClip:
    """``uint8 [T, H, W, 3]`` -> ``uint8 [T, 3, S, S]``: a random (train) or centre square crop."""

    size: int
    train: bool

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        clip = rearrange(frames, "t h w c -> t c h w")
        h, w = clip.shape[-2:]
        if (h, w) == (self.size, self.size):
            return clip
        if min(h, w) < self.size:  # decoded smaller than asked (tiny videos): scale up
            clip = TF.resize(clip, [self.size], antialias=True)
            h, w = clip.shape[-2:]
        if self.train:  # torch's global RNG is seeded per item by ClipDataset
            top = int(torch.randint(0, h - self.size + 1, ()))
            left = int(torch.randint(0, w - self.size + 1, ()))
            return TF.crop(clip, top, left, self.size, self.size)
        return TF.center_crop(clip, [self.size, self.size])


def build_dataset(
    cfg: DataConfig, split: str, train: bool, num_classes: int, seed: int = 0
) -> ClipDataset:
    """The clip dataset of the ``train``, ``val`` or ``test`` rows the config points at."""
    manifest, rows_split = _split_rows(cfg, split)
    return ClipDataset(
        cfg.resolve(manifest or cfg.manifest),
        create_sampler(cfg.sampler, **sampler_kwargs(cfg)),
        num_classes,
        split=rows_split,
        short_side=cfg.frame_size,
        backend=cfg.backend,
        transform=SquareClip(cfg.frame_size, train),
        multilabel=True,  # for evaluation (mAP, hit@k); training losses read "label"
        train=train,
        seed=seed,
        on_error="skip",
        frame_cache=shared_frame_cache(cfg.frame_cache_mb * 2**20),
        sampling=cfg.sampling,
    )


def sampler_kwargs(cfg: DataConfig) -> dict[str, int]:
    """Keyword arguments of :func:`create_sampler` for the configured sampler and clip length."""
    key = {"tsn": "num_segments", "uniform": "num_samples"}.get(cfg.sampler, "clip_len")
    return {key: cfg.frames}


def build_loader(
    dataset: ClipDataset,
    batch_size: int,
    dist: DistInfo,
    *,
    shuffle: bool,
    seed: int,
    num_workers: int,
    drop_last: bool,
    pin_memory: bool = False,
) -> tuple[DataLoader, DistributedSampler | None]:
    """A DataLoader over this process's share of ``dataset`` (``batch_size`` is per process).

    Shuffled loaders always go through a :class:`DistributedSampler`, even for one process, so
    N processes with batch B / N see exactly the batches one process with batch B sees.
    """
    sampler = None
    if shuffle or dist.is_distributed:
        sampler = DistributedSampler(
            dataset,
            num_replicas=dist.world_size,
            rank=dist.rank,
            shuffle=shuffle,
            seed=seed,
            drop_last=drop_last,
        )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_clips,
        drop_last=drop_last,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
        prefetch_factor=4 if num_workers > 0 else None,
        generator=torch.Generator().manual_seed(seed),
    ), sampler


def frames_to_input(frames: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``uint8 [..., 3, H, W]`` -> ImageNet-normalised ``float32`` on ``device``
    (:func:`~videofocus.data.transforms.normalise_pixels` after the copy)."""
    return normalise_pixels(frames.to(device, non_blocking=True))


def evaluation_rows(cfg: Config, split: str) -> Config:
    """``cfg`` whose evaluation rows (what ``eval`` and every benchmark read as ``val``) are
    the ``train``, ``val`` or ``test`` rows of its data."""
    manifest, rows = _split_rows(cfg.data, split)
    return replace(cfg, data=replace(cfg.data, val_manifest=manifest, val_split=rows))


def _split_rows(cfg: DataConfig, split: str) -> tuple[str | None, str | None]:
    """The manifest (None: ``cfg.manifest``) and split name of the ``train``, ``val`` or
    ``test`` rows."""
    rows = {
        "train": (cfg.manifest, cfg.train_split),
        "val": (cfg.val_manifest, cfg.val_split),
        "test": (cfg.test_manifest, cfg.test_split),
    }
    if split not in rows:
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    return rows[split]


def has_rows(cfg: Config, split: str) -> bool:
    """Whether the data has ``split`` rows (e.g. a held-out test split to report on)."""
    data = evaluation_rows(cfg, split).data
    try:
        return bool(
            read_manifest(data.resolve(data.val_manifest or data.manifest), split=data.val_split)
        )
    except (ManifestError, OSError):
        return False


def build_eval_loader(
    cfg: Config,
    num_classes: int,
    manifest: str | Path | None = None,
    batch_size: int | None = None,
):
    """The evaluation loader: the config's validation rows (or every row of ``manifest``), in
    order, with evaluation-mode sampling (:func:`evaluation_rows` points them at another split).

    :param manifest: evaluate every row of this manifest instead of the config's ``val`` rows.
    :param batch_size: clips per batch; None: ``train.batch_size``.
    """
    data = cfg.data
    if manifest is not None:
        data = replace(data, val_manifest=str(Path(manifest).resolve()), val_split=None)
    dataset = build_dataset(data, "val", train=False, num_classes=num_classes, seed=cfg.train.seed)
    loader, _ = build_loader(
        dataset,
        batch_size or cfg.train.batch_size,
        DistInfo(),
        shuffle=False,
        seed=cfg.train.seed,
        num_workers=data.num_workers,
        drop_last=False,
        pin_memory=select_device(cfg.train.device).type == "cuda",
    )
    return loader
