"""The commands users type, run as subprocesses on a tiny generated dataset."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def _run(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "videofocus.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_prepare_train_eval_flops_from_the_command_line(tmp_path):
    data = tmp_path / "data"
    done = _run(
        "prepare",
        "synthetic",
        str(data),
        "--num-videos",
        "12",
        "--frame-size",
        "48",
        "--object-size",
        "16",
        "--frames",
        "4",
        "--classes",
        "3",
        "--workers",
        "1",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    config = tmp_path / "tiny.yaml"
    config.write_text(
        "name: smoke\n"
        f"data: {{root: {data}, frames: 4, frame_size: 48, num_workers: 0}}\n"
        "model: {glance_backbone: tiny_cnn, glance_resolution: 16, local_backbone: tiny_cnn,\n"
        "        options: [{extent: 0.5, resolution: 16}], grid: 3, hidden: 16}\n"
        f"train: {{epochs: 1, batch_size: 4, out_dir: {tmp_path / 'runs'}}}\n"
    )
    done = _run("train", str(config), "--stage", "warmup", "train.optim.lr=0.01", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert (
        summary["stage"] == "warmup"
        and (tmp_path / "runs/warmup/final/model.safetensors").is_file()
    )

    out = tmp_path / "eval.json"
    done = _run(
        "eval",
        str(config),
        "--checkpoint",
        str(tmp_path / "runs/warmup/final"),
        "--json",
        str(out),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["videos"] == 3 and 0.0 <= result["top1"] <= 1.0
    assert result["gmacs_per_video"] > 0 and result["videos_per_s"] > 0

    done = _run("flops", str(config), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    # random warm-up glimpses cost what the config's default usage costs, minus the learned
    # policy network that `flops` includes and a random policy does not run
    policy_gmacs = report["components"]["policy_per_step"] * report["frames"]
    assert result["gmacs_per_video"] == pytest.approx(report["gmacs_per_video"] - policy_gmacs)

    done = _run("eval", str(config), "--checkpoint", str(tmp_path / "missing"), cwd=tmp_path)
    assert done.returncode == 2 and "not a checkpoint folder" in done.stderr
    assert "Traceback" not in done.stderr
