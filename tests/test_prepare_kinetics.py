"""`videofocus prepare kinetics` and `minikinetics`: CSV layouts, file layouts, classes, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from videofocus.data_prep.kinetics import read_kinetics_csv
from videofocus.data_prep.minikinetics import parse_id_line, read_id_list
from videofocus.data_prep.probing import AnnotationError, is_trimmed_clip

from videofocus.cli import main
from videofocus.data.manifest import read_classes, read_manifest
from videofocus.io.samplers import frame_range
from videofocus.io.writer import write_video


def _clip(path: Path, frames: int = 10) -> Path:
    images = (np.full((32, 32, 3), 20 * i % 256, np.uint8) for i in range(frames))
    write_video(path, images, fps=25)
    return path


@pytest.fixture()
def kinetics(tmp_path: Path) -> tuple[list[Path], Path]:
    train = tmp_path / "train.csv"
    train.write_text(
        "label,youtube_id,time_start,time_end,split,is_cc\n"
        "abseiling,aaaaaaaaaaa,10,20,train,0\n"
        '"playing guitar",bbbbbbbbbbb,0,10,train,0\n'
        "playing guitar,ccccccccccc,5.0,15.0,train,1\n"
        "yoga,ggggggggggg,3,13,train,0\n"
    )
    val = tmp_path / "validate.csv"
    val.write_text(
        "label,youtube_id,time_start,time_end,split\n"
        "abseiling,ddddddddddd,1,11,validate\n"
        "zumba,eeeeeeeeeee,0,10,val\n"
    )
    test = tmp_path / "test.csv"
    test.write_text("youtube_id,time_start,time_end,split\nfffffffffff,0,10,test\n")
    videos = tmp_path / "videos"
    _clip(videos / "aaaaaaaaaaa_000010_000020.mp4")  # flat
    _clip(videos / "playing_guitar" / "bbbbbbbbbbb_000000_000010.mp4")  # class folder, "_"
    _clip(videos / "yoga" / "ggggggggggg_000003_000013.mp4")
    _clip(videos / "ddddddddddd.mp4")  # "<youtube_id>.mp4" download layout
    _clip(videos / "eeeeeeeeeee_000000_000010.mp4")
    _clip(videos / "playing guitar" / "fffffffffff_000000_000010.mp4")  # the label itself
    return [train, val, test], videos


def _rejects(out: Path) -> dict[str, dict]:
    lines = (out / "rejects.jsonl").read_text().splitlines()
    return {r["id"]: r for r in map(json.loads, lines)}


def test_kinetics_rows_classes_and_rejects(kinetics, tmp_path):
    csvs, videos = kinetics
    out = tmp_path / "out"
    argv = ["prepare", "kinetics", *[a for c in csvs for a in ("--csv", str(c))]]
    assert main([*argv, "--videos", str(videos), "--out", str(out), "--workers", "2"]) == 0
    assert read_classes(out / "classes.txt") == ["abseiling", "playing guitar", "yoga"]
    rows = read_manifest(out / "manifest.jsonl")
    assert [(r.id, r.labels, r.split) for r in rows] == [
        ("aaaaaaaaaaa_000010_000020", (0,), "train"),
        ("bbbbbbbbbbb_000000_000010", (1,), "train"),
        ("ggggggggggg_000003_000013", (2,), "train"),
        ("ddddddddddd_000001_000011", (0,), "val"),
        ("fffffffffff_000000_000010", (), "test"),
    ]
    assert rows[3].path == str((videos / "ddddddddddd.mp4").resolve())
    assert all(r.num_frames == 10 for r in rows)
    rejects = _rejects(out)
    assert rejects == {
        "ccccccccccc_000005_000015": {
            "id": "ccccccccccc_000005_000015",
            "path": None,
            "split": "train",
            "reason": "missing file",
        },
        "eeeeeeeeeee_000000_000010": {
            "id": "eeeeeeeeeee_000000_000010",
            "path": str(videos / "eeeeeeeeeee_000000_000010.mp4"),
            "split": "val",
            "reason": "label 'zumba' is not among the 3 classes",
        },
    }


def test_val_only_needs_classes(kinetics, tmp_path, capsys):
    csvs, videos = kinetics
    out = tmp_path / "out"
    argv = ["prepare", "kinetics", "--csv", str(csvs[1]), "--videos", str(videos), "--no-probe"]
    assert main([*argv, "--out", str(out)]) == 2
    assert "no training rows" in capsys.readouterr().err
    names = tmp_path / "names.txt"
    names.write_text("abseiling\nzumba\n")
    assert main([*argv, "--out", str(out), "--classes", str(names)]) == 0
    rows = read_manifest(out / "manifest.jsonl")
    assert [(r.id, r.labels) for r in rows] == [
        ("ddddddddddd_000001_000011", (0,)),
        ("eeeeeeeeeee_000000_000010", (1,)),
    ]
    assert rows[0].num_frames is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("abseiling,xxxxxxxxxxx,abc,20,train", "'time_start' must be a number, got 'abc'"),
        ("abseiling,xxxxxxxxxxx,10", "expected 5 fields"),
        ("abseiling,xxxxxxxxxxx,10,20,train,extra", "expected 5 fields"),
        (",xxxxxxxxxxx,10,20,train", "empty label in the train split"),
        ("abseiling,xxxxxxxxxxx,10,20,holdout", "unknown split 'holdout'"),
        ("abseiling,xxxxxxxxxxx,20,10,train", "time_end (10) must exceed time_start (20)"),
    ],
)
def test_malformed_csv_rows_name_the_line(tmp_path, line, message):
    path = tmp_path / "bad.csv"
    path.write_text(f"label,youtube_id,time_start,time_end,split\nyoga,x,1,2,train\n{line}\n")
    with pytest.raises(AnnotationError) as info:
        read_kinetics_csv(path)
    assert str(info.value).startswith(f"{path}:3: ")
    assert message in str(info.value)


def test_cli_reports_malformed_csv_with_exit_code_2(tmp_path, capsys):
    path = tmp_path / "bad.csv"
    path.write_text("label,youtube_id,split\nyoga,x,train\n")
    argv = ["prepare", "kinetics", "--csv", str(path), "--videos", str(tmp_path)]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"{path}:1: header lacks ['time_start', 'time_end']" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("text", "youtube_id"),
    [
        ("aaaaaaaaaaa", "aaaaaaaaaaa"),
        ("aaaaaaaaaaa_000010_000020.mp4", "aaaaaaaaaaa"),
        ("/data/k400/train/playing guitar/a-_aaaaa_aa_000000_000010 300 1", "a-_aaaaa_aa"),
        ("train/abseiling/aaaaaaaaaaa_000010_000020,250,0", "aaaaaaaaaaa"),
        ("abseiling/aaaaaaaaaaa;250;0", "aaaaaaaaaaa"),
    ],
)
def test_id_list_lines(text, youtube_id):
    assert parse_id_line(text) == youtube_id


def test_minikinetics_keeps_listed_ids_and_their_classes(kinetics, tmp_path):
    csvs, videos = kinetics
    train_ids = tmp_path / "train_ids.txt"
    train_ids.write_text(
        "aaaaaaaaaaa\n\n/frames/playing guitar/bbbbbbbbbbb_000000_000010 300 1\nzzzzzzzzzzz\n"
    )
    val_ids = tmp_path / "val_ids.txt"
    val_ids.write_text("ddddddddddd_000001_000011.mp4,250,0\n")
    assert read_id_list(train_ids) == ["aaaaaaaaaaa", "bbbbbbbbbbb", "zzzzzzzzzzz"]
    out = tmp_path / "out"
    argv = ["prepare", "minikinetics", "--csv", str(csvs[0]), "--csv", str(csvs[1])]
    argv += ["--train-ids", str(train_ids), "--val-ids", str(val_ids), "--videos", str(videos)]
    assert main([*argv, "--out", str(out), "--workers", "2"]) == 0
    # yoga is a Kinetics training label, but none of its clips is listed.
    assert read_classes(out / "classes.txt") == ["abseiling", "playing guitar"]
    rows = read_manifest(out / "manifest.jsonl")
    assert [(r.id, r.labels, r.split) for r in rows] == [
        ("aaaaaaaaaaa_000010_000020", (0,), "train"),
        ("bbbbbbbbbbb_000000_000010", (1,), "train"),
        ("ddddddddddd_000001_000011", (0,), "val"),
    ]
    assert _rejects(out) == {
        "zzzzzzzzzzz": {
            "id": "zzzzzzzzzzz",
            "path": None,
            "split": "train",
            "reason": "id not in the CSVs",
        }
    }


@pytest.mark.parametrize(
    ("duration", "start", "end", "trimmed"),
    [
        (10.0, 30, 40, True),  # the clip, cut exactly
        (12.0, 30, 40, True),  # cut at keyframes: a little longer
        (5.0, 250, 260, True),  # the video ended inside the clip
        (10.0, 0, 10, True),  # both readings hold the same frames
        (300.0, 30, 40, False),  # the full download
        (13.0, 3, 13, False),  # a short full video
        (35.0, 30, 40, False),  # a full video that ends inside the clip
    ],
)
def test_is_trimmed_clip(duration, start, end, trimmed):
    assert is_trimmed_clip(duration, start, end) is trimmed


def test_untrimmed_downloads_become_segments_and_trimmed_clips_stay_whole(tmp_path):
    csv_path = tmp_path / "train.csv"
    csv_path.write_text(
        "label,youtube_id,time_start,time_end,split\n"
        "yoga,uuuuuuuuuuu,10,14,train\n"  # full 25 s download named <id>.mp4
        "yoga,ttttttttttt,120,124,train\n"  # <id>.mp4 already cut to its 4 s clip
        "zumba,nnnnnnnnnnn,2,6,train\n"  # the trimmed name, whatever its length
    )
    videos = tmp_path / "videos"
    _clip(videos / "uuuuuuuuuuu.mp4", frames=500)  # 25 fps: 20 s
    _clip(videos / "ttttttttttt.mp4", frames=100)  # 4 s, as long as the clip
    _clip(videos / "nnnnnnnnnnn_000002_000006.mp4", frames=250)
    out = tmp_path / "out"
    argv = ["prepare", "kinetics", "--csv", str(csv_path), "--videos", str(videos)]
    assert main([*argv, "--out", str(out), "--workers", "2"]) == 0
    rows = {r.id: r for r in read_manifest(out / "manifest.jsonl")}
    full = rows["uuuuuuuuuuu_000010_000014"]
    assert (full.start, full.end, full.num_frames) == (10.0, 14.0, 500)
    # training reads the clip's 4 s, not the whole download: frames 250..349 at 25 fps
    assert frame_range(full.num_frames, full.fps, full.start, full.end) == (250, 249 + 100)
    cut = rows["ttttttttttt_000120_000124"]
    assert (cut.start, cut.end, cut.num_frames) == (None, None, 100)
    named = rows["nnnnnnnnnnn_000002_000006"]
    assert (named.start, named.end, named.num_frames) == (None, None, 250)

    # without probing nothing measures the files: the <id>.mp4 name means a full download
    assert main([*argv, "--out", str(out), "--no-probe"]) == 0
    rows = {r.id: r for r in read_manifest(out / "manifest.jsonl")}
    assert (rows["ttttttttttt_000120_000124"].start, rows["ttttttttttt_000120_000124"].end) == (
        120.0,
        124.0,
    )
    assert rows["nnnnnnnnnnn_000002_000006"].start is None
