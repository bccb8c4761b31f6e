"""`videofocus prepare synthetic`: files, determinism, and that the task really needs glimpses."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from videofocus.data.manifest import read_classes, read_manifest
from videofocus.data.synthetic import (
    DISTRACTOR_COLOURS,
    TARGET_COLOUR,
    SyntheticConfig,
    class_tiles,
    dataset_matches,
    generate,
    read_targets,
    render_video,
)

CONFIG = SyntheticConfig(num_videos=40, seed=7)


def _decode(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def _red(frame: np.ndarray) -> np.ndarray:
    """Pixels of the target's marker colour: strongly red, little green or blue."""
    r, g, b = (frame[..., c].astype(np.int16) for c in range(3))
    return (r > 150) & (g < 90) & (b < 90)


def _templates(config: SyntheticConfig) -> np.ndarray:
    """Unit-norm, zero-mean class templates of the target's interior: ``[K, 16 shifts, pixels]``."""
    inner = config.object_size - 2 * config.border
    tiles = class_tiles(config.num_classes).astype(np.float32)
    out = []
    for tile in tiles:
        for shift in itertools.product(range(4), repeat=2):
            t = np.tile(np.roll(tile, shift, axis=(0, 1)), (inner // 4 + 1,) * 2)[:inner, :inner]
            out.append((t - t.mean()).ravel())
    out = np.stack(out).reshape(len(tiles), 16, -1)
    return out / np.linalg.norm(out, axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    out = tmp_path_factory.mktemp("synthetic")
    summary = generate(out, CONFIG, workers=1, progress=False)
    assert not summary.reused and summary.num_videos == CONFIG.num_videos
    frames = {
        row.id: _decode(row.resolved_path(out)) for row in read_manifest(out / "manifest.jsonl")
    }
    return out, frames


def test_class_tiles_are_balanced_and_far_apart_under_shifts():
    tiles = class_tiles(10)
    assert tiles.shape == (10, 4, 4) and set(np.unique(tiles)) == {0, 1}
    assert (tiles.sum(axis=1) == 2).all() and (tiles.sum(axis=2) == 2).all()
    np.testing.assert_array_equal(class_tiles(4), tiles[:4])
    for (i, a), (j, b) in itertools.combinations(enumerate(tiles), 2):
        dist = min(
            int((a != np.roll(b, s, axis=(0, 1))).sum())
            for s in itertools.product(range(4), repeat=2)
        )
        assert dist >= (8 if j < 5 else 4), (i, j, dist)
    with pytest.raises(ValueError, match="num_classes"):
        class_tiles(11)


def test_texture_is_one_grey_at_4x_downscale_for_every_class_and_shift():
    for tile, shift in itertools.product(class_tiles(10), itertools.product(range(4), repeat=2)):
        big = np.tile(np.roll(tile, shift, axis=(0, 1)), (8, 8)).astype(np.float32) * 255
        x = torch.from_numpy(big)[None, None]
        area = F.avg_pool2d(x, 4)
        aa = F.interpolate(x, scale_factor=0.25, mode="bilinear", antialias=True)[..., 2:-2, 2:-2]
        for small in (area, aa):
            torch.testing.assert_close(small, torch.full_like(small, 127.5))


def test_files_are_valid_and_splits_balanced(dataset):
    out, frames = dataset
    rows = read_manifest(out / "manifest.jsonl", num_classes=CONFIG.num_classes)
    assert read_classes(out / "classes.txt") == [f"texture_{i:02d}" for i in range(10)]
    assert len(rows) == CONFIG.num_videos
    tracks = read_targets(out)
    assert [r.id for r in rows] == list(tracks)
    for row in rows:
        assert row.path == f"videos/{row.id}.mp4" and len(row.labels) == 1
        assert (
            row.num_frames == CONFIG.num_frames == len(frames[row.id]) == len(tracks[row.id].boxes)
        )
        assert row.fps == CONFIG.fps
        assert frames[row.id].shape[1:] == (CONFIG.height, CONFIG.width, 3)
    for split, size in (("train", 30), ("val", 10)):
        labels = [r.labels[0] for r in rows if r.split == split]
        counts = np.bincount(labels, minlength=CONFIG.num_classes)
        assert len(labels) == size and counts.max() - counts.min() <= 1, (split, counts)
    record = json.loads((out / "synthetic.json").read_text())
    assert record.pop("version") >= 1 and record.pop("generator") == "videofocus.data.synthetic"
    assert SyntheticConfig.from_json(record) == CONFIG


def test_same_seed_same_data_other_seed_other_data(tmp_path):
    config = SyntheticConfig(num_videos=4, num_frames=6, seed=3)
    a = render_video(config, 2)
    b = render_video(config, 2)
    np.testing.assert_array_equal(a.frames, b.frames)
    assert (a.label, a.boxes) == (b.label, b.boxes)
    other = render_video(SyntheticConfig(num_videos=4, num_frames=6, seed=4), 2)
    assert not np.array_equal(a.frames, other.frames)

    generate(tmp_path / "one", config, workers=1, progress=False)
    generate(tmp_path / "two", config, workers=2, progress=False)
    for name in ("manifest.jsonl", "targets.jsonl", "classes.txt", "synthetic.json"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    for i in range(config.num_videos):
        video = f"videos/{config.video_id(i)}.mp4"
        np.testing.assert_array_equal(
            _decode(tmp_path / "one" / video), _decode(tmp_path / "two" / video)
        )


def test_class_is_readable_at_full_resolution_after_h264(dataset):
    out, frames = dataset
    templates = _templates(CONFIG)
    border, inner = CONFIG.border, CONFIG.object_size - 2 * CONFIG.border
    tracks = read_targets(out)
    correct = total = 0
    for row in read_manifest(out / "manifest.jsonl"):
        for frame, box in zip(frames[row.id], tracks[row.id].boxes, strict=True):
            if box is None:
                continue
            x, y = box[0] + border, box[1] + border
            grey = frame[y : y + inner, x : x + inner].astype(np.float32).mean(axis=-1)
            grey = (grey - grey.mean()).ravel()
            scores = (templates @ grey).max(axis=1)  # best shift per class
            correct += int(scores.argmax() == row.labels[0])
            total += 1
    assert total > 0 and correct / total >= 0.95


def test_class_is_invisible_at_4x_downscale_after_h264(dataset):
    out, frames = dataset
    border, inner = CONFIG.border, CONFIG.object_size - 2 * CONFIG.border
    tracks = read_targets(out)
    per_class: dict[int, list[float]] = {}
    for row in read_manifest(out / "manifest.jsonl"):
        video = torch.from_numpy(frames[row.id]).permute(0, 3, 1, 2).float()
        small = F.avg_pool2d(video, 4).mean(dim=1)  # [T, H/4, W/4] grey glance
        for t, box in enumerate(tracks[row.id].boxes):
            if box is None:
                continue
            # glance pixels whose 4x4 footprint lies wholly on the texture
            x0, y0 = -(-(box[0] + border) // 4), -(-(box[1] + border) // 4)
            x1, y1 = (box[0] + border + inner) // 4, (box[1] + border + inner) // 4
            values = small[t, y0:y1, x0:x1]
            assert values.numel() >= 9
            assert (values - 127.5).abs().max() < 12, (row.id, t, values)  # codec ringing only
            per_class.setdefault(row.labels[0], []).append(values.mean().item())
    means = [float(np.mean(v)) for v in per_class.values()]
    assert len(means) == CONFIG.num_classes and max(means) - min(means) < 1.5, means


def test_boxes_match_the_red_marker_and_hidden_frames_have_none(dataset):
    out, frames = dataset
    tracks = read_targets(out)
    for vid, track in tracks.items():
        hidden = [box is None for box in track.boxes]
        assert 2 * sum(hidden) <= len(hidden)
        assert sum(hidden) == round(CONFIG.hidden_ratio * CONFIG.num_frames)
        starts = zip(hidden, [False, *hidden[:-1]], strict=True)
        runs = sum(1 for h, prev in starts if h and not prev)
        assert 1 <= runs <= 2, (vid, hidden)
        for t, (frame, box) in enumerate(zip(frames[vid], track.boxes, strict=True)):
            red = _red(frame)
            if box is None:
                assert not red.any(), (vid, t)
                continue
            x0, y0, x1, y1 = box
            assert 0 <= x0 < x1 <= track.width and 0 <= y0 < y1 <= track.height
            ys, xs = np.nonzero(red)
            # 4:2:0 chroma blurs colour edges by a pixel or two
            found = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
            assert max(abs(a - b) for a, b in zip(found, box, strict=True)) <= 2, (
                vid,
                t,
                found,
                box,
            )


def test_distractors_have_other_colours_and_other_classes():
    config = SyntheticConfig(num_videos=10, num_distractors=4, hidden_ratio=0.5)
    for index in range(config.num_videos):
        video = render_video(config, index)
        colours_seen = set()
        for frame, box in zip(video.frames, video.boxes, strict=True):
            target = np.all(frame == TARGET_COLOUR, axis=-1)
            if box is None:
                assert not target.any()
            else:
                inside = np.zeros_like(target)
                inside[box[1] : box[3], box[0] : box[2]] = True
                assert target[inside].any() and not target[~inside].any()
            colours_seen |= {c for c in DISTRACTOR_COLOURS if np.all(frame == c, axis=-1).any()}
            assert not _red(np.where(target[..., None], 0, frame)).any()
        # four distractors, four colours: each one is drawn, none of them red
        assert colours_seen == set(DISTRACTOR_COLOURS), index


def test_default_rendering_is_unchanged_by_the_memory_options():
    # the aiming benchmark's videos hash as they did before cue_ratio and background existed
    import hashlib

    digest = hashlib.sha256()
    for config in (SyntheticConfig(), SyntheticConfig(num_distractors=0, hidden_ratio=0.5, seed=3)):
        for index in (0, 1, 7):
            video = render_video(config, index)
            digest.update(video.frames.tobytes())
            digest.update(repr(video.boxes).encode())
    assert digest.hexdigest() == (
        "08c59f705b79059c5fdb6054ebb3d5adf8d56942b4f57a48cbaf68338457a2a4"
    )


def _target_frame_pixels(config: SyntheticConfig, frame: np.ndarray, box: list[int]) -> np.ndarray:
    """The marker-frame pixels of the target at ``box`` (its top border rows)."""
    x0, y0, x1, _ = box
    return frame[y0 : y0 + config.border, x0:x1].reshape(-1, 3)


def test_memory_variant_shows_the_cue_in_a_start_run_and_one_blink_only():
    config = SyntheticConfig(num_videos=12, cue_ratio=0.375, hidden_ratio=0.0)
    plain = replace(config, cue_ratio=1.0)
    for index in range(config.num_videos):
        video, same = render_video(config, index), render_video(plain, index)
        # same motion and texture as without the option: only the marker colour changes
        assert video.boxes == same.boxes
        cued = []
        for t, (frame, box) in enumerate(zip(video.frames, video.boxes, strict=True)):
            marker = _target_frame_pixels(config, frame, box)
            red = bool(np.all(marker == TARGET_COLOUR, axis=-1).all())
            cued.append(red)
            if not red:  # it looks like a distractor: one of their colours, nothing red anywhere
                assert {tuple(c) for c in marker} <= set(DISTRACTOR_COLOURS), (index, t)
                assert not np.all(frame == TARGET_COLOUR, axis=-1).any(), (index, t)
            x0, y0, x1, y1 = box
            b = config.border
            np.testing.assert_array_equal(
                frame[y0 + b : y1 - b, x0 + b : x1 - b],
                same.frames[t, y0 + b : y1 - b, x0 + b : x1 - b],
            )
        assert sum(cued) == 6 and cued[:3] == [True] * 3 and not cued[3], (index, cued)
        starts = sum(
            1 for now, prev in zip(cued, [False, *cued[:-1]], strict=True) if now and not prev
        )
        assert starts == 2, (index, cued)


def test_video_background_moves_and_is_never_strongly_red(real_clips):
    config = SyntheticConfig(
        num_videos=4, background="video", cue_ratio=0.5, num_distractors=0, hidden_ratio=0.0
    )
    for index in range(config.num_videos):
        video = render_video(config, index)
        outside = np.ones(video.frames.shape[:3], dtype=bool)
        for t, box in enumerate(video.boxes):
            x0, y0, x1, y1 = box
            outside[t, y0:y1, x0:x1] = False
        background = video.frames[outside]
        assert not _red(background[None]).any()
        # desaturated: channels stay within 40 levels of each other
        assert int(np.ptp(background.astype(np.int16), axis=-1).max()) <= 40
        # real video: consecutive frames differ, and not all pixels are the same colour
        assert np.abs(np.diff(video.frames.astype(np.int16), axis=0)).mean() > 0.5
        assert background.std() > 5
    assert np.array_equal(render_video(config, 2).frames, render_video(config, 2).frames)


def test_generate_reuses_complete_data_and_removes_stale_videos(tmp_path):
    config = SyntheticConfig(num_videos=5, num_frames=4)
    assert not generate(tmp_path, config, progress=False).reused
    assert generate(tmp_path, config, progress=False).reused
    smaller = SyntheticConfig(num_videos=3, num_frames=4)
    summary = generate(tmp_path, smaller, progress=False)
    assert not summary.reused and (summary.num_train, summary.num_val) == (2, 1)
    assert sorted(p.name for p in (tmp_path / "videos").iterdir()) == [
        "s000000.mp4",
        "s000001.mp4",
        "s000002.mp4",
    ]
    assert len(read_targets(tmp_path / "targets.jsonl")) == 3


def test_held_out_test_split_is_last_and_class_balanced(tmp_path):
    config = SyntheticConfig(num_videos=40, num_frames=2, val_fraction=0.25, test_fraction=0.5)
    splits = [config.split(i) for i in range(40)]
    assert splits == ["train"] * 10 + ["val"] * 10 + ["test"] * 20
    for split in ("train", "val", "test"):  # labels cycle through the classes in every split
        labels = [config.label(i) for i in range(40) if splits[i] == split]
        assert sorted(set(labels)) == list(range(10)) and len(labels) % 10 == 0
    summary = generate(tmp_path, replace(config, num_videos=4, test_fraction=0.25), progress=False)
    assert (summary.num_train, summary.num_val, summary.num_test) == (2, 1, 1)
    rows = read_manifest(summary.manifest)
    assert [r.split for r in rows] == ["train", "train", "val", "test"]
    with pytest.raises(ValueError, match="test_fraction"):
        SyntheticConfig(val_fraction=0.5, test_fraction=0.5)


def test_a_record_written_before_the_test_split_still_matches(tmp_path):
    config = SyntheticConfig(num_videos=3, num_frames=2)
    generate(tmp_path, config, progress=False)
    record = json.loads((tmp_path / "synthetic.json").read_text())
    del record["test_fraction"]  # as generated before the field existed
    (tmp_path / "synthetic.json").write_text(json.dumps(record))
    assert dataset_matches(tmp_path, config)
    assert not dataset_matches(tmp_path, replace(config, test_fraction=0.3))


def test_non_square_frames_and_short_videos():
    config = SyntheticConfig(num_videos=30, width=96, height=64, num_frames=5, hidden_ratio=0.5)
    for index in range(config.num_videos):
        video = render_video(config, index)
        assert video.frames.shape == (5, 64, 96, 3) and video.frames.dtype == np.uint8
        visible = [b for b in video.boxes if b is not None]
        assert len(visible) == 3
        assert all(b[2] <= 96 and b[3] <= 64 and b[0] >= 0 and b[1] >= 0 for b in visible)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("width", 127),
        ("height", 40),
        ("hidden_ratio", 0.6),
        ("num_classes", 11),
        ("crf", 60),
        ("cue_ratio", 0.0),
        ("background", "noise"),
    ],
)
def test_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        SyntheticConfig(**{field: value})


def test_read_targets_names_the_bad_line(tmp_path):
    path = tmp_path / "targets.jsonl"
    path.write_text('{"id": "a", "width": 8, "height": 8, "boxes": [null]}\n{"id": "b"}\n')
    with pytest.raises(ValueError, match=r"targets.jsonl:2"):
        read_targets(path)


def test_cli_writes_the_dataset(tmp_path):
    out = tmp_path / "syn"
    argv = ["prepare", "synthetic", str(out), "--num-videos", "8", "--frames", "6"]
    argv += ["--frame-size", "96x64", "--object-size", "20", "--classes", "4", "--workers", "2"]
    proc = subprocess.run(
        [sys.executable, "-m", "videofocus.cli", *argv], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "8 videos (6 train, 2 val, 0 test)" in proc.stdout
    assert len(read_manifest(out / "manifest.jsonl", num_classes=4)) == 8
    assert len(read_classes(out / "classes.txt")) == 4
    tracks = read_targets(out)
    assert {(t.width, t.height, len(t.boxes)) for t in tracks.values()} == {(96, 64, 6)}
    assert _decode(out / "videos" / "s000007.mp4").shape == (6, 64, 96, 3)
    bad = subprocess.run(
        [sys.executable, "-m", "videofocus.cli", *argv[:3], "--frame-size", "95"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "width" in bad.stderr
