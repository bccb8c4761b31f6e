"""Tests of the config -> network factory on a small config (tiny backbones, 32 px frames)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from videofocus.artifacts.factory import (
    build_dense_baseline,
    build_focusnet,
    build_policy_network,
    glance_map_hw,
    policy_action_dims,
    resolve_num_classes,
)
from videofocus.artifacts.learned_policy import network_from_spec, network_spec
from videofocus.config import ConfigError, config_from_dict
from videofocus.models import GlimpseOption, dense_actions, skip_actions
from videofocus.models.backbones import create_backbone
from videofocus.policy.network import progress_dim

B, T, SIZE, CLASSES = 2, 3, 32, 5


def _cfg(tmp_path: Path, **model):
    data = {"root": str(tmp_path), "num_classes": CLASSES, "frames": T, "frame_size": SIZE}
    model = {
        "glance_backbone": "tiny_cnn",
        "glance_resolution": 24,
        "glance_width_mult": 0.5,  # widths (8, 16, 32) -> (4, 8, 16)
        "local_backbone": "tiny_cnn",
        "local_width_mult": 2.0,  # -> (16, 32, 64)
        "options": [
            {"extent": 0.5, "resolution": 16},
            {"extent": 1.0, "resolution": 16, "backbone": "tiny_resnet"},  # AR-Net style
        ],
        "local_feature_dim": 40,
        "grid": 3,
        "hidden": 12,
        "policy_channels": 3,
        "policy_hidden": 10,
        **model,
    }
    return config_from_dict({"data": data, "model": model, "policy": {"lstm_hidden": 6}})


def _frames() -> torch.Tensor:
    return torch.randn(B, T, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))


def test_build_focusnet_follows_the_config(tmp_path):
    net = build_focusnet(_cfg(tmp_path)).eval()
    assert net.global_encoder.num_features == 16  # glance width_mult honoured
    assert net.global_encoder.resolution == 24
    assert net.options == (GlimpseOption(0.5, 16), GlimpseOption(1.0, 16, "tiny_resnet"))
    assert net.local_encoder.backbone_names == ["tiny_cnn", "tiny_resnet"]
    assert net.local_encoder.backbone(0).num_features == 64  # local width_mult honoured
    assert net.local_encoder.backbone(1).num_features == 128
    assert net.local_encoder.feature_dim == 40 and net.grid == 3
    assert net.aggregator.gru.hidden_size == 12 and net.aggregator.num_classes == CLASSES
    actions = torch.tensor([[[1, 0, 2], [2, 1, 1], [0, 0, 0]]] * B)
    out = net(_frames(), actions)
    assert out.logits.shape == (B, T, CLASSES)
    assert out.option_index[0].tolist() == [0, 1, -1]


def test_num_classes_argument_and_classes_file(tmp_path):
    assert build_focusnet(_cfg(tmp_path), num_classes=7).aggregator.num_classes == 7
    cfg = config_from_dict({"data": {"root": str(tmp_path), "classes": "classes.txt"}})
    with pytest.raises(ConfigError, match="data.num_classes"):
        resolve_num_classes(cfg)
    (tmp_path / "classes.txt").write_text("a\nb\nc\n")
    assert resolve_num_classes(cfg) == 3


def test_pretrained_paths_pass_through(tmp_path):
    torch.manual_seed(1)
    glance = create_backbone("tiny_cnn", width_mult=0.5)
    local = create_backbone("tiny_cnn", width_mult=2.0)
    torch.save(glance.state_dict(), tmp_path / "glance.pt")
    torch.save(local.state_dict(), tmp_path / "local.pt")
    cfg = _cfg(
        tmp_path,
        glance_pretrained=str(tmp_path / "glance.pt"),
        local_pretrained=str(tmp_path / "local.pt"),
    )
    net = build_focusnet(cfg)
    for ours, theirs in (
        (net.global_encoder.backbone, glance),
        (net.local_encoder.backbone(0), local),
    ):
        for key, value in theirs.state_dict().items():
            assert torch.equal(ours.state_dict()[key], value), key


def test_dense_baseline_sees_whole_frames(tmp_path):
    cfg = _cfg(tmp_path)
    dense = build_dense_baseline(cfg).eval()
    assert dense.options == (GlimpseOption(1.0, SIZE),)
    assert dense.local_encoder.backbone_names == ["tiny_cnn"]
    assert dense.global_encoder.num_features == build_focusnet(cfg).global_encoder.num_features
    out = dense(_frames(), dense_actions(B, T))
    assert out.logits.shape == (B, T, CLASSES)
    assert bool((out.option_index == 0).all())
    assert dense(_frames(), skip_actions(B, T)).logits.shape == (B, T, CLASSES)


def test_policy_network_fits_the_glance_maps(tmp_path):
    cfg = _cfg(tmp_path)
    net = build_focusnet(cfg).eval()
    hw = glance_map_hw(net)
    assert hw == (3, 3)  # 24 px through three stride-2 blocks
    policy = build_policy_network(cfg, net.global_encoder.num_features, hw).eval()
    dims = policy_action_dims(cfg)
    assert dims == (3, 3, 3) and policy.action_dims == dims
    assert policy.extras_dim == progress_dim(dims)
    assert policy.features_extractor.reduce.out_channels == 3
    assert policy.features_extractor.features_dim == 10 and policy.hidden == 6
    actions = policy.rollout(net.glance(_frames()).maps)
    assert actions.shape == (B, T, 3)
    assert net(_frames(), actions).logits.shape == (B, T, CLASSES)  # actions are valid
    # without the previous action observed: a step fraction only, kept through the saved spec
    cfg.policy.observe_previous_action = False
    memoryless = build_policy_network(cfg, net.global_encoder.num_features, hw)
    assert memoryless.extras_dim == 1 and not memoryless.observes_previous_action
    rebuilt = network_from_spec(network_spec(memoryless))
    assert rebuilt.extras_dim == 1 and not rebuilt.observes_previous_action
    assert rebuilt.rollout(net.glance(_frames()).maps).shape == (B, T, 3)


def test_local_feature_dim_is_validated(tmp_path):
    with pytest.raises(ConfigError, match="model.local_feature_dim"):
        _cfg(tmp_path, local_feature_dim=0)
    # null keeps the backbones' own width, which must then agree
    net = build_focusnet(
        _cfg(tmp_path, local_feature_dim=None, options=[{"extent": 0.5, "resolution": 16}])
    )
    assert net.local_encoder.feature_dim == 64
