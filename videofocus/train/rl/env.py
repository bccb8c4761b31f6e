"""``FocusEnv``: the glimpse task as a plain ``gymnasium.Env``, one video per episode.

It is :class:`~videofocus.train.rl.episodes.EpisodeBatch` with a batch of one, for the environment
checkers, for debugging a policy on one video and as the reference that the batched
:class:`~videofocus.train.rl.vec_env.FocusVecEnv` is tested against. Training uses the VecEnv.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from videofocus.config import Config
from videofocus.models.focusnet import FocusNet
from videofocus.policy.observation import GlanceProjection
from videofocus.train.rl.episodes import (
    ClipItem,
    ClipSource,
    EpisodeBatch,
    VideoStream,
    build_episode_core,
)

__all__ = ["FocusEnv"]

Observation = dict[str, np.ndarray]


class FocusEnv(gym.Env[Observation, np.ndarray]):
    """One video per episode of ``T`` steps; the episode terminates after the last frame.

    Observation ``{"glance": float32 [c, h, w], "progress": float32 [E]}``, action
    ``MultiDiscrete([K + 1, G, G])``; the reward is the :class:`EpisodeBatch`'s. ``info`` holds
    ``video`` (dataset index), and after a step ``confidence`` (ground-truth probability) and
    ``cost`` (normalised cost of the action carried out).

    ``reset(seed=s)`` restarts the seeded stream of videos (``seed`` until then);
    ``reset(options={"video": i})`` plays video ``i`` instead of the stream's next one.
    """

    metadata = {"render_modes": []}

    def __init__(self, source: ClipSource, episodes: EpisodeBatch, seed: int = 0) -> None:
        super().__init__()
        self.source = source
        self.episodes = episodes
        self.stream = VideoStream(len(source), seed)
        self.action_space = episodes.action_space
        self.observation_space = episodes.observation_space()
        self.render_mode = None
        self.video: int | None = None

    @classmethod
    def from_config(
        cls,
        cfg: Config,
        net: FocusNet,
        dataset: Sequence[ClipItem],
        projection: GlanceProjection | None = None,
    ) -> FocusEnv:
        """The environment ``cfg.policy`` describes (arguments of :func:`build_episode_core`)."""
        source, episodes = build_episode_core(cfg, net, dataset, projection)
        return cls(source, episodes, seed=cfg.policy.seed)

    @staticmethod
    def _first(obs: dict[str, torch.Tensor]) -> Observation:
        return {key: value[0].cpu().numpy() for key, value in obs.items()}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Observation, dict[str, Any]]:
        """Start the next video of the stream (or ``options["video"]``)."""
        super().reset(seed=seed)
        if seed is not None:
            self.stream.reseed(seed)
        video = (options or {}).get("video")
        if video is None:
            indices, visits = self.source.draw(self.stream, 1)
        else:
            video = int(video)
            if not 0 <= video < len(self.source) or not self.source.valid(video):
                raise ValueError(f"video {video} is not a decodable video of the dataset")
            indices, visits = [video], [self.stream.visit(video)]
        self.video = indices[0]
        obs = self.episodes.start(self.source.load(indices), visits)
        return self._first(obs), {"video": self.video}

    def step(self, action: np.ndarray) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
        """Carry out ``action = (option, cell_x, cell_y)`` on the current frame."""
        actions = torch.as_tensor(np.asarray(action, dtype=np.int64)).reshape(1, 3)
        result = self.episodes.step(actions)
        info = {
            "video": self.video,
            "confidence": float(result.confidence[0]),
            "cost": float(result.cost[0]),
        }
        reward = float(result.reward[0])
        return self._first(result.observation), reward, result.terminated, False, info

    def close(self) -> None:
        """Forget the in-memory cache of frames and glance features."""
        self.source.cache.clear()
