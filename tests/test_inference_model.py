"""Checkpoints carry everything inference needs: class names and, for the learned stages, their
policy's shape or the network they act on, so a ``final/`` folder copied alone labels from any
working directory exactly as in its run; a checkpoint of an older videofocus fails in one line
naming what its meta lacks, and a model without names says so on stderr."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from videofocus.artifacts.checkpoint import META_FILE, CheckpointError
from videofocus.config import load_config
from videofocus.data.manifest import read_classes
from videofocus.evaluation.evaluate import evaluate_checkpoint
from videofocus.inference.model import load_inference_model
from videofocus.runtime import torch_threads
from videofocus.train.pipeline import run_stages


@pytest.fixture(scope="module")
def trained(tiny_data, tiny_config, tmp_path_factory):
    """``warmup -> policy -> finetune`` trained the way users train: from a project folder whose
    config names ``data`` and ``runs`` relative to it. Returns (project folder, class names)."""
    project = tmp_path_factory.mktemp("project")
    shutil.copytree(tiny_data, project / "data")
    config = tiny_config.write(
        project / "tiny.yaml", "data", "runs", training=True, ppo=True, name="portable"
    )
    with pytest.MonkeyPatch.context() as mp, torch_threads(1):
        mp.chdir(project)
        run_stages(load_config(config), ["all"], progress=False)
    return project, read_classes(project / "data" / "classes.txt")


def _label(checkpoint: Path, videos: Path, out: Path, cwd: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "videofocus.cli", "label", str(videos), "--checkpoint"]
    cmd += [str(checkpoint), "--out", str(out), "--workers", "0", "--no-progress"]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=180)


def _videos(project: Path, folder: Path) -> Path:
    """Three of the project's videos in a folder of their own (no classes file beside them)."""
    folder.mkdir()
    for video in sorted((project / "data" / "videos").glob("*.mp4"))[:3]:
        shutil.copy(video, folder / video.name)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["finetune", "policy"])
def test_a_checkpoint_copied_alone_labels_with_the_real_names(trained, tmp_path, stage) -> None:
    project, names = trained
    copied = tmp_path / "elsewhere" / "model"
    shutil.copytree(project / "runs" / stage / "final", copied)
    third = tmp_path / "third"
    third.mkdir()
    videos = _videos(project, tmp_path / "videos")

    done = _label(copied, videos, tmp_path / "labels.jsonl", cwd=third)
    in_run = _label(project / "runs" / stage / "final", videos, tmp_path / "run.jsonl", project)

    assert done.returncode == in_run.returncode == 0, done.stderr + in_run.stderr
    assert "WARNING" not in done.stderr
    rows = [json.loads(line) for line in (tmp_path / "labels.jsonl").open()]
    assert len(rows) == 3 and all(r["status"] == "ok" for r in rows)
    for row in rows:
        assert row["labels"] == [names[i] for i in row["label_ids"]]
        assert set(row["labels"]) == set(names)  # top-3 of 3 classes: every real name
    # identical to labelling with the checkpoint where its run left it
    same = ("id", "labels", "label_ids", "scores", "exit_step", "frames_read", "gmacs")
    reference = [json.loads(line) for line in (tmp_path / "run.jsonl").open()]
    assert [{k: r[k] for k in same} for r in rows] == [{k: r[k] for k in same} for r in reference]


def test_a_copied_learned_checkpoint_evaluates_as_in_its_run(trained, tmp_path) -> None:
    project, _ = trained
    cfg = load_config(project / "tiny.yaml")
    with pytest.MonkeyPatch.context() as mp, torch_threads(1):
        mp.chdir(project)  # the config's relative data paths
        for stage in ("finetune", "policy"):
            copied = shutil.copytree(project / "runs" / stage / "final", tmp_path / stage)
            alone = evaluate_checkpoint(cfg, copied, batch_size=2)
            in_run = evaluate_checkpoint(cfg, project / "runs" / stage / "final", batch_size=2)
            for key in ("videos", "top1", "top5", "map", "gmacs_per_video"):
                assert alone[key] == in_run[key], (stage, key)
            assert alone["method"] == in_run["method"] == "recurrent_ppo"


def _without(meta_path: Path, key: str, value: object = ...) -> None:
    """Rewrite a ``meta.json`` without ``key`` (or with ``value`` for it)."""
    meta = json.loads(meta_path.read_text())
    if value is ...:
        del meta[key]
    else:
        meta[key] = value
    meta_path.write_text(json.dumps(meta))


@pytest.mark.parametrize(
    ("stage", "key"),
    [("warmup", "class_names"), ("finetune", "policy"), ("policy", "config")],
)
def test_an_older_checkpoint_fails_naming_what_it_lacks(trained, tmp_path, stage, key) -> None:
    project, _ = trained
    old = shutil.copytree(project / "runs" / stage / "final", tmp_path / "old")
    _without(old / META_FILE, key)
    with pytest.raises(CheckpointError) as caught:
        load_inference_model(old)
    message = str(caught.value)
    assert message.startswith(str(old / META_FILE)) and f"no {key!r}" in message
    assert "\n" not in message


def test_a_policy_checkpoint_without_its_network_says_so(trained, tmp_path) -> None:
    from safetensors.torch import load_file, save_file

    project, _ = trained
    old = shutil.copytree(project / "runs" / "policy" / "final", tmp_path / "old")
    state = load_file(str(old / "model.safetensors"))
    save_file(
        {k: v for k, v in state.items() if not k.startswith("focusnet.")},
        str(old / "model.safetensors"),
    )
    with pytest.raises(CheckpointError, match="no focusnet.* weights"):
        load_inference_model(old)


def test_no_class_names_recorded_is_said_on_stderr(trained, tmp_path, capsys) -> None:
    project, _ = trained
    unnamed = shutil.copytree(project / "runs" / "warmup" / "final", tmp_path / "unnamed")
    _without(unnamed / META_FILE, "class_names", None)  # training could not read the classes
    model = load_inference_model(unnamed)
    assert model.class_names == ["class_0", "class_1", "class_2"]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"WARNING: {unnamed} names none of its 3 classes")


def test_the_python_api_labels_as_the_command_does(trained, tmp_path, monkeypatch) -> None:
    import videofocus

    project, names = trained
    videos = sorted(_videos(project, tmp_path / "videos").iterdir())
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    labeler = videofocus.load(project / "runs" / "finetune" / "final", device="cpu")
    rows = labeler.label([*videos, broken], topk=2)
    assert labeler.class_names == names
    assert [r["id"] for r in rows] == [str(v) for v in [*videos, broken]]
    assert [r["status"] for r in rows] == ["ok"] * 3 + ["error"]
    done = _label(
        project / "runs" / "finetune" / "final", videos[0].parent, tmp_path / "l.jsonl", project
    )
    assert done.returncode == 0, done.stderr
    command = {Path(r["path"]).name: r for r in map(json.loads, (tmp_path / "l.jsonl").open())}
    for row in rows[:3]:
        same = command[Path(row["path"]).name]
        assert row["label_ids"] == same["label_ids"][:2] and row["gmacs"] == same["gmacs"]
    monkeypatch.chdir(project)  # the config's relative data folder
    net = videofocus.create_model("tiny.yaml")
    assert net.aggregator.num_classes == len(names)
