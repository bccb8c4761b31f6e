"""The learned policy visibly tracks the object: trained on a small synthetic set (dense ->
warm-up -> recurrent PPO), its validation glimpses contain the target's centre in about twice
as many of the frames where the target is visible as random glimpses of the same option.

Sizes: 64 px frames, a 24 px glimpse on a 5 x 5 grid, 256 videos, 65k PPO steps; on one thread
the run takes about 1.5 minutes. The learned coverage depends on library versions (the same
seed gave 63% with the libraries of November 2026 and 49% with those of December, random 23%),
so the bounds leave room for that and still fail on a policy that does not aim.
"""

from __future__ import annotations

import pytest
import torch

from videofocus.artifacts.learned_policy import load_focusnet, load_learned_policy
from videofocus.config import config_from_dict
from videofocus.data.loaders import build_eval_loader
from videofocus.data.synthetic import read_targets
from videofocus.evaluation.policy_eval import glimpse_statistics
from videofocus.policy.focusnet import PolicyFocusNet
from videofocus.policy.heuristics import create_policy
from videofocus.train.pipeline import run_stages

SIZE = 64


def tracking_config(tmp_path):
    return config_from_dict(
        {
            "name": "tracking",
            "data": {
                "root": str(tmp_path / "data"),
                "frames": 4,
                "frame_size": SIZE,
                "num_workers": 0,
                "synthetic": {
                    "num_videos": 256,
                    "width": SIZE,
                    "height": SIZE,
                    "object_size": 16,
                    "num_frames": 8,
                    "num_classes": 4,
                    "num_distractors": 1,
                    "hidden_ratio": 0.25,
                    "val_fraction": 0.25,
                },
            },
            "model": {
                "glance_backbone": "tiny_cnn",
                "glance_resolution": 32,  # a 4 x 4 glance map: the policy must see where
                "local_backbone": "tiny_resnet",
                "options": [{"extent": 0.375, "resolution": 24}],  # 24 px at full resolution
                "grid": 5,
                "hidden": 32,
                "policy_channels": 16,
                "policy_hidden": 64,
            },
            "train": {
                "epochs": 10,
                "batch_size": 8,
                "out_dir": str(tmp_path / "runs"),
                "warmup_init": "dense",
                "log_every": 5,
                "optim": {"name": "adamw", "lr": 0.003, "weight_decay": 0.0001},
            },
            "policy": {
                "total_timesteps": 65536,
                "n_envs": 16,
                "n_steps": 32,
                "batch_size": 128,
                "n_epochs": 4,
                "learning_rate": 0.001,
                "lstm_hidden": 64,
                "obs_channels": 16,
                "projection_videos": 64,
                "allow_skip": False,
            },
        }
    )


@pytest.mark.slow
def test_learned_policy_covers_the_target_far_more_often_than_random(tmp_path, one_thread):
    # one_thread: trained weights depend on the thread count, keep them fixed
    cfg = tracking_config(tmp_path)
    run_stages(cfg, ["dense", "warmup", "policy"], progress=False)
    runs = tmp_path / "runs"
    net, num_classes = load_focusnet(cfg, runs / "warmup" / "final")
    tracks = read_targets(cfg.data.root)
    loader = build_eval_loader(cfg, num_classes)
    device = torch.device("cpu")
    learned = PolicyFocusNet(net, load_learned_policy(cfg, runs / "policy" / "final"), False)
    ours = glimpse_statistics(learned, loader, device, tracks)
    torch.manual_seed(0)
    random = PolicyFocusNet(net, create_policy("random", net.options, net.grid, option=1))
    chance = glimpse_statistics(random, loader, device, tracks)
    assert ours["skip_rate"] == 0.0
    assert ours["target_coverage"] > 0.4, (ours, chance)
    assert ours["target_coverage"] > 1.75 * chance["target_coverage"], (ours, chance)
