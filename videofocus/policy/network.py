"""The recurrent glimpse policy as plain torch: glance maps -> features -> LSTM -> action logits.

Label time runs this module without stable-baselines3. Its layout mirrors sb3-contrib's
``RecurrentActorCriticPolicy`` (actor side) so that a trained PPO policy's weights can be copied
in by renaming keys only:

==========================  ==========================================  =====================
here                        sb3-contrib ``RecurrentActorCriticPolicy``  role
==========================  ==========================================  =====================
``features_extractor``      ``features_extractor`` (or ``pi_...``)      glance map -> vector
``lstm_actor``              ``lstm_actor``                              recurrent state
``policy_net``              ``mlp_extractor.policy_net``                optional Tanh MLP
``action_net``              ``action_net``                              logits of every dim
==========================  ==========================================  =====================

The action space is ``MultiDiscrete(action_dims)``, ``[K + 1, G, G]`` for glimpses (option 0 =
skip): ``action_net`` outputs the concatenated logits of every dimension, one independent
categorical distribution per dimension, as SB3's ``MultiCategoricalDistribution`` does.

The features extractor follows AdaFocus's policy encoder: a 1x1 convolution shrinks the glance
channels (1280 -> 32 for MobileNetV2), the map is flattened *with its spatial layout* (the policy
must know where things are to choose where to look) and a linear layer + ReLU makes the feature
vector. Progress features (:func:`progress_features`: step fraction and the previous action
one-hot) can be appended to the flattened map.

:class:`FeedForwardGlimpsePolicy` is the same actor without the LSTM (stable-baselines3's plain
``PPO`` with ``MultiInputPolicy``); both share :class:`GlimpsePolicyNetwork`'s ``act`` and
``rollout``, so inference treats them alike.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

__all__ = [
    "FeedForwardGlimpsePolicy",
    "GlanceMapEncoder",
    "GlimpsePolicyNetwork",
    "PolicyState",
    "RecurrentGlimpsePolicy",
    "progress_dim",
    "progress_features",
]


def progress_dim(action_dims: Sequence[int]) -> int:
    """Width of :func:`progress_features`: one step fraction plus one one-hot per action dim."""
    return 1 + sum(action_dims)


def progress_features(
    step: int,
    num_steps: int,
    prev_actions: torch.Tensor | None,
    action_dims: Sequence[int],
    batch: int | None = None,
) -> torch.Tensor:
    """Progress features ``[B, progress_dim(action_dims)]`` of one step.

    Layout: ``[step / num_steps, one_hot(prev option), one_hot(prev cell_x), one_hot(prev
    cell_y)]``. At the first step there is no previous action and the one-hots are all zero.

    :param step: 0-based index of the current step.
    :param num_steps: steps in the episode (``T``), so that the fraction lies in ``[0, 1)``.
    :param prev_actions: long ``[B, len(action_dims)]`` actions of the previous step, or None.
    :param action_dims: sizes of the action dimensions.
    :param batch: batch size; required when ``prev_actions`` is None.
    """
    if num_steps <= 0 or not 0 <= step < num_steps:
        raise ValueError(f"step {step} out of range for num_steps={num_steps}")
    if prev_actions is None:
        if batch is None:
            raise ValueError("give batch when prev_actions is None")
        return torch.cat(
            [torch.full((batch, 1), step / num_steps), torch.zeros(batch, sum(action_dims))], 1
        )
    if prev_actions.ndim != 2 or prev_actions.shape[1] != len(action_dims):
        raise ValueError(
            f"prev_actions must be [B, {len(action_dims)}], got {tuple(prev_actions.shape)}"
        )
    fraction = torch.full((prev_actions.shape[0], 1), step / num_steps, device=prev_actions.device)
    one_hots = [
        F.one_hot(prev_actions[:, i], n).to(fraction.dtype) for i, n in enumerate(action_dims)
    ]
    return torch.cat([fraction, *one_hots], dim=1)


class GlanceMapEncoder(nn.Module):
    """Glance feature map (+ progress features) -> policy feature vector.

    ``[B, C, h, w] -> 1x1 conv (C -> channels) -> ReLU -> flatten (c h w) [; extras] -> Linear
    -> features_dim -> ReLU``.

    :param in_channels: channels ``C`` of the glance map.
    :param map_hw: ``(h, w)`` of the glance map; the linear layer is sized for it.
    :param channels: output channels of the 1x1 convolution (AdaFocus: 32).
    :param features_dim: width of the output vector (AdaFocus: 1024).
    :param extras_dim: width of the extra features appended after flattening (0: none).
    """

    def __init__(
        self,
        in_channels: int,
        map_hw: tuple[int, int],
        channels: int = 32,
        features_dim: int = 1024,
        extras_dim: int = 0,
    ) -> None:
        super().__init__()
        h, w = map_hw
        for name, value in (
            ("in_channels", in_channels),
            ("channels", channels),
            ("h", h),
            ("w", w),
            ("features_dim", features_dim),
        ):
            if value <= 0:
                raise ValueError(f"GlanceMapEncoder {name} must be > 0, got {value}")
        if extras_dim < 0:
            raise ValueError(f"GlanceMapEncoder extras_dim must be >= 0, got {extras_dim}")
        self.in_channels = in_channels
        self.map_hw = (h, w)
        self.extras_dim = extras_dim
        self.features_dim = features_dim
        # AdaFocus's policy conv has no bias: it only re-weights channels before the ReLU.
        self.reduce = nn.Conv2d(in_channels, channels, kernel_size=1, bias=False)
        self.project = nn.Linear(channels * h * w + extras_dim, features_dim)

    def forward(self, maps: torch.Tensor, extras: torch.Tensor | None = None) -> torch.Tensor:
        """Feature vectors ``[B, features_dim]``.

        :param maps: glance maps ``[B, in_channels, h, w]``.
        :param extras: ``[B, extras_dim]``; required when ``extras_dim > 0``, else None.
        """
        expected = (self.in_channels, *self.map_hw)
        if maps.ndim != 4 or tuple(maps.shape[1:]) != expected:
            raise ValueError(f"glance maps must be [B, {expected}], got {tuple(maps.shape)}")
        x = rearrange(F.relu(self.reduce(maps)), "b c h w -> b (c h w)")
        if self.extras_dim:
            if extras is None or extras.shape != (maps.shape[0], self.extras_dim):
                got = None if extras is None else tuple(extras.shape)
                raise ValueError(f"extras must be [B, {self.extras_dim}], got {got}")
            x = torch.cat([x, extras.to(x.dtype)], dim=1)
        elif extras is not None:
            raise ValueError("this encoder takes no extras (extras_dim=0)")
        return F.relu(self.project(x))


class PolicyState(NamedTuple):
    """LSTM state ``(h, c)``, each ``[num_layers, B, hidden]`` (SB3's ``RNNStates.pi``)."""

    h: torch.Tensor
    c: torch.Tensor


def _tanh_mlp(width: int, net_arch: Sequence[int]) -> tuple[nn.Sequential, int]:
    """SB3's ``mlp_extractor.policy_net``: ``Linear + Tanh`` per width; returns it and its output
    width."""
    layers: list[nn.Module] = []
    for size in net_arch:
        layers += [nn.Linear(width, size), nn.Tanh()]
        width = size
    return nn.Sequential(*layers), width


def _check_action_dims(action_dims: Sequence[int]) -> tuple[int, ...]:
    if not action_dims or any(n <= 0 for n in action_dims):
        raise ValueError(f"action_dims must be positive sizes, got {list(action_dims)}")
    return tuple(int(n) for n in action_dims)


class GlimpsePolicyNetwork(nn.Module, ABC):
    """What every policy network offers: one step (:meth:`forward`), actions (:meth:`act`) and
    whole-clip roll-outs (:meth:`rollout`). Subclasses define ``forward``.

    :ivar action_dims: sizes of the ``MultiDiscrete`` dimensions.
    :ivar features_extractor: the :class:`GlanceMapEncoder`.
    :ivar num_layers: LSTM layers of the state (0: no memory).
    :ivar hidden: LSTM hidden size of the state (0: no memory).
    """

    action_dims: tuple[int, ...]
    features_extractor: GlanceMapEncoder
    # Zero sizes give a memoryless network the empty [0, B, 0] state, so one initial_state
    # and one act/rollout path serve both kinds.
    num_layers: int = 0
    hidden: int = 0

    @property
    def extras_dim(self) -> int:
        """Width of the extra features the encoder expects (0: none)."""
        return self.features_extractor.extras_dim

    def initial_state(
        self,
        batch: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> PolicyState:
        """The zero state ``[num_layers, batch, hidden]`` before the first step of ``batch``
        episodes."""
        shape = (self.num_layers, batch, self.hidden)
        return PolicyState(
            torch.zeros(shape, device=device, dtype=dtype),
            torch.zeros(shape, device=device, dtype=dtype),
        )

    @abstractmethod
    def forward(
        self,
        obs_maps: torch.Tensor,
        extras: torch.Tensor | None,
        state: PolicyState,
        episode_start: torch.Tensor | None = None,
    ) -> tuple[list[torch.Tensor], PolicyState]:
        """One step: logits ``[B, n_i]`` of every action dimension and the next state."""

    def act(
        self,
        obs_maps: torch.Tensor,
        extras: torch.Tensor | None,
        state: PolicyState,
        deterministic: bool = False,
        generator: torch.Generator | None = None,
        episode_start: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, PolicyState]:
        """Choose actions ``[B, len(action_dims)]`` (long) for one step and return the new state.

        :param deterministic: take the most likely value of every dimension (argmax) instead
            of sampling.
        :param generator: random generator for sampling (on the logits' device), for
            reproducible roll-outs.
        Other parameters as in :meth:`forward`.
        """
        logits, state = self.forward(obs_maps, extras, state, episode_start)
        if deterministic:
            actions = [lg.argmax(dim=1) for lg in logits]
        else:
            actions = [
                torch.multinomial(lg.float().softmax(dim=1), 1, generator=generator).squeeze(1)
                for lg in logits
            ]
        return torch.stack(actions, dim=1), state

    @torch.no_grad()
    def rollout(
        self,
        maps: torch.Tensor,
        deterministic: bool = True,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Actions ``[B, T, len(action_dims)]`` for whole clips of glance maps ``[B, T, C, h, w]``.

        The policy sees only glance maps and its own past, so a clip's actions are known before
        any glimpse is encoded. When the encoder takes extras they are
        :func:`progress_features` (step fraction, previous action).
        """
        if self.extras_dim not in (0, progress_dim(self.action_dims)):
            raise ValueError(
                f"rollout builds progress_features ({progress_dim(self.action_dims)} values); "
                f"the encoder expects extras_dim={self.extras_dim}"
            )
        b, t = maps.shape[:2]
        state = self.initial_state(b, device=maps.device, dtype=maps.dtype)
        prev: torch.Tensor | None = None
        actions = []
        for step in range(t):
            extras = None
            if self.extras_dim:
                extras = progress_features(step, t, prev, self.action_dims, batch=b)
                extras = extras.to(maps.device)
            prev, state = self.act(maps[:, step], extras, state, deterministic, generator)
            actions.append(prev)
        return torch.stack(actions, dim=1)


class RecurrentGlimpsePolicy(GlimpsePolicyNetwork):
    """Actor of a recurrent actor-critic: features -> LSTM -> (MLP) -> logits per action dim.

    :param encoder: the features extractor (its ``features_dim`` feeds the LSTM).
    :param hidden: LSTM hidden size (SB3's ``lstm_hidden_size``).
    :param action_dims: sizes of the ``MultiDiscrete`` dimensions, e.g. ``[K + 1, G, G]``.
    :param net_arch: hidden widths of the Tanh MLP between LSTM and ``action_net`` (SB3's
        ``net_arch["pi"]``); empty: the LSTM output feeds ``action_net`` directly.
    :param num_layers: LSTM layers (SB3's ``n_lstm_layers``).
    """

    def __init__(
        self,
        encoder: GlanceMapEncoder,
        hidden: int,
        action_dims: Sequence[int],
        net_arch: Sequence[int] = (),
        num_layers: int = 1,
    ) -> None:
        super().__init__()
        if hidden <= 0 or num_layers <= 0:
            raise ValueError(f"hidden and num_layers must be > 0, got {hidden}, {num_layers}")
        self.action_dims = _check_action_dims(action_dims)
        self.hidden = hidden
        self.num_layers = num_layers
        self.features_extractor = encoder
        self.lstm_actor = nn.LSTM(encoder.features_dim, hidden, num_layers)  # [L, B, F] layout
        self.policy_net, width = _tanh_mlp(hidden, net_arch)
        self.action_net = nn.Linear(width, sum(self.action_dims))

    def forward(
        self,
        obs_maps: torch.Tensor,
        extras: torch.Tensor | None,
        state: PolicyState,
        episode_start: torch.Tensor | None = None,
    ) -> tuple[list[torch.Tensor], PolicyState]:
        """One step: logits of every action dimension and the next state.

        :param obs_maps: glance maps ``[B, C, h, w]`` of the current frames.
        :param extras: ``[B, extras_dim]`` progress features, or None when the encoder has none.
        :param state: the state after the previous step (:meth:`initial_state` at the start).
        :param episode_start: float or bool ``[B]``; 1 resets that episode's state first (as SB3
            does with ``episode_starts``).
        :returns: a list of ``[B, n_i]`` logits, one per action dimension, and the new state.
        """
        features = self.features_extractor(obs_maps, extras)
        h, c = state
        if episode_start is not None:
            keep = (1.0 - episode_start.to(h.dtype)).view(1, -1, 1)
            h, c = h * keep, c * keep
        out, (h, c) = self.lstm_actor(features.unsqueeze(0), (h, c))
        logits = self.action_net(self.policy_net(out.squeeze(0)))
        return list(torch.split(logits, self.action_dims, dim=1)), PolicyState(h, c)


class FeedForwardGlimpsePolicy(GlimpsePolicyNetwork):
    """Actor of a feed-forward actor-critic: features -> (MLP) -> logits per action dim.

    The twin of :class:`RecurrentGlimpsePolicy` for stable-baselines3's plain ``PPO``: the same
    keys without ``lstm_actor``. It has no memory; its state is empty (``[0, B, 0]`` tensors) so
    that both networks run through the same ``act`` / ``rollout`` code.

    :param encoder: the features extractor.
    :param action_dims: sizes of the ``MultiDiscrete`` dimensions.
    :param net_arch: hidden widths of the Tanh MLP before ``action_net`` (SB3's
        ``net_arch["pi"]``).
    """

    def __init__(
        self,
        encoder: GlanceMapEncoder,
        action_dims: Sequence[int],
        net_arch: Sequence[int] = (),
    ) -> None:
        super().__init__()
        self.action_dims = _check_action_dims(action_dims)
        self.features_extractor = encoder
        self.policy_net, width = _tanh_mlp(encoder.features_dim, net_arch)
        self.action_net = nn.Linear(width, sum(self.action_dims))

    def forward(
        self,
        obs_maps: torch.Tensor,
        extras: torch.Tensor | None,
        state: PolicyState,
        episode_start: torch.Tensor | None = None,
    ) -> tuple[list[torch.Tensor], PolicyState]:
        """One step: logits of every action dimension; ``state`` is passed through unchanged."""
        logits = self.action_net(self.policy_net(self.features_extractor(obs_maps, extras)))
        return list(torch.split(logits, self.action_dims, dim=1)), state
