"""Exports of result rows: the flat CSV and ActivityNet's classification JSON."""

from __future__ import annotations

import csv
import json

import pytest

from videofocus.labeling.exporters import CSV_COLUMNS, export_activitynet, export_csv

OK_ROW = {
    "id": 'a, "quoted".mp4',
    "path": '/x/a, "quoted".mp4',
    "status": "ok",
    "labels": ["cls_3", "Playing, piano"],
    "label_ids": [3, 1],
    "scores": [0.9123456789012345, 0.05],
    "exit_step": 5,
    "frames_read": 8,
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
    assert [float(ok[k]) for k in ("gmacs", "decode_ms", "model_ms")] == [0.07, 12.3, 1.2]

    assert (err["status"], err["error"]) == ("error", ERROR_ROW["error"])
    empty = ("top1", "top1_score", "labels", "scores", "exit_step", "gmacs", "model_ms")
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
    assert list(doc["results"]) == [OK_ROW["id"], "5n7NCViB5TU"]  # the error row is absent
    assert doc["results"][OK_ROW["id"]] == [
        {"label": "cls_3", "score": OK_ROW["scores"][0]},
        {"label": "Playing, piano", "score": 0.05},
    ]
    assert doc["results"]["5n7NCViB5TU"] == [{"label": "Discus throw", "score": 1.0}]


def test_activitynet_version_and_bad_rows(tmp_path):
    path = tmp_path / "sub.json"
    assert export_activitynet([ERROR_ROW], path, version="VERSION 1.2") == 0
    assert json.loads(path.read_text(encoding="utf-8"))["version"] == "VERSION 1.2"
    with pytest.raises(ValueError, match="duplicate id"):
        export_activitynet([OK_ROW, OK_ROW], path)
    with pytest.raises(ValueError, match="2 labels but 1 scores"):
        export_activitynet([{**OK_ROW, "scores": [0.5]}], path)
