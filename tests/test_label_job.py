"""The `videofocus label` job: bad inputs, SIGKILL + resume, budget calibration, shards + merge."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from videofocus.config import load_config
from videofocus.inference.inferencer import InferenceOptions
from videofocus.inference.model import load_inference_model
from videofocus.io.reader import VideoReader
from videofocus.io.writer import write_video
from videofocus.labeling.job import LabelJobOptions, run_label_job
from videofocus.labeling.results import read_results
from videofocus.labeling.sharding import ShardSpec, merge_shards

JOB = LabelJobOptions(batch_size=4, num_workers=0, decode_timeout=30, progress=False)


@pytest.fixture
def label_yaml(tmp_path, tiny_config) -> Callable[[Path], Path]:
    """``label_yaml(data) -> Path``: the tiny config on the dataset ``data``, as ``label.yaml``."""

    def write(data: Path) -> Path:
        path = tmp_path / "label.yaml"
        return tiny_config.write(path, data, tmp_path / "runs", name="label_test")

    return write


def _write_audio_only(path: Path) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        samples = np.zeros((1, 1024), dtype=np.float32)
        for i in range(8):
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate = 16000
            frame.pts = i * 1024
            frame.time_base = Fraction(1, 16000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def _rows_by_id(path: Path) -> dict[str, dict]:
    rows = read_results(path)
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), "duplicate rows"
    return {r["id"]: r for r in rows}


def test_bad_videos_get_error_rows_and_the_job_goes_on(tmp_path, tiny_data, label_yaml) -> None:
    folder = tmp_path / "mixed"
    (folder / "sub").mkdir(parents=True)
    good = sorted((tiny_data / "videos").glob("*.mp4"))[:3]
    for i, video in enumerate(good):
        shutil.copy(video, folder / ("sub" if i == 0 else ".") / f"good{i}.mp4")
    (folder / "empty.mp4").write_bytes(b"")
    data = good[1].read_bytes()
    (folder / "truncated.mp4").write_bytes(data[: len(data) // 3])
    (folder / "text.mp4").write_text("this is not a video\n")
    _write_audio_only(folder / "audio.mp4")
    (folder / "notes.txt").write_text("not an input: wrong extension\n")

    model = load_inference_model(config=label_yaml(tiny_data))
    out = tmp_path / "labels.jsonl"
    summary = run_label_job(folder, model, out, job=JOB, shard=ShardSpec(1, 0))
    rows = _rows_by_id(out)
    assert sorted(rows) == sorted(
        [
            "sub/good0.mp4",
            "good1.mp4",
            "good2.mp4",
            "empty.mp4",
            "truncated.mp4",
            "text.mp4",
            "audio.mp4",
        ]
    )
    status = {k: r["status"] for k, r in rows.items()}
    assert [k for k, s in status.items() if s == "ok"] == sorted(
        ["sub/good0.mp4", "good1.mp4", "good2.mp4"], key=list(rows).index
    )
    assert summary.ok == 3 and summary.failed == 4
    for name in ("empty.mp4", "truncated.mp4", "text.mp4", "audio.mp4"):
        row = rows[name]
        assert row["status"] == "error" and name in row["error"] and row["labels"] == []
    assert "empty" in rows["empty.mp4"]["error"]
    ok = rows["good1.mp4"]
    assert len(ok["labels"]) == 3 and ok["labels"][0].startswith(("texture", "class"))
    assert ok["scores"] == sorted(ok["scores"], reverse=True) and 0 < ok["scores"][0] <= 1
    assert ok["frames_read"] == 4 and ok["gmacs"] > 0 and ok["exit_step"] == 3


def test_cli_exit_status_counts_failures_and_rerun_skips_done(
    tmp_path, tiny_data, label_yaml
) -> None:
    folder = tmp_path / "v"
    folder.mkdir()
    shutil.copy(sorted((tiny_data / "videos").glob("*.mp4"))[0], folder / "a.mp4")
    (folder / "b.mp4").write_bytes(b"")
    cmd = [
        sys.executable,
        "-m",
        "videofocus.cli",
        "label",
        str(folder),
        "--config",
        str(label_yaml(tiny_data)),
        "--out",
        str(tmp_path / "l.jsonl"),
        "--workers",
        "0",
        "--no-progress",
        "--csv",
        str(tmp_path / "l.csv"),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "RANDOM WEIGHTS" in done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert (summary["ok"], summary["failed"]) == (1, 1)
    assert (tmp_path / "l.csv").read_text().count("\n") == 3
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    summary = json.loads(again.stdout.strip().splitlines()[-1])
    assert again.returncode == 1 and summary["already_done"] == 2 and summary["labelled"] == 0
    assert len(read_results(tmp_path / "l.jsonl")) == 2


def test_label_sampling_keyframe_writes_the_times_of_the_keyframes_read(
    tmp_path, tiny_data, label_yaml
) -> None:
    folder = tmp_path / "gop8"
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(40)]
    write_video(folder / "v.mp4", frames, fps=25.0, gop=8)  # 40 frames, keyframes 0, 8, ..., 32
    (folder / "empty.mp4").write_bytes(b"")
    with VideoReader(folder / "v.mp4") as reader:
        keyframe_times = reader.frame_boundaries()[reader.keyframes].tolist()
    assert keyframe_times == pytest.approx([0.0, 0.32, 0.64, 0.96, 1.28])
    config = label_yaml(tiny_data)
    out = tmp_path / "keyframe.jsonl"
    cmd = [sys.executable, "-m", "videofocus.cli", "label", str(folder), "--config", str(config)]
    cmd += ["--out", str(out), "--workers", "0", "--no-progress", "--sampling", "keyframe"]
    cmd += ["--csv", str(tmp_path / "keyframe.csv")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr  # the empty file's error row
    rows = _rows_by_id(out)
    # TSN frames 4, 14, 24, 34 of 4 segments -> keyframes 0 (a tie with 8), 16, 24, 32
    assert rows["v.mp4"]["sampled_times"] == pytest.approx([0.0, 0.64, 0.96, 1.28])
    assert all(t in keyframe_times for t in rows["v.mp4"]["sampled_times"])
    assert rows["empty.mp4"]["sampled_times"] == []
    with open(tmp_path / "keyframe.csv", newline="", encoding="utf-8") as fh:
        by_id = {r["id"]: r for r in csv.DictReader(fh)}
    assert by_id["v.mp4"]["sampled_times"].split(";") == ["0.0", "0.64", "0.96", "1.28"]
    # the default reads the sampled frames themselves, and says so
    model = load_inference_model(config=config)
    run_label_job(folder, model, tmp_path / "exact.jsonl", job=JOB, shard=ShardSpec(1, 0))
    exact = _rows_by_id(tmp_path / "exact.jsonl")["v.mp4"]
    assert exact["sampled_times"] == pytest.approx([0.16, 0.56, 0.96, 1.36])
    # an unknown mode is a usage error, one line
    done = subprocess.run([*cmd[:-2], "--sampling", "nearest"], capture_output=True, text=True)
    assert done.returncode == 2 and "invalid choice: 'nearest'" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_sigkill_midway_then_rerun_equals_an_uninterrupted_run(
    tmp_path, tiny_data, label_yaml
) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    videos = sorted((tiny_data / "videos").glob("*.mp4"))
    for i in range(240):
        (folder / f"v{i:03d}.mp4").symlink_to(videos[i % len(videos)])
    config = label_yaml(tiny_data)
    out = tmp_path / "killed.jsonl"
    cmd = [
        sys.executable,
        "-m",
        "videofocus.cli",
        "label",
        str(folder),
        "--config",
        str(config),
        "--out",
        str(out),
        "--workers",
        "1",
        "--batch-size",
        "4",
        "--no-progress",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if out.is_file() and out.read_bytes().count(b"\n") >= 40:
            break
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = read_results(out)
    assert 40 <= len(partial) < 240, "the kill must land mid-way"
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout.strip().splitlines()[-1])["already_done"] == len(partial)

    reference = tmp_path / "reference.jsonl"
    model = load_inference_model(config=config)
    run_label_job(folder, model, reference, job=JOB, shard=ShardSpec(1, 0))
    killed, full = _rows_by_id(out), _rows_by_id(reference)
    assert sorted(killed) == sorted(full) and len(full) == 240
    for key, row in full.items():
        assert killed[key]["labels"] == row["labels"]
        assert killed[key]["scores"] == pytest.approx(row["scores"], abs=1e-4)


@pytest.fixture(scope="module")
def val_data(synthetic_data) -> Path:
    """Enough validation videos (40) for budget calibration to be meaningful."""
    return synthetic_data(num_videos=48, val_fraction=0.85)


@pytest.mark.parametrize("fraction", [0.35, 0.7])
def test_budget_calibration_meets_the_budget_within_5_percent(
    tmp_path, val_data, label_yaml, fraction
):
    cfg = load_config(label_yaml(val_data))
    model = load_inference_model(config=cfg)
    options = InferenceOptions(chunk_steps=1)
    full = tmp_path / "full.jsonl"
    run_label_job(val_data / "manifest.jsonl", model, full, options, JOB, ShardSpec(1, 0))
    cost = model.cost_table()
    floor = (cost.glance + cost.policy) * 4 / 1e9  # every video stopping at its first step...
    ceiling = np.mean([r["gmacs"] for r in read_results(full)])
    budget = floor + fraction * (ceiling - floor)
    job = LabelJobOptions(**{**JOB.__dict__, "budget_gmacs": float(budget)})
    out = tmp_path / "budget.jsonl"
    summary = run_label_job(val_data / "manifest.jsonl", model, out, options, job, ShardSpec(1, 0))
    val_ids = {
        json.loads(line)["id"]
        for line in (val_data / "manifest.jsonl").open()
        if json.loads(line)["split"] == "val"
    }
    achieved = np.mean([r["gmacs"] for r in read_results(out) if r["id"] in val_ids])
    assert len(val_ids) >= 40
    assert abs(achieved - budget) <= 0.05 * budget, (achieved, budget)
    assert summary.thresholds is not None and len(summary.thresholds) == 4
    exits = {r["exit_step"] for r in read_results(out)}
    assert len(exits) > 1  # the budget really made videos exit at different steps


def test_budget_calibration_with_the_glance_exit(tmp_path, val_data, label_yaml):
    """``--budget-gmacs`` with the glance exit on: one threshold more, stored apart from those
    without it, and some videos leave after the glance, charged the glance alone."""
    cfg = load_config(label_yaml(val_data), ["exit.glance_exit=true"])
    model = load_inference_model(config=cfg)
    options = InferenceOptions(chunk_steps=1, glance_exit=cfg.exit.glance_exit)
    cost = model.cost_table()
    floor = cost.glance_exit(4) / 1e9  # every video leaving after the glance
    full = (cost.glance + cost.policy + cost.aggregator + max(cost.local)) * 4 / 1e9
    budget = floor + 0.3 * (full - floor)
    job = LabelJobOptions(**{**JOB.__dict__, "budget_gmacs": float(budget)})
    out = tmp_path / "glance.jsonl"
    summary = run_label_job(val_data / "manifest.jsonl", model, out, options, job, ShardSpec(1, 0))
    assert summary.thresholds is not None and len(summary.thresholds) == 4 + 1
    rows = read_results(out)
    glance = [r for r in rows if r["exit_step"] == -1]
    assert glance and all(r["gmacs"] == pytest.approx(floor, abs=1e-6) for r in glance)
    val_ids = {
        json.loads(line)["id"]
        for line in (val_data / "manifest.jsonl").open()
        if json.loads(line)["split"] == "val"
    }
    achieved = np.mean([r["gmacs"] for r in rows if r["id"] in val_ids])
    assert abs(achieved - budget) <= 0.05 * budget, (achieved, budget)


def test_stored_thresholds_match_the_glance_exit_too(tmp_path):
    from videofocus.inference.model import THRESHOLDS_FILE, stored_thresholds

    stored = {"budget_gmacs": 1.0, "chunk_steps": 2, "glance_exit": True, "thresholds": [0.9]}
    (tmp_path / THRESHOLDS_FILE).write_text(json.dumps(stored))
    assert stored_thresholds(tmp_path, 1.0, 2, glance_exit=True) == [0.9]
    with pytest.raises(FileNotFoundError, match="with chunk 2; pass --calibrate"):
        stored_thresholds(tmp_path, 1.0, 2)  # calibrated with the glance exit: not reused without
    # a file from before the glance exit holds thresholds without it
    del stored["glance_exit"]
    (tmp_path / THRESHOLDS_FILE).write_text(json.dumps(stored))
    assert stored_thresholds(tmp_path, 1.0, 2) == [0.9]
    with pytest.raises(FileNotFoundError, match="glance exit on"):
        stored_thresholds(tmp_path, 1.0, 2, glance_exit=True)


def test_shards_then_merge_equal_a_single_run(tmp_path, tiny_data, label_yaml) -> None:
    model = load_inference_model(config=label_yaml(tiny_data))
    manifest = tiny_data / "manifest.jsonl"
    single = tmp_path / "single.jsonl"
    run_label_job(manifest, model, single, job=JOB, shard=ShardSpec(1, 0))
    out = tmp_path / "sharded.jsonl"
    for index in range(3):
        summary = run_label_job(manifest, model, out, job=JOB, shard=ShardSpec(3, index))
        assert summary.out.endswith(f"sharded.shard-{index:05d}-of-00003.jsonl")
    report = merge_shards(out)
    assert report.shards == 3 and report.rows == 16
    merged, reference = read_results(out), read_results(single)
    assert [r["id"] for r in merged] == [r["id"] for r in reference]  # input order
    for a, b in zip(merged, reference, strict=True):
        assert a["labels"] == b["labels"]
        assert a["scores"] == pytest.approx(b["scores"], abs=1e-4)


def test_retry_errors_relabels_error_rows_in_place(tmp_path, tiny_data, label_yaml) -> None:
    from videofocus.cli import main

    folder = tmp_path / "v"
    folder.mkdir()
    videos = sorted((tiny_data / "videos").glob("*.mp4"))
    for i in range(3):
        shutil.copy(videos[i], folder / f"v{i}.mp4")
    (folder / "v1.mp4").write_bytes(b"")  # unreadable at first
    out = tmp_path / "labels.jsonl"
    args = ["label", str(folder), "--config", str(label_yaml(tiny_data)), "--out", str(out)]
    args += ["--workers", "0", "--no-progress"]
    assert main(args) == 1
    assert {k: r["status"] for k, r in _rows_by_id(out).items()} == {
        "v0.mp4": "ok",
        "v1.mp4": "error",
        "v2.mp4": "ok",
    }

    assert main(args) == 1  # a plain rerun keeps the error row
    shutil.copy(videos[1], folder / "v1.mp4")  # the video is fixed
    assert main([*args, "--retry-errors"]) == 0
    rows = _rows_by_id(out)
    assert sorted(rows) == ["v0.mp4", "v1.mp4", "v2.mp4"]
    assert all(r["status"] == "ok" for r in rows.values())

    model = load_inference_model(config=label_yaml(tiny_data))
    job = LabelJobOptions(**{**JOB.__dict__, "retry_errors": True})
    summary = run_label_job(folder, model, out, job=job, shard=ShardSpec(1, 0))
    assert (summary.retried, summary.labelled, summary.already_done) == (0, 0, 3)
