"""The batched episode core of the glimpse environments: N videos stepped at once on the device.

An episode is one clip of ``T`` frames; at step ``t`` the policy sees frame ``t``'s glance and
chooses ``(option, cell_x, cell_y)``. :class:`EpisodeBatch` carries out the glimpses of all ``N``
videos with the **frozen** :class:`~videofocus.models.FocusNet`, advances the aggregator one step
and returns rewards and the next observation; every episode of a batch starts and ends together.

The reward (:mod:`videofocus.policy.rewards`) is a gain over a counterfactual baseline glimpse,
minus ``cost_lambda`` x the option's normalised cost (its glimpse MACs over the dearest option's;
a skip costs 0).

Since the encoders are frozen and the action space finite, a :class:`LocalFeatureMemo` can keep
every glimpse feature once computed. :func:`build_episode_core` wires it all from a config.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces

from videofocus.artifacts.factory import glance_map_hw
from videofocus.config import Config, ConfigError
from videofocus.models.cost import CostTable
from videofocus.models.focusnet import FocusNet
from videofocus.policy.actions import glimpse_action_dims, resolve_actions
from videofocus.policy.observation import GlanceProjection, progress_observation
from videofocus.policy.rewards import get_reward, list_rewards
from videofocus.runtime import amp_precision, autocast_for
from videofocus.train.rl.clips import (
    ClipItem,
    Clips,
    ClipSource,
    VideoCache,
    VideoStream,
    fit_projection,
    glance_fingerprint,
    normalise_frames,
)
from videofocus.train.rl.spaces import glance_observation_space, glimpse_action_space

__all__ = [
    "REWARDS",
    "ClipSource",
    "Clips",
    "EpisodeBatch",
    "LocalFeatureMemo",
    "StepResult",
    "VideoCache",
    "VideoStream",
    "build_episode_core",
    "fit_projection",
    "normalise_frames",
    "random_glimpse_actions",
]

#: Names of the registered rewards when this module was imported.
REWARDS = tuple(list_rewards())

#: Largest glimpse-feature memo :func:`build_episode_core` allocates.
MEMO_LIMIT_BYTES = 4 * 2**30


class LocalFeatureMemo:
    """Glimpse features by ``(video, step, option, cell_x, cell_y)``, computed once each.

    Valid only while every video's frames are fixed (evaluation-mode sampling) and the encoders
    frozen. Memory: ``num_videos x num_steps x num_options x grid x grid x dim`` floats.
    """

    def __init__(
        self,
        num_videos: int,
        num_steps: int,
        num_options: int,
        grid: int,
        dim: int,
        device: torch.device | str | None = None,
    ) -> None:
        shape = (num_videos, num_steps, num_options, grid, grid)
        self.features = torch.zeros(*shape, dim, device=device)
        self.filled = torch.zeros(shape, dtype=torch.bool, device=device)
        self.hits = 0
        self.misses = 0

    @property
    def nbytes(self) -> int:
        """Bytes held by the memo."""
        return self.features.nbytes + self.filled.nbytes

    def get_or_compute(
        self,
        keys: torch.Tensor,
        step: int,
        actions: torch.Tensor,
        compute: Callable[[torch.Tensor], torch.Tensor],
    ) -> torch.Tensor:
        """Features ``[M, dim]`` of glimpses ``actions [M, 3]`` (options >= 1) of videos ``keys``;
        ``compute(rows)`` gives those of the rows ``[m]`` not memoised yet."""
        index = (keys, torch.full_like(keys, step), actions[:, 0] - 1, actions[:, 1], actions[:, 2])
        hit = self.filled[index]
        todo = torch.nonzero(~hit).squeeze(1)
        if todo.numel():
            sub = tuple(i[todo] for i in index)
            self.features[sub] = compute(todo).to(self.features.dtype)
            self.filled[sub] = True
        self.misses += int(todo.numel())
        self.hits += len(keys) - int(todo.numel())
        return self.features[index]


def random_glimpse_actions(
    keys: Sequence[int],
    visits: Sequence[int],
    num_steps: int,
    num_options: int,
    grid: int,
    seed: int,
) -> torch.Tensor:
    """Random glimpses ``[N, T, 3]`` (option uniform in ``1..K``, cells uniform), drawn from
    ``(seed, video key, visit)`` so that a video's baseline does not depend on its batch."""
    out = np.empty((len(keys), num_steps, 3), dtype=np.int64)
    for i, (key, visit) in enumerate(zip(keys, visits, strict=True)):
        rng = np.random.default_rng([seed, int(key), int(visit)])
        out[i, :, 0] = rng.integers(1, num_options + 1, num_steps)
        out[i, :, 1:] = rng.integers(0, grid, (num_steps, 2))
    return torch.from_numpy(out)


class StepResult(NamedTuple):
    """What one :meth:`EpisodeBatch.step` returns: the next observation, ``[N]`` rewards,
    whether the episodes ended, the ground-truth probability after the action and the
    normalised cost of the action carried out (0 for a skip)."""

    observation: dict[str, torch.Tensor]
    reward: torch.Tensor
    terminated: bool
    confidence: torch.Tensor
    cost: torch.Tensor


class EpisodeBatch:
    """N episodes of the glimpse task stepped together with a frozen :class:`FocusNet`.

    :param glimpse_costs: cost of one glimpse of each option (e.g. ``CostTable.local`` MACs);
        normalised by the largest.
    :param reward: a registered reward's name (:func:`videofocus.policy.rewards.list_rewards`).
    :param allow_skip: False: option 0 glimpses with option 1 (:func:`resolve_actions`).
    :param memo: memo of glimpse features (needs fixed frames per video key), or None.
    :param seed: seed of the random baseline glimpses.
    :param observe_previous_action: the progress observation holds the previous action (False:
        the step fraction only).
    :param precision: ``"bf16"``: the glimpse encoder runs under bf16 autocast (as the stages
        around the policy train it where bf16 is native); ``"fp32"``: without.
    """

    def __init__(
        self,
        net: FocusNet,
        projection: GlanceProjection,
        glimpse_costs: Sequence[float],
        *,
        reward: str = "adafocus",
        cost_lambda: float = 0.0,
        allow_skip: bool = True,
        memo: LocalFeatureMemo | None = None,
        seed: int = 0,
        observe_previous_action: bool = True,
        precision: str = "fp32",
    ) -> None:
        self.reward = get_reward(reward)  # ValueError for an unknown name
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be fp32 or bf16, got {precision!r}")
        if len(glimpse_costs) != net.num_options or min(glimpse_costs) < 0:
            raise ValueError(
                f"need one non-negative cost per glimpse option ({net.num_options}), "
                f"got {list(glimpse_costs)}"
            )
        if cost_lambda < 0:
            raise ValueError(f"cost_lambda must be >= 0, got {cost_lambda}")
        self.net = net.eval()
        self.projection = projection
        self.reward_name = reward
        self.cost_lambda = float(cost_lambda)
        self.allow_skip = allow_skip
        self.memo = memo
        self.seed = seed
        self.observe_previous_action = observe_previous_action
        self.precision = precision
        self.action_dims = glimpse_action_dims(net.num_options, net.grid)
        dearest = max(glimpse_costs) or 1.0
        self._option_cost = torch.tensor([0.0, *(c / dearest for c in glimpse_costs)])
        self._step = 0
        self._clips: Clips | None = None

    @property
    def action_space(self) -> spaces.MultiDiscrete:
        """``MultiDiscrete([K + 1, G, G])`` of one episode."""
        return glimpse_action_space(self.net.num_options, self.net.grid)

    @torch.no_grad()
    def observation_space(self) -> spaces.Dict:
        """The observation space of one episode."""
        map_hw = glance_map_hw(self.net)
        return glance_observation_space(
            self.projection.out_channels, map_hw, self.action_dims, self.observe_previous_action
        )

    @property
    def num_envs(self) -> int:
        """Episodes in the current batch."""
        return 0 if self._clips is None else len(self._clips.keys)

    @property
    def num_steps(self) -> int:
        """Steps ``T`` of the current episodes."""
        return 0 if self._clips is None else self._clips.frames.shape[1]

    @property
    def step_index(self) -> int:
        """0-based step the next :meth:`step` carries out (``T`` once the episodes ended)."""
        return self._step

    @property
    def keys(self) -> torch.Tensor:
        """Video keys ``[N]`` of the current episodes."""
        if self._clips is None:
            raise RuntimeError("no episodes yet: call start()")
        return self._clips.keys

    @torch.no_grad()
    def start(self, clips: Clips, visits: Sequence[int] | None = None) -> dict[str, torch.Tensor]:
        """Begin one episode per video of ``clips``; returns the first observation. ``visits``
        (how often each video was visited before, default 0) keys the random baseline."""
        n, t = clips.frames.shape[:2]
        if clips.frames.dtype != torch.uint8:
            raise ValueError(f"clips.frames must be uint8, got {clips.frames.dtype}")
        if clips.glance.maps.shape[:2] != (n, t) or clips.labels.shape != (n,):
            raise ValueError("clips: frames, glance and labels disagree on [N, T]")
        keys = clips.keys.tolist()
        visits = [0] * n if visits is None else list(visits)
        self._clips = clips
        self._obs_maps = self.projection(clips.glance.maps)  # [N, T, c, h, w], fixed per episode
        self._random = random_glimpse_actions(
            keys, visits, t, self.net.num_options, self.net.grid, self.seed
        ).to(clips.frames.device)
        agg = self.net.aggregator
        like = clips.glance.pooled
        self._hidden = like.new_zeros(agg.gru.num_layers, n, agg.gru.hidden_size)
        self._prev_conf = like.new_full((n,), 1.0 / agg.num_classes)
        self._prev_actions: torch.Tensor | None = None
        self._step = 0
        return self.observation()

    def observation(self) -> dict[str, torch.Tensor]:
        """The observation of the current step (after the last step: zero glance, fraction 1)."""
        if self._clips is None:
            raise RuntimeError("no episodes yet: call start()")
        n, t, maps = self.num_envs, self.num_steps, self._obs_maps
        glance = maps[:, self._step] if self._step < t else torch.zeros_like(maps[:, 0])
        progress = progress_observation(
            self._step,
            t,
            self._prev_actions,
            self.action_dims,
            n,
            maps.device,
            self.observe_previous_action,
        )
        return {"glance": glance, "progress": progress}

    def _local_features(self, actions: torch.Tensor) -> torch.Tensor:
        """Glimpse features ``[M, D]`` of actions ``[M, 3]``, row ``i`` on video ``i % N``."""
        assert self._clips is not None
        clips, step, n = self._clips, self._step, self.num_envs
        rows = torch.arange(len(actions), device=actions.device) % n
        out = clips.glance.pooled.new_zeros(len(actions), self.net.local_encoder.feature_dim)
        glimpse = torch.nonzero(actions[:, 0] > 0).squeeze(1)
        if glimpse.numel() == 0:
            return out

        def compute(sel: torch.Tensor) -> torch.Tensor:
            idx = glimpse[sel]
            # [m, 1, 3, H, W] uint8 frames and [m, 1, 3] actions: FocusNet groups them by
            # option and normalises only the crops' pixels, as the batched inferencer does
            frames = clips.frames[rows[idx], step].unsqueeze(1)
            with autocast_for(frames.device, "bf16" if self.precision == "bf16" else "off"):
                feats = self.net.local_features(frames, actions[idx].unsqueeze(1), normalise_frames)
            return feats[0][:, 0].float()

        if self.memo is None:
            feats = compute(torch.arange(len(glimpse), device=actions.device))
        else:
            feats = self.memo.get_or_compute(
                clips.keys[rows[glimpse]], step, actions[glimpse], compute
            )
        return out.index_copy(0, glimpse, feats.to(out.dtype))

    def _baseline_actions(self, executed: torch.Tensor) -> torch.Tensor | None:
        """The baseline glimpses ``[N, 3]`` of the reward at the current step (None: none)."""
        kind = self.reward.baseline
        if kind == "random":
            return self._random[:, self._step]
        if kind == "skip":
            return torch.zeros_like(executed)
        return None

    @torch.no_grad()
    def step(self, actions: torch.Tensor) -> StepResult:
        """Carry out ``actions`` (long ``[N, 3]``) on the current frame of every episode."""
        if self._clips is None or self._step >= self.num_steps:
            raise RuntimeError("the episodes have ended: call start() first")
        n, clips, step = self.num_envs, self._clips, self._step
        device = clips.frames.device
        actions = torch.as_tensor(actions, device=device).long()
        if actions.shape != (n, 3):
            raise ValueError(f"actions must be [N={n}, 3], got {tuple(actions.shape)}")
        high = torch.tensor(self.action_dims, device=device)
        if bool(((actions < 0) | (actions >= high)).any()):
            raise ValueError(f"actions out of range of MultiDiscrete({list(self.action_dims)})")
        executed = resolve_actions(actions, self.allow_skip)
        # the chosen glimpse and the reward's baseline from the same state, in one batched pass
        baseline = self._baseline_actions(executed)
        taken = executed if baseline is None else torch.cat([executed, baseline])
        local = self._local_features(taken)
        copies = len(taken) // n
        pooled = clips.glance.pooled[:, step].repeat(copies, 1)
        hidden = self._hidden.repeat(1, copies, 1)
        out = self.net.aggregator.step(pooled, local, taken[:, 0] - 1, hidden)
        labels = clips.labels.repeat(copies)
        prob = F.softmax(out.logits.float(), dim=-1).gather(1, labels[:, None]).squeeze(1)
        confidence = prob[:n]
        gain = self.reward.gain(confidence, None if baseline is None else prob[n:], self._prev_conf)
        cost = self._option_cost.to(device)[executed[:, 0]]
        reward = gain - self.cost_lambda * cost
        self._hidden = out.hidden[:, :n]
        self._prev_conf = confidence
        self._prev_actions = actions
        self._step += 1
        return StepResult(
            self.observation(), reward, self._step == self.num_steps, confidence, cost
        )


def build_episode_core(
    cfg: Config,
    net: FocusNet,
    dataset: Sequence[ClipItem],
    projection: GlanceProjection | None = None,
) -> tuple[ClipSource, EpisodeBatch]:
    """The video source (``net``, on the episodes' device, and ``dataset`` as in
    :class:`ClipSource`) and episode core the ``policy`` section of ``cfg`` describes;
    ``projection`` None fits one on ``policy.projection_videos`` videos of ``dataset``.

    :raises ConfigError: when the glimpse-feature memo would exceed :data:`MEMO_LIMIT_BYTES`.
    """
    policy, data = cfg.policy, cfg.data
    fingerprint = glance_fingerprint(
        net, data.root, data.manifest, data.train_split, data.frames, data.frame_size, len(dataset)
    )
    source = ClipSource(dataset, net, VideoCache(policy.cache_dir, fingerprint))
    if projection is None:
        projection = fit_projection(
            source, policy.obs_channels, policy.projection_videos, policy.seed
        )
    costs = CostTable.from_model(net, data.frame_size).local
    memo = None
    if policy.cache_local:
        dim = net.local_encoder.feature_dim
        cells = len(dataset) * data.frames * net.num_options * net.grid**2
        if cells * (4 * dim + 1) > MEMO_LIMIT_BYTES:
            raise ConfigError(
                None,
                "policy.cache_local",
                f"the glimpse-feature memo would hold {cells * (4 * dim + 1) / 2**30:.1f} GiB "
                f"(over {MEMO_LIMIT_BYTES / 2**30:.0f} GiB); set policy.cache_local=false",
            )
        shape = (len(dataset), data.frames, net.num_options, net.grid)
        memo = LocalFeatureMemo(*shape, dim, device=source.device)
    episodes = EpisodeBatch(
        net,
        projection.to(source.device),
        costs,
        reward=policy.reward,
        cost_lambda=policy.cost_lambda,
        allow_skip=policy.allow_skip,
        memo=memo,
        seed=policy.seed,
        observe_previous_action=policy.observe_previous_action,
        precision=amp_precision(source.device, cfg.train.amp),
    )
    return source, episodes
