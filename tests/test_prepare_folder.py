"""`videofocus prepare folder`: class folders, recursive search, deterministic split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from videofocus.data_prep.folder import folder_samples

from videofocus.cli import main
from videofocus.data.manifest import read_classes, read_manifest
from videofocus.io.writer import write_video


def _clip(path: Path, frames: int = 10) -> Path:
    write_video(path, (np.full((32, 32, 3), 20 * i, np.uint8) for i in range(frames)), fps=25)
    return path


def _tree(root: Path) -> None:
    for name in "abcd":
        _clip(root / "cat" / f"{name}.mp4")
    _clip(root / "dog" / "sub" / "e.mp4")
    (root / "dog" / "notes.txt").write_text("not a video")
    (root / "bad").mkdir()
    (root / "bad" / "broken.mp4").write_bytes(b"\x00" * 100)
    _clip(root / ".cache" / "x.mp4")
    _clip(root / "loose.mp4")


def test_folder_classes_split_and_rejects(tmp_path):
    root = tmp_path / "data"
    _tree(root)
    out = root  # the videos lie inside the output folder: paths are written relative to it
    argv = ["prepare", "folder", "--root", str(root), "--out", str(out), "--val-fraction", "0.5"]
    assert main([*argv, "--seed", "3", "--workers", "2"]) == 0
    assert read_classes(out / "classes.txt") == ["bad", "cat", "dog"]
    rows = read_manifest(out / "manifest.jsonl")
    assert [r.id for r in rows] == ["cat/a", "cat/b", "cat/c", "cat/d", "dog/sub/e"]
    assert [r.labels for r in rows] == [(1,)] * 4 + [(2,)]
    assert sorted(r.split for r in rows[:4]) == ["train", "train", "val", "val"]
    assert rows[4].split == "train"  # half of one video rounds to none
    assert rows[4].path == "dog/sub/e.mp4" and all(r.num_frames == 10 for r in rows)
    (reject,) = [json.loads(x) for x in (out / "rejects.jsonl").read_text().splitlines()]
    assert reject["id"] == "bad/broken" and reject["reason"].startswith("probe failed: ")
    before = (out / "manifest.jsonl").read_bytes()
    assert main([*argv, "--seed", "3", "--no-probe"]) == 0
    unprobed = {r.id: r.split for r in read_manifest(out / "manifest.jsonl")}
    assert unprobed == {"bad/broken": "train", **{r.id: r.split for r in rows}}
    assert main([*argv, "--seed", "3", "--workers", "2"]) == 0
    assert (out / "manifest.jsonl").read_bytes() == before


def test_output_folder_inside_root_is_not_a_class(tmp_path):
    root = tmp_path / "data"
    _clip(root / "cat" / "a.mp4")
    out = root / "prepared"
    argv = ["prepare", "folder", "--root", str(root), "--out", str(out), "--no-probe"]
    assert main(argv) == 0
    _clip(out / "videos" / "b.mp4")  # e.g. a later re-encode into the same folder
    assert main(argv) == 0
    assert read_classes(out / "classes.txt") == ["cat"]
    assert read_manifest(out / "manifest.jsonl")[0].path == str((root / "cat" / "a.mp4").resolve())


def test_split_depends_only_on_seed_and_class(tmp_path):
    root = tmp_path / "data"
    for name in "abcdefghij":
        (root / "cat" / f"{name}.mp4").parent.mkdir(parents=True, exist_ok=True)
        (root / "cat" / f"{name}.mp4").write_bytes(b"")
    splits = {s: [x.split for x in folder_samples(root, 0.3, s)[0]] for s in (0, 1)}
    assert splits[0].count("val") == 3 and splits[1].count("val") == 3
    assert splits[0] != splits[1]
    assert [x.split for x in folder_samples(root, 0.3, 0)[0]] == splits[0]
