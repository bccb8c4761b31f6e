"""The label job on Ray Data (``--engine ray``), on an embedded local Ray with 2 CPUs: one row per
input, the in-process engine's labels, and no lost or repeated row when a Ray worker or the driver
is killed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from videofocus.inference.model import load_inference_model
from videofocus.labeling.job import LabelJobOptions, run_label_job
from videofocus.labeling.ray_engine import RayOptions
from videofocus.labeling.results import read_results
from videofocus.labeling.sharding import ShardSpec

pytest.importorskip(
    "ray.data", reason="the Ray engine needs Ray Data: pip install 'videofocus[ray]'"
)

BAD = {"empty.mp4": "empty", "truncated.mp4": "truncated.mp4", "text.mp4": "text.mp4"}
LOCAL = LabelJobOptions(batch_size=4, num_workers=0, decode_timeout=30, progress=False)
RAY = LabelJobOptions(
    batch_size=4, decode_timeout=30, progress=False, engine="ray", ray=RayOptions(actors=1)
)


@pytest.fixture(scope="module")
def forty(synthetic_data) -> Path:
    """40 synthetic videos (one class texture each)."""
    return synthetic_data(num_videos=40)


@pytest.fixture
def inputs(tmp_path, forty) -> Path:
    """A folder of the 40 videos plus a zero-byte, a truncated and a text file."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    videos = sorted((forty / "videos").glob("*.mp4"))
    for video in videos:
        shutil.copy(video, folder / video.name)
    (folder / "empty.mp4").write_bytes(b"")
    data = videos[0].read_bytes()
    (folder / "truncated.mp4").write_bytes(data[: len(data) // 3])
    (folder / "text.mp4").write_text("this is not a video\n")
    return folder


@pytest.fixture
def config(tmp_path, tiny_config, forty) -> Path:
    return tiny_config.write(tmp_path / "label.yaml", forty, tmp_path / "runs", name="ray_test")


def _rows_by_id(path: Path) -> dict[str, dict]:
    rows = read_results(path)
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), "duplicate rows"
    return {r["id"]: r for r in rows}


def _assert_complete_and_equal(path: Path, reference: dict[str, dict]) -> None:
    rows = _rows_by_id(path)
    assert sorted(rows) == sorted(reference)
    for key, row in reference.items():
        assert rows[key]["status"] == row["status"]
        assert rows[key]["labels"] == row["labels"]
        assert rows[key]["scores"] == pytest.approx(row["scores"], abs=1e-4)


def test_ray_engine_writes_the_in_process_rows(tmp_path, inputs, config) -> None:
    model = load_inference_model(config=config)
    local, ray_out = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    run_label_job(inputs, model, local, job=LOCAL, shard=ShardSpec(1, 0))
    summary = run_label_job(inputs, model, ray_out, job=RAY, shard=ShardSpec(1, 0))
    rows, reference = _rows_by_id(ray_out), _rows_by_id(local)
    assert len(rows) == 43 and (summary.ok, summary.failed) == (40, 3)
    assert summary.engine == "ray" and summary.ray_startup_s > 0
    for name, reason in BAD.items():
        assert rows[name]["status"] == "error" and reason in rows[name]["error"]
    for key, row in reference.items():
        got = rows[key]
        assert set(got) == set(row)  # the same schema
        fields = ("status", "labels", "label_ids", "exit_step", "frames_read", "sampled_times")
        for field in (*fields, "gmacs"):
            assert got[field] == row[field], (key, field)
        assert got["scores"] == pytest.approx(row["scores"], abs=1e-5)
    # a rerun labels nothing: the finished ids are skipped as in-process
    again = run_label_job(inputs, model, ray_out, job=RAY, shard=ShardSpec(1, 0))
    assert (again.already_done, again.labelled) == (43, 0)
    assert len(read_results(ray_out)) == 43


def _label_command(inputs: Path, config: Path, out: Path) -> list[str]:
    return [
        *(sys.executable, "-m", "videofocus.cli", "label", str(inputs)),
        *("--config", str(config), "--out", str(out), "--engine", "ray"),
        *("--batch-size", "2", "--no-progress"),
    ]


def _ray_processes(title: str) -> list[int]:
    """Pids of this user's processes whose command line starts with ``title``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if cmdline.startswith(title.encode()):
                pids.append(int(entry.name))
    return pids


def _wait_for_rows(out: Path, proc: subprocess.Popen, rows: int) -> None:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if out.is_file() and out.read_bytes().count(b"\n") >= rows:
            return
        time.sleep(0.02)
    raise AssertionError(f"no {rows} rows in time (job ended: {proc.poll()})")


def _reference(tmp_path: Path, inputs: Path, config: Path) -> dict[str, dict]:
    out = tmp_path / "reference.jsonl"
    run_label_job(
        inputs, load_inference_model(config=config), out, job=LOCAL, shard=ShardSpec(1, 0)
    )
    return _rows_by_id(out)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds Ray's workers through /proc")
@pytest.mark.slow
def test_a_killed_model_actor_loses_and_repeats_no_row(tmp_path, inputs, config) -> None:
    out = tmp_path / "labels.jsonl"
    cmd = _label_command(inputs, config, out)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_rows(out, proc, 2)
    actors = _ray_processes("ray::MapWorker")
    assert actors, "the model actor's process was not found"
    for pid in actors:
        os.kill(pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    # the exit status counts the error rows: 3, the bad files. Ray restarts the actor and
    # retries its batch; were the job to give up instead, its rerun would finish the rest
    if proc.returncode != len(BAD):
        rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert rerun.returncode == len(BAD), (err, rerun.stderr)
    _assert_complete_and_equal(out, _reference(tmp_path, inputs, config))


@pytest.mark.slow
def test_a_killed_driver_is_resumed_by_the_rerun(tmp_path, inputs, config) -> None:
    out = tmp_path / "labels.jsonl"
    cmd = _label_command(inputs, config, out)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for_rows(out, proc, 2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = len(read_results(out))
    assert 2 <= partial < 43, "the kill must land mid-way"
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == len(BAD), rerun.stderr  # the exit status counts error rows
    assert json.loads(rerun.stdout.strip().splitlines()[-1])["already_done"] == partial
    _assert_complete_and_equal(out, _reference(tmp_path, inputs, config))


def test_decode_batches_must_be_positive():
    assert RayOptions().decode_batches == 4
    with pytest.raises(ValueError, match="decode_batches"):
        RayOptions(decode_batches=0)
