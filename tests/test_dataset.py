"""ClipDataset (decoding the right frames, labels, seeding across workers, bad files)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader
from torchvision.transforms.v2 import Compose, RandomHorizontalFlip

from videofocus.data.dataset import ClipDataset, collate_clips
from videofocus.data.loaders import SquareClip
from videofocus.data.manifest import ManifestError, ManifestRow, write_manifest
from videofocus.io.errors import VideoDecodeError
from videofocus.io.reader import available_backends
from videofocus.io.samplers import FrameRangeError, SegmentSampler, UniformSampler
from videofocus.io.writer import write_video

H, W, N, FPS = 48, 64, 20, 25.0
STEP = 12  # frame i is a flat grey of value 10 + 12 * i, so decoded pixels tell the index


def _frame_index(frames: torch.Tensor) -> list[int]:
    """Recover each decoded frame's index from its grey level ([T, H, W, 3] uint8)."""
    means = frames.float().mean(dim=(1, 2, 3))
    return [round((m - 10) / STEP) for m in means.tolist()]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    frames = [np.full((H, W, 3), 10 + STEP * i, dtype=np.uint8) for i in range(N)]
    write_video(root / "a.mp4", frames, fps=FPS, crf=0)
    write_video(root / "b.mp4", frames[::-1], fps=FPS, crf=0)  # b's frame i shows index N-1-i
    (root / "empty.mp4").write_bytes(b"")
    return root


def _rows(**extra) -> list[ManifestRow]:
    return [
        ManifestRow(id="a", path="a.mp4", labels=(2,), **extra),
        ManifestRow(id="b", path="b.mp4", labels=(0, 3), **extra),
        ManifestRow(id="c", path="a.mp4", labels=()),
    ]


@pytest.mark.parametrize("backend", ["auto", *available_backends()])
def test_item_has_the_sampled_frames_and_labels(videos, backend):
    ds = ClipDataset(_rows(), SegmentSampler(4), num_classes=5, root=videos, backend=backend)
    assert len(ds) == 3
    item = ds[0]
    assert item["frames"].dtype == torch.uint8 and item["frames"].shape == (4, H, W, 3)
    assert item["frame_indices"].dtype == torch.int64
    assert item["frame_indices"].tolist() == [2, 7, 12, 17]
    assert _frame_index(item["frames"]) == [2, 7, 12, 17]
    assert item["label"].dtype == torch.int64 and item["label"].item() == 2
    assert item["target"].dtype == torch.float32
    assert item["target"].tolist() == [0, 0, 1, 0, 0]
    assert item["index"] == 0 and item["id"] == "a"
    item = ds[1]
    assert _frame_index(item["frames"]) == [N - 1 - i for i in (2, 7, 12, 17)]
    assert item["label"].item() == 0 and item["target"].tolist() == [1, 0, 0, 0, 0]
    item = ds[-1]
    assert item["index"] == 2 and item["label"].item() == -1 and item["target"].sum() == 0
    with pytest.raises(IndexError):
        ds[3]


def test_multilabel_target_is_multi_hot(videos):
    ds = ClipDataset(_rows(), SegmentSampler(2), num_classes=5, root=videos, multilabel=True)
    assert ds[1]["target"].tolist() == [1, 0, 0, 1, 0]
    assert ds[1]["label"].item() == 0


def test_segment_rows_read_only_frames_inside_the_segment(videos):
    rows = [
        ManifestRow(id="mid", path="a.mp4", labels=(1,), start=0.2, end=0.5),  # frames 5..12
        ManifestRow(id="tail", path="a.mp4", labels=(1,), start=0.6, end=3.0),  # 15..19 (clamped)
    ]
    for train in (False, True):
        ds = ClipDataset(rows, SegmentSampler(4), num_classes=2, root=videos, train=train)
        for epoch in range(3):
            ds.set_epoch(epoch)
            mid, tail = ds[0], ds[1]
            assert _frame_index(mid["frames"]) == mid["frame_indices"].tolist()
            assert all(5 <= i <= 12 for i in mid["frame_indices"].tolist())
            assert _frame_index(tail["frames"]) == tail["frame_indices"].tolist()
            assert all(15 <= i <= 19 for i in tail["frame_indices"].tolist())


def test_file_timeline_decides_and_stale_counts_are_errors(videos):
    # Segments are seconds of the file itself: a manifest's fps (a nominal rate from some probe)
    # does not move them, and a frame count that disagrees with the file means it changed.
    rows = [
        ManifestRow(id="s", path="a.mp4", num_frames=N, fps=10.0, start=0.2, end=0.36),
        ManifestRow(id="stale", path="a.mp4", num_frames=10),
    ]
    ds = ClipDataset(rows, UniformSampler(4), num_classes=1, root=videos)
    assert ds[0]["frame_indices"].tolist() == [5, 6, 7, 8]  # 0.2 s .. 0.36 s at the file's 25 fps
    with pytest.raises(VideoDecodeError, match="manifest says 10 frames but the file has 20"):
        ds[1]


def test_manifest_file_resolves_paths_and_filters_split(videos, tmp_path):
    manifest = videos / "manifest.jsonl"
    write_manifest(
        manifest,
        [
            ManifestRow(id="a", path="a.mp4", labels=(1,), split="train"),
            ManifestRow(id="b", path=str(videos / "b.mp4"), labels=(0,), split="val"),
        ],
    )
    ds = ClipDataset(manifest, SegmentSampler(2), num_classes=2, split="val")
    assert [r.id for r in ds.rows] == ["b"] and ds[0]["label"].item() == 0
    assert ClipDataset(manifest, SegmentSampler(2), num_classes=2)[0]["id"] == "a"
    with pytest.raises(ManifestError, match="out of range for 1 classes"):
        ClipDataset(manifest, SegmentSampler(2), num_classes=1)
    with pytest.raises(ValueError, match="out of range for 2 classes"):
        ClipDataset(_rows(), SegmentSampler(2), num_classes=2, root=videos)


def test_short_side_resizes_at_decode(videos):
    ds = ClipDataset(_rows(), SegmentSampler(3), num_classes=5, root=videos, short_side=24)
    assert ds[0]["frames"].shape == (3, 24, 32, 3)


def test_train_mode_is_random_but_seeded_by_epoch_and_index(videos):
    ds = ClipDataset(_rows(), SegmentSampler(4), num_classes=5, root=videos, train=True, seed=7)
    assert ds.sampler.random and ds.epoch == 0
    first = ds[0]["frame_indices"].tolist()
    assert ds[0]["frame_indices"].tolist() == first  # same (seed, epoch, index) -> same clip
    per_epoch = []
    for epoch in range(6):
        ds.set_epoch(epoch)
        per_epoch.append(tuple(ds[0]["frame_indices"].tolist()))
    assert per_epoch[0] == tuple(first) and len(set(per_epoch)) > 1
    eval_ds = ClipDataset(_rows(), SegmentSampler(4, random=True), num_classes=5, root=videos)
    assert not eval_ds.sampler.random and eval_ds[0]["frame_indices"].tolist() == [2, 7, 12, 17]


def test_seeding_a_transform_touches_no_random_state_but_its_own(videos, monkeypatch):
    """The item seeds the CPU generator inside fork_rng only: the caller's CPU stream goes on
    unchanged, and no accelerator generator is reseeded (fork_rng(devices=[]) would not restore
    it, so every GPU's dropout would restart from the last item's seed)."""
    reseeded = []
    for name in ("cuda", "xpu", "mtia"):
        module = getattr(torch, name)
        monkeypatch.setattr(module, "manual_seed_all", lambda seed, n=name: reseeded.append(n))
    augment = Compose([SquareClip(32, train=True), RandomHorizontalFlip()])
    ds = ClipDataset(_rows(), SegmentSampler(4), num_classes=5, root=videos, transform=augment)
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    reseeded.clear()  # the test's own reseeds
    first = ds[0]["frames"]
    assert torch.equal(torch.rand(4), expected)  # the caller's stream went on untouched
    assert reseeded == []
    assert torch.equal(ds[0]["frames"], first)  # and the item is still seeded


def _batches(ds, num_workers, persistent=False, epochs=(0,)):
    loader = DataLoader(
        ds,
        batch_size=2,
        num_workers=num_workers,
        collate_fn=collate_clips,
        persistent_workers=persistent,
    )
    out = []
    for epoch in epochs:
        ds.set_epoch(epoch)
        out.append([b for b in loader])
    return out


def test_workers_give_the_same_batches_as_the_main_process(videos):
    rows = [
        ManifestRow(id=f"v{i}", path="a.mp4" if i % 2 else "b.mp4", labels=(i % 3,))
        for i in range(6)
    ]
    augment = Compose([SquareClip(32, train=True), RandomHorizontalFlip()])
    ds = ClipDataset(
        rows, SegmentSampler(4), num_classes=3, root=videos, transform=augment, train=True, seed=3
    )
    main = _batches(ds, 0, epochs=(0, 1))
    workers = _batches(ds, 2, persistent=True, epochs=(0, 1))
    for epoch_main, epoch_workers in zip(main, workers, strict=True):
        assert len(epoch_main) == len(epoch_workers) == 3
        for a, b in zip(epoch_main, epoch_workers, strict=True):
            assert a["frames"].shape == (2, 4, 3, 32, 32)
            assert torch.equal(a["frames"], b["frames"])
            assert torch.equal(a["frame_indices"], b["frame_indices"])
            assert torch.equal(a["label"], b["label"]) and a["id"] == b["id"]
    # Epochs differ, also in persistent workers (set_epoch reached them).
    assert not all(
        torch.equal(x["frame_indices"], y["frame_indices"]) for x, y in zip(*workers, strict=True)
    )


def test_bad_video_raises_with_its_path(videos):
    rows = [ManifestRow(id="bad", path="empty.mp4", labels=(0,))]
    ds = ClipDataset(rows, SegmentSampler(2), num_classes=1, root=videos)
    with pytest.raises(VideoDecodeError) as info:
        ds[0]
    assert info.value.path.endswith("empty.mp4")
    rows = [ManifestRow(id="long", path="a.mp4", num_frames=40)]  # the file has 20
    with pytest.raises(VideoDecodeError, match="manifest says 40 frames but the file has 20"):
        ClipDataset(rows, SegmentSampler(4), num_classes=1, root=videos)[0]


def test_bad_video_is_skipped_and_dropped_by_collate(videos, caplog):
    rows = [
        ManifestRow(id="ok", path="a.mp4", labels=(0,)),
        ManifestRow(id="bad", path="empty.mp4", labels=(0,)),
        ManifestRow(id="late", path="a.mp4", labels=(0,), start=5.0, end=6.0),
    ]
    ds = ClipDataset(rows, SegmentSampler(2), num_classes=1, root=videos, on_error="skip")
    with caplog.at_level(logging.WARNING, logger="videofocus.data.dataset"):
        assert ds[1] is None and ds[2] is None
    assert "empty.mp4" in caplog.text and "past the last frame" in caplog.text
    batch = collate_clips([ds[0], ds[1], ds[2]])
    assert batch["id"] == ["ok"] and batch["frames"].shape == (1, 2, H, W, 3)
    assert collate_clips([None, None]) is None
    loader = DataLoader(ds, batch_size=3, collate_fn=collate_clips)
    assert [b["id"] for b in loader] == [["ok"]]


def test_segment_past_the_end_raises_naming_the_file(videos):
    rows = [ManifestRow(id="late", path="a.mp4", start=5.0, end=6.0)]
    with pytest.raises(FrameRangeError, match="a.mp4"):
        ClipDataset(rows, SegmentSampler(2), num_classes=1, root=videos)[0]


def test_invalid_dataset_arguments(videos):
    with pytest.raises(ValueError, match="on_error"):
        ClipDataset(_rows(), SegmentSampler(2), num_classes=5, on_error="ignore")
    with pytest.raises(ValueError, match="num_classes"):
        ClipDataset(_rows(), SegmentSampler(2), num_classes=0)
    with pytest.raises(ValueError, match="epoch"):
        ClipDataset(_rows(), SegmentSampler(2), num_classes=5).set_epoch(-1)


def _opened_readers(monkeypatch) -> list[str]:
    """Paths of every VideoReader the dataset opens from now on."""
    import videofocus.data.dataset as dataset_module

    opened = []
    real = dataset_module.VideoReader

    def counting(path, **kwargs):
        opened.append(str(path))
        return real(path, **kwargs)

    monkeypatch.setattr(dataset_module, "VideoReader", counting)
    return opened


def test_frame_cache_gives_the_same_clips_and_decodes_each_frame_once(videos, monkeypatch):
    def dataset(cache_bytes):
        return ClipDataset(
            _rows(), SegmentSampler(4), num_classes=5, root=videos, train=True, seed=3,
            short_side=24, cache_bytes=cache_bytes,
        )  # fmt: skip

    plain, cached = dataset(0), dataset(2**24)
    assert plain.cache is None
    opened = _opened_readers(monkeypatch)
    opened_by_epoch = []
    for epoch in range(40):
        plain.set_epoch(epoch)
        cached.set_epoch(epoch)
        before = len(opened)
        for i in range(len(plain)):
            a, b = plain[i], cached[i]
            assert torch.equal(a["frames"], b["frames"])
            assert a["frame_indices"].tolist() == b["frame_indices"].tolist()
        opened_by_epoch.append(len(opened) - before - len(plain))  # the plain one opens each
    # a clip opens its file only when one of its frames was never decoded: early on; once every
    # frame of both files came by (4 random segments of 5 frames), whole epochs open nothing
    assert opened_by_epoch[0] == len(plain)
    # every open but each file's first (its timeline) follows a miss
    assert sum(opened_by_epoch) == cached.cache.misses + 2 and cached.cache.hits > 0
    assert opened_by_epoch[-10:] == [0] * 10
    frame_bytes = 24 * 32 * 3
    assert len(cached.cache) <= 2 * N and cached.cache.bytes == len(cached.cache) * frame_bytes
    # two rows of the same file share its frames
    assert {key[0] for key in cached.cache._frames} == {
        str(videos / "a.mp4"),
        str(videos / "b.mp4"),
    }


def test_frame_cache_evaluation_clips_open_no_file_after_the_first_pass(videos, monkeypatch):
    ds = ClipDataset(_rows(), SegmentSampler(4), num_classes=5, root=videos, cache_bytes=2**24)
    first = [ds[i]["frames"] for i in range(len(ds))]
    opened = _opened_readers(monkeypatch)
    again = [ds[i]["frames"] for i in range(len(ds))]
    assert opened == [] and all(torch.equal(a, b) for a, b in zip(first, again, strict=True))


def test_frame_cache_stays_within_its_budget_and_evicts_the_oldest(videos):
    frame_bytes = H * W * 3
    ds = ClipDataset(
        _rows(), SegmentSampler(4), num_classes=5, root=videos, cache_bytes=6 * frame_bytes
    )
    ds[0]  # a.mp4's 4 frames
    ds[1]  # b.mp4's 4: a's two oldest go
    assert len(ds.cache) == 6 and ds.cache.bytes == 6 * frame_bytes
    assert _frame_index(ds[1]["frames"]) == [N - 1 - i for i in (2, 7, 12, 17)]
    assert _frame_index(ds[0]["frames"]) == [2, 7, 12, 17]  # decoded again, still right


def test_shared_frame_cache_serves_a_later_dataset_without_opening_a_file(videos, monkeypatch):
    # what `train --stage all` relies on: the next stage's datasets read the frames the first
    # stage decoded, and a keyframe-sampling dataset still gets the keyframes it needs
    import videofocus.data.frame_cache as frame_cache_module

    monkeypatch.setattr(frame_cache_module, "_shared", None)
    assert frame_cache_module.shared_frame_cache(0) is None
    cache = frame_cache_module.shared_frame_cache(2**20)
    assert frame_cache_module.shared_frame_cache(2**24) is cache and cache.max_bytes == 2**24
    assert frame_cache_module.shared_frame_cache(2**10) is cache and cache.max_bytes == 2**24

    def dataset():
        return ClipDataset(
            _rows(), SegmentSampler(4), num_classes=5, root=videos, frame_cache=cache
        )

    first = [dataset()[i]["frames"] for i in range(3)]
    opened = _opened_readers(monkeypatch)
    later = dataset()
    assert later.cache is cache
    assert all(torch.equal(a, later[i]["frames"]) for i, a in enumerate(first))
    assert opened == []
    keyframes = ClipDataset(
        _rows(), SegmentSampler(4), num_classes=5, root=videos, frame_cache=cache,
        sampling="keyframe",
    )  # fmt: skip
    keyframes[0]
    assert opened == [str(videos / "a.mp4")]  # the exact timeline had no keyframes: reopened
    assert cache.timeline(videos / "a.mp4").keyframes is not None


def test_frame_cache_still_checks_the_manifest_count(videos):
    rows = [ManifestRow(id="stale", path="a.mp4", num_frames=10)]
    ds = ClipDataset(rows, UniformSampler(4), num_classes=1, root=videos, cache_bytes=2**24)
    for _ in range(2):
        with pytest.raises(VideoDecodeError, match="manifest says 10 frames"):
            ds[0]


def test_keyframe_sampling_reads_the_nearest_keyframes(tmp_path):
    frames = [np.full((H, W, 3), 10 + STEP * i, dtype=np.uint8) for i in range(N)]
    write_video(tmp_path / "k.mp4", frames, fps=FPS, crf=0, gop=5)  # keyframes 0, 5, 10, 15
    rows = [ManifestRow(id="k", path="k.mp4", labels=(1,))]
    for cache_bytes in (0, 2**20):  # the cached timeline keeps the keyframes too
        ds = ClipDataset(
            rows, SegmentSampler(4), 3, root=tmp_path, sampling="keyframe", cache_bytes=cache_bytes
        )
        for _ in range(2):
            item = ds[0]
            # exact TSN indices 2, 7, 12, 17 -> the nearest keyframes 0, 5, 10, 15
            assert item["frame_indices"].tolist() == [0, 5, 10, 15]
            assert _frame_index(item["frames"]) == [0, 5, 10, 15]
    with pytest.raises(ValueError, match="sampling must be one of"):
        ClipDataset(rows, SegmentSampler(4), 3, root=tmp_path, sampling="nearest")
