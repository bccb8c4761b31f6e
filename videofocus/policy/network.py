"""The glimpse policy as plain torch: glance maps -> features -> (LSTM) -> action logits.

Label time runs this module without stable-baselines3. Module names mirror the actor side of
sb3-contrib's ``RecurrentActorCriticPolicy`` (``features_extractor``, ``lstm_actor``,
``policy_net`` for SB3's ``mlp_extractor.policy_net``, ``action_net``), so a trained PPO policy's
weights load by renaming keys only. ``action_net`` outputs the concatenated logits of every
``MultiDiscrete(action_dims)`` dimension (``[K + 1, G, G]``, option 0 = skip), one independent
categorical per dimension, as SB3's ``MultiCategoricalDistribution``.

The features extractor is AdaFocus's policy encoder: a 1x1 convolution shrinks the glance
channels, the map is flattened *with its spatial layout* (the policy must know where things are
to choose where to look), optional :func:`progress_features` are appended, and a linear layer +
ReLU makes the feature vector. :class:`FeedForwardGlimpsePolicy` is the same actor without the
LSTM (SB3's plain ``PPO``).
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


def progress_dim(action_dims: Sequence[int], previous_action: bool = True) -> int:
    """Width of :func:`progress_features`: one step fraction, plus one one-hot per action dim
    when the policy observes its ``previous_action``."""
    return 1 + (sum(action_dims) if previous_action else 0)


def progress_features(
    step: int,
    num_steps: int,
    prev_actions: torch.Tensor | None,
    action_dims: Sequence[int],
    batch: int | None = None,
    previous_action: bool = True,
) -> torch.Tensor:
    """Progress features ``[B, progress_dim(action_dims, previous_action)]`` of the 0-based
    ``step`` of ``num_steps``: ``[step / num_steps, one_hot(prev option), one_hot(prev cell_x),
    one_hot(prev cell_y)]``, or only the step fraction without ``previous_action``.

    ``prev_actions`` (long ``[B, len(action_dims)]``) is None at the first step, where the
    one-hots are all zero; ``batch`` is then required.
    """
    if num_steps <= 0 or not 0 <= step < num_steps:
        raise ValueError(f"step {step} out of range for num_steps={num_steps}")
    if prev_actions is None:
        if batch is None:
            raise ValueError("give batch when prev_actions is None")
        rows, device = batch, None
    elif prev_actions.ndim != 2 or prev_actions.shape[1] != len(action_dims):
        raise ValueError(
            f"prev_actions must be [B, {len(action_dims)}], got {tuple(prev_actions.shape)}"
        )
    else:
        rows, device = prev_actions.shape[0], prev_actions.device
    fraction = torch.full((rows, 1), step / num_steps, device=device)
    if not previous_action:
        # the previous glimpse's cell is a one-step memory of where the target was: a policy
        # without it reacts to the current glance only (the memory benchmark's control)
        return fraction
    if prev_actions is None:
        return torch.cat([fraction, fraction.new_zeros(rows, sum(action_dims))], 1)
    one_hots = [
        F.one_hot(prev_actions[:, i], n).to(fraction.dtype) for i, n in enumerate(action_dims)
    ]
    return torch.cat([fraction, *one_hots], dim=1)


class GlanceMapEncoder(nn.Module):
    """Glance feature map (+ extras) -> policy feature vector.

    ``[B, C, h, w] -> 1x1 conv (C -> channels) -> ReLU -> flatten (c h w) [; extras] -> Linear
    -> features_dim -> ReLU``; the linear layer is sized for ``map_hw``, and ``extras_dim`` is
    the width of the extra features appended after flattening (0: none).
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
        if min(in_channels, channels, h, w, features_dim) <= 0 or extras_dim < 0:
            raise ValueError(
                f"GlanceMapEncoder needs positive sizes (extras_dim >= 0), got in_channels="
                f"{in_channels}, map_hw={map_hw}, channels={channels}, "
                f"features_dim={features_dim}, extras_dim={extras_dim}"
            )
        self.in_channels = in_channels
        self.map_hw = (h, w)
        self.extras_dim = extras_dim
        self.features_dim = features_dim
        # AdaFocus's policy conv has no bias: it only re-weights channels before the ReLU.
        self.reduce = nn.Conv2d(in_channels, channels, kernel_size=1, bias=False)
        self.project = nn.Linear(channels * h * w + extras_dim, features_dim)

    def forward(self, maps: torch.Tensor, extras: torch.Tensor | None = None) -> torch.Tensor:
        """Feature vectors ``[B, features_dim]`` of glance maps ``[B, in_channels, h, w]`` and
        ``extras`` ``[B, extras_dim]`` (None when ``extras_dim`` is 0)."""
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


class GlimpsePolicyNetwork(nn.Module, ABC):
    """What every policy network offers: one step (:meth:`forward`), actions (:meth:`act`) and
    whole-clip roll-outs (:meth:`rollout`). Subclasses define ``forward``.

    :ivar num_layers: LSTM layers of the state (0: no memory).
    :ivar hidden: LSTM hidden size of the state (0: no memory).
    """

    # Zero sizes give a memoryless network the empty [0, B, 0] state, so one initial_state
    # and one act/rollout path serve both kinds.
    num_layers: int = 0
    hidden: int = 0

    def __init__(self, encoder: GlanceMapEncoder, action_dims: Sequence[int]) -> None:
        super().__init__()
        if not action_dims or any(n <= 0 for n in action_dims):
            raise ValueError(f"action_dims must be positive sizes, got {list(action_dims)}")
        self.action_dims = tuple(int(n) for n in action_dims)
        self.features_extractor = encoder

    def _build_head(self, width: int, net_arch: Sequence[int]) -> None:
        """SB3's ``policy_net`` (``Linear + Tanh`` per ``net_arch`` width over inputs of
        ``width``) and ``action_net``."""
        layers: list[nn.Module] = []
        for size in net_arch:
            layers += [nn.Linear(width, size), nn.Tanh()]
            width = size
        self.policy_net = nn.Sequential(*layers)
        self.action_net = nn.Linear(width, sum(self.action_dims))

    def _logits(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``[B, n_i]`` logits of every action dimension from the MLP's input ``x``."""
        return list(torch.split(self.action_net(self.policy_net(x)), self.action_dims, dim=1))

    @property
    def extras_dim(self) -> int:
        """Width of the extra features the encoder expects (0: none)."""
        return self.features_extractor.extras_dim

    @property
    def observes_previous_action(self) -> bool:
        """Whether the extras are the full :func:`progress_features` (step fraction and the
        previous action) rather than the step fraction alone."""
        return self.extras_dim == progress_dim(self.action_dims)

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
        """Actions ``[B, len(action_dims)]`` (long) of one step and the new state: the argmax of
        every dimension when ``deterministic``, else samples drawn with ``generator``."""
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
        :func:`progress_features`: the step fraction, and the previous action when
        :attr:`observes_previous_action`.
        """
        widths = (0, progress_dim(self.action_dims, False), progress_dim(self.action_dims))
        if self.extras_dim not in widths:
            raise ValueError(
                f"rollout builds progress_features ({widths[1]} or {widths[2]} values); "
                f"the encoder expects extras_dim={self.extras_dim}"
            )
        previous = self.observes_previous_action
        b, t = maps.shape[:2]
        state = self.initial_state(b, device=maps.device, dtype=maps.dtype)
        prev: torch.Tensor | None = None
        actions = []
        for step in range(t):
            extras = None
            if self.extras_dim:
                extras = progress_features(
                    step, t, prev, self.action_dims, batch=b, previous_action=previous
                ).to(maps.device)
            prev, state = self.act(maps[:, step], extras, state, deterministic, generator)
            actions.append(prev)
        return torch.stack(actions, dim=1)


class RecurrentGlimpsePolicy(GlimpsePolicyNetwork):
    """Actor of a recurrent actor-critic: features -> LSTM -> (MLP) -> logits per action dim.

    ``hidden`` and ``num_layers`` are SB3's ``lstm_hidden_size`` and ``n_lstm_layers``;
    ``net_arch`` the Tanh MLP widths before ``action_net`` (SB3's ``net_arch["pi"]``).
    """

    def __init__(
        self,
        encoder: GlanceMapEncoder,
        hidden: int,
        action_dims: Sequence[int],
        net_arch: Sequence[int] = (),
        num_layers: int = 1,
    ) -> None:
        if hidden <= 0 or num_layers <= 0:
            raise ValueError(f"hidden and num_layers must be > 0, got {hidden}, {num_layers}")
        super().__init__(encoder, action_dims)
        self.hidden = hidden
        self.num_layers = num_layers
        self.lstm_actor = nn.LSTM(encoder.features_dim, hidden, num_layers)  # [L, B, F] layout
        self._build_head(hidden, net_arch)

    def forward(
        self,
        obs_maps: torch.Tensor,
        extras: torch.Tensor | None,
        state: PolicyState,
        episode_start: torch.Tensor | None = None,
    ) -> tuple[list[torch.Tensor], PolicyState]:
        """One step; ``episode_start`` (float or bool ``[B]``) 1 resets that episode's state
        first, as SB3's ``episode_starts``."""
        features = self.features_extractor(obs_maps, extras)
        h, c = state
        if episode_start is not None:
            keep = (1.0 - episode_start.to(h.dtype)).view(1, -1, 1)
            h, c = h * keep, c * keep
        out, (h, c) = self.lstm_actor(features.unsqueeze(0), (h, c))
        return self._logits(out.squeeze(0)), PolicyState(h, c)


class FeedForwardGlimpsePolicy(GlimpsePolicyNetwork):
    """Actor of a feed-forward actor-critic (SB3's plain ``PPO``): features -> (MLP) -> logits;
    the keys of :class:`RecurrentGlimpsePolicy` without ``lstm_actor``, and an empty state."""

    def __init__(
        self,
        encoder: GlanceMapEncoder,
        action_dims: Sequence[int],
        net_arch: Sequence[int] = (),
    ) -> None:
        super().__init__(encoder, action_dims)
        self._build_head(encoder.features_dim, net_arch)

    def forward(
        self,
        obs_maps: torch.Tensor,
        extras: torch.Tensor | None,
        state: PolicyState,
        episode_start: torch.Tensor | None = None,
    ) -> tuple[list[torch.Tensor], PolicyState]:
        """One step: logits of every action dimension; ``state`` is passed through unchanged."""
        return self._logits(self.features_extractor(obs_maps, extras)), state
