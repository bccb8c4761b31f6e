"""Tests of cost accounting: measured MACs, per-video arithmetic, paper-scale configs.

Published per-video costs used below (the papers' "GFLOPs" are multiply-accumulates):

- AdaFocus (MobileNetV2 glance at 224 + ResNet-50 on a p x p patch, 16 frames, GRU(1024)) on
  ActivityNet: 17.6 / 27.0 / 39.0 GFLOPs for p = 96 / 128 / 160, from the table of the official
  AdaFocusV2 code,
  https://github.com/LeapLabTHU/AdaFocusV2/blob/main/Experiments%20on%20ActivityNet,%20FCVID%20and%20Mini-Kinetics/README.md
  (AdaFocus V1, ICCV 2021, https://arxiv.org/abs/2105.03245, reports 26.6 for p = 128; its V2
  successor's policy is a little heavier, hence 27.0).
- ResNet-50 at 224 px: 4.09 GFLOPs, the torchvision model table,
  https://pytorch.org/vision/stable/models.html
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from videofocus.cli import main
from videofocus.config import ConfigError, load_config
from videofocus.evaluation.flops_report import flops_report, format_report, run_flops
from videofocus.models import GlimpseOption, create_focusnet, dense_actions, skip_actions
from videofocus.models.cost import CostTable, measure_macs
from videofocus.policy.heuristics import LearnedGlimpsePolicy
from videofocus.policy.network import GlanceMapEncoder, RecurrentGlimpsePolicy, progress_dim
from videofocus.policy.observation import GlanceProjection

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_conv_and_linear_macs_by_hand():
    conv = nn.Conv2d(3, 8, kernel_size=3, padding=1)
    # every output value (8 x 10 x 10) is a sum over 3 channels x 3 x 3 taps
    assert measure_macs(conv, torch.zeros(1, 3, 10, 10)) == 8 * 10 * 10 * 3 * 3 * 3
    depthwise = nn.Conv2d(8, 8, kernel_size=3, padding=1, groups=8, bias=False)
    assert measure_macs(depthwise, torch.zeros(2, 8, 5, 5)) == 2 * 8 * 5 * 5 * 3 * 3
    assert measure_macs(nn.Linear(20, 7), torch.zeros(4, 20)) == 4 * 20 * 7
    assert measure_macs(nn.ReLU(), torch.zeros(4, 20)) == 0  # element-wise ops are not MACs


def test_recurrent_layers_are_counted():
    # Fused CPU/GPU RNN kernels are invisible to FlopCounterMode; measure_macs turns them off.
    x = torch.zeros(1, 1, 10)
    assert measure_macs(nn.LSTM(10, 20), x) == 4 * 20 * (10 + 20)
    assert measure_macs(nn.GRU(10, 20), x) == 3 * 20 * (10 + 20)


def test_meta_device_counts_the_same():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))
    with torch.device("meta"):
        meta = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))
    expected = 4 * 36 * 27 + 144 * 5
    assert measure_macs(net, torch.zeros(1, 3, 8, 8)) == expected
    assert measure_macs(meta, torch.zeros(1, 3, 8, 8, device="meta")) == expected


TABLE = CostTable(glance=10, policy=2, local=(100, 50), aggregator=3)


def test_per_video_arithmetic():
    actions = torch.zeros(1, 4, 3, dtype=torch.long)
    actions[0, :, 0] = torch.tensor([1, 1, 2, 0])  # two glimpses of option 1, one of 2, a skip
    assert TABLE.per_step == 15
    assert TABLE.usage_from_actions(actions).item() == pytest.approx((4 * 15 + 2 * 100 + 50) / 1e9)
    assert TABLE.usage_from_actions(dense_actions(1, 16, 2)).item() == pytest.approx(16 * 65 / 1e9)
    assert TABLE.usage_from_actions(skip_actions(1, 16)).item() == pytest.approx(16 * 15 / 1e9)


def test_usage_from_actions_with_skips_and_exits():
    actions = torch.zeros(2, 4, 3, dtype=torch.long)
    actions[0, :, 0] = torch.tensor([1, 0, 2, 1])
    actions[1, :, 0] = torch.tensor([2, 2, 0, 1])
    full = TABLE.usage_from_actions(actions)
    assert full.dtype == torch.float64
    assert full.tolist() == pytest.approx([(4 * 15 + 250) / 1e9, (4 * 15 + 200) / 1e9])
    # video 1 exits after reading 2 steps: it pays 2 steps and its first two glimpses only
    exited = TABLE.usage_from_actions(actions, torch.tensor([4, 2]))
    assert exited.tolist() == pytest.approx([(4 * 15 + 250) / 1e9, (2 * 15 + 100) / 1e9])
    assert exited[1] == pytest.approx(TABLE.usage_from_actions(dense_actions(1, 2, 2)).item())
    with pytest.raises(ValueError, match="exit_steps"):
        TABLE.usage_from_actions(actions, torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="option out of range"):
        TABLE.usage_from_actions(actions + 3)


def test_cost_table_accounts_for_a_whole_forward_pass():
    torch.manual_seed(0)
    options = (GlimpseOption(0.5, 16), GlimpseOption(1.0, 32, backbone="tiny_resnet"))
    net = create_focusnet(5, "tiny_cnn", 24, options, "tiny_cnn", 3, 12, local_feature_dim=20)
    encoder = GlanceMapEncoder(4, (3, 3), 4, 16, extras_dim=progress_dim((3, 3, 3)))
    network = RecurrentGlimpsePolicy(encoder, 8, (3, 3, 3))
    policy = LearnedGlimpsePolicy(options, 3, GlanceProjection(32, 4), network)
    table = CostTable.from_model(net, 40, policy)
    assert net.training  # measured in eval mode, handed back as it came
    net.eval()
    assert table.glance == measure_macs(net.global_encoder, torch.zeros(1, 3, 40, 40)) > 0
    assert table.local[1] == measure_macs(net.local_encoder.pooled, torch.zeros(1, 3, 32, 32), 1)
    assert table.policy > 4 * 8 * (16 + 8)  # at least its LSTM step
    # One forward pass of 4 frames under real actions = the table's account of those actions,
    # plus the warm-up stage's auxiliary heads (glance-only and glimpse-only logits per step).
    actions = torch.tensor([[[1, 0, 2], [0, 0, 0], [2, 0, 0], [1, 2, 2]]])
    forward = measure_macs(net, torch.zeros(1, 4, 3, 40, 40), actions)
    heads = 4 * (32 * 5 + 20 * 5)
    no_policy = CostTable(table.glance, 0, table.local, table.aggregator)
    assert forward - heads == round(no_policy.usage_from_actions(actions).item() * 1e9)


# Published per-video GFLOPs (= GMACs) of AdaFocus on ActivityNet; sources in the docstring.
ADAFOCUS_PUBLISHED = {96: 17.6, 128: 27.0, 160: 39.0}


@pytest.mark.parametrize("patch", sorted(ADAFOCUS_PUBLISHED))
def test_adafocus_configs_match_published_costs(patch):
    cfg = load_config(CONFIGS / f"activitynet_adafocus_p{patch}.yaml")
    assert cfg.model.options[0].resolution == patch
    assert cfg.model.options[0].extent == pytest.approx(patch / 224)
    report = flops_report(cfg)
    assert report["components"]["glance_per_frame"] == pytest.approx(0.2995, rel=1e-3)
    assert report["gmacs_per_video"] == pytest.approx(ADAFOCUS_PUBLISHED[patch], rel=0.04)
    comp = report["components"]
    per_frame = (
        comp["glance_per_frame"]
        + comp["policy_per_step"]
        + comp["aggregator_per_step"]
        + comp["local_per_glimpse"][0]["gmacs"]
    )
    assert report["gmacs_per_video"] == pytest.approx(16 * per_frame)
    # policy and classifier together are small next to the two CNNs
    assert comp["policy_per_step"] + comp["aggregator_per_step"] < 0.03


def test_arnet_config_reports_every_option():
    report = flops_report(load_config(CONFIGS / "activitynet_arnet.yaml"))
    options = report["components"]["local_per_glimpse"]
    assert [(o["backbone"], o["resolution"], o["extent"]) for o in options] == [
        ("resnet50", 224, 1.0),
        ("resnet34", 168, 1.0),
        ("resnet18", 112, 1.0),
    ]
    assert options[0]["gmacs"] == pytest.approx(4.09, rel=0.01)  # ResNet-50 @ 224
    assert options[0]["gmacs"] > options[1]["gmacs"] > options[2]["gmacs"] > 0
    per_video = report["per_video"]
    assert set(per_video) == {"option_1", "option_2", "option_3", "glance_only", "dense_baseline"}
    assert per_video["option_3"] < per_video["option_2"] < per_video["option_1"]
    assert per_video["glance_only"] < per_video["option_3"]
    assert "resnet34" in format_report(report)


def test_run_flops_prints_json_and_table(tmp_path, capsys):
    path = str(CONFIGS / "activitynet_adafocus_p128.yaml")
    assert run_flops(path, ["data.frames=8"], as_json=True) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["frames"] == 8 and report["config"] == "activitynet_adafocus_p128"
    assert report["gmacs_per_video"] == pytest.approx(report["per_video"]["option_1"])
    assert report["gmacs_per_video"] == pytest.approx(26.55 / 2, rel=0.01)
    assert run_flops(path, [], as_json=False) == 0
    text = capsys.readouterr().out
    assert "GMACs" in text and "every frame option 1 (default)" in text
    with pytest.raises(ConfigError, match="config file not found"):
        run_flops(str(tmp_path / "missing.yaml"), [], as_json=False)
    assert main(["flops", str(tmp_path / "missing.yaml")]) == 2  # in one line, as every command
    assert capsys.readouterr().err == (
        f"videofocus: error: {tmp_path / 'missing.yaml'}: config file not found\n"
    )


@pytest.mark.parametrize("local", ["tiny_resnet_sar", "tiny_resnet_scconv"])
def test_flops_reports_the_issue_15_backbones(local, capsys):
    path = str(CONFIGS / "synthetic_tiny.yaml")
    assert main(["flops", path, f"model.local_backbone={local}"]) == 0
    text = capsys.readouterr().out
    assert f"glimpse option 1 ({local}, extent 0.375, 48 px)" in text
    assert run_flops(path, [f"model.local_backbone={local}"], as_json=True) == 0
    ours = json.loads(capsys.readouterr().out)["components"]["local_per_glimpse"]
    plain = flops_report(load_config(path))["components"]["local_per_glimpse"]
    # SAR is priced at its refine_ratio (0.5): cheaper than the plain block despite the halo
    assert [o["backbone"] for o in ours] == [local, local]
    assert all(o["gmacs"] < p["gmacs"] for o, p in zip(ours, plain, strict=True))
