"""Tests of the backbone registry: builders, widths, pretrained weights from local files."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
import torchvision.models as tvm
from safetensors.torch import save_file
from torch.utils.flop_counter import FlopCounterMode

from videofocus.artifacts.factory import build_focusnet
from videofocus.config import load_config
from videofocus.models import backbones, dense_actions
from videofocus.models.backbones import (
    Backbone,
    PretrainedWeightsError,
    create_backbone,
    list_backbones,
    register_backbone,
)

TORCHVISION_WIDTHS = {
    "mobilenet_v2": 1280,
    "mobilenet_v3_small": 576,
    "mobilenet_v3_large": 960,
    "efficientnet_b0": 1280,
    "resnet18": 512,
    "resnet34": 512,
    "resnet50": 2048,
}


@pytest.mark.parametrize("name", sorted(TORCHVISION_WIDTHS))
def test_torchvision_backbone_builds_with_documented_width(name: str) -> None:
    backbone = create_backbone(name).eval()
    assert isinstance(backbone, Backbone)
    assert backbone.num_features == TORCHVISION_WIDTHS[name]
    with torch.no_grad():
        out = backbone.forward_features(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, TORCHVISION_WIDTHS[name], 2, 2)  # all are stride 32


@pytest.mark.parametrize(("name", "stride", "width"), [("tiny_cnn", 8, 32), ("tiny_resnet", 8, 64)])
def test_tiny_backbones(name: str, stride: int, width: int) -> None:
    backbone = create_backbone(name).eval()
    out = backbone.forward_features(torch.randn(3, 3, 32, 32))
    assert out.shape == (3, width, 32 // stride, 32 // stride)
    assert backbone.num_features == width


def test_tiny_cnn_is_cheap() -> None:
    backbone = create_backbone("tiny_cnn")
    with FlopCounterMode(display=False) as counter:
        backbone(torch.randn(1, 3, 32, 32))
    macs = counter.get_total_flops() / 2  # the counter reports 2 FLOPs per multiply-accumulate
    assert macs < 1e6


def test_tiny_cnn_custom_widths_and_strides() -> None:
    backbone = create_backbone("tiny_cnn", widths=(4, 12), strides=(1, 4))
    assert backbone.forward_features(torch.randn(1, 3, 16, 16)).shape == (1, 12, 4, 4)
    with pytest.raises(ValueError, match="same length"):
        create_backbone("tiny_cnn", widths=(4, 12), strides=(2,))


@pytest.mark.parametrize(
    ("name", "mult", "width"),
    [
        ("mobilenet_v2", 1.5, 1920),
        ("mobilenet_v3_small", 0.5, 288),
        ("mobilenet_v3_large", 0.5, 480),
        ("tiny_cnn", 2.0, 64),
        ("tiny_resnet", 0.5, 32),
    ],
)
def test_width_mult_changes_channels(name: str, mult: float, width: int) -> None:
    backbone = create_backbone(name, width_mult=mult).eval()
    assert backbone.num_features == width
    with torch.no_grad():
        assert backbone.forward_features(torch.randn(1, 3, 32, 32)).shape[1] == width


def test_width_mult_rejected_where_unsupported() -> None:
    with pytest.raises(TypeError, match="width_mult"):
        create_backbone("resnet18", width_mult=0.5)


def test_unknown_name_lists_registered() -> None:
    with pytest.raises(KeyError, match="tiny_cnn") as info:
        create_backbone("no_such_net")
    assert "no_such_net" in str(info.value)
    assert set(TORCHVISION_WIDTHS) <= set(list_backbones())


@pytest.mark.skipif(importlib.util.find_spec("timm") is not None, reason="timm is installed")
def test_timm_prefix_without_timm_says_what_to_install() -> None:
    with pytest.raises(KeyError, match="pip install timm"):
        create_backbone("timm/resnet18")


@pytest.mark.skipif(importlib.util.find_spec("timm") is None, reason="timm is not installed")
def test_timm_backbone_builds() -> None:
    backbone = create_backbone("timm/resnet18").eval()
    assert backbone.num_features == 512
    assert backbone.forward_features(torch.randn(1, 3, 64, 64)).shape == (1, 512, 2, 2)


def test_register_backbone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backbones, "_REGISTRY", backbones._REGISTRY.copy())

    @register_backbone("test_net")
    def tiny_net(width: int = 3) -> Backbone:
        return backbones.TinyCNN(widths=(width,), strides=(1,))

    assert create_backbone("test_net", width=5).num_features == 5
    with pytest.raises(ValueError, match="already registered"):
        register_backbone("test_net")(tiny_net)


def _randomised(backbone: Backbone) -> Backbone:
    """Random weights and BN statistics, so that a load that silently did nothing is caught."""
    torch.manual_seed(1)
    with torch.no_grad():
        for tensor in backbone.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand_like(tensor) + 0.5)
    return backbone.eval()


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_pretrained_round_trip(tmp_path, suffix: str) -> None:
    source = _randomised(create_backbone("tiny_resnet"))
    state = dict(source.state_dict())
    state["fc.weight"] = torch.randn(10, source.num_features)  # a classifier head to be dropped
    state["fc.bias"] = torch.randn(10)
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, path)
    loaded = create_backbone("tiny_resnet", pretrained=path).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), source(x), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("name", "build"),
    [("resnet18", tvm.resnet18), ("mobilenet_v3_small", tvm.mobilenet_v3_small)],
)
def test_torchvision_classification_checkpoint_loads(tmp_path, name, build) -> None:
    model = build(weights=None)
    path = tmp_path / "tv.pth"
    # a DDP prefix and a {"state_dict": ...} wrapper, as training scripts often save
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, path)
    backbone = create_backbone(name, pretrained=path)
    theirs = model.state_dict()
    for key, value in backbone.state_dict().items():
        torch.testing.assert_close(value, theirs[key], rtol=0, atol=0)


def test_pretrained_mismatch_lists_keys(tmp_path) -> None:
    state = dict(create_backbone("tiny_cnn").state_dict())
    state["extra.weight"] = torch.zeros(1)
    del state["features.0.0.weight"]
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    with pytest.raises(PretrainedWeightsError) as info:
        create_backbone("tiny_cnn", pretrained=path)
    message = str(info.value)
    assert "extra.weight" in message and "features.0.0.weight" in message and "bad.pt" in message


def test_pretrained_shape_mismatch_and_missing_file(tmp_path) -> None:
    path = tmp_path / "wide.pt"
    torch.save(create_backbone("tiny_cnn", width_mult=2.0).state_dict(), path)
    with pytest.raises(PretrainedWeightsError, match="size mismatch"):
        create_backbone("tiny_cnn", pretrained=path)
    with pytest.raises(PretrainedWeightsError, match="no such file"):
        create_backbone("tiny_cnn", pretrained=tmp_path / "absent.pt")


# The SCConv and SAR families of issue 15: registered, buildable wherever a backbone is named.
ISSUE_15 = ["tiny_resnet_scconv", "resnet50_scconv", "tiny_resnet_sar", "resnet50_sar"]
CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_issue_15_backbones_are_listed() -> None:
    assert set(ISSUE_15) <= set(list_backbones())


@pytest.mark.parametrize("name", ISSUE_15)
def test_issue_15_backbones_run_channels_last(name: str) -> None:
    torch.manual_seed(0)
    backbone = create_backbone(name).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out = backbone(x)
        backbone.to(memory_format=torch.channels_last)
        out_cl = backbone(x.contiguous(memory_format=torch.channels_last))
    stride = 8 if name.startswith("tiny") else 32
    assert out.shape == (2, backbone.num_features, 64 // stride, 64 // stride)
    torch.testing.assert_close(out_cl, out, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", [n for n in ISSUE_15 if n.startswith("tiny")])
@pytest.mark.parametrize("role", ["glance_backbone", "local_backbone"])
def test_issue_15_backbones_serve_the_tiny_config(name: str, role: str) -> None:
    cfg = load_config(CONFIGS / "synthetic_tiny.yaml", [f"model.{role}={name}"])
    torch.manual_seed(0)
    net = build_focusnet(cfg, num_classes=10).eval()
    frames = torch.randn(2, cfg.data.frames, 3, cfg.data.frame_size, cfg.data.frame_size)
    with torch.no_grad():
        out = net(frames, dense_actions(2, cfg.data.frames, 1))
    assert out.logits.shape == (2, cfg.data.frames, 10) and bool(out.logits.isfinite().all())
