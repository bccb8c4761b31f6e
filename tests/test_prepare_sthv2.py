"""`videofocus prepare sthv2`: label indices, templates, webm videos, errors by key path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from videofocus.data_prep.probing import AnnotationError
from videofocus.data_prep.sthv2 import read_labels

from videofocus.cli import main
from videofocus.data.manifest import read_classes, read_manifest
from videofocus.io.writer import write_video


def _webm(path: Path, frames: int = 10) -> Path:
    gen = (np.full((32, 32, 3), 20 * i, np.uint8) for i in range(frames))
    write_video(path, gen, fps=12, codec="libvpx-vp9", crf=40)
    return path


def _entry(video_id: str, template: str) -> dict:
    return {
        "id": video_id,
        "label": template.replace("[something]", "a cup"),
        "template": template,
        "placeholders": ["a cup"] * template.count("["),
    }


@pytest.fixture()
def sthv2(tmp_path: Path) -> dict[str, Path]:
    files = {
        name: tmp_path / f"something-something-v2-{name}.json"
        for name in ("labels", "train", "validation", "test")
    }
    labels = {"Putting something on something": "1", "Pushing something from left to right": "0"}
    files["labels"].write_text(json.dumps(labels))
    files["train"].write_text(
        json.dumps(
            [
                _entry("78687", "Putting [something] on [something]"),
                _entry("42326", "Pushing [something] from left to right"),
            ]
        )
    )
    files["validation"].write_text(
        json.dumps([_entry("74225", "Pushing [something] from left to right")])
    )
    files["test"].write_text(json.dumps([{"id": "1420"}]))
    videos = tmp_path / "20bn-something-something-v2"
    for video_id in ("78687", "74225", "1420"):
        _webm(videos / f"{video_id}.webm")
    files["videos"] = videos
    return files


def _argv(files: dict[str, Path], out: Path) -> list[str]:
    argv = ["prepare", "sthv2", "--labels", str(files["labels"]), "--videos", str(files["videos"])]
    for flag in ("train", "validation", "test"):
        argv += [f"--{flag}", str(files[flag])]
    return [*argv, "--out", str(out), "--workers", "2"]


def test_sthv2_rows_follow_the_label_indices(sthv2, tmp_path):
    out = tmp_path / "out"
    assert main(_argv(sthv2, out)) == 0
    assert read_classes(out / "classes.txt") == [
        "Pushing something from left to right",
        "Putting something on something",
    ]
    rows = read_manifest(out / "manifest.jsonl")
    assert [(r.id, r.labels, r.split) for r in rows] == [
        ("78687", (1,), "train"),
        ("74225", (0,), "val"),
        ("1420", (), "test"),
    ]
    assert rows[0].path == str((sthv2["videos"] / "78687.webm").resolve())
    assert [(r.num_frames, r.fps) for r in rows] == [(10, pytest.approx(12.0))] * 3
    rejects = [json.loads(x) for x in (out / "rejects.jsonl").read_text().splitlines()]
    assert rejects == [{"id": "42326", "path": None, "split": "train", "reason": "missing file"}]


def test_unknown_template_names_the_entry(sthv2, tmp_path, capsys):
    data = json.loads(sthv2["train"].read_text())
    data[1]["template"] = "Juggling [something]"
    sthv2["train"].write_text(json.dumps(data))
    assert main(_argv(sthv2, tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert (
        f"{sthv2['train']} at [1].template: 'Juggling something' is not in the labels file" in err
    )
    del data[1]["template"]
    sthv2["train"].write_text(json.dumps(data))
    assert main(_argv(sthv2, tmp_path / "out")) == 2
    assert "at [1].template: expected a string, got None" in capsys.readouterr().err


def test_labels_file_errors(tmp_path):
    path = tmp_path / "labels.json"
    path.write_text(json.dumps({"a": "0", "b": "two"}))
    with pytest.raises(AnnotationError, match=r"labels\.json at b: index must be an integer"):
        read_labels(path)
    path.write_text(json.dumps({"a": "0", "b": "2"}))
    with pytest.raises(AnnotationError, match=r"indices must be 0\.\.1 without gaps"):
        read_labels(path)
    path.write_text(json.dumps({"a": "0", "b": 0}))
    with pytest.raises(AnnotationError, match=r"at b: index 0 already used by 'a'"):
        read_labels(path)
