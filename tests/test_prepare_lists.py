"""`videofocus prepare list` and `fcvid`: the AdaFocus/AR-Net and mmaction2 list formats."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from videofocus.data_prep.lists import parse_line, read_list
from videofocus.data_prep.probing import AnnotationError

from videofocus.cli import main
from videofocus.data.manifest import read_classes, read_manifest
from videofocus.io.writer import write_video


def _clip(path: Path, frames: int = 10) -> Path:
    write_video(path, (np.full((32, 32, 3), 20 * i, np.uint8) for i in range(frames)), fps=25)
    return path


def _rows(out: Path) -> list[tuple]:
    return [(r.id, r.labels, r.split) for r in read_manifest(out / "manifest.jsonl")]


def _rejects(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "rejects.jsonl").read_text().splitlines()]


@pytest.mark.parametrize(
    ("fmt", "text", "name", "labels"),
    [
        ("adafocus-comma", "/data/anet/frames/v_aaa,300,3,7", "/data/anet/frames/v_aaa", (3, 7)),
        (
            "adafocus-semicolon",
            "k400/abseiling/x_000010_000020;250;0",
            "k400/abseiling/x_000010_000020",
            (0,),
        ),
        (
            "adafocus-space",
            "/mini/playing guitar/y_000000_000010 300 1",
            "/mini/playing guitar/y_000000_000010",
            (1,),
        ),
        ("mmaction", "playing guitar/z.mp4 1 4", "playing guitar/z.mp4", (1, 4)),
        ("mmaction", "unlabelled/z.mp4", "unlabelled/z.mp4", ()),
    ],
)
def test_parse_line_formats(fmt, text, name, labels):
    entry = parse_line(text, fmt, Path("list.txt"), 5)
    assert (entry.line, entry.name, entry.labels) == (5, name, labels)


@pytest.mark.parametrize(
    ("fmt", "text", "message"),
    [
        ("adafocus-comma", "v_aaa,300", "expected <frame_dir>,<num_frames>,<label>"),
        ("adafocus-comma", "v_aaa,many,3", "num_frames must be an integer, got 'many'"),
        ("adafocus-semicolon", "v_aaa;300;x", "label must be a non-negative integer, got 'x'"),
        ("adafocus-space", "v_aaa 300", "expected <frame_dir> <num_frames> <label>"),
        ("adafocus-space", "v_aaa 300 -1", "label must be a non-negative integer, got '-1'"),
    ],
)
def test_malformed_lines_name_the_line(tmp_path, fmt, text, message):
    valid = {"adafocus-comma": "ok,1,0", "adafocus-semicolon": "ok;1;0", "adafocus-space": "ok 1 0"}
    path = tmp_path / "list.txt"
    path.write_text(f"{valid[fmt]}\n{text}\n")
    with pytest.raises(AnnotationError) as info:
        read_list(path, fmt)
    assert str(info.value).startswith(f"{path}:2: ") and message in str(info.value)


def test_duplicate_ids_name_both_lines(tmp_path):
    path = tmp_path / "list.txt"
    path.write_text("/a/v_x,10,1\n\n/b/v_x,10,2\n")
    with pytest.raises(
        AnnotationError, match=r"list\.txt:3: duplicate id 'v_x' \(first on line 1\)"
    ):
        read_list(path, "adafocus-comma")


def test_identical_repeats_are_kept_once_and_counted(tmp_path, capsys):
    # mmaction2's tests/data/video_test_list.txt: the same line twice
    videos = tmp_path / "videos"
    _clip(videos / "test.mp4")
    lst = tmp_path / "video_test_list.txt"
    lst.write_text("test.mp4 0\ntest.mp4 0\nother.mp4 1\n\nother.mp4  1\ntest.mp4 0\n")
    parsed = read_list(lst, "mmaction")
    assert [(e.line, e.name, e.labels) for e in parsed.entries] == [
        (1, "test.mp4", (0,)),
        (3, "other.mp4", (1,)),
    ]
    assert parsed.repeats == 3
    out = tmp_path / "out"
    argv = ["prepare", "list", "--list", str(lst), "--format", "mmaction"]
    assert main([*argv, "--videos", str(videos), "--out", str(out), "--workers", "2"]) == 0
    assert _rows(out) == [("test", (0,), "train")]
    assert [r["id"] for r in _rejects(out)] == ["other"]
    err = capsys.readouterr().err
    assert f"{lst}: 3 repeated line(s) (same video and labels as an earlier line) kept once" in err


@pytest.mark.parametrize(
    ("fmt", "text", "message"),
    [
        ("mmaction", "test.mp4 0\ntest.mp4 1\n", "labels [1] here, [0] there"),
        ("mmaction", "a/x.mp4 0\na/x.mkv 0\n", "'a/x.mkv' here, 'a/x.mp4' there"),
        ("adafocus-comma", "/a/v_x,10,1\n/a/v_x,12,1,2\n", "labels [1, 2] here, [1] there"),
    ],
)
def test_conflicting_duplicates_name_both_lines(tmp_path, fmt, text, message):
    path = tmp_path / "list.txt"
    path.write_text(text)
    with pytest.raises(AnnotationError) as info:
        read_list(path, fmt)
    assert str(info.value).startswith(f"{path}:2: duplicate id ")
    assert str(info.value).endswith(f"(first on line 1): {message}")


def test_mmaction_rawframe_lists_are_refused(tmp_path, capsys):
    videos = tmp_path / "rawframes"
    (videos / "img_dir").mkdir(parents=True)
    for i in range(1, 6):
        (videos / "img_dir" / f"img_{i:05d}.jpg").write_bytes(b"")
    lst = tmp_path / "rawframe_list.txt"
    lst.write_text("img_dir 5 127\nimg_dir2 7 3\n")
    with pytest.raises(AnnotationError) as info:
        read_list(lst, "mmaction")
    assert str(info.value) == (
        f"{lst}:1: this is an mmaction2 rawframe list (<frame_dir> <total_frames> <label>...: "
        "folders of extracted frames), not a video list; videofocus decodes the videos "
        "themselves: give the video list (<video path> <label>...) instead; got 'img_dir 5 127'"
    )
    argv = ["prepare", "list", "--format", "mmaction", "--videos", str(videos)]
    argv += ["--out", str(tmp_path / "out"), "--no-probe"]
    assert main([*argv, "--list", str(lst)]) == 2
    err = capsys.readouterr().err
    assert f"{lst}:1: this is an mmaction2 rawframe list" in err and "Traceback" not in err
    # one integer after the folder reads like a label: the folder itself gives it away
    lst.write_text("img_dir 5\n")
    assert main([*argv, "--list", str(lst)]) == 2
    err = capsys.readouterr().err
    assert f"{lst}:1: this is an mmaction2 rawframe list" in err
    assert err.strip().endswith("'img_dir' is a folder")


def test_adafocus_comma_with_classes(tmp_path):
    videos = tmp_path / "videos"
    _clip(videos / "v_aaa.mp4")
    _clip(videos / "frames" / "v_bbb.mkv")  # the relative frame_dir is tried first
    lst = tmp_path / "anet_train.txt"
    lst.write_text("/data/anet/frames/v_aaa,300,3,1\nframes/v_bbb,120,2\n/x/v_ccc,10,0\n")
    classes = tmp_path / "classes.txt"
    classes.write_text("".join(f"class {i}\n" for i in range(4)))
    out = tmp_path / "out"
    argv = ["prepare", "list", "--list", str(lst), "--format", "adafocus-comma"]
    argv += ["--classes", str(classes), "--videos", str(videos), "--out", str(out)]
    assert main([*argv, "--workers", "2", "--split", "training"]) == 0
    assert read_classes(out / "classes.txt") == [f"class {i}" for i in range(4)]
    assert _rows(out) == [("v_aaa", (3, 1), "train"), ("v_bbb", (2,), "train")]
    assert read_manifest(out / "manifest.jsonl")[1].num_frames == 10
    assert _rejects(out) == [
        {"id": "v_ccc", "path": None, "split": "train", "reason": "missing file"}
    ]
    lst.write_text("/data/anet/frames/v_aaa,300,3,4\n")
    assert main([*argv, "--no-probe"]) == 2


def test_space_and_semicolon_lists_with_splits_and_index_classes(tmp_path):
    videos = tmp_path / "videos"
    _clip(videos / "playing guitar" / "y_000000_000010.mp4")
    _clip(videos / "x_000010_000020.webm.mp4")  # its stem differs: no match
    _clip(videos / "x_000010_000020.avi")
    train = tmp_path / "mini_train.txt"
    train.write_text("/mini/playing guitar/y_000000_000010 300 4\n")
    val = tmp_path / "k_val.txt"
    val.write_text("k400/abseiling/x_000010_000020;250;2\n")
    out = tmp_path / "out"
    for fmt, lst, split in (("adafocus-space", train, "train"), ("adafocus-semicolon", val, "val")):
        argv = ["prepare", "list", "--list", str(lst), "--format", fmt, "--split", split]
        assert main([*argv, "--videos", str(videos), "--out", str(out / split), "--no-probe"]) == 0
    assert read_classes(out / "train" / "classes.txt") == ["0", "1", "2", "3", "4"]
    assert _rows(out / "train") == [("y_000000_000010", (4,), "train")]
    assert _rows(out / "val") == [("x_000010_000020", (2,), "val")]
    assert read_manifest(out / "val" / "manifest.jsonl")[0].path.endswith("x_000010_000020.avi")


def test_mmaction_lists_labelled_and_not(tmp_path):
    videos = tmp_path / "videos"
    _clip(videos / "playing guitar" / "z.mp4")
    _clip(videos / "other" / "w.mp4")
    labelled = tmp_path / "train.txt"
    labelled.write_text("playing guitar/z.mp4 1 3\nother/w 0\n")
    unlabelled = tmp_path / "infer.txt"
    unlabelled.write_text("other/w.mp4\nnot/there.mp4\n")
    out = tmp_path / "out"
    argv = ["prepare", "list", "--format", "mmaction", "--videos", str(videos), "--out", str(out)]
    argv += [
        "--list",
        str(labelled),
        "--split",
        "train",
        "--list",
        str(unlabelled),
        "--split",
        "test",
    ]
    # One id in two lists is a clash, reported without a traceback.
    assert main([*argv, "--no-probe"]) == 2
    unlabelled.write_text("other/w.mp4 \nnot/there.mp4\n".replace("other/w", "other/w2"))
    _clip(videos / "other" / "w2.mp4")
    assert main([*argv, "--workers", "2"]) == 0
    assert _rows(out) == [
        ("playing guitar/z", (1, 3), "train"),
        ("other/w", (0,), "train"),
        ("other/w2", (), "test"),
    ]
    assert read_classes(out / "classes.txt") == ["0", "1", "2", "3"]
    assert _rejects(out)[0]["id"] == "not/there"


def test_fcvid_multilabel(tmp_path):
    videos = tmp_path / "videos"
    _clip(videos / "fcvid_000001.mp4")
    _clip(videos / "fcvid_000002.mp4")
    names = tmp_path / "fcvid_classes.txt"
    names.write_text("".join(f"category_{i:03d}\n" for i in range(239)))
    train = tmp_path / "fcvid_train.txt"
    train.write_text("/frames/fcvid_000001,420,12,238\n")
    test = tmp_path / "fcvid_test.txt"
    test.write_text("/frames/fcvid_000002,420,5\n/frames/fcvid_000003,420,5\n")
    out = tmp_path / "out"
    argv = ["prepare", "fcvid", "--train", str(train), "--test", str(test), "--classes", str(names)]
    assert main([*argv, "--videos", str(videos), "--out", str(out), "--workers", "2"]) == 0
    assert len(read_classes(out / "classes.txt")) == 239
    assert _rows(out) == [("fcvid_000001", (12, 238), "train"), ("fcvid_000002", (5,), "test")]
    assert [r["id"] for r in _rejects(out)] == ["fcvid_000003"]
