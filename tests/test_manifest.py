"""The manifest format: round trip, validation errors naming file and line, class files."""

from __future__ import annotations

import json

import pytest

from videofocus.data.manifest import (
    ManifestError,
    ManifestRow,
    iter_manifest,
    read_classes,
    read_manifest,
    write_classes,
    write_manifest,
)


def _write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_round_trip_keeps_every_field(tmp_path):
    rows = [
        ManifestRow(
            id="a", path="videos/a.mp4", labels=(3,), split="train", num_frames=40, fps=25.0
        ),
        ManifestRow(
            id="b#0",
            path="/abs/b.mkv",
            labels=(1, 7),
            split="val",
            start=1.5,
            end=9.0,
            meta={"source": "activitynet"},
        ),
        ManifestRow(id="c", path="c.webm"),
    ]
    out = tmp_path / "m.jsonl"
    assert write_manifest(out, rows) == 3
    assert read_manifest(out) == rows
    # unset optional fields are left out of the file rather than written as null
    first = json.loads(out.read_text().splitlines()[0])
    assert set(first) == {"id", "path", "labels", "split", "num_frames", "fps"}


def test_relative_paths_resolve_against_manifest_folder(tmp_path):
    row = ManifestRow(id="a", path="videos/a.mp4")
    assert row.resolved_path(tmp_path) == tmp_path / "videos/a.mp4"
    assert ManifestRow(id="b", path="/x/b.mp4").resolved_path(tmp_path).as_posix() == "/x/b.mp4"


def test_split_filter_and_label_range(tmp_path):
    out = tmp_path / "m.jsonl"
    write_manifest(
        out,
        [
            {"id": "a", "path": "a.mp4", "labels": [0], "split": "train"},
            {"id": "b", "path": "b.mp4", "labels": [4], "split": "val"},
        ],
    )
    assert [r.id for r in read_manifest(out, split="val")] == ["b"]
    with pytest.raises(ManifestError, match=r"m\.jsonl:2: label out of range for 4 classes"):
        read_manifest(out, num_classes=4)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            '{"id": "x", "path": "x.mp4", "labels": [1], "colour": "red"}',
            r"unknown key\(s\) \['colour'\]",
        ),
        ('{"id": "x", "labels": [1]}', "'path' must be a non-empty string"),
        ('{"id": "x", "path": "x.mp4", "labels": 1}', "'labels' must be a list"),
        ('{"id": "x", "path": "x.mp4", "labels": [-1]}', "'labels' must be a list"),
        ('{"id": "x", "path": "x.mp4", "start": 5, "end": 2}', r"'end' \(2.0\) must be greater"),
        ('{"id": "x", "path": "x.mp4", "num_frames": 2.5}', "'num_frames' must be a non-negative"),
        ('{"id": "x", "path": "x.mp4", "fps": 0}', "'fps' must be positive"),
        ('{"id": "x", "path": "x.mp4"', "invalid JSON"),
        ('["x.mp4"]', "expected a JSON object"),
        ('{"id": "a", "path": "dup.mp4"}', "duplicate id 'a' \\(first on line 1\\)"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path, line, message):
    path = _write_lines(
        tmp_path / "bad.jsonl", ['{"id": "a", "path": "a.mp4", "labels": [0]}', "", line]
    )
    with pytest.raises(ManifestError, match=rf"bad\.jsonl:3: {message}") as info:
        list(iter_manifest(path))
    assert info.value.line == 3 and info.value.path.endswith("bad.jsonl")


def test_missing_manifest_is_a_manifest_error(tmp_path):
    with pytest.raises(ManifestError, match="manifest file not found"):
        read_manifest(tmp_path / "nope.jsonl")


def test_classes_round_trip_and_errors(tmp_path):
    path = tmp_path / "classes.txt"
    write_classes(path, ["Playing guitar", "Surfing", "cooking"])
    assert read_classes(path) == ["Playing guitar", "Surfing", "cooking"]
    _write_lines(path, ["a", "b", "a"])
    with pytest.raises(
        ManifestError, match=r"classes\.txt:3: duplicate class 'a' \(first on line 1\)"
    ):
        read_classes(path)
    _write_lines(path, ["a", "  ", "b"])
    with pytest.raises(ManifestError, match=r"classes\.txt:2: empty class name"):
        read_classes(path)
    with pytest.raises(ValueError, match="unique"):
        write_classes(path, ["a", "a"])


def test_write_is_atomic_leaves_no_temp_files(tmp_path):
    out = tmp_path / "sub" / "m.jsonl"
    write_manifest(out, [ManifestRow(id="a", path="a.mp4")])
    with pytest.raises(ManifestError):
        write_manifest(out, [{"id": "a", "path": "a.mp4", "bogus": 1}])
    # the failed write neither replaced the old file nor left a temp file behind
    assert [p.name for p in out.parent.iterdir()] == ["m.jsonl"]
    assert read_manifest(out) == [ManifestRow(id="a", path="a.mp4")]


def test_non_utf8_lines_name_file_and_line(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_bytes(b'{"id": "a", "path": "a.mp4"}\n{"id": "b\xff", "path": "b.mp4"}\n')
    with pytest.raises(
        ManifestError, match=r"m\.jsonl:2: not UTF-8 text \(byte 0xff at column 10\)"
    ):
        read_manifest(path)
    classes = tmp_path / "classes.txt"
    classes.write_bytes(b"cat\ndo\xe9g\n")
    with pytest.raises(ManifestError, match=r"classes\.txt:2: not UTF-8"):
        read_classes(classes)
