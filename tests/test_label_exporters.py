"""Exports of result rows: the flat CSV and ActivityNet's classification JSON."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch

from videofocus.cli import main
from videofocus.data.manifest import write_manifest
from videofocus.inference.inferencer import VideoPrediction
from videofocus.labeling.exporters import (
    CSV_COLUMNS,
    ExportError,
    activitynet_video_id,
    export_activitynet,
    export_csv,
)
from videofocus.labeling.inputs import read_inputs
from videofocus.labeling.job import prediction_row

OK_ROW = {
    "id": 'a, "quoted".mp4',
    "path": '/x/a, "quoted".mp4',
    "status": "ok",
    "labels": ["cls_3", "Playing, piano"],
    "label_ids": [3, 1],
    "scores": [0.9123456789012345, 0.05],
    "exit_step": 5,
    "frames_read": 8,
    "sampled_times": [0.0, 0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.04],
    "glimpses": [[2, 3, 4], [1, 0, 0]],
    "gmacs": 0.07,
    "decode_ms": 12.3,
    "model_ms": 1.2,
}
ERROR_ROW = {
    "id": "b.mp4",
    "path": "/x/b.mp4",
    "status": "error",
    "error": "VideoDecodeError: moov atom not found",
    "labels": [],
    "label_ids": [],
    "scores": [],
    "exit_step": None,
    "frames_read": 0,
    "sampled_times": [],
}


def test_csv_round_trips_through_dictreader(tmp_path):
    path = tmp_path / "out" / "labels.csv"
    assert export_csv(iter([OK_ROW, ERROR_ROW]), path) == 2

    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames) == CSV_COLUMNS
        ok, err = list(reader)

    assert ok["id"] == OK_ROW["id"] and ok["path"] == OK_ROW["path"]
    assert (ok["status"], ok["top1"], ok["error"]) == ("ok", "cls_3", "")
    assert float(ok["top1_score"]) == OK_ROW["scores"][0]  # full precision survives
    assert ok["labels"].split(";") == OK_ROW["labels"]
    assert [float(s) for s in ok["scores"].split(";")] == OK_ROW["scores"]
    assert (int(ok["exit_step"]), int(ok["frames_read"])) == (5, 8)
    assert [float(t) for t in ok["sampled_times"].split(";")] == OK_ROW["sampled_times"]
    assert [float(ok[k]) for k in ("gmacs", "decode_ms", "model_ms")] == [0.07, 12.3, 1.2]

    assert (err["status"], err["error"]) == ("error", ERROR_ROW["error"])
    empty = ("top1", "top1_score", "labels", "scores", "exit_step", "gmacs", "model_ms")
    empty += ("sampled_times",)
    assert all(err[k] == "" for k in empty)
    assert err["frames_read"] == "0"


def test_csv_of_no_rows_is_just_the_header(tmp_path):
    path = tmp_path / "empty.csv"
    assert export_csv([], path) == 0
    assert path.read_text(encoding="utf-8") == ",".join(CSV_COLUMNS) + "\n"


def test_csv_refuses_a_label_with_the_list_separator(tmp_path):
    row = {**OK_ROW, "labels": ["rock;paper", "x"]}
    with pytest.raises(ValueError, match="'rock;paper' contains ';'"):
        export_csv([row], tmp_path / "bad.csv")
    assert not (tmp_path / "bad.csv").exists()


def test_activitynet_json_has_ok_rows_only(tmp_path):
    second = {**OK_ROW, "id": "5n7NCViB5TU", "labels": ["Discus throw"], "scores": [1.0]}
    path = tmp_path / "submission.json"

    assert export_activitynet([OK_ROW, ERROR_ROW, second], path) == 2

    doc = json.loads(path.read_text(encoding="utf-8"))
    assert set(doc) == {"version", "results", "external_data"}
    assert doc["version"] == "VERSION 1.3"
    assert doc["external_data"] == {"used": False, "details": ""}
    # the error row is absent; a file name's video extension does not reach the id
    assert list(doc["results"]) == ['a, "quoted"', "5n7NCViB5TU"]
    assert doc["results"]['a, "quoted"'] == [
        {"label": "cls_3", "score": OK_ROW["scores"][0]},
        {"label": "Playing, piano", "score": 0.05},
    ]
    assert doc["results"]["5n7NCViB5TU"] == [{"label": "Discus throw", "score": 1.0}]


def test_activitynet_version_and_bad_rows(tmp_path):
    path = tmp_path / "sub.json"
    assert export_activitynet([ERROR_ROW], path, version="VERSION 1.2") == 0
    assert json.loads(path.read_text(encoding="utf-8"))["version"] == "VERSION 1.2"
    with pytest.raises(ExportError, match="duplicate id"):
        export_activitynet([OK_ROW, OK_ROW], path)
    with pytest.raises(ExportError, match="2 labels but 1 scores"):
        export_activitynet([{**OK_ROW, "scores": [0.5]}], path)


CLASSES = ["Brushing teeth", "Drinking coffee", "Playing piano"]


def _prediction(logits: list[float]) -> VideoPrediction:
    return VideoPrediction(
        logits=torch.tensor(logits),
        exit_step=1,
        steps_read=2,
        actions=torch.zeros(2, 3, dtype=torch.long),
        step_confidence=[0.5, 0.6],
        step_top1=[0, 0],
        gmacs=0.01,
    )


def _export_inputs(source: Path, out: Path) -> dict:
    """Label rows of every item of ``source`` as the job builds them, exported, read back."""
    items = read_inputs(source)
    rows = [
        prediction_row(
            it, _prediction([3.0, 1.0, float(i)]), CLASSES, 2, 4, 1.0, False, [0, 0.4, 0.8, 1.2]
        )
        for i, it in enumerate(items)
    ]
    export_activitynet(rows, out)
    return json.loads(out.read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("row_id", "video_id"),
    [
        ("abc-_123456", "abc-_123456"),
        ("v_abc-_123456", "abc-_123456"),
        ("v_abc-_123456#3", "abc-_123456"),
        ("sub/dir/v_abc-_123456.MP4", "abc-_123456"),
        ("/data/anet/abc-_123456.webm", "abc-_123456"),
        ("v_v_bc-_12345.mkv", "v_bc-_12345"),  # a YouTube id that itself starts with v_
        ("v_bc-_12345", "v_bc-_12345"),  # 11 characters: an id, not a prefixed one
        ("clip.notavideo", "clip.notavideo"),
    ],
)
def test_activitynet_video_id(row_id, video_id):
    assert activitynet_video_id(row_id) == video_id


def test_activitynet_keys_are_bare_ids_for_manifest_folder_and_list_inputs(tmp_path):
    videos = tmp_path / "videos"
    (videos / "sub").mkdir(parents=True)
    for name in ("v_abc-_123456.mp4", "def_4567890.mkv", "sub/v_ghi_7890123.webm"):
        (videos / name).write_bytes(b"")  # the exporter never opens the videos
    expected = {"abc-_123456", "def_4567890", "ghi_7890123"}

    manifest = tmp_path / "manifest.jsonl"
    write_manifest(
        manifest,
        [
            {"id": "v_abc-_123456", "path": "videos/v_abc-_123456.mp4"},
            {"id": "def_4567890", "path": "videos/def_4567890.mkv"},
            # segment rows (data_prep.activitynet --level segment) merge into their video
            {"id": "ghi_7890123#0", "path": "videos/sub/v_ghi_7890123.webm", "end": 1.0},
            {"id": "ghi_7890123#1", "path": "videos/sub/v_ghi_7890123.webm", "start": 1.0},
        ],
    )
    listing = tmp_path / "paths.txt"
    listing.write_text(
        f"{videos / 'v_abc-_123456.mp4'}\nvideos/def_4567890.mkv\nvideos/sub/v_ghi_7890123.webm\n"
    )
    for source in (manifest, videos, listing):
        doc = _export_inputs(source, tmp_path / f"{source.stem}.json")
        assert set(doc) == {"version", "results", "external_data"}, source
        assert doc["version"] == "VERSION 1.3"
        assert doc["external_data"] == {"used": False, "details": ""}
        assert set(doc["results"]) == expected, source
        for entries in doc["results"].values():
            assert [set(e) for e in entries] == [{"label", "score"}] * len(entries)
            assert all(isinstance(e["label"], str) for e in entries)
            assert all(isinstance(e["score"], float) for e in entries)
            scores = [e["score"] for e in entries]
            assert scores == sorted(scores, reverse=True)
    # the manifest's two segments (logits [3, 1, 2] and [3, 1, 3]): each label's best score
    entries = _export_inputs(manifest, tmp_path / "m.json")["results"]["ghi_7890123"]
    first = torch.tensor([3.0, 1.0, 2.0]).softmax(0)
    second = torch.tensor([3.0, 1.0, 3.0]).softmax(0)
    assert [e["label"] for e in entries] == ["Brushing teeth", "Playing piano"]
    assert [e["score"] for e in entries] == pytest.approx(
        [float(first[0]), float(second[2])], abs=1e-6
    )


def test_two_videos_with_one_bare_id_are_refused_in_one_line(tmp_path, capsys):
    labels = tmp_path / "labels.jsonl"
    rows = [
        {**OK_ROW, "id": "a/v_abc-_123456.mp4"},
        {**OK_ROW, "id": "b/abc-_123456.mkv"},
    ]
    labels.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "anet.json"
    assert main(["label", "export", str(labels), "--activitynet", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "error: " in err
    assert err.endswith(
        f"error: {out}: duplicate id: rows 'a/v_abc-_123456.mp4' and 'b/abc-_123456.mkv' are "
        "both ActivityNet video 'abc-_123456' (its bare YouTube id); export them to separate files"
    )
    assert not out.exists()


def test_label_command_exports_bare_ids_for_a_folder(tmp_path, tiny_data, tiny_config):
    folder = tmp_path / "anet_videos"
    folder.mkdir()
    names = ["v_abc-_123456.mp4", "def_4567890.mp4"]
    for name, video in zip(names, sorted((tiny_data / "videos").glob("*.mp4")), strict=False):
        shutil.copy(video, folder / name)
    config = tiny_config.write(tmp_path / "label.yaml", tiny_data, tmp_path / "runs")
    labels, anet = tmp_path / "labels.jsonl", tmp_path / "anet.json"
    argv = ["label", str(folder), "--config", str(config), "--out", str(labels)]
    argv += ["--workers", "0", "--no-progress", "--topk", "2", "--activitynet", str(anet)]
    assert main(argv) == 0
    doc = json.loads(anet.read_text(encoding="utf-8"))
    assert sorted(doc["results"]) == ["abc-_123456", "def_4567890"]
    assert all(len(v) == 2 for v in doc["results"].values())
    again = tmp_path / "again.json"
    assert main(["label", "export", str(labels), "--activitynet", str(again)]) == 0
    assert json.loads(again.read_text(encoding="utf-8")) == doc
