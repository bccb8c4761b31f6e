"""Isolated decoding (timeouts, crashes) and probing, through the library and the CLI."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import time

import pytest

from videofocus.io import ProbeResult, VideoDecodeError, VideoReader, available_backends
from videofocus.io.isolated import run_isolated, start_method
from videofocus.io.probe import probe_video


def test_children_never_fork():
    assert start_method() in ("forkserver", "spawn")


def test_result_and_exceptions_come_back():
    assert run_isolated(pow, 2, 10, path="x.mp4", timeout=30) == 1024
    with pytest.raises(ValueError, match="invalid literal"):
        run_isolated(int, "not a number", path="x.mp4", timeout=30)


def test_hanging_decoder_is_killed_after_timeout():
    started = time.monotonic()
    with pytest.raises(VideoDecodeError, match=r"decode timed out after 1\.5s") as caught:
        run_isolated(time.sleep, 3600, path="slow.mp4", timeout=1.5)
    assert caught.value.path == "slow.mp4"
    assert 1.5 <= time.monotonic() - started < 10


@pytest.mark.parametrize(
    "fn,args,exit_text",
    [
        (os.abort, (), "exit code -6, signal SIGABRT"),
        (os._exit, (3,), "exit code 3"),
        (ctypes.string_at, (0,), "exit code -11, signal SIGSEGV"),  # reads address 0
    ],
    ids=["abort", "exit", "segfault"],
)
def test_crashing_decoder_raises_and_parent_survives(make_video, fn, args, exit_text):
    with pytest.raises(VideoDecodeError, match="decoder crashed") as caught:
        run_isolated(fn, *args, path="bad.mp4", timeout=30)
    assert exit_text in caught.value.reason
    # the parent keeps working: another child, and decoding in this process
    assert run_isolated(abs, -5, path="ok.mp4", timeout=30) == 5
    with VideoReader(make_video()) as reader:
        assert reader.read_frames([1]).shape == (1, 48, 64, 3)


def test_probe_good_and_bad_files(real_clips, tmp_path):
    result = probe_video(real_clips[0], timeout=60)
    assert result.ok and result.error is None
    assert (result.num_frames, result.width, result.height) == (132, 1280, 720)
    assert result.codec == "h264" and result.rotation == 0
    assert result.fps == pytest.approx(25.0) and result.duration == pytest.approx(132 / 25)
    assert "error" not in result.to_json()

    empty = tmp_path / "empty.mp4"
    empty.touch()
    failed = probe_video(empty)
    assert failed == ProbeResult.failed(empty, "file is empty (0 bytes)")
    assert failed.to_json() == {
        "path": str(empty),
        "ok": False,
        "fps": None,
        "num_frames": None,
        "duration": None,
        "width": None,
        "height": None,
        "codec": None,
        "rotation": None,
        "error": "file is empty (0 bytes)",
    }
    assert not probe_video(tmp_path / "missing.mp4").ok


@pytest.mark.skipif("decord" not in available_backends(), reason="decord is not installed")
def test_probe_with_decord(real_clips):
    assert probe_video(real_clips[2], backend="decord").num_frames == 120


def test_probe_rejects_unknown_backend(real_clips):
    with pytest.raises(ValueError, match="unknown video backend"):
        probe_video(real_clips[0], backend="opencv")


def test_probe_module_does_not_import_torch(real_clips):
    code = (
        "import sys; from videofocus.io.probe import probe_video; "
        f"r = probe_video({str(real_clips[3])!r}); "
        "assert r.ok, r; assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_cli_probe_prints_one_json_line_per_file(real_clips, tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.touch()
    text = tmp_path / "readme.mp4"
    text.write_text("not a video\n" * 100)
    paths = [str(p) for p in (*real_clips, empty, text)]
    done = subprocess.run(
        [sys.executable, "-m", "videofocus.cli", "probe", *paths, "--timeout", "60"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 6
    results = [json.loads(line) for line in lines]
    assert [r["path"] for r in results] == paths
    for r in results[:4]:
        assert r["ok"] is True and "error" not in r
        assert r["fps"] > 0 and r["num_frames"] > 0 and r["width"] > 0 and r["height"] > 0
    for r in results[4:]:
        assert r["ok"] is False and r["error"]
    assert "empty" in results[4]["error"] and "not a media file" in results[5]["error"]
