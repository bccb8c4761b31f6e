"""Training the glimpse policy with stable-baselines3, and exporting it to plain torch.

The policy plugs into SB3 through a features extractor (:class:`GlanceFeaturesExtractor`) and
``policy_kwargs``; no PPO code is copied. :func:`make_ppo` builds the SB3 model that
``policy.algo``'s entry in :mod:`videofocus.policy.algorithms` describes, and
:func:`export_policy` copies the trained actor into a
:class:`~videofocus.policy.network.GlimpsePolicyNetwork` by renaming keys, so inference runs
without SB3.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from gymnasium import spaces
from sb3_contrib import RecurrentPPO
from sb3_contrib.common.recurrent.policies import (
    RecurrentActorCriticPolicy,
    RecurrentMultiInputActorCriticPolicy,
)
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.vec_env import VecEnv
from torch import nn
from tqdm import tqdm

from videofocus.config import Config
from videofocus.policy.algorithms import get_algorithm
from videofocus.policy.network import (
    FeedForwardGlimpsePolicy,
    GlanceMapEncoder,
    GlimpsePolicyNetwork,
    RecurrentGlimpsePolicy,
)

__all__ = [
    "GlanceFeaturesExtractor",
    "PolicyModel",
    "SequenceLstmPolicy",
    "TqdmProgressCallback",
    "export_policy",
    "make_ppo",
    "policy_kwargs",
]

#: A trained (or training) SB3 model of the built-in algorithms (others registered in
#: :mod:`videofocus.policy.algorithms` are any SB3 ``OnPolicyAlgorithm``).
PolicyModel = PPO | RecurrentPPO

#: SB3 policy key prefix -> :class:`GlimpsePolicyNetwork` key prefix. ``pi_features_extractor``
#: is the actor's extractor whether or not actor and critic share one.
_RENAMES = (
    ("pi_features_extractor.encoder.", "features_extractor."),
    ("lstm_actor.", "lstm_actor."),
    ("mlp_extractor.policy_net.", "policy_net."),
    ("action_net.", "action_net."),
)


class GlanceFeaturesExtractor(BaseFeaturesExtractor):
    """SB3 features extractor of the glimpse observation ``{"glance": [c, h, w], "progress": [E]}``:
    a :class:`GlanceMapEncoder` sized from the observation space, so that the exported network is
    the same module under another name."""

    def __init__(
        self, observation_space: spaces.Dict, channels: int = 32, features_dim: int = 1024
    ) -> None:
        if not isinstance(observation_space, spaces.Dict) or set(observation_space.spaces) != {
            "glance",
            "progress",
        }:
            raise ValueError(
                f"expected a Dict space with 'glance' and 'progress', got {observation_space}"
            )
        glance, progress = observation_space["glance"], observation_space["progress"]
        if len(glance.shape) != 3 or len(progress.shape) != 1:
            raise ValueError(
                f"glance must be [c, h, w] and progress [E], got {glance.shape}, {progress.shape}"
            )
        super().__init__(observation_space, features_dim)
        c, h, w = glance.shape
        self.encoder = GlanceMapEncoder(
            c, (h, w), channels, features_dim, extras_dim=progress.shape[0]
        )

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        """Feature vectors ``[B, features_dim]`` of a batch of observations."""
        return self.encoder(observations["glance"], observations["progress"])


class SequenceLstmPolicy(RecurrentMultiInputActorCriticPolicy):
    """sb3-contrib's ``MultiInputLstmPolicy`` with one LSTM call per minibatch of sequences.

    sb3-contrib steps its LSTM one time step at a time whenever a sequence holds an episode
    start, and its rollout buffer cuts sequences *at* episode starts, so every minibatch of a
    task whose episodes are shorter than a rollout takes that loop. A start that is only ever at
    a sequence's first step is the same as zeroing that sequence's initial state, so this runs
    the whole sequence in one call (the same outputs; a start later in a sequence still loops).
    """

    @staticmethod
    def _process_sequence(
        features: torch.Tensor,
        lstm_states: tuple[torch.Tensor, torch.Tensor],
        episode_starts: torch.Tensor,
        lstm: nn.LSTM,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        n_seq = lstm_states[0].shape[1]
        starts = episode_starts.reshape((n_seq, -1)).swapaxes(0, 1)  # [L, n_seq]
        if bool(starts[1:].any()):
            return RecurrentActorCriticPolicy._process_sequence(
                features, lstm_states, episode_starts, lstm
            )
        keep = (1.0 - starts[0]).view(1, n_seq, 1)
        sequence = features.reshape((n_seq, -1, lstm.input_size)).swapaxes(0, 1)
        output, states = lstm(sequence, (keep * lstm_states[0], keep * lstm_states[1]))
        return torch.flatten(output.transpose(0, 1), start_dim=0, end_dim=1), states


def policy_kwargs(cfg: Config) -> dict[str, Any]:
    """SB3 ``policy_kwargs`` of ``cfg``: the extractor, the Tanh MLP widths (``policy.net_arch``,
    the same for actor and critic) and what ``policy.algo``'s registry entry adds (for
    ``recurrent_ppo``, the LSTM size)."""
    arch = list(cfg.policy.net_arch)
    kwargs: dict[str, Any] = {
        "features_extractor_class": GlanceFeaturesExtractor,
        "features_extractor_kwargs": {
            "channels": cfg.model.policy_channels,
            "features_dim": cfg.model.policy_hidden,
        },
        "net_arch": {"pi": arch, "vf": list(arch)},
        "activation_fn": nn.Tanh,  # what the exported policy_net re-creates
    }
    kwargs.update(get_algorithm(cfg.policy.algo).sb3_policy_kwargs(cfg.policy))
    return kwargs


def make_ppo(
    cfg: Config,
    env: VecEnv,
    tensorboard_log: str | Path | None = None,
    device: torch.device | str = "auto",
) -> PolicyModel:
    """The PPO model ``cfg.policy`` describes, on ``env``: the model class and SB3 policy of
    ``policy.algo``'s registry entry, the ``policy`` section's hyperparameters and
    :func:`policy_kwargs`; TensorBoard events go to ``tensorboard_log`` (None: none)."""
    p = cfg.policy
    common: dict[str, Any] = {
        "learning_rate": p.learning_rate,
        "n_steps": p.n_steps,
        "batch_size": p.batch_size,
        "n_epochs": p.n_epochs,
        "gamma": p.gamma,
        "gae_lambda": p.gae_lambda,
        "clip_range": p.clip_range,
        "ent_coef": p.ent_coef,
        "policy_kwargs": policy_kwargs(cfg),
        "tensorboard_log": None if tensorboard_log is None else str(tensorboard_log),
        "seed": p.seed,
        "device": device,
        "verbose": 0,
    }
    algorithm = get_algorithm(p.algo)
    model: PolicyModel = algorithm.sb3_class()(algorithm.sb3_policy_class(), env, **common)
    if tensorboard_log is None:
        # Left to itself, SB3 makes an empty SB3-<time> folder in the temp dir on every learn().
        model.set_logger(Logger(folder=None, output_formats=[]))
    return model


def _policy_net_arch(policy_net: nn.Sequential) -> list[int]:
    """Widths of SB3's ``mlp_extractor.policy_net``, checking it is the Linear + Tanh stack the
    exported network re-creates."""
    widths = []
    layers = list(policy_net)
    for i in range(0, len(layers), 2):
        pair = layers[i : i + 2]
        if len(pair) != 2 or not isinstance(pair[0], nn.Linear) or not isinstance(pair[1], nn.Tanh):
            raise ValueError(
                f"the actor MLP must be Linear + Tanh pairs to export, got {policy_net}"
            )
        widths.append(pair[0].out_features)
    return widths


def export_policy(model: PolicyModel) -> GlimpsePolicyNetwork:
    """The trained actor of a :func:`make_ppo` model as a plain-torch network (on the CPU, in
    eval mode): a :class:`RecurrentGlimpsePolicy` for ``RecurrentPPO``, else a
    :class:`FeedForwardGlimpsePolicy`, whose deterministic actions equal ``model.predict(...,
    deterministic=True)``.

    :raises ValueError: when the model was built with another features extractor, action space
        or actor MLP than :func:`make_ppo` uses.
    """
    policy = model.policy
    extractor = policy.pi_features_extractor
    if not isinstance(extractor, GlanceFeaturesExtractor):
        raise ValueError(
            f"export needs the GlanceFeaturesExtractor, the model has {type(extractor).__name__}"
        )
    if not isinstance(model.action_space, spaces.MultiDiscrete):
        raise ValueError(f"export needs a MultiDiscrete action space, got {model.action_space}")
    encoder = copy.deepcopy(extractor.encoder).cpu()  # the shape; load_state_dict sets weights
    dims = [int(n) for n in model.action_space.nvec]
    arch = _policy_net_arch(policy.mlp_extractor.policy_net)
    network: GlimpsePolicyNetwork
    if isinstance(policy, RecurrentActorCriticPolicy):
        lstm = policy.lstm_actor
        network = RecurrentGlimpsePolicy(encoder, lstm.hidden_size, dims, arch, lstm.num_layers)
    else:
        network = FeedForwardGlimpsePolicy(encoder, dims, arch)
    state = {}
    for key, value in policy.state_dict().items():
        for theirs, ours in _RENAMES:
            if key.startswith(theirs):
                state[ours + key[len(theirs) :]] = value.detach().cpu()
    network.load_state_dict(state, strict=True)
    return network.eval()


class TqdmProgressCallback(BaseCallback):
    """A tqdm bar labelled ``desc`` over the environment steps of ``learn()`` (SB3's own bar
    needs ``rich``, which this project does not depend on)."""

    def __init__(self, desc: str = "policy") -> None:
        super().__init__()
        self.desc = desc
        self.bar: tqdm | None = None

    def _on_training_start(self) -> None:
        # learn() collects whole rollouts until it has the steps asked for: round up to them.
        rollout = self.model.n_steps * self.training_env.num_envs
        todo = self.locals["total_timesteps"] - self.model.num_timesteps
        total = -(-todo // rollout) * rollout
        self.bar = tqdm(total=total, desc=self.desc, unit="step", leave=False)

    def _on_step(self) -> bool:
        assert self.bar is not None
        self.bar.update(self.training_env.num_envs)
        return True

    def _on_training_end(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
