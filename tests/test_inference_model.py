"""Checkpoints carry everything inference needs: class names and, for the learned stages, their
policy's shape or the network they act on, so a ``final/`` folder copied alone labels from any
working directory; older checkpoints (no names, no policy shape) still work where their run is,
and a model without names says so on stderr."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from videofocus.config import load_config
from videofocus.data.manifest import read_classes
from videofocus.engine.checkpoint import META_FILE
from videofocus.engine.distributed import torch_threads
from videofocus.engine.evaluate import evaluate_checkpoint
from videofocus.engine.inference_model import load_inference_model
from videofocus.engine.pipeline import run_stages


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

    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stderr
    rows = [json.loads(line) for line in (tmp_path / "labels.jsonl").open()]
    assert len(rows) == 3 and all(r["status"] == "ok" for r in rows)
    for row in rows:
        assert row["labels"] == [names[i] for i in row["label_ids"]]
        assert set(row["labels"]) == set(names)  # top-3 of 3 classes: every real name


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


def _legacy_copy(project: Path, root: Path) -> Path:
    """The project as written before checkpoints were self-contained: no class names in any
    meta, no policy shape in the finetune meta (so it reads ``../policy/final``), no warm-up
    copy in the policy checkpoint (so it reads ``../warmup/final``)."""
    shutil.copytree(project / "data", root / "data")
    shutil.copytree(project / "runs", root / "runs")
    for stage in ("warmup", "policy", "finetune"):
        meta_path = root / "runs" / stage / "final" / META_FILE
        meta = json.loads(meta_path.read_text())
        del meta["class_names"]
        if stage == "finetune":
            for key in ("algo", "network", "projection"):
                del meta[key]
        meta_path.write_text(json.dumps(meta))
    from safetensors.torch import load_file, save_file

    weights = root / "runs" / "policy" / "final" / "model.safetensors"
    state = load_file(str(weights))
    save_file({k: v for k, v in state.items() if not k.startswith("focusnet.")}, str(weights))
    return root


def test_older_checkpoints_find_their_run_and_classes(trained, tmp_path, monkeypatch, capsys):
    project, names = trained
    legacy = _legacy_copy(project, tmp_path / "legacy")
    third = tmp_path / "third"
    third.mkdir()
    monkeypatch.chdir(third)  # data/classes.txt is not here: found from the checkpoint's place
    for stage in ("finetune", "policy"):
        old = load_inference_model(legacy / "runs" / stage / "final")
        new = load_inference_model(project / "runs" / stage / "final")
        assert old.class_names == names and old.method == new.method == "recurrent_ppo"
        old_weights, new_weights = old.net.state_dict(), new.net.state_dict()
        assert list(old_weights) == list(new_weights)
        assert all(old_weights[k].equal(v) for k, v in new_weights.items())
    assert "WARNING" not in capsys.readouterr().err


def test_no_class_names_anywhere_is_said_on_stderr(trained, tmp_path, monkeypatch, capsys):
    project, _ = trained
    legacy = _legacy_copy(project, tmp_path / "legacy")
    (legacy / "data" / "classes.txt").unlink()
    monkeypatch.chdir(tmp_path)
    model = load_inference_model(legacy / "runs" / "warmup" / "final")
    assert model.class_names == ["class_0", "class_1", "class_2"]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("WARNING: no names for the 3 classes")
    assert "meta.json class_names" in err[0]
    assert str(legacy / "data" / "classes.txt") in err[0]
