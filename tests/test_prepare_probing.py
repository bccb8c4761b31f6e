"""Shared converter machinery: error messages, split names, finding files, rows and rejects."""

from __future__ import annotations

import pickle

import pytest
from videofocus.data_prep.probing import (
    AnnotationError,
    PrepareError,
    Sample,
    VideoIndex,
    build_rows,
    manifest_path,
    normalise_split,
)


def test_annotation_error_names_line_or_key():
    assert str(AnnotationError("a.csv", 7, "bad")) == "a.csv:7: bad"
    assert (
        str(AnnotationError("a.json", "database.x.subset", "bad"))
        == "a.json at database.x.subset: bad"
    )
    err = pickle.loads(pickle.dumps(AnnotationError("a.csv", 7, "bad")))
    assert (err.path, err.where, err.message) == ("a.csv", 7, "bad")
    assert isinstance(err, ValueError)


@pytest.mark.parametrize(
    ("name", "split"), [("training", "train"), ("validate", "val"), ("Test", "test")]
)
def test_split_names(name, split):
    assert normalise_split(name, "f", 1) == split


def test_video_index_prefers_listed_stems_then_extension_order(tmp_path):
    for rel in ("a/x.webm", "x.mp4", "b/c/y.MKV", "z.txt", "v_q.avi"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    index = VideoIndex(tmp_path)
    assert len(index) == 3
    assert index.find(["x"]) == tmp_path / "x.mp4"
    assert index.find(["nope", "y"]) == tmp_path / "b/c/y.MKV"
    assert index.find(["v_q", "q"]) == tmp_path / "v_q.avi"
    assert index.find(["z"]) is None
    assert index.find_relative("a/x") == tmp_path / "a/x.webm"
    assert index.find_relative("elsewhere/y.mkv") == tmp_path / "b/c/y.MKV"
    with pytest.raises(PrepareError, match="videos folder not found"):
        VideoIndex(tmp_path / "missing")


def test_manifest_path_is_relative_only_inside_the_output(tmp_path):
    assert manifest_path(tmp_path / "out" / "v" / "a.mp4", tmp_path / "out") == "v/a.mp4"
    assert manifest_path(tmp_path / "a.mp4", tmp_path / "out") == str(
        (tmp_path / "a.mp4").resolve()
    )


def test_build_rows_without_probing(tmp_path):
    samples = [
        Sample("a", tmp_path / "a.mp4", (1,), "train", start=1.0, end=2.0),
        Sample("b", None, (0,), "val"),
        Sample("c", tmp_path / "c.mp4", (0,), "val", reject="label unknown"),
    ]
    rows, rejects = build_rows(samples, tmp_path, probe=False)
    assert [r.to_json() for r in rows] == [
        {"id": "a", "path": "a.mp4", "labels": [1], "split": "train", "start": 1.0, "end": 2.0}
    ]
    assert [r.to_json() for r in rejects] == [
        {"id": "b", "path": None, "split": "val", "reason": "missing file"},
        {"id": "c", "path": str(tmp_path / "c.mp4"), "split": "val", "reason": "label unknown"},
    ]
    with pytest.raises(PrepareError, match="duplicate sample ids"):
        build_rows(samples + samples[:1], tmp_path, probe=False)
