"""Labeling inputs: manifests, folders, text lists; ids, paths, order and errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from videofocus.data.manifest import ManifestError
from videofocus.labeling.inputs import VIDEO_EXTENSIONS, LabelItem, read_inputs


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_manifest_keeps_order_segments_labels_and_resolves_paths(tmp_path):
    folder = tmp_path / "ds"
    folder.mkdir()
    rows = [
        {"id": "z", "path": "videos/z.mp4", "labels": [2]},
        {"id": "a#0", "path": "/abs/a.mkv", "labels": [0, 1], "start": 1.5, "end": 4.0},
    ]
    manifest = folder / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")

    items = read_inputs(manifest, num_classes=3)

    assert items == [
        LabelItem(id="z", path=folder / "videos" / "z.mp4", labels=(2,)),
        LabelItem(id="a#0", path=Path("/abs/a.mkv"), start=1.5, end=4.0, labels=(0, 1)),
    ]
    assert all(item.path.is_absolute() for item in items)
    with pytest.raises(ManifestError, match=r"manifest.jsonl:1: label out of range"):
        read_inputs(manifest, num_classes=2)


def test_relative_manifest_path_gives_absolute_item_paths(tmp_path, monkeypatch):
    (tmp_path / "m.jsonl").write_text('{"id": "a", "path": "a.mp4"}\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    (item,) = read_inputs("m.jsonl")
    assert item.path == tmp_path / "a.mp4"


def test_manifest_duplicate_id_names_both_lines(tmp_path):
    manifest = tmp_path / "m.jsonl"
    lines = ['{"id": "a", "path": "a.mp4"}', '{"id": "b", "path": "b.mp4"}']
    lines.append('{"id": "a", "path": "c.mp4"}')
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"m.jsonl:3: duplicate id 'a' \(first on line 1\)"):
        read_inputs(manifest)


def test_directory_scan_is_recursive_sorted_and_case_insensitive(tmp_path):
    root = tmp_path / "videos"
    for rel in ["b/2.MP4", "b/1.webm", "a.mkv", "c/d/e.ts", "notes.txt", "b/cover.jpg"]:
        _touch(root / rel)
    (root / "empty_dir").mkdir()

    items = read_inputs(root)

    assert [i.id for i in items] == ["a.mkv", "b/1.webm", "b/2.MP4", "c/d/e.ts"]
    assert [i.path for i in items] == [root / i.id for i in items]
    assert all(i.labels == () and i.start is None for i in items)


def test_directory_scan_follows_symlinks_once_and_survives_cycles(tmp_path):
    outside = tmp_path / "outside"
    _touch(outside / "x.mp4")
    root = tmp_path / "videos"
    _touch(root / "real" / "r.avi")
    (root / "linked_file.mov").symlink_to(outside / "x.mp4")
    (root / "linked_dir").symlink_to(outside, target_is_directory=True)
    (root / "real" / "loop").symlink_to(root, target_is_directory=True)  # a cycle

    ids = [i.id for i in read_inputs(root)]

    assert ids == ["linked_dir/x.mp4", "linked_file.mov", "real/r.avi"]


def test_text_list_skips_blanks_and_comments_and_resolves_against_its_folder(tmp_path):
    lists = tmp_path / "lists"
    lists.mkdir()
    listing = lists / "todo.txt"
    listing.write_text(
        "# videos to label\n\n  clips/a.mp4  \n/data/b.mkv\r\n   # indented comment\nmissing.avi\n",
        encoding="utf-8",
    )

    items = read_inputs(listing)

    assert [(i.id, i.path) for i in items] == [
        ("clips/a.mp4", lists / "clips" / "a.mp4"),
        ("/data/b.mkv", Path("/data/b.mkv")),
        ("missing.avi", lists / "missing.avi"),  # not there: the job reports it, not the reader
    ]


def test_text_list_repeats_are_labelled_once_and_clashes_name_both_lines(tmp_path):
    listing = tmp_path / "l.txt"
    listing.write_text("a.mp4\nb.mp4\n\na.mp4\n", encoding="utf-8")
    assert [i.id for i in read_inputs(listing)] == ["a.mp4", "b.mp4"]
    listing.write_text("a.mp4 1\nb.mp4 0\na.mp4 2\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"l.txt:3: duplicate id 'a.mp4' \(first on line 1\)"):
        read_inputs(listing)


def test_mmaction2_video_list_keeps_labels_and_repeats_once(tmp_path):
    # mmaction2's tests/data/video_test_list.txt repeats its one line
    (tmp_path / "test.mp4").write_bytes(b"")
    listing = tmp_path / "video_test_list.txt"
    listing.write_text("test.mp4 0\ntest.mp4 0\nclips/my clip.mkv 3 5\n", encoding="utf-8")
    items = read_inputs(listing)
    assert [(i.id, i.path, i.labels) for i in items] == [
        ("test.mp4", tmp_path / "test.mp4", (0,)),
        ("clips/my clip.mkv", tmp_path / "clips" / "my clip.mkv", (3, 5)),
    ]


@pytest.mark.parametrize("line", ["img_dir 5 127", "frames/v_01 120 3"])
def test_rawframe_list_is_refused_with_what_it_is(tmp_path, line):
    (tmp_path / "img_dir").mkdir()
    listing = tmp_path / "rawframe_list.txt"
    listing.write_text(f"{line}\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"rawframe_list.txt:1: .*rawframe list line"):
        read_inputs(listing)


def test_binary_file_is_not_taken_for_a_list(tmp_path):
    junk = tmp_path / "weights.bin"
    junk.write_bytes(b"\xff\xfe\x00\x80" * 10)
    with pytest.raises(ManifestError, match="weights.bin: not a UTF-8 text list"):
        read_inputs(junk)


def test_single_video_file_is_one_item(tmp_path):
    video = _touch(tmp_path / "clip.MKV")
    assert read_inputs(video) == [LabelItem(id="clip.MKV", path=video)]


def test_missing_input_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        read_inputs(tmp_path / "nope.jsonl")


@pytest.mark.parametrize("kind", ["dir", "list", "manifest"])
def test_empty_inputs_give_no_items(tmp_path, kind):
    source = {"dir": tmp_path / "d", "list": tmp_path / "l.txt", "manifest": tmp_path / "m.jsonl"}
    if kind == "dir":
        source[kind].mkdir()
    else:
        source[kind].write_text("\n# nothing\n" if kind == "list" else "", encoding="utf-8")
    assert read_inputs(source[kind]) == []


def test_extension_set_is_lower_case_with_dots():
    assert {".mp4", ".mkv", ".webm", ".mpeg", ".3gp", ".ts"} <= VIDEO_EXTENSIONS
    assert all(e.startswith(".") and e == e.lower() for e in VIDEO_EXTENSIONS)
    assert len(VIDEO_EXTENSIONS) == 12
