"""Tests of the plain-torch recurrent glimpse policy (small maps, K=2 options, 3x3 grid)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from videofocus.policy.network import (
    FeedForwardGlimpsePolicy,
    GlanceMapEncoder,
    PolicyState,
    RecurrentGlimpsePolicy,
    progress_dim,
    progress_features,
)

B, C, HW, DIMS = 3, 6, (3, 3), (3, 3, 3)  # action dims: K + 1 = 3 options, G = 3


def _policy(net_arch=(), extras=True) -> RecurrentGlimpsePolicy:
    torch.manual_seed(0)
    encoder = GlanceMapEncoder(
        C, HW, channels=4, features_dim=16, extras_dim=progress_dim(DIMS) if extras else 0
    )
    return RecurrentGlimpsePolicy(encoder, hidden=8, action_dims=DIMS, net_arch=net_arch).eval()


def _inputs(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    maps = torch.randn(B, C, *HW, generator=g)
    return maps, progress_features(0, 4, None, DIMS, batch=B)


def test_encoder_shapes_and_checks():
    enc = GlanceMapEncoder(C, HW, channels=4, features_dim=16, extras_dim=2)
    assert enc.project.in_features == 4 * 3 * 3 + 2  # the spatial layout is kept, not pooled
    out = enc(torch.randn(B, C, *HW), torch.zeros(B, 2))
    assert out.shape == (B, 16) and bool((out >= 0).all())  # ends in a ReLU
    with pytest.raises(ValueError, match="glance maps"):
        enc(torch.randn(B, C, 4, 4), torch.zeros(B, 2))
    with pytest.raises(ValueError, match="extras"):
        enc(torch.randn(B, C, *HW))
    with pytest.raises(ValueError, match="no extras"):
        GlanceMapEncoder(C, HW)(torch.randn(B, C, *HW), torch.zeros(B, 2))


def test_encoder_sees_where_things_are():
    # The same content at another position must give another feature vector (no pooling).
    torch.manual_seed(0)
    enc = GlanceMapEncoder(1, (2, 2), channels=1, features_dim=4)
    torch.nn.init.ones_(enc.reduce.weight)
    left, right = torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2)
    left[..., 0, 0], right[..., 1, 1] = 1.0, 1.0
    assert not torch.allclose(
        enc.project(enc.reduce(left).flatten(1)), enc.project(enc.reduce(right).flatten(1))
    )


def test_progress_features_layout():
    first = progress_features(0, 4, None, DIMS, batch=2)
    assert first.shape == (2, progress_dim(DIMS)) == (2, 10)
    assert first.abs().sum() == 0
    prev = torch.tensor([[2, 0, 1], [0, 2, 2]])
    feats = progress_features(2, 4, prev, DIMS)
    assert feats[:, 0].tolist() == [0.5, 0.5]
    assert feats[0, 1:].tolist() == [0, 0, 1, 1, 0, 0, 0, 1, 0]
    assert feats[1, 1:].tolist() == [1, 0, 0, 0, 0, 1, 0, 0, 1]
    with pytest.raises(ValueError, match="out of range"):
        progress_features(4, 4, prev, DIMS)
    # without the previous action: the step fraction alone, whatever the policy did
    assert progress_dim(DIMS, previous_action=False) == 1
    alone = progress_features(2, 4, prev, DIMS, previous_action=False)
    assert alone.tolist() == [[0.5], [0.5]]
    assert progress_features(0, 4, None, DIMS, 2, previous_action=False).tolist() == [[0.0]] * 2


def test_memoryless_policy_acts_on_the_current_glance_only():
    """A feed-forward policy without the previous action observed has no memory: its action
    at step t is the same whatever the earlier frames held; with the previous action it can
    differ (a one-step memory)."""

    def feed_forward(previous_action: bool) -> FeedForwardGlimpsePolicy:
        torch.manual_seed(0)
        width = progress_dim(DIMS, previous_action)
        encoder = GlanceMapEncoder(C, HW, channels=4, features_dim=16, extras_dim=width)
        torch.nn.init.normal_(encoder.project.weight, std=2.0)  # extras move the logits
        return FeedForwardGlimpsePolicy(encoder, DIMS).eval()

    g = torch.Generator().manual_seed(5)
    maps = torch.randn(64, 4, C, *HW, generator=g)
    other = maps.clone()
    other[:, :3] = torch.randn(64, 3, C, *HW, generator=g)  # other pasts, same last frame
    memoryless, remembering = feed_forward(False), feed_forward(True)
    assert not memoryless.observes_previous_action and remembering.observes_previous_action
    assert torch.equal(memoryless.rollout(maps)[:, 3], memoryless.rollout(other)[:, 3])
    assert not torch.equal(remembering.rollout(maps)[:, 3], remembering.rollout(other)[:, 3])


def test_forward_shapes_and_state():
    policy = _policy()
    maps, extras = _inputs()
    state = policy.initial_state(B)
    assert state.h.shape == state.c.shape == (1, B, 8)
    logits, new_state = policy(maps, extras, state)
    assert [tuple(lg.shape) for lg in logits] == [(B, 3), (B, 3), (B, 3)]
    assert isinstance(new_state, PolicyState) and new_state.h.shape == (1, B, 8)
    assert not torch.equal(new_state.h, state.h)


def test_recurrence_changes_outputs_and_episode_start_resets():
    policy = _policy()
    maps, extras = _inputs()
    first, state = policy(maps, extras, policy.initial_state(B))
    second, _ = policy(maps, extras, state)  # same observation, carried state
    assert not torch.allclose(first[0], second[0])
    reset, _ = policy(maps, extras, state, episode_start=torch.ones(B))
    for a, b in zip(first, reset, strict=True):
        torch.testing.assert_close(a, b)
    # a reset of one episode leaves the others' state alone
    partial, _ = policy(maps, extras, state, episode_start=torch.tensor([1.0, 0.0, 0.0]))
    torch.testing.assert_close(partial[1][0], first[1][0])
    torch.testing.assert_close(partial[1][1:], second[1][1:])


def test_act_deterministic_is_argmax_and_sampling_is_seeded():
    policy = _policy(net_arch=(5,))
    maps, extras = _inputs()
    state = policy.initial_state(B)
    logits, _ = policy(maps, extras, state)
    actions, _ = policy.act(maps, extras, state, deterministic=True)
    assert actions.dtype == torch.long and actions.shape == (B, 3)
    assert actions.tolist() == torch.stack([lg.argmax(1) for lg in logits], 1).tolist()
    draws = [
        policy.act(maps, extras, state, generator=torch.Generator().manual_seed(7))[0]
        for _ in range(2)
    ]
    assert torch.equal(draws[0], draws[1])
    assert bool(((draws[0] >= 0) & (draws[0] < 3)).all())


def test_rollout_matches_step_by_step():
    policy = _policy()
    maps = torch.randn(B, 4, C, *HW, generator=torch.Generator().manual_seed(3))
    actions = policy.rollout(maps)
    assert actions.shape == (B, 4, 3)
    state, prev = policy.initial_state(B), None
    for t in range(4):
        extras = progress_features(t, 4, prev, DIMS, batch=B)
        prev, state = policy.act(maps[:, t], extras, state, deterministic=True)
        assert torch.equal(prev, actions[:, t])
    assert _policy(extras=False).rollout(maps).shape == (B, 4, 3)


def test_layout_matches_sb3_contrib_recurrent_policy():
    # SB3's trained actor must load by renaming keys only and give the same distribution.
    sb3_contrib = pytest.importorskip("sb3_contrib")
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

    extras_dim = progress_dim(DIMS)

    class Extractor(BaseFeaturesExtractor):
        def __init__(self, observation_space: gym.spaces.Dict) -> None:
            super().__init__(observation_space, features_dim=16)
            self.encoder = GlanceMapEncoder(C, HW, 4, 16, extras_dim)

        def forward(self, obs):
            return self.encoder(obs["glance"], obs["progress"])

    space = gym.spaces.Dict(
        {
            "glance": gym.spaces.Box(-np.inf, np.inf, (C, *HW), np.float32),
            "progress": gym.spaces.Box(0.0, 1.0, (extras_dim,), np.float32),
        }
    )
    torch.manual_seed(0)
    sb3 = sb3_contrib.common.recurrent.policies.RecurrentMultiInputActorCriticPolicy(
        space,
        gym.spaces.MultiDiscrete(DIMS),
        lambda _: 1e-3,
        net_arch={"pi": [5], "vf": [5]},
        lstm_hidden_size=8,
        features_extractor_class=Extractor,
    ).eval()
    ours = _policy(net_arch=(5,))
    renamed = {}
    for key, value in sb3.state_dict().items():
        key = key.replace("features_extractor.encoder.", "features_extractor.")
        key = key.replace("mlp_extractor.policy_net.", "policy_net.")
        if key in ours.state_dict():
            renamed[key] = value
    ours.load_state_dict(renamed, strict=True)

    maps, extras = _inputs()
    starts = torch.zeros(B)
    state = ours.initial_state(B)
    for _ in range(2):  # two steps: the recurrent state must evolve the same way
        dist, (h, c) = sb3.get_distribution(
            {"glance": maps, "progress": extras}, tuple(state), starts
        )
        logits, state = ours(maps, extras, state, starts)
        for theirs, mine in zip(dist.distribution, logits, strict=True):
            torch.testing.assert_close(theirs.probs, mine.softmax(1))
        torch.testing.assert_close(h, state.h)
        torch.testing.assert_close(c, state.c)
