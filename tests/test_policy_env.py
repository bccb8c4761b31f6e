"""Tests of the glimpse environments: spaces, observation projection, episode core, FocusEnv and
FocusVecEnv (tiny FocusNet with tiny_cnn backbones, 48x48 frames, T=4, 2 options, 3x3 grid)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from videofocus.config import (
    Config,
    ConfigError,
    DataConfig,
    GlimpseOptionConfig,
    ModelConfig,
    PolicyConfig,
    config_from_dict,
)
from videofocus.models import FocusNet, GlimpseOption, create_focusnet
from videofocus.policy.actions import resolve_actions
from videofocus.policy.network import progress_dim
from videofocus.policy.observation import GlanceProjection
from videofocus.train.rl.clips import ClipSource, VideoCache, VideoStream, fit_projection
from videofocus.train.rl.env import FocusEnv
from videofocus.train.rl.episodes import (
    EpisodeBatch,
    LocalFeatureMemo,
    normalise_frames,
    random_glimpse_actions,
)
from videofocus.train.rl.spaces import glimpse_action_space
from videofocus.train.rl.vec_env import FocusVecEnv

T, SIZE, CLASSES, GRID, VIDEOS = 4, 48, 5, 3, 7
OPTIONS = (GlimpseOption(0.5, 16), GlimpseOption(1.0, 24))
COSTS = (1.0, 4.0)  # option 2 is the dearest: normalised costs 0.25 and 1


# float reductions, hence trained weights and exact numbers, depend on the thread count
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def net() -> FocusNet:
    torch.manual_seed(0)
    model = create_focusnet(
        CLASSES, "tiny_cnn", 32, OPTIONS, "tiny_cnn", GRID, 16, local_feature_dim=24
    )
    return model.eval()


@pytest.fixture(scope="module")
def dataset() -> list[dict]:
    g = torch.Generator().manual_seed(3)
    return [
        {
            "frames": torch.randint(0, 256, (T, 3, SIZE, SIZE), dtype=torch.uint8, generator=g),
            "label": i % CLASSES,
        }
        for i in range(VIDEOS)
    ]


@pytest.fixture(scope="module")
def projection(net: FocusNet, dataset: list[dict]) -> GlanceProjection:
    return fit_projection(ClipSource(dataset, net), 4, VIDEOS)


def _episodes(net, projection, **kw) -> EpisodeBatch:
    return EpisodeBatch(net, projection, COSTS, **kw)


def _memo(net) -> LocalFeatureMemo:
    return LocalFeatureMemo(VIDEOS, T, len(OPTIONS), GRID, net.local_encoder.feature_dim)


def _actions(n: int, seed: int) -> np.ndarray:
    """``[T, n, 3]`` actions covering skips and both options."""
    space = glimpse_action_space(len(OPTIONS), GRID)
    space.seed(seed)
    return np.stack([np.stack([space.sample() for _ in range(n)]) for _ in range(T)])


# ------------------------------------------------------------------------------------ the spaces


def test_spaces_and_resolved_actions(net, projection):
    space = glimpse_action_space(2, 7)
    assert space.nvec.tolist() == [3, 7, 7]
    obs_space = _episodes(net, projection).observation_space()
    assert obs_space["glance"].shape == (4, 4, 4)  # 4 channels kept, the 4x4 layout kept
    assert obs_space["progress"].shape == (progress_dim((3, GRID, GRID)),)
    memoryless = _episodes(net, projection, observe_previous_action=False)
    assert memoryless.observation_space()["progress"].shape == (1,)
    actions = torch.tensor([[0, 2, 1], [2, 0, 0]])
    assert resolve_actions(actions, allow_skip=True).tolist() == actions.tolist()
    assert resolve_actions(actions, allow_skip=False).tolist() == [[1, 2, 1], [2, 0, 0]]


# ---------------------------------------------------------------------------- the projection


def test_projection_is_pca_of_the_second_moment():
    g = torch.Generator().manual_seed(0)
    basis = torch.linalg.qr(torch.randn(6, 6, generator=g)).Q[:, :2]  # two directions in C=6
    coeffs = torch.randn(50, 2, 3, 3, generator=g) * torch.tensor([3.0, 1.0]).view(1, 2, 1, 1)
    maps = torch.einsum("ck,nkhw->nchw", basis, coeffs)  # rank-2 maps [50, 6, 3, 3]
    proj = GlanceProjection.fit(maps, 2)
    assert proj.kept_fraction == pytest.approx(1.0, abs=1e-5)
    out = proj(maps)
    assert out.shape == (50, 2, 3, 3)
    flat = out.permute(0, 2, 3, 1).reshape(-1, 2)
    # components are uncorrelated and scaled to unit second moment
    torch.testing.assert_close(flat.T @ flat / len(flat), torch.eye(2), atol=1e-4, rtol=0)
    # sign convention: the largest-magnitude weight of each component is positive
    peak = proj.weight.gather(1, proj.weight.abs().argmax(1, keepdim=True))
    assert bool((peak > 0).all())
    # streamed batches give the same projection; a state_dict restores it
    streamed = GlanceProjection.fit(iter([maps[:20], maps[20:]]), 2)
    torch.testing.assert_close(streamed.weight, proj.weight, atol=1e-5, rtol=1e-5)
    restored = GlanceProjection(6, 2)
    restored.load_state_dict(proj.state_dict())
    torch.testing.assert_close(restored(maps), out)
    with pytest.raises(ValueError, match="out_channels"):
        GlanceProjection.fit(maps, 7)


# ----------------------------------------------------------------------------- the checkers


def test_env_checkers_pass(net, dataset, projection):
    env = FocusEnv(ClipSource(dataset, net), _episodes(net, projection, cost_lambda=0.1))
    with warnings.catch_warnings():
        # Expected: unbounded projected features, and a [c, h, w] float map that is no image.
        warnings.simplefilter("ignore", UserWarning)
        gym_check_env(env, skip_render_check=True)
        sb3_check_env(env, warn=True)
    obs, info = env.reset(seed=5)
    assert obs["glance"].dtype == np.float32 and obs["progress"].dtype == np.float32
    for step in range(T):
        obs, reward, terminated, truncated, info = env.step(np.array([1, 0, 2]))
        assert terminated == (step == T - 1) and not truncated
        assert set(info) == {"video", "confidence", "cost"}


def test_env_reset_options_and_seed(net, dataset, projection):
    env = FocusEnv(ClipSource(dataset, net), _episodes(net, projection))
    assert env.reset(options={"video": 2})[1] == {"video": 2}
    first = [env.reset(seed=11)[1]["video"]] + [env.reset()[1]["video"] for _ in range(2)]
    again = [env.reset(seed=11)[1]["video"]] + [env.reset()[1]["video"] for _ in range(2)]
    assert first == again and len(set(first)) == 3
    with pytest.raises(ValueError, match="not a decodable video"):
        env.reset(options={"video": VIDEOS})


# --------------------------------------------------------------------------------- the VecEnv


def test_vec_env_auto_reset_and_episode_info(net, dataset, projection):
    venv = FocusVecEnv(ClipSource(dataset, net), _episodes(net, projection), num_envs=3, seed=1)
    obs = venv.reset()
    assert obs["glance"].shape == (3, 4, 4, 4) and obs["progress"].shape == (3, 10)
    first_videos = list(venv.videos)
    returns = np.zeros(3)
    for step, actions in enumerate(_actions(3, seed=0)):
        obs, rewards, dones, infos = venv.step(actions)
        assert rewards.dtype == np.float32 and rewards.shape == (3,)
        returns += rewards
        assert bool(dones.all()) == (step == T - 1) and bool(dones.any()) == (step == T - 1)
    for i, info in enumerate(infos):
        final = info["terminal_observation"]
        assert final["progress"][0] == 1.0 and not final["glance"].any()
        assert final["progress"][1:].sum() == 3  # one-hots of the last action
        assert info["episode"]["l"] == T
        assert info["episode"]["r"] == pytest.approx(returns[i], abs=1e-5)
        assert info["TimeLimit.truncated"] is False
    # the returned observation already starts the next videos of the stream
    assert venv.videos != first_videos and venv.episodes.step_index == 0
    assert (obs["progress"] == 0).all() and obs["glance"].any()
    assert venv.get_attr("render_mode") == [None] * 3
    assert venv.env_is_wrapped(object, indices=[0, 2]) == [False, False]
    venv.set_attr("tag", 7)
    assert venv.get_attr("tag", indices=[1]) == [7]
    assert venv.env_method("seed", 3, indices=[0, 1]) == [[3, 4, 5], [3, 4, 5]]


def test_vec_env_stream_covers_the_dataset_and_reseeds(net, dataset, projection):
    venv = FocusVecEnv(ClipSource(dataset, net), _episodes(net, projection), num_envs=VIDEOS)
    venv.seed(4)
    venv.reset()
    assert sorted(venv.videos) == list(range(VIDEOS))  # one pass = a permutation
    order = list(venv.videos)
    venv.seed(4)
    venv.reset()
    assert venv.videos == order


@pytest.mark.parametrize("reward", ["adafocus", "confidence_gain", "confidence", "skip_gain"])
def test_batched_equals_single_envs(net, dataset, projection, reward):
    n = 3
    venv = FocusVecEnv(
        ClipSource(dataset, net), _episodes(net, projection, reward=reward, cost_lambda=0.2), n
    )
    obs = venv.reset()
    singles = [
        FocusEnv(
            ClipSource(dataset, net), _episodes(net, projection, reward=reward, cost_lambda=0.2)
        )
        for _ in range(n)
    ]
    single_obs = [
        env.reset(options={"video": v})[0] for env, v in zip(singles, venv.videos, strict=True)
    ]
    for actions in _actions(n, seed=1):
        for key in obs:
            torch.testing.assert_close(
                torch.from_numpy(obs[key]), torch.from_numpy(np.stack([o[key] for o in single_obs]))
            )
        obs, rewards, dones, infos = venv.step(actions)
        steps = [env.step(a) for env, a in zip(singles, actions, strict=True)]
        single_obs = [s[0] for s in steps]
        torch.testing.assert_close(
            torch.from_numpy(rewards), torch.tensor([s[1] for s in steps], dtype=torch.float32)
        )
    for info, s in zip(infos, steps, strict=True):
        torch.testing.assert_close(
            torch.from_numpy(info["terminal_observation"]["glance"]),
            torch.from_numpy(s[0]["glance"]),
        )


# ---------------------------------------------------------------------------------- rewards


def _clips(net, dataset, indices):
    return ClipSource(dataset, net).load(indices)


def test_reward_signs_and_costs(net, dataset, projection):
    clips = _clips(net, dataset, [0, 1, 2])
    episodes = _episodes(net, projection, reward="confidence", cost_lambda=0.5)
    episodes.start(clips)
    # a skip, a cheap glimpse, the dearest glimpse
    result = episodes.step(torch.tensor([[0, 0, 0], [1, 2, 2], [2, 0, 0]]))
    assert result.cost.tolist() == [0.0, 0.25, 1.0]
    assert bool(((result.confidence >= 0) & (result.confidence <= 1)).all())
    torch.testing.assert_close(result.reward, result.confidence - 0.5 * result.cost)
    free = _episodes(net, projection, reward="confidence")
    free.start(clips)
    pure = free.step(torch.tensor([[0, 0, 0], [1, 2, 2], [2, 0, 0]])).reward
    assert bool(((pure >= 0) & (pure <= 1)).all())
    assert bool((result.reward[1:] < pure[1:]).all()) and result.reward[0] == pure[0]


def test_adafocus_reward_is_chosen_minus_random_by_hand(net, dataset, projection):
    keys, visits = [4, 1], [2, 0]
    clips = _clips(net, dataset, keys)
    episodes = _episodes(net, projection, reward="adafocus", seed=9)
    episodes.start(clips, visits)
    chosen = torch.tensor([[[1, 0, 2], [0, 0, 0]], [[2, 1, 1], [1, 2, 0]]]).transpose(0, 1)
    rewards = torch.stack([episodes.step(chosen[:, t]).reward for t in range(2)], dim=1)
    random = random_glimpse_actions(keys, visits, T, len(OPTIONS), GRID, seed=9)
    assert bool((random[..., 0] >= 1).all())  # the baseline always glimpses

    def p_gt(t: int, acts: torch.Tensor, hidden: torch.Tensor | None):
        frames = normalise_frames(clips.frames[:, t : t + 1])
        local, option = net.local_features(frames, acts[:, None])
        out = net.aggregator.step(clips.glance.pooled[:, t], local[:, 0], option[:, 0], hidden)
        return F.softmax(out.logits, -1).gather(1, clips.labels[:, None])[:, 0], out.hidden

    hidden, expected = None, []
    with torch.no_grad():
        for t in range(2):
            p_random, _ = p_gt(t, random[:, t], hidden)
            p_chosen, hidden = p_gt(t, chosen[:, t], hidden)  # the episode goes on from here
            expected.append(p_chosen - p_random)
    torch.testing.assert_close(rewards, torch.stack(expected, dim=1), atol=1e-5, rtol=1e-5)


def test_skip_gain_reward_is_zero_for_a_skip_and_chosen_minus_skip_otherwise(
    net, dataset, projection
):
    clips = _clips(net, dataset, [0, 1, 2])
    episodes = _episodes(net, projection, reward="skip_gain", cost_lambda=0.5)
    episodes.start(clips)
    actions = torch.tensor([[0, 0, 0], [1, 2, 2], [2, 0, 0]])
    result = episodes.step(actions)
    skipped = _episodes(net, projection, reward="confidence")
    skipped.start(clips)
    p_skip = skipped.step(torch.zeros_like(actions)).confidence
    expected = result.confidence - p_skip - 0.5 * result.cost
    torch.testing.assert_close(result.reward, expected, atol=1e-6, rtol=1e-6)
    assert result.reward[0] == 0.0  # skipping gains nothing over skipping, and costs nothing


def test_confidence_gain_telescopes(net, dataset, projection):
    episodes = _episodes(net, projection, reward="confidence_gain")
    episodes.start(_clips(net, dataset, [3, 5]))
    total = torch.zeros(2)
    for actions in _actions(2, seed=2):
        result = episodes.step(torch.from_numpy(actions))
        total += result.reward
    torch.testing.assert_close(total, result.confidence - 1.0 / CLASSES)


def test_skip_disabled_glimpses_with_option_one(net, dataset, projection):
    clips = _clips(net, dataset, [0, 0])
    episodes = _episodes(net, projection, reward="confidence", allow_skip=False, cost_lambda=1.0)
    episodes.start(clips)
    result = episodes.step(torch.tensor([[0, 1, 1], [1, 1, 1]]))
    torch.testing.assert_close(result.reward[0], result.reward[1])
    assert result.cost.tolist() == [0.25, 0.25]
    # the observation still reports the action the policy chose
    assert result.observation["progress"][0, 1:4].tolist() == [1.0, 0.0, 0.0]


# ------------------------------------------------------------------------------------- caches


def test_local_memo_gives_identical_results(net, dataset, projection):
    memo = _memo(net)
    cached = _episodes(net, projection, memo=memo, seed=3)
    plain = _episodes(net, projection, seed=3)
    clips = _clips(net, dataset, [2, 6, 2])  # a repeated video shares its memo entries
    for episode in range(2):
        for core in (cached, plain):
            core.start(clips, visits=[episode] * 3)
        for actions in _actions(3, seed=episode):
            a, b = cached.step(torch.from_numpy(actions)), plain.step(torch.from_numpy(actions))
            torch.testing.assert_close(a.reward, b.reward, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(a.observation, b.observation)
    assert memo.hits > 0 and memo.misses > 0
    assert bool(memo.filled.any()) and memo.nbytes > 0


def test_bf16_precision_runs_the_glimpse_encoder_in_bf16_and_keeps_fp32_state(
    net, dataset, projection
):
    dtypes = []
    conv = next(m for m in net.local_encoder.modules() if isinstance(m, torch.nn.Conv2d))
    hook = conv.register_forward_hook(lambda m, i, out: dtypes.append(out.dtype))
    try:
        clips = _clips(net, dataset, [0, 1, 2])
        results = {}
        for precision in ("fp32", "bf16"):
            memo = _memo(net)
            core = _episodes(net, projection, reward="confidence", memo=memo, precision=precision)
            core.start(clips)
            results[precision] = core.step(torch.tensor([[1, 0, 0], [2, 2, 2], [0, 0, 0]]))
            assert memo.features.dtype == torch.float32 and int(memo.filled.sum()) == 2
    finally:
        hook.remove()
    assert dtypes == [torch.float32] * 2 + [torch.bfloat16] * 2  # one call per option used
    fp32, bf16 = results["fp32"], results["bf16"]
    assert bf16.reward.dtype == fp32.reward.dtype == torch.float32
    torch.testing.assert_close(bf16.confidence, fp32.confidence, atol=0.05, rtol=0.1)
    with pytest.raises(ValueError, match="precision"):
        _episodes(net, projection, precision="fp16")


def test_video_cache_on_disk(tmp_path, net, dataset):
    cache = VideoCache(tmp_path / "cache", fingerprint="a")
    source = ClipSource(dataset, net, cache)
    first = source.load([1, 3])
    assert sorted(p.name for p in (tmp_path / "cache").glob("*.pt")) == ["1.pt", "3.pt"]
    again = ClipSource(dataset, net, VideoCache(tmp_path / "cache", fingerprint="a")).load([3])
    torch.testing.assert_close(again.glance.maps[0], first.glance.maps[1])
    VideoCache(tmp_path / "cache", fingerprint="b")  # other weights: stale entries go
    assert not list((tmp_path / "cache").glob("*.pt"))


def test_stream_skips_undecodable_videos(net, dataset):
    broken = [None if i in (1, 4) else item for i, item in enumerate(dataset)]
    source = ClipSource(broken, net)
    indices, visits = source.draw(VideoStream(len(broken), seed=0), 2 * VIDEOS)
    assert not {1, 4} & set(indices) and visits.count(0) == VIDEOS - 2
    with pytest.raises(ValueError, match="no video"):
        ClipSource([None, None], net).draw(VideoStream(2), 1)


# ------------------------------------------------------------------------------- from a config


def _config(**policy) -> Config:
    return Config(
        data=DataConfig(frames=T, frame_size=SIZE, num_classes=CLASSES),
        model=ModelConfig(
            glance_backbone="tiny_cnn",
            glance_resolution=32,
            local_backbone="tiny_cnn",
            options=[GlimpseOptionConfig(0.5, 16), GlimpseOptionConfig(1.0, 24)],
            grid=GRID,
            hidden=16,
            local_feature_dim=24,
        ),
        policy=PolicyConfig(n_envs=2, n_steps=4, batch_size=8, obs_channels=3, **policy),
    )


@pytest.mark.parametrize("algo", ["ppo", "recurrent_ppo"])
def test_from_config_and_sb3_updates_its_policy_on_it(net, dataset, algo, tmp_path, monkeypatch):
    monkeypatch.setenv("SB3_LOGDIR", str(tmp_path))  # SB3's default logger makes a folder there
    from sb3_contrib import RecurrentPPO
    from stable_baselines3 import PPO

    venv = FocusVecEnv.from_config(_config(cost_lambda=0.1, projection_videos=4), net, dataset)
    assert venv.num_envs == 2 and venv.observation_space["glance"].shape == (3, 4, 4)
    assert venv.episodes.memo is not None and venv.episodes.cost_lambda == 0.1
    env = FocusEnv.from_config(_config(), net, dataset, projection=venv.episodes.projection)
    assert env.observation_space == venv.observation_space
    if algo == "ppo":
        model = PPO("MultiInputPolicy", venv, n_steps=4, batch_size=8, n_epochs=1, seed=0)
    else:
        model = RecurrentPPO(
            "MultiInputLstmPolicy", venv, n_steps=4, batch_size=8, n_epochs=1, seed=0
        )
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(total_timesteps=16)
    assert model.num_timesteps == 16
    # two rollouts of 8 steps, two gradient updates: the weights moved. That the policy learns
    # to aim is tests/test_policy_tracking.py's claim (a longer run).
    moved = [not torch.equal(a, b) for a, b in zip(before, model.policy.parameters(), strict=True)]
    assert sum(moved) >= len(moved) // 2


def test_frames_are_normalised_as_in_training():
    from videofocus.data.loaders import frames_to_input

    frames = torch.randint(0, 256, (2, 3, 3, 8, 8), dtype=torch.uint8)
    assert torch.equal(normalise_frames(frames), frames_to_input(frames, torch.device("cpu")))


def test_vec_env_on_generated_synthetic_videos(tmp_path, net):
    from videofocus.data.loaders import build_dataset
    from videofocus.data.synthetic import SyntheticConfig, generate

    synthetic = SyntheticConfig(
        num_videos=12, width=SIZE, height=SIZE, object_size=24, num_frames=T, num_classes=CLASSES
    )
    generate(tmp_path / "data", synthetic, progress=False)
    cfg = _config(projection_videos=3, cache_dir=str(tmp_path / "cache"))
    cfg.data.root = str(tmp_path / "data")
    dataset = build_dataset(cfg.data, "train", train=False, num_classes=CLASSES)
    venv = FocusVecEnv.from_config(cfg, net, dataset)
    venv.reset()
    labels = [int(dataset[v]["label"]) for v in venv.videos]
    assert labels == [v % CLASSES for v in venv.videos]  # the generator cycles the classes
    for actions in _actions(2, seed=3):
        obs, rewards, dones, infos = venv.step(actions)
    assert dones.all() and np.isfinite(rewards).all()
    cached = {p.name for p in (tmp_path / "cache").glob("*.pt")}
    assert {f"{v}.pt" for v in venv.videos} <= cached and len(cached) >= 3  # fitted + played


def test_policy_config_fields_and_memo_limit(net, dataset, monkeypatch):
    cfg = config_from_dict({"policy": {"obs_channels": 4, "cache_dir": "cache"}})
    assert cfg.policy.obs_channels == 4 and cfg.policy.cache_local is True
    for key, value in [("obs_channels", 0), ("projection_videos", 0), ("cache_dir", "")]:
        with pytest.raises(ConfigError, match=f"policy.{key}"):
            config_from_dict({"policy": {key: value}})
    monkeypatch.setattr("videofocus.train.rl.episodes.MEMO_LIMIT_BYTES", 1000)
    with pytest.raises(ConfigError, match="cache_local=false"):
        FocusVecEnv.from_config(_config(), net, dataset)
    venv = FocusVecEnv.from_config(_config(cache_local=False), net, dataset)
    assert venv.episodes.memo is None


def test_memoryless_observation_holds_the_step_fraction_only(net, dataset, projection):
    """With ``observe_previous_action=False`` two episodes that glimpse differently observe the
    same progress; the glance part is unchanged."""
    clips = _clips(net, dataset, [0, 0])
    full = _episodes(net, projection)
    memoryless = _episodes(net, projection, observe_previous_action=False)
    obs_full, obs_none = full.start(clips), memoryless.start(clips)
    torch.testing.assert_close(obs_none["glance"], obs_full["glance"])
    assert obs_none["progress"].tolist() == [[0.0], [0.0]]
    actions = torch.tensor([[0, 1, 1], [2, 2, 0]])
    after = memoryless.step(actions).observation["progress"]
    assert after.tolist() == [[1 / T], [1 / T]]
    assert full.step(actions).observation["progress"].shape == (2, 1 + 3 + 2 * GRID)
