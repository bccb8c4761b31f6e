"""The supervised loop: outputs on disk, exact resume, DDP equivalence, config errors."""

from __future__ import annotations

import json
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from videofocus.artifacts.checkpoint import load_checkpoint
from videofocus.artifacts.factory import build_dense_baseline
from videofocus.config import ConfigError, config_from_dict, config_to_dict
from videofocus.models.glimpse import random_glimpse_actions
from videofocus.models.sar import refinement_budget_loss
from videofocus.runtime import amp_precision, autocast_for
from videofocus.train import loop as train_loop
from videofocus.train.loop import run_supervised_stage
from videofocus.train.stages import create_stage, stage_reads


def tiny_config(data_root, out_dir, **train):
    return config_from_dict(
        {
            "name": "test",
            "data": {"root": str(data_root), "frames": 4, "frame_size": 48, "num_workers": 0},
            "model": {
                "glance_backbone": "tiny_cnn",
                "glance_resolution": 16,
                "local_backbone": "tiny_cnn",
                "options": [{"extent": 0.5, "resolution": 16}],
                "grid": 3,
                "hidden": 16,
            },
            "train": {
                "epochs": 2,
                "batch_size": 4,
                "out_dir": str(out_dir),
                "log_every": 1,
                "amp": "off",  # exact numbers below: not on whether this CPU has native bf16
                "optim": {"name": "adamw", "lr": 0.01},
                **train,
            },
        }
    )


def _weights(path):
    return load_checkpoint(path, load_trainer=False).model


def test_warmup_writes_config_metrics_tensorboard_and_checkpoints(tiny_data, tmp_path):
    cfg = tiny_config(tiny_data, tmp_path / "run")
    result = run_supervised_stage(cfg, create_stage("warmup", cfg), progress=False)
    stage_dir = tmp_path / "run" / "warmup"
    assert result.final_dir == stage_dir / "final"
    assert (stage_dir / "config.yaml").is_file()
    assert any((stage_dir / "tb").iterdir())
    lines = [json.loads(x) for x in (stage_dir / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == [0, 1]
    assert 0.0 <= lines[-1]["val/top1"] <= 1.0 and lines[-1]["train/loss"] > 0
    meta = load_checkpoint(stage_dir / "final", load_trainer=False).meta
    assert meta.stage == "warmup" and meta.num_classes == 3 and meta.policy is None
    assert meta.config["train"]["epochs"] == 2 and meta.class_names is not None
    assert meta.preprocessing["frame_size"] == cfg.data.frame_size
    # 12 training videos, batch 4, drop_last -> 3 optimiser steps per epoch
    assert lines[-1]["step"] == 6


def test_resume_after_a_crash_equals_an_uninterrupted_run(tiny_data, tmp_path, monkeypatch):
    cfg = tiny_config(tiny_data, tmp_path / "straight")
    run_supervised_stage(cfg, create_stage("warmup", cfg), progress=False)

    crashed = tiny_config(tiny_data, tmp_path / "crashed")
    real_save = train_loop.save_checkpoint

    def save_then_die(path, *args, **kwargs):
        real_save(path, *args, **kwargs)
        raise KeyboardInterrupt  # the process dies right after the epoch-0 checkpoint

    monkeypatch.setattr(train_loop, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_supervised_stage(crashed, create_stage("warmup", crashed), progress=False)
    monkeypatch.setattr(train_loop, "save_checkpoint", real_save)
    assert not (tmp_path / "crashed" / "warmup" / "final").exists()

    run_supervised_stage(crashed, create_stage("warmup", crashed), resume=True, progress=False)
    a = _weights(tmp_path / "straight" / "warmup" / "final")
    b = _weights(tmp_path / "crashed" / "warmup" / "final")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_resume_of_a_finished_stage_does_not_train_again(tiny_data, tmp_path):
    cfg = tiny_config(tiny_data, tmp_path / "run", epochs=1)
    run_supervised_stage(cfg, create_stage("glance_only", cfg), progress=False)
    before = (tmp_path / "run" / "glance_only" / "metrics.jsonl").read_text()
    again = run_supervised_stage(cfg, create_stage("glance_only", cfg), resume=True, progress=False)
    assert again.seconds == 0.0
    assert (tmp_path / "run" / "glance_only" / "metrics.jsonl").read_text() == before


def test_random_glimpses_depend_on_the_video_not_the_batch():
    ids = torch.tensor([5, 9, 2])
    together = random_glimpse_actions(2, 7, ids, 6, seed=0, epoch=1)
    alone = torch.cat([random_glimpse_actions(2, 7, ids[i : i + 1], 6, 0, 1) for i in range(3)])
    assert torch.equal(together, alone)
    assert together[..., 0].min() >= 1 and together[..., 0].max() <= 2
    assert together[..., 1:].max() < 7
    assert not torch.equal(together, random_glimpse_actions(2, 7, ids, 6, seed=0, epoch=2))


def test_warmup_skip_rate_skips_that_share_and_keeps_the_other_glimpses():
    ids = torch.arange(400)
    plain = random_glimpse_actions(3, 7, ids, 8, seed=0, epoch=1)
    skipping = random_glimpse_actions(3, 7, ids, 8, seed=0, epoch=1, skip_rate=0.25)
    skipped = skipping[..., 0] == 0
    assert abs(skipped.float().mean().item() - 0.25) < 0.02
    # the glimpses that remain are exactly those without skipping: same cells, same options
    assert torch.equal(skipping[~skipped], plain[~skipped])
    assert torch.equal(skipping[..., 1:], plain[..., 1:])


def test_lr_mult_naming_an_unknown_module_is_an_error(tiny_data, tmp_path):
    cfg = tiny_config(tiny_data, tmp_path / "run", optim={"lr_mult": {"backbone": 0.1}})
    with pytest.raises(ValueError, match=r"lr_mult names unknown modules \['backbone'\]"):
        run_supervised_stage(cfg, create_stage("warmup", cfg), progress=False)


def test_batch_not_divisible_by_accumulation_is_an_error(tiny_data, tmp_path):
    with pytest.raises((ConfigError, ValueError), match="divisible"):
        cfg = tiny_config(tiny_data, tmp_path / "run", batch_size=6, optim={"grad_accum": 4})
        run_supervised_stage(cfg, create_stage("warmup", cfg), progress=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, data_root: str, out_dir: str) -> None:
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    cfg = tiny_config(data_root, out_dir, freeze_bn=True)
    try:
        run_supervised_stage(cfg, create_stage("warmup", cfg), progress=False)
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_processes_equal_one_process_with_the_same_global_batch(tiny_data, tmp_path):
    single = tiny_config(tiny_data, tmp_path / "single", freeze_bn=True)
    run_supervised_stage(single, create_stage("warmup", single), progress=False)
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tiny_data), str(tmp_path / "ddp")), nprocs=2)
    a = _weights(tmp_path / "single" / "warmup" / "final")
    b = _weights(tmp_path / "ddp" / "warmup" / "final")
    changed = 0
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5, msg=key)
    init = tiny_config(tiny_data, tmp_path / "x")
    torch.manual_seed(init.train.seed)
    fresh = create_stage("warmup", init).build_model(init, 3).state_dict()
    changed = sum(not torch.equal(fresh[k], a[k]) for k in a if a[k].is_floating_point())
    assert changed > 10  # training really moved the weights the two runs agree on


def test_warmup_starts_from_the_dense_baselines_encoders(tiny_data, tmp_path):
    from videofocus.train.pipeline import expand_stages

    cfg = tiny_config(tiny_data, tmp_path / "run", epochs=1, warmup_init="dense")
    assert expand_stages(["all"], cfg) == ["dense", "warmup", "policy", "finetune"]
    with pytest.raises(FileNotFoundError, match=r"warmup_init: .*dense/final does not exist"):
        create_stage("warmup", cfg).build_model(cfg, 3)
    run_supervised_stage(cfg, create_stage("dense", cfg), progress=False)
    dense = _weights(tmp_path / "run" / "dense" / "final")
    torch.manual_seed(cfg.train.seed)
    warm = create_stage("warmup", cfg).build_model(cfg, 3).state_dict()
    encoders = [k for k in warm if k.startswith(("global_encoder.", "local_encoder."))]
    assert encoders and all(torch.equal(warm[k], dense[k]) for k in encoders)
    # the aggregator is the warm-up's own: nothing outside the encoders was copied
    fresh_cfg = tiny_config(tiny_data, tmp_path / "other", epochs=1)
    torch.manual_seed(fresh_cfg.train.seed)
    fresh = create_stage("warmup", fresh_cfg).build_model(fresh_cfg, 3).state_dict()
    others = [k for k in warm if k.startswith("aggregator.")]
    assert all(torch.equal(warm[k], fresh[k]) for k in others)


@pytest.mark.usefixtures("one_thread")
def test_gradient_accumulation_equals_one_big_batch(tiny_data, tmp_path):
    # BatchNorm frozen: with live batch statistics two half-batches differ from one batch anyway.
    # One thread, as the other exact-number tests: at two threads the full suite once failed it
    # after the encoders went channels-last (last-bit differences of the split sums, which
    # AdamW's normalised steps can amplify past the tolerance).
    whole = tiny_config(tiny_data, tmp_path / "whole", epochs=1, freeze_bn=True)
    run_supervised_stage(whole, create_stage("warmup", whole), progress=False)
    halves = tiny_config(
        tiny_data,
        tmp_path / "halves",
        epochs=1,
        freeze_bn=True,
        optim={"name": "adamw", "lr": 0.01, "grad_accum": 2},
    )
    run_supervised_stage(halves, create_stage("warmup", halves), progress=False)
    a = _weights(tmp_path / "whole" / "warmup" / "final")
    b = _weights(tmp_path / "halves" / "warmup" / "final")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5, msg=key)


@pytest.mark.parametrize(
    "override",
    ["model.grid=5", "model.options=[{extent: 0.25, resolution: 16}]", "model.policy_hidden=7"],
)
def test_the_dense_baseline_reads_no_glimpse_field(tiny_data, override) -> None:
    # why stage_reads leaves these out of the dense stage's identity: its weights are the same
    base = tiny_config(tiny_data, None)
    other = config_from_dict(config_to_dict(base), [override])
    assert stage_reads("dense", base) == stage_reads("dense", other)
    assert stage_reads("warmup", base) != stage_reads("warmup", other)
    torch.manual_seed(0)
    a = build_dense_baseline(base, 3).state_dict()
    torch.manual_seed(0)
    b = build_dense_baseline(other, 3).state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("native", [True, False])
def test_amp_auto_is_bf16_exactly_where_the_cpu_has_native_bf16(native, monkeypatch) -> None:
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    cpu = torch.device("cpu")
    assert amp_precision(cpu, "auto") == ("bf16" if native else "fp32")
    assert (amp_precision(cpu, "bf16"), amp_precision(cpu, "off")) == ("bf16", "fp32")
    conv = torch.nn.Conv2d(3, 4, 3)
    with autocast_for(cpu, "auto"):
        out = conv(torch.randn(1, 3, 8, 8))
    assert out.dtype == (torch.bfloat16 if native else torch.float32)


def test_stage_identity_records_the_precision_the_stage_trains_in(tiny_data, monkeypatch) -> None:
    # fp32 keeps the identity ("auto") every stage had before auto could mean bf16 on a CPU, so
    # recorded runs keep their keys under train.amp=off; bf16, asked for or resolved, is another
    # stage
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)

    def reads(amp: str, native: bool) -> dict:
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native)
        cfg = config_from_dict(config_to_dict(tiny_config(tiny_data, None)), [f"train.amp={amp}"])
        return stage_reads("warmup", cfg)

    fp32 = reads("auto", False)
    assert fp32["train"]["amp"] == "auto"
    assert reads("off", True) == fp32 and reads("off", False) == fp32
    assert reads("auto", True) == reads("bf16", False) == reads("bf16", True) != fp32
    assert reads("auto", True)["train"]["amp"] == "bf16"
    # the policy stage reads the precision of the episodes' glimpse encoder, from bf16 only
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    base = config_from_dict(config_to_dict(tiny_config(tiny_data, None)), ["train.amp=auto"])
    assert "train" not in stage_reads("policy", base)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert stage_reads("policy", base)["train"] == {"amp": "bf16"}


def test_sar_local_backbone_adds_its_budget_loss(tiny_data, tmp_path, monkeypatch):
    cfg = tiny_config(tiny_data, tmp_path / "run", epochs=1)
    cfg = config_from_dict(
        {
            **config_to_dict(cfg),
            "model": {**config_to_dict(cfg)["model"], "local_backbone": "tiny_resnet_sar"},
        }
    )
    terms = []

    def recorded(model):
        term = refinement_budget_loss(model)
        terms.append(term)
        return term

    monkeypatch.setattr(train_loop, "refinement_budget_loss", recorded)
    run_supervised_stage(cfg, create_stage("warmup", cfg), progress=False)
    assert len(terms) == 3  # one per training batch
    assert all(t is not None and t.requires_grad and float(t.detach()) >= 0 for t in terms)
