"""The registries: rewards, heuristic glimpse policies, RL algorithms and supervised stages.

Every test is parametrized over what is registered, so a reward, heuristic, algorithm or stage
added as one new file (or entry) is checked here with no change to this file; the runtime
registrations at the end prove that nothing else needs to change for the config to accept one.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from videofocus.artifacts.factory import build_policy_network
from videofocus.artifacts.learned_policy import (
    learned_policy_meta,
    network_from_spec,
    network_spec,
)
from videofocus.config import ConfigError, config_from_dict
from videofocus.io.backends import BACKENDS
from videofocus.models import FocusNet, GlanceOutput, GlimpseOption, create_focusnet
from videofocus.policy import algorithms, rewards
from videofocus.policy.algorithms import (
    NETWORK_KINDS,
    Algorithm,
    get_algorithm,
    list_algorithms,
    register_algorithm,
)
from videofocus.policy.heuristics import (
    GlimpsePolicy,
    create_policy,
    heuristic_spec,
    list_policies,
    register_policy,
)
from videofocus.policy.heuristics import base as heuristics_base
from videofocus.policy.network import RecurrentGlimpsePolicy
from videofocus.policy.observation import GlanceProjection
from videofocus.policy.rewards import BASELINES, get_reward, list_rewards, register_reward
from videofocus.policy.rewards import base as rewards_base
from videofocus.train import stages
from videofocus.train.rl.clips import ClipSource, fit_projection
from videofocus.train.rl.episodes import REWARDS, EpisodeBatch
from videofocus.train.stages import (
    SUPERVISED_STAGES,
    SupervisedStage,
    create_stage,
    list_stages,
    register_stage,
)

ROOT = Path(__file__).resolve().parents[1]
T, SIZE, CLASSES, GRID, VIDEOS = 3, 32, 4, 3, 4
OPTIONS = (GlimpseOption(0.5, 16), GlimpseOption(1.0, 16))

# float reductions depend on the thread count
pytestmark = pytest.mark.usefixtures("one_thread")


def _config(**sections):
    base = {
        "data": {"frames": T, "frame_size": SIZE, "num_classes": CLASSES, "num_workers": 0},
        "model": {
            "glance_backbone": "tiny_cnn",
            "glance_resolution": 16,
            "local_backbone": "tiny_cnn",
            "options": [{"extent": 0.5, "resolution": 16}, {"extent": 1.0, "resolution": 16}],
            "grid": GRID,
            "hidden": 8,
            "policy_channels": 4,
            "policy_hidden": 8,
        },
        "policy": {"lstm_hidden": 8, "net_arch": [8], "obs_channels": 3},
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return config_from_dict(base)


@pytest.fixture(scope="module")
def net() -> FocusNet:
    torch.manual_seed(0)
    return create_focusnet(CLASSES, "tiny_cnn", 16, OPTIONS, "tiny_cnn", GRID, 8).eval()


@pytest.fixture(scope="module")
def source(net: FocusNet) -> ClipSource:
    g = torch.Generator().manual_seed(1)
    dataset = [
        {
            "frames": torch.randint(0, 256, (T, 3, SIZE, SIZE), dtype=torch.uint8, generator=g),
            "label": i % CLASSES,
        }
        for i in range(VIDEOS)
    ]
    return ClipSource(dataset, net)


@pytest.fixture(scope="module")
def projection(source: ClipSource) -> GlanceProjection:
    return fit_projection(source, 3, VIDEOS)


def _glance() -> GlanceOutput:
    maps = torch.rand(2, T, 6, 4, 4, generator=torch.Generator().manual_seed(0))
    return GlanceOutput(maps, maps.mean(dim=(-2, -1)))


def _step_rewards(net, source, projection, name: str) -> torch.Tensor:
    episodes = EpisodeBatch(net, projection, (1.0, 2.0), reward=name, cost_lambda=0.1, seed=3)
    episodes.start(source.load(list(range(VIDEOS))))
    actions = torch.tensor([[0, 0, 0], [1, 2, 1], [2, 0, 0], [1, 1, 1]])
    rewards_per_step = []
    for _ in range(T):
        result = episodes.step(actions)
        rewards_per_step.append(result.reward)
    assert result.terminated
    return torch.stack(rewards_per_step)


# ------------------------------------------------------------------------------------ rewards


def test_the_built_in_rewards_are_registered():
    assert {"adafocus", "confidence_gain", "confidence", "skip_gain"} <= set(list_rewards())
    assert REWARDS == tuple(list_rewards())  # kept importable, derived from the registry
    assert get_reward("adafocus").baseline == "random"
    assert get_reward("skip_gain").baseline == "skip"
    assert get_reward("confidence").baseline == "none"


@pytest.mark.parametrize("name", list_rewards())
def test_every_reward_steps_an_episode(net, source, projection, name):
    reward = get_reward(name)
    assert reward.name == name and reward.baseline in BASELINES and reward.summary
    out = _step_rewards(net, source, projection, name)
    assert out.shape == (T, VIDEOS) and out.dtype == torch.float32
    assert bool(torch.isfinite(out).all())


def test_an_unknown_reward_is_refused(net, projection):
    with pytest.raises(ValueError, match="unknown reward"):
        EpisodeBatch(net, projection, (1.0, 2.0), reward="nope")
    with pytest.raises(ValueError, match="baseline must be one of"):
        register_reward("bad", baseline="dense")(lambda c, b, p: c)


# --------------------------------------------------------------------------------- heuristics


@pytest.mark.parametrize("name", list_policies())
def test_every_heuristic_acts_on_a_glance(name):
    policy = create_policy(name, OPTIONS, GRID)
    assert isinstance(policy, GlimpsePolicy)
    actions = policy.act(_glance(), torch.Generator().manual_seed(0))
    assert actions.shape == (2, T, 3) and actions.dtype == torch.long
    assert bool(((actions[..., 0] >= 0) & (actions[..., 0] <= len(OPTIONS))).all())
    assert bool(((actions[..., 1:] >= 0) & (actions[..., 1:] < GRID)).all())
    spec = heuristic_spec(policy)
    assert spec is not None and spec["heuristic"] == name
    kwargs = {} if spec["option"] is None else {"option": spec["option"]}
    assert type(create_policy(name, OPTIONS, GRID, **kwargs)) is type(policy)


def test_the_built_in_heuristics_are_registered():
    assert list_policies() == ["centre", "dense", "glance_only", "random", "saliency"]


# --------------------------------------------------------------------------------- algorithms


@pytest.mark.parametrize("name", list_algorithms())
def test_every_algorithm_builds_its_network_and_round_trips(name):
    algorithm = get_algorithm(name)
    assert algorithm.network in NETWORK_KINDS
    cfg = _config(policy={"algo": name})
    network = build_policy_network(cfg, 3, (2, 2))
    spec = network_spec(network)
    assert spec["kind"] == algorithm.network
    assert isinstance(network, RecurrentGlimpsePolicy) == algorithm.recurrent
    meta = learned_policy_meta(network, GlanceProjection(6, 3), algo=name)
    assert meta["algo"] == name and meta["network"] == spec
    rebuilt = network_from_spec(meta["network"])
    assert type(rebuilt) is type(network) and network_spec(rebuilt) == spec
    rebuilt.load_state_dict(network.state_dict())


@pytest.mark.parametrize("name", list_algorithms())
def test_every_algorithm_names_an_sb3_class_and_policy(name):
    from videofocus.train.rl.sb3 import policy_kwargs

    algorithm = get_algorithm(name)
    cls = algorithm.sb3_class()
    policy = algorithm.sb3_policy_class()
    if isinstance(policy, str):
        assert policy in cls.policy_aliases
    else:  # a class of ours: a subclass of one the model class names
        assert issubclass(policy, tuple(cls.policy_aliases.values()))
    kwargs = policy_kwargs(_config(policy={"algo": name}))
    assert set(algorithm.policy_kwargs) | set(algorithm.policy_kwargs_from) <= set(kwargs)


def test_meta_without_algo_takes_the_first_of_the_network_kind():
    for name in ("recurrent_ppo", "ppo"):
        network = build_policy_network(_config(policy={"algo": name}), 3, (2, 2))
        assert learned_policy_meta(network, GlanceProjection(6, 3))["algo"] == name
    with pytest.raises(ValueError, match="trains a recurrent network"):
        learned_policy_meta(network, GlanceProjection(6, 3), algo="recurrent_ppo")


def test_the_algorithm_registry_imports_no_sb3():
    code = (
        "import sys, videofocus.policy.algorithms as a; a.list_algorithms(); "
        "bad = [m for m in ('stable_baselines3', 'sb3_contrib', 'gymnasium') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)


# ------------------------------------------------------------------------------------- stages


@pytest.mark.parametrize("name", list_stages())
def test_every_stage_is_created(name, tmp_path):
    stage = create_stage(name, _config(train={"out_dir": str(tmp_path)}))
    assert isinstance(stage, SupervisedStage) and stage.name == name


def test_supervised_stages_come_from_the_registry():
    assert SUPERVISED_STAGES == ("warmup", "dense", "glance_only", "finetune", "differentiable")
    assert tuple(list_stages()) == SUPERVISED_STAGES
    with pytest.raises(ValueError, match="unknown supervised stage 'nope'"):
        create_stage("nope", _config())
    with pytest.raises(ValueError, match="already registered"):
        register_stage("warmup")(lambda cfg: create_stage("warmup", cfg))


# ------------------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("section", "key", "names"),
    [
        ("policy", "reward", list_rewards()),
        ("policy", "algo", list_algorithms()),
        ("data", "backend", ["auto", *BACKENDS]),
    ],
)
def test_config_checks_names_against_the_registries(section, key, names):
    for name in names:
        assert getattr(getattr(_config(**{section: {key: name}}), section), key) == name
    with pytest.raises(ConfigError) as info:
        _config(**{section: {key: "unregistered"}})
    message = str(info.value)
    assert "\n" not in message and f"{section}.{key}" in message and "unregistered" in message
    assert all(repr(name) in message for name in names)


def test_torchcodec_is_a_backend_the_config_accepts():
    assert _config(data={"backend": "torchcodec"}).data.backend == "torchcodec"


def test_importing_the_config_and_the_backends_loads_no_torch():
    code = (
        "import sys, videofocus.config, videofocus.io.backends; "
        "from videofocus.config import DataConfig; DataConfig(backend='pyav'); "
        "assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)


# ------------------------------------------------------- one new file / entry is all it takes


def test_a_reward_registered_at_runtime_is_accepted_everywhere(
    monkeypatch, net, source, projection
):
    monkeypatch.setattr(rewards_base, "_REGISTRY", rewards_base._REGISTRY.copy())

    @register_reward("half_skip_gain", baseline="skip")
    def gain(confidence, baseline, previous):
        """Half of skip_gain."""
        return (confidence - baseline) / 2

    assert "half_skip_gain" in list_rewards() and "half_skip_gain" in rewards.list_rewards()
    assert _config(policy={"reward": "half_skip_gain"}).policy.reward == "half_skip_gain"
    half = _step_rewards(net, source, projection, "half_skip_gain")
    full = _step_rewards(net, source, projection, "skip_gain")
    # reward = gain - 0.1 x normalised cost (costs 1 and 2: a skip 0, option 1 0.5, option 2 1)
    cost = torch.tensor([0.0, 0.5, 1.0, 0.5])
    torch.testing.assert_close(half + 0.1 * cost, (full + 0.1 * cost) / 2)
    with pytest.raises(ValueError, match="already registered"):
        register_reward("half_skip_gain")(gain)


def test_the_runtime_reward_is_gone_afterwards():
    assert "half_skip_gain" not in list_rewards()
    with pytest.raises(ConfigError, match="policy.reward"):
        _config(policy={"reward": "half_skip_gain"})


def test_a_heuristic_registered_at_runtime_is_created_by_name(monkeypatch):
    monkeypatch.setattr(heuristics_base, "_REGISTRY", heuristics_base._REGISTRY.copy())

    @register_policy("corner")
    class CornerPolicy(GlimpsePolicy):
        def __init__(self, options, grid, option: int = 1) -> None:
            super().__init__(options, grid)
            self.option = self._check_option(option)

        def act(self, glance, generator=None):
            return heuristics_base.constant_actions(glance, self.option, 0, 0)

    assert "corner" in list_policies()
    policy = create_policy("corner", OPTIONS, GRID, option=2)
    assert heuristic_spec(policy) == {"heuristic": "corner", "option": 2}
    assert policy.act(_glance())[..., 0].eq(2).all()


def test_an_algorithm_registered_at_runtime_is_accepted_and_built(monkeypatch):
    monkeypatch.setattr(algorithms, "_REGISTRY", algorithms._REGISTRY.copy())
    register_algorithm(Algorithm("a2c", "feedforward", "stable_baselines3:A2C", "MultiInputPolicy"))
    cfg = _config(policy={"algo": "a2c"})
    network = build_policy_network(cfg, 3, (2, 2))
    assert network_spec(network)["kind"] == "feedforward"
    assert learned_policy_meta(network, GlanceProjection(6, 3), algo="a2c")["algo"] == "a2c"
    assert "MultiInputPolicy" in get_algorithm("a2c").sb3_class().policy_aliases
    with pytest.raises(ValueError, match="network must be one of"):
        Algorithm("bad", "transformer", "stable_baselines3:PPO", "MultiInputPolicy")


def test_a_stage_registered_at_runtime_is_created_by_name(monkeypatch):
    monkeypatch.setattr(stages, "_STAGES", stages._STAGES.copy())

    @register_stage("glance_twice")
    def _glance_twice(cfg) -> SupervisedStage:
        return replace(create_stage("glance_only", cfg), name="glance_twice")

    assert list_stages()[-1] == "glance_twice"
    assert create_stage("glance_twice", _config()).name == "glance_twice"
