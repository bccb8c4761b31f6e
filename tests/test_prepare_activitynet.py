"""`videofocus prepare activitynet`: video and segment level, clamping, rejects, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from videofocus.data_prep.activitynet import read_activitynet
from videofocus.data_prep.probing import AnnotationError

from videofocus.cli import main
from videofocus.data.manifest import read_classes, read_manifest
from videofocus.io.probe import probe_video
from videofocus.io.writer import write_video


def _clip(path: Path, frames: int = 10) -> Path:
    write_video(path, (np.full((32, 32, 3), 20 * i, np.uint8) for i in range(frames)), fps=25)
    return path


def _annotations(tmp_path: Path) -> Path:
    database = {
        "abc-_123456": {
            "subset": "training",
            "duration": 0.4,
            "resolution": "32x32",
            "url": "https://www.youtube.com/watch?v=abc-_123456",
            "annotations": [
                {"segment": [0.0, 0.2], "label": "Drinking coffee"},
                {"segment": [0.1, 5.0], "label": "Drinking coffee"},  # past the end: clamped
                {"segment": [-0.5, 0.3], "label": "Brushing teeth"},  # before 0: starts at 0
            ],
        },
        "def_4567890": {
            "subset": "validation",
            "duration": 100.0,  # wrong, as happens in the real file
            "resolution": "32x32",
            "url": "",
            "annotations": [{"segment": [3.5, 9.0], "label": "Brushing teeth"}],
        },
        "ghi_missing": {
            "subset": "training",
            "duration": 10.0,
            "resolution": "32x32",
            "url": "",
            "annotations": [{"segment": [1.0, 2.0], "label": "Drinking coffee"}],
        },
        "tst_0000001": {
            "subset": "testing",
            "duration": 0.4,
            "resolution": "32x32",
            "url": "",
            "annotations": [],
        },
    }
    taxonomy = [{"nodeId": 1, "nodeName": "Root", "parentId": None, "parentName": None}]
    path = tmp_path / "activity_net.v1-3.min.json"
    path.write_text(
        json.dumps({"version": "VERSION 1.3", "taxonomy": taxonomy, "database": database})
    )
    return path


@pytest.fixture()
def anet(tmp_path: Path) -> tuple[Path, Path]:
    videos = tmp_path / "videos"
    _clip(videos / "v_abc-_123456.mp4")
    _clip(videos / "def_4567890.mkv")  # "<id>.*" layout, another container
    _clip(videos / "testing" / "v_tst_0000001.mp4")  # found in a sub-folder
    return _annotations(tmp_path), videos


def _run(ann: Path, videos: Path, out: Path, *extra: str) -> int:
    argv = ["prepare", "activitynet", "--annotations", str(ann), "--videos", str(videos)]
    return main([*argv, "--out", str(out), "--workers", "2", *extra])


def _rejects(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]


def test_video_level_multilabel_rows(anet, tmp_path, capsys):
    ann, videos = anet
    out = tmp_path / "out"
    assert _run(ann, videos, out) == 0
    assert read_classes(out / "classes.txt") == ["Brushing teeth", "Drinking coffee"]
    rows = read_manifest(out / "manifest.jsonl")
    assert [(r.id, r.labels, r.split) for r in rows] == [
        ("abc-_123456", (0, 1), "train"),
        ("def_4567890", (0,), "val"),
        ("tst_0000001", (), "test"),
    ]
    assert rows[0].path == str((videos / "v_abc-_123456.mp4").resolve())
    assert rows[2].path == str((videos / "testing" / "v_tst_0000001.mp4").resolve())
    assert all(r.num_frames == 10 and r.fps == pytest.approx(25.0) for r in rows)
    assert all(r.start is None and r.end is None for r in rows)
    assert _rejects(out) == [
        {"id": "ghi_missing", "path": None, "split": "train", "reason": "missing file"}
    ]
    assert "train 1 kept/1 rejected, val 1 kept/0 rejected, test 1 kept/0 rejected" in (
        capsys.readouterr().out
    )


def test_segment_level_clamps_to_the_probed_duration(anet, tmp_path):
    ann, videos = anet
    out = tmp_path / "out"
    assert _run(ann, videos, out, "--level", "segment") == 0
    duration = probe_video(str(videos / "v_abc-_123456.mp4")).duration
    rows = {r.id: r for r in read_manifest(out / "manifest.jsonl")}
    assert list(rows) == ["abc-_123456#0", "abc-_123456#1", "abc-_123456#2", "tst_0000001"]
    assert (rows["abc-_123456#0"].start, rows["abc-_123456#0"].end) == (0.0, 0.2)
    assert (rows["abc-_123456#1"].start, rows["abc-_123456#1"].end) == (0.1, duration)
    assert (rows["abc-_123456#2"].start, rows["abc-_123456#2"].end) == (0.0, 0.3)
    assert [rows[k].labels for k in rows] == [(1,), (1,), (0,), ()]
    assert rows["abc-_123456#1"].meta == {"video_id": "abc-_123456"}
    assert rows["tst_0000001"].start is None and rows["tst_0000001"].split == "test"
    rejects = {r["id"]: r for r in _rejects(out)}
    assert set(rejects) == {"def_4567890#0", "ghi_missing#0"}
    assert rejects["def_4567890#0"]["reason"] == (
        f"segment starts at 3.5s, past the end of the video ({duration:g}s)"
    )
    assert rejects["def_4567890#0"]["path"] == str(videos / "def_4567890.mkv")
    assert rejects["ghi_missing#0"]["reason"] == "missing file"


def test_rerun_is_idempotent_and_no_probe_clamps_to_json_duration(anet, tmp_path):
    ann, videos = anet
    out = tmp_path / "out"
    assert _run(ann, videos, out, "--level", "segment", "--no-probe") == 0
    first = (out / "manifest.jsonl").read_bytes()
    assert _run(ann, videos, out, "--level", "segment", "--no-probe") == 0
    assert (out / "manifest.jsonl").read_bytes() == first
    rows = {r.id: r for r in read_manifest(out / "manifest.jsonl")}
    assert rows["abc-_123456#1"].end == 0.4 and rows["abc-_123456#1"].num_frames is None
    assert rows["def_4567890#0"].end == 9.0  # the JSON duration (100 s) does not cut it


def test_malformed_segment_names_the_key_path(anet, tmp_path, capsys):
    ann, videos = anet
    data = json.loads(ann.read_text())
    data["database"]["abc-_123456"]["annotations"][1]["segment"] = [1.0]
    ann.write_text(json.dumps(data))
    with pytest.raises(AnnotationError, match=r"database\.abc-_123456\.annotations\[1\]\.segment"):
        read_activitynet(ann)
    assert _run(ann, videos, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert f"{ann} at database.abc-_123456.annotations[1].segment: expected [start, end]" in err
    assert "Traceback" not in err


def test_bad_subset_and_bad_json_name_their_place(tmp_path):
    ann = tmp_path / "a.json"
    ann.write_text(json.dumps({"database": {"x": {"subset": "train-ish", "annotations": []}}}))
    with pytest.raises(AnnotationError, match=r"at database\.x\.subset: unknown split 'train-ish'"):
        read_activitynet(ann)
    ann.write_text('{"database": {\n  "x": {"subset": "training",}\n}}')
    with pytest.raises(AnnotationError, match=r"a\.json:2: invalid JSON"):
        read_activitynet(ann)


def _bsn_annotations(tmp_path: Path) -> Path:
    """BSN/BMN's anet_anno_action.json: no ``database`` wrapper, ``v_`` keys, frame counts."""

    def entry(subset: str, duration: float, annotations: list[dict]) -> dict:
        frames = round(duration * 25)
        return {
            "duration_second": duration,
            "duration_frame": frames,
            "feature_frame": frames - frames % 16,
            "subset": subset,
            "annotations": annotations,
        }

    data = {
        "v_abc-_123456": entry(
            "training",
            0.4,
            [
                {"segment": [0.0, 0.2], "label": "Drinking coffee"},
                {"segment": [0.1, 5.0], "label": "Brushing teeth"},
            ],
        ),
        "v_def_4567890": entry(
            "validation", 0.4, [{"segment": [0.04, 0.3], "label": "Brushing teeth"}]
        ),
        # a YouTube id that itself starts with "v_": its key and file are v_v_...
        "v_v_bc-_12345": entry(
            "training", 0.4, [{"segment": [0.2, 0.4], "label": "Drinking coffee"}]
        ),
        "v_tst_0000001": entry("testing", 0.4, []),
    }
    path = tmp_path / "anet_anno_action.json"
    path.write_text(json.dumps(data))
    return path


def test_bsn_annotations_end_to_end(anet, tmp_path):
    _, videos = anet
    _clip(videos / "v_v_bc-_12345.mp4")
    ann = _bsn_annotations(tmp_path)
    entries = read_activitynet(ann)
    assert [(e.youtube_id, e.split, e.duration) for e in entries] == [
        ("abc-_123456", "train", 0.4),
        ("def_4567890", "val", 0.4),
        ("v_bc-_12345", "train", 0.4),
        ("tst_0000001", "test", 0.4),
    ]

    out = tmp_path / "video"
    assert _run(ann, videos, out) == 0
    assert read_classes(out / "classes.txt") == ["Brushing teeth", "Drinking coffee"]
    rows = read_manifest(out / "manifest.jsonl")
    assert [(r.id, r.labels, r.split) for r in rows] == [
        ("abc-_123456", (0, 1), "train"),
        ("def_4567890", (0,), "val"),
        ("v_bc-_12345", (1,), "train"),
        ("tst_0000001", (), "test"),
    ]
    assert [Path(r.path).name for r in rows] == [
        "v_abc-_123456.mp4",
        "def_4567890.mkv",
        "v_v_bc-_12345.mp4",
        "v_tst_0000001.mp4",
    ]
    assert all(r.num_frames == 10 for r in rows) and _rejects(out) == []

    out = tmp_path / "segment"
    assert _run(ann, videos, out, "--level", "segment") == 0
    duration = probe_video(str(videos / "v_abc-_123456.mp4")).duration
    rows = {r.id: r for r in read_manifest(out / "manifest.jsonl")}
    assert {k: (r.start, r.end, r.labels) for k, r in rows.items()} == {
        "abc-_123456#0": (0.0, 0.2, (1,)),
        "abc-_123456#1": (0.1, duration, (0,)),
        "def_4567890#0": (0.04, 0.3, (0,)),
        "v_bc-_12345#0": (0.2, 0.4, (1,)),
        "tst_0000001": (None, None, ()),
    }
    assert rows["v_bc-_12345#0"].meta == {"video_id": "v_bc-_12345"}


def test_bsn_errors_name_the_key(tmp_path, capsys):
    ann = tmp_path / "gt.json"
    ann.write_text(
        json.dumps(
            {
                "v_abc-_123456": {"duration_second": 2.0, "subset": "training", "annotations": {}},
            }
        )
    )
    with pytest.raises(AnnotationError, match=r"gt\.json at v_abc-_123456\.annotations: expected"):
        read_activitynet(ann)
    entry = {"duration_second": 2.0, "subset": "training", "annotations": []}
    ann.write_text(json.dumps({"v_abc-_123456": entry, "abc-_123456": entry}))
    with pytest.raises(
        AnnotationError,
        match=r"at abc-_123456: video 'abc-_123456' is also annotated at v_abc-_123456",
    ):
        read_activitynet(ann)
    ann.write_text(json.dumps({"v_abc-_123456": {"segments": []}}))
    argv = ["prepare", "activitynet", "--annotations", str(ann), "--videos", str(tmp_path)]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"{ann} at database: expected ActivityNet's {{'database'" in err
    assert "BSN/BMN's {'v_<id>': {'duration_second'" in err and "Traceback" not in err
