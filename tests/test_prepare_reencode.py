"""`videofocus prepare reencode`: short side, keyframe interval, rotation, rows kept, rejects."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
from videofocus.data_prep.reencode import output_names, scaled_size

from videofocus.cli import main
from videofocus.data.manifest import ManifestRow, read_classes, read_manifest, write_manifest
from videofocus.io.writer import write_video


def _frames(n: int, h: int, w: int):
    for i in range(n):
        frame = np.full((h, w, 3), 10 * i, np.uint8)
        frame[: h // 4, : w // 4] = 255  # a white corner shows which way is up
        yield frame


def _keyframes(path: Path) -> tuple[list[int], int, int]:
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        flags = [p.is_keyframe for p in c.demux(stream) if p.size]
        return [i for i, k in enumerate(flags) if k], stream.width, stream.height


def test_scaled_size_keeps_aspect_with_even_sides():
    assert scaled_size(640, 480, 256) == (342, 256)
    assert scaled_size(30, 40, 16) == (16, 22)
    assert scaled_size(33, 21, None) == (32, 20)


def test_output_names_keep_layout_and_avoid_collisions():
    names = output_names([Path("/d/a/x.avi"), Path("/d/b/y.mkv"), Path("/d/b/y.webm")])
    assert names == {
        Path("/d/a/x.avi"): "a/x.mp4",
        Path("/d/b/y.mkv"): "b/y.mkv.mp4",
        Path("/d/b/y.webm"): "b/y.webm.mp4",
    }


@pytest.fixture()
def source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    write_video(src / "videos" / "a.mp4", _frames(20, 30, 40), fps=10, gop=300)
    write_video(src / "videos" / "rot.mp4", _frames(12, 20, 40), fps=12, rotation=90)
    write_video(src / "videos" / "old.avi", _frames(8, 24, 32), fps=8, codec="mpeg4")
    (src / "videos" / "broken.mp4").write_bytes(b"\x00" * 64)
    rows = [
        ManifestRow("a#0", "videos/a.mp4", (1,), "train", start=0.5, end=1.5),
        ManifestRow("a#1", "videos/a.mp4", (0,), "train", start=1.0, end=9.0),
        ManifestRow("rot", "videos/rot.mp4", (0, 1), "val", meta={"note": "phone"}),
        ManifestRow("old", str((src / "videos" / "old.avi").resolve()), (), "test"),
        ManifestRow("broken", "videos/broken.mp4", (1,), "train"),
        ManifestRow("gone", "videos/gone.mp4", (1,), "train"),
    ]
    write_manifest(src / "manifest.jsonl", rows)
    (src / "classes.txt").write_text("x\ny\n")
    return src / "manifest.jsonl"


def test_reencode_manifest(source, tmp_path):
    out = tmp_path / "out"
    argv = ["prepare", "reencode", "--manifest", str(source), "--out", str(out)]
    argv += ["--short-side", "16", "--gop", "4", "--workers", "2"]
    assert main(argv) == 0
    assert read_classes(out / "classes.txt") == ["x", "y"]
    rows = {r.id: r for r in read_manifest(out / "manifest.jsonl")}
    assert list(rows) == ["a#0", "a#1", "rot", "old"]
    assert {r.path for r in rows.values()} == {"videos/a.mp4", "videos/rot.mp4", "videos/old.mp4"}
    assert [(rows[k].num_frames, rows[k].fps) for k in ("a#0", "rot", "old")] == [
        (20, pytest.approx(10.0)),
        (12, pytest.approx(12.0)),
        (8, pytest.approx(8.0)),
    ]
    assert (rows["a#0"].labels, rows["a#0"].split, rows["a#0"].start, rows["a#0"].end) == (
        (1,),
        "train",
        0.5,
        1.5,
    )
    assert rows["a#1"].end == pytest.approx(2.0)  # clamped to the measured 20 frames at 10 fps
    assert rows["rot"].meta == {
        "note": "phone",
        "source": str(source.parent / "videos" / "rot.mp4"),
    }

    keys, w, h = _keyframes(out / "videos" / "a.mp4")
    assert (keys, w, h) == ([0, 4, 8, 12, 16], 22, 16)
    # The 90-degree display rotation is applied to the pixels: 20x40 stored -> 40x20 upright
    # -> 16x32; the white top-left corner turns to the bottom-left.
    with av.open(str(out / "videos" / "rot.mp4")) as c:
        frame = next(c.decode(video=0))
        assert (frame.width, frame.height, frame.rotation) == (16, 32, 0)
        image = frame.to_ndarray(format="rgb24")
    assert image[-3:, :2].min() > 200 and image[:3, :2].max() < 60

    rejects = {
        r["id"]: r for r in map(json.loads, (out / "rejects.jsonl").read_text().splitlines())
    }
    assert set(rejects) == {"broken", "gone"}
    assert rejects["gone"]["reason"] == "re-encode failed: missing file"
    assert rejects["broken"]["reason"].startswith("re-encode failed: ")
    assert not list((out / "videos").glob(".*"))  # no partial files left behind

    # A second run keeps the finished files (resuming an interrupted run).
    mtime = (out / "videos" / "a.mp4").stat().st_mtime_ns
    assert main(argv) == 0
    assert (out / "videos" / "a.mp4").stat().st_mtime_ns == mtime
    assert len(read_manifest(out / "manifest.jsonl")) == 4
