"""The policy and finetune stages: SB3 <-> exported policy action equality (PPO and recurrent
PPO), the ``warmup -> policy -> finetune`` pipeline and its resume, evaluation of the learned
stages, and the finetune model's frozen parts (tiny synthetic data: 16 videos, 48x48, 4 frames)."""

from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch

from videofocus.artifacts.checkpoint import load_checkpoint
from videofocus.artifacts.factory import build_focusnet, glimpse_options
from videofocus.artifacts.learned_policy import load_learned_policy, network_from_spec, network_spec
from videofocus.cli import build_parser
from videofocus.config import ConfigError, config_from_dict
from videofocus.data.loaders import build_dataset
from videofocus.evaluation.evaluate import evaluate_checkpoint
from videofocus.exit_status import UsageError
from videofocus.policy.actions import resolve_actions
from videofocus.policy.focusnet import PolicyFocusNet, policy_chooses
from videofocus.policy.heuristics import LearnedGlimpsePolicy
from videofocus.policy.network import (
    FeedForwardGlimpsePolicy,
    GlanceMapEncoder,
    RecurrentGlimpsePolicy,
)
from videofocus.runtime import torch_threads
from videofocus.train.pipeline import PIPELINE, expand_stages, run_stages, stage_config
from videofocus.train.rl.sb3 import export_policy, make_ppo
from videofocus.train.rl.stage import run_policy_stage
from videofocus.train.rl.vec_env import FocusVecEnv

T = 4


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Module scope: set before the module-scoped pipeline run, so every run here uses one
    # thread (float reductions, hence trained weights, depend on the thread count).
    with torch_threads(1):
        yield


def tiny_config(data_root, out_dir, algo="recurrent_ppo", **train):
    return config_from_dict(
        {
            "name": "test",
            "data": {"root": str(data_root), "frames": T, "frame_size": 48, "num_workers": 0},
            "model": {
                "glance_backbone": "tiny_cnn",
                "glance_resolution": 16,
                "local_backbone": "tiny_cnn",
                "options": [{"extent": 0.5, "resolution": 16}],
                "grid": 3,
                "hidden": 16,
                "policy_channels": 4,
                "policy_hidden": 16,
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
            "policy": {
                "algo": algo,
                "total_timesteps": 64,
                "n_envs": 4,
                "n_steps": 8,
                "batch_size": 16,
                "n_epochs": 2,
                "lstm_hidden": 16,
                "net_arch": [8],
                "obs_channels": 4,
                "projection_videos": 8,
            },
        }
    )


# ------------------------------------------------------------------- SB3 <-> exported policy


@pytest.mark.parametrize(
    ("algo", "kind"),
    [("recurrent_ppo", RecurrentGlimpsePolicy), ("ppo", FeedForwardGlimpsePolicy)],
)
def test_exported_policy_acts_as_sb3_predict(tiny_data, tmp_path, algo, kind):
    cfg = tiny_config(tiny_data, tmp_path, algo=algo)
    torch.manual_seed(0)
    net = build_focusnet(cfg, 3).eval().requires_grad_(False)
    dataset = build_dataset(cfg.data, "train", train=False, num_classes=3)
    env = FocusVecEnv.from_config(cfg, net, dataset)
    model = make_ppo(cfg, env, device="cpu")
    model.learn(64)  # one rollout and update: the weights leave their initialisation
    network = export_policy(model)
    assert isinstance(network, kind)
    assert network.action_dims == (2, 3, 3)

    obs = env.reset()
    n = env.num_envs
    sb3_state, starts = None, np.ones(n, dtype=bool)
    state = network.initial_state(n)
    for _episode in range(2):  # across an episode boundary: states reset where episodes start
        glance = env.source.load(env.videos).glance
        taken = []
        for _step in range(T):
            expected, sb3_state = model.predict(
                obs, state=sb3_state, episode_start=starts, deterministic=True
            )
            actions, state = network.act(
                torch.as_tensor(obs["glance"]),
                torch.as_tensor(obs["progress"]),
                state,
                deterministic=True,
                episode_start=torch.as_tensor(starts, dtype=torch.float32),
            )
            np.testing.assert_array_equal(actions.numpy(), expected)
            if algo == "recurrent_ppo":
                torch.testing.assert_close(state.h, torch.as_tensor(sb3_state[0]))
            taken.append(expected)
            obs, _, starts, _ = env.step(expected)
        # The label-time policy on raw glance maps rolls out the very same glimpses.
        learned = LearnedGlimpsePolicy(
            glimpse_options(cfg), cfg.model.grid, env.episodes.projection, network
        )
        expected_clip = resolve_actions(torch.as_tensor(np.stack(taken, 1)), True)
        assert torch.equal(learned.act(glance), expected_clip)


@pytest.mark.parametrize("recurrent", [True, False])
def test_network_spec_round_trip(recurrent):
    encoder = GlanceMapEncoder(4, (4, 4), 4, 16, extras_dim=10)
    if recurrent:
        network = RecurrentGlimpsePolicy(encoder, 16, (2, 3, 3), (8,))
    else:
        network = FeedForwardGlimpsePolicy(encoder, (2, 3, 3), (8,))
    spec = network_spec(network)
    rebuilt = network_from_spec(spec)
    assert type(rebuilt) is type(network) and network_spec(rebuilt) == spec
    rebuilt.load_state_dict(network.state_dict())  # same keys and shapes


# -------------------------------------------------------------------------------- the pipeline


@pytest.fixture(scope="module")
def pipeline_run(tiny_data, tmp_path_factory):
    """``warmup`` alone (the "interrupted" run), then ``all`` with resume."""
    out = tmp_path_factory.mktemp("run")
    cfg = tiny_config(tiny_data, out, finetune_epochs=1)
    first = run_stages(cfg, ["warmup"], progress=False)
    weights = out / "warmup" / "final" / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    results = run_stages(cfg, ["all"], resume=True, progress=False)
    return cfg, out, first, results, stamp


def test_all_resumes_after_warmup_and_runs_policy_and_finetune(pipeline_run):
    cfg, out, first, results, stamp = pipeline_run
    assert [r.stage for r in first] == ["warmup"]
    assert [r.stage for r in results] == list(PIPELINE)
    # warmup was finished: not trained again
    assert (out / "warmup" / "final" / "model.safetensors").stat().st_mtime_ns == stamp
    assert results[0].seconds == 0.0
    policy = load_checkpoint(out / "policy" / "final", load_trainer=False)
    assert policy.meta.stage == "policy" and policy.meta.policy["algo"] == "recurrent_ppo"
    assert policy.meta.metrics["timesteps"] >= 64
    assert 0.0 <= policy.meta.metrics["val/p_gt_last"] <= 1.0
    assert policy.meta.metrics["val/videos"] == 4
    # the policy's weights, and a copy of the warm-up network it acts on (a self-contained folder)
    assert {k.split(".")[0] for k in policy.model} == {"policy", "projection", "focusnet"}
    warm = load_checkpoint(out / "warmup" / "final", load_trainer=False).model
    assert all(torch.equal(policy.model[f"focusnet.{k}"], v) for k, v in warm.items())
    assert (out / "policy" / "sb3_model.zip").is_file()
    assert (out / "policy" / "config.yaml").is_file() and any((out / "policy" / "tb").iterdir())
    finetune = load_checkpoint(out / "finetune" / "final", load_trainer=False)
    assert finetune.meta.stage == "finetune"
    assert finetune.meta.config["train"]["epochs"] == 1  # train.finetune_epochs
    # a second `all` finds every stage finished
    again = run_stages(cfg, ["all"], resume=True, progress=False)
    assert [r.seconds for r in again] == [0.0, 0.0, 0.0]


def test_finetune_trains_only_the_unfrozen_parts(pipeline_run):
    _, out, *_ = pipeline_run
    warm = load_checkpoint(out / "warmup" / "final", load_trainer=False).model
    tuned = load_checkpoint(out / "finetune" / "final", load_trainer=False).model
    policy = load_checkpoint(out / "policy" / "final", load_trainer=False).model
    for key, value in warm.items():
        if key.startswith("global_encoder."):  # frozen, BatchNorm statistics included
            assert torch.equal(tuned[key], value), key

    def changed(section):
        return [k for k in warm if k.startswith(section) and not torch.equal(tuned[k], warm[k])]

    assert changed("aggregator.")
    assert changed("local_encoder.")  # train.finetune_local defaults to true
    for key, value in policy.items():  # the policy rides along, unchanged
        section, rest = key.split(".", 1)
        if section == "focusnet":  # the policy checkpoint's copy of the warm-up network
            continue
        prefix = "policy.network." if section == "policy" else "policy.projection."
        assert torch.equal(tuned[prefix + rest], value)


def test_evaluate_learned_checkpoints(pipeline_run):
    cfg, out, *_ = pipeline_run
    for stage in ("policy", "finetune"):
        result = evaluate_checkpoint(cfg, out / stage / "final", batch_size=2)
        assert result["stage"] == stage and result["method"] == "recurrent_ppo"
        assert result["videos"] == 4
        assert 0.0 <= result["top1"] <= result["top5"] <= 1.0
        assert result["gmacs_per_video"] > 0 and result["videos_per_s"] > 0
    warm = evaluate_checkpoint(cfg, out / "warmup" / "final", batch_size=2)
    assert warm["method"] == "random"


def test_policy_stage_is_reproducible(pipeline_run, tmp_path):
    cfg, out, *_ = pipeline_run
    shutil.copytree(out / "warmup" / "final", tmp_path / "warmup" / "final")
    again = replace(cfg, train=replace(cfg.train, out_dir=str(tmp_path)))
    result = run_policy_stage(again, progress=False)
    first = load_checkpoint(out / "policy" / "final", load_trainer=False)
    second = load_checkpoint(result.final_dir, load_trainer=False)
    assert first.model.keys() == second.model.keys()
    for key, value in first.model.items():
        assert torch.equal(second.model[key], value), key
    assert second.meta.metrics["val/ep_reward"] == first.meta.metrics["val/ep_reward"]


def test_load_learned_policy_acts_on_glance(pipeline_run):
    cfg, out, *_ = pipeline_run
    policy = load_learned_policy(cfg, out / "policy" / "final")
    assert isinstance(policy.network, RecurrentGlimpsePolicy) and policy.deterministic
    net = build_focusnet(cfg, 3).eval()
    frames = torch.randn(2, T, 3, 48, 48)
    with torch.no_grad():
        actions = policy.act(net.glance(frames))
    assert actions.shape == (2, T, 3)
    assert bool((actions[..., 0] <= 1).all() and (actions[..., 1:] < 3).all())
    with pytest.raises(Exception, match="not a policy-stage checkpoint"):
        load_learned_policy(cfg, out / "warmup" / "final")


# ---------------------------------------------------------------------- the finetune model


def test_policy_focusnet_freezes_glance_and_policy(pipeline_run):
    cfg, out, *_ = pipeline_run
    torch.manual_seed(0)
    policy = load_learned_policy(cfg, out / "policy" / "final")
    model = PolicyFocusNet(build_focusnet(cfg, 3), policy, train_local=False).train()
    assert not model.global_encoder.training and not model.policy.training
    assert not model.local_encoder.training and model.aggregator.training
    trainable = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"aggregator"}
    frames = torch.randn(2, T, 3, 48, 48)
    out_policy = model(frames, policy_chooses(2, T))
    with torch.no_grad():
        expected = policy.act(model.glance(frames))
    assert torch.equal(out_policy.option_index, expected[..., 0] - 1)
    given = torch.zeros(2, T, 3, dtype=torch.long)  # explicit actions are carried out
    assert bool((model(frames, given).option_index == -1).all())
    mixed = policy_chooses(2, T)
    mixed[0, 0] = torch.tensor([1, 0, 0])
    with pytest.raises(ValueError, match="mix"):
        model(frames, mixed)


# ------------------------------------------------------------------------ names and the CLI


def test_stage_names_config_and_cli():
    assert expand_stages(["all"]) == ["warmup", "policy", "finetune"]
    assert expand_stages(["warmup", "all"]) == ["warmup", "policy", "finetune"]
    with pytest.raises(ValueError, match="unknown stage"):
        expand_stages(["polcy"])
    cfg = tiny_config("data", "runs", finetune_epochs=3)
    assert stage_config(cfg, "finetune").train.epochs == 3
    assert stage_config(cfg, "warmup").train.epochs == 2
    assert cfg.train.finetune_local is True and cfg.policy.net_arch == [8]
    with pytest.raises(ConfigError, match="finetune_epochs"):
        tiny_config("data", "runs", finetune_epochs=0)
    with pytest.raises(ConfigError, match=r"net_arch\[0\]"):
        config_from_dict({"policy": {"net_arch": [0]}})
    args = build_parser().parse_args(["train", "cfg.yaml", "--stage", "all"])
    assert args.stage == "all" and not args.resume
    with pytest.raises(UsageError, match="--stage: invalid choice: 'everything'"):
        build_parser().parse_args(["train", "cfg.yaml", "--stage", "everything"])
