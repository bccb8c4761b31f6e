"""Checkpoint folders: round trip, weights_only loading, atomic replacement, RNG capture."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from videofocus.artifacts.checkpoint import (
    META_FILE,
    CheckpointError,
    CheckpointMeta,
    capture_rng_state,
    load_checkpoint,
    load_model_state,
    restore_rng_state,
    save_checkpoint,
)


def _meta(**fields) -> CheckpointMeta:
    base = {"stage": "warmup", "num_classes": 3, "class_names": ["a", "b", "c"], "config": {}}
    return CheckpointMeta(**{**base, "preprocessing": {"frame_size": 8}, **fields})


def _model_and_optimizer():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 3)
    )
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(torch.randn(5, 4)).sum().backward()
    opt.step()
    return model, opt


def test_round_trip_restores_weights_optimizer_and_meta(tmp_path):
    model, opt = _model_and_optimizer()
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)
    opt.step()
    sched.step()
    meta = _meta(epoch=3, config={"train": {"lr": 0.01}})
    trainer = {
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "rng": capture_rng_state(),
        "step": 17,
    }
    path = save_checkpoint(tmp_path / "ckpt", model.state_dict(), meta, trainer)
    assert sorted(p.name for p in path.iterdir()) == [
        "meta.json",
        "model.safetensors",
        "trainer.pt",
    ]

    ckpt = load_checkpoint(path)
    assert ckpt.meta == meta
    fresh, fresh_opt = _model_and_optimizer()
    fresh.load_state_dict(ckpt.model)
    fresh_opt.load_state_dict(ckpt.trainer["optimizer"])
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert ckpt.trainer["step"] == 17
    # the trainer file obeys torch.load's safe default on its own
    torch.load(path / "trainer.pt", weights_only=True)


def test_rng_state_round_trip_reproduces_draws():
    state = capture_rng_state()
    first = (torch.rand(3), np.random.rand(3), random.random())
    restore_rng_state(state)
    second = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert first[2] == second[2]


def test_overwrite_is_atomic_and_leaves_no_temp_folders(tmp_path):
    model, _ = _model_and_optimizer()
    save_checkpoint(tmp_path / "last", model.state_dict(), _meta(epoch=1))
    save_checkpoint(tmp_path / "last", model.state_dict(), _meta(epoch=2))
    assert [p.name for p in tmp_path.iterdir()] == ["last"]
    assert load_checkpoint(tmp_path / "last").meta.epoch == 2


def test_failed_save_keeps_previous_checkpoint(tmp_path):
    model, _ = _model_and_optimizer()
    save_checkpoint(tmp_path / "last", model.state_dict(), _meta(epoch=1))
    with pytest.raises(TypeError):
        save_checkpoint(tmp_path / "last", model.state_dict(), _meta(epoch=object()))
    assert [p.name for p in tmp_path.iterdir()] == ["last"]
    assert load_checkpoint(tmp_path / "last").meta.epoch == 1


def test_a_checkpoint_of_an_older_videofocus_names_what_its_meta_lacks(tmp_path):
    model, _ = _model_and_optimizer()
    path = save_checkpoint(tmp_path / "ckpt", model.state_dict(), _meta(stage="finetune"))
    old = json.loads((path / META_FILE).read_text())
    del old["policy"], old["class_names"]
    (path / META_FILE).write_text(json.dumps(old))
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert message.startswith(str(path / META_FILE)) and "'class_names'" in message
    assert "older videofocus" in message and "\n" not in message
    old["class_names"] = ["a", "b", "c"]
    (path / META_FILE).write_text(json.dumps(old))
    with pytest.raises(CheckpointError, match="no 'policy'"):  # a finetune holds its policy
        load_checkpoint(path)
    old["policy"], old["surprise"] = None, 1
    (path / META_FILE).write_text(json.dumps(old))
    with pytest.raises(CheckpointError, match="unknown key 'surprise'"):
        load_checkpoint(path)


def test_missing_or_corrupt_checkpoint_is_named(tmp_path):
    with pytest.raises(CheckpointError, match="missing model.safetensors"):
        load_checkpoint(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"not safetensors")
    (tmp_path / "meta.json").write_text("{}")
    with pytest.raises(CheckpointError, match="unreadable checkpoint"):
        load_checkpoint(tmp_path)


def test_weights_of_another_config_fail_in_one_line_naming_key_and_shapes(tmp_path):
    trained = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 3))
    save_checkpoint(tmp_path / "ckpt", trained.state_dict(), _meta())
    state = load_checkpoint(tmp_path / "ckpt").model
    wider = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Linear(16, 3))
    with pytest.raises(CheckpointError) as caught:
        load_model_state(wider, state, tmp_path / "ckpt")
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{tmp_path / 'ckpt'}: ")
    assert "0.weight is [8, 4] in the checkpoint but [16, 4] in the model" in message
    assert "(2 more keys differ)" in message
    with pytest.raises(CheckpointError, match="2.weight is missing from the checkpoint"):
        load_model_state(torch.nn.Sequential(*trained, torch.nn.Linear(3, 3)), state, "c")
    same = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 3))
    load_model_state(same, state, "c")
    assert torch.equal(same[0].weight, trained[0].weight)
