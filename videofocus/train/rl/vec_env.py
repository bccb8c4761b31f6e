"""``FocusVecEnv``: N videos stepped together, as a stable-baselines3 ``VecEnv``.

One batched :class:`~videofocus.train.rl.episodes.EpisodeBatch` replaces N separate environments,
on the model's device; only the small observations travel to the host.

All N episodes have ``T`` steps, so they end together: at that step every ``info`` holds the
``terminal_observation`` and an ``episode`` record (``r`` return, ``l`` length, ``t`` seconds
since the environment was made, as ``Monitor`` writes them), and the returned observation
already belongs to the next N videos (auto-reset, as stable-baselines3 expects).

There are no sub-environments: ``get_attr``, ``set_attr`` and ``env_method`` act on this
batched environment once and report the result for every requested index.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from gymnasium import Wrapper
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvStepReturn

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

__all__ = ["FocusVecEnv"]

Observation = dict[str, np.ndarray]


class FocusVecEnv(VecEnv):
    """``num_envs`` glimpse episodes stepped in one batch; a stable-baselines3 ``VecEnv``. ``seed``
    seeds the video stream (``seed()`` changes it at the next ``reset``)."""

    def __init__(
        self, source: ClipSource, episodes: EpisodeBatch, num_envs: int, seed: int = 0
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.source = source
        self.episodes = episodes
        self.stream = VideoStream(len(source), seed)
        self.render_mode = None  # read by VecEnv.__init__ through get_attr
        super().__init__(num_envs, episodes.observation_space(), episodes.action_space)
        self.videos: list[int] = []
        self._actions: torch.Tensor | None = None
        self._returns = np.zeros(num_envs, dtype=np.float64)
        self._created = time.perf_counter()

    @classmethod
    def from_config(
        cls,
        cfg: Config,
        net: FocusNet,
        dataset: Sequence[ClipItem],
        projection: GlanceProjection | None = None,
    ) -> FocusVecEnv:
        """``policy.n_envs`` episodes as ``cfg.policy`` says (see :func:`build_episode_core`)."""
        source, episodes = build_episode_core(cfg, net, dataset, projection)
        return cls(source, episodes, cfg.policy.n_envs, seed=cfg.policy.seed)

    @staticmethod
    def _numpy(obs: dict[str, torch.Tensor]) -> Observation:
        return {key: value.cpu().numpy() for key, value in obs.items()}

    def _start_batch(self) -> Observation:
        indices, visits = self.source.draw(self.stream, self.num_envs)
        self.videos = indices
        self._returns[:] = 0.0
        return self._numpy(self.episodes.start(self.source.load(indices), visits))

    def reset(self) -> Observation:
        """Start N new videos; a seed given by ``seed()`` restarts the stream first."""
        if self._seeds[0] is not None:
            self.stream.reseed(self._seeds[0])
        self._reset_seeds()
        self._reset_options()
        obs = self._start_batch()
        self.reset_infos = [{"video": v} for v in self.videos]
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        """Remember ``actions`` (``[N, 3]``) for :meth:`step_wait`."""
        self._actions = torch.as_tensor(np.asarray(actions, dtype=np.int64))

    def step_wait(self) -> VecEnvStepReturn:
        """Carry out the remembered actions; auto-reset when the episodes end."""
        if self._actions is None:
            raise RuntimeError("step_wait() without step_async()")
        result = self.episodes.step(self._actions)
        self._actions = None
        rewards = result.reward.cpu().numpy().astype(np.float32)
        self._returns += rewards
        obs = self._numpy(result.observation)
        confidence = result.confidence.cpu().numpy()
        cost = result.cost.cpu().numpy()
        infos: list[dict[str, Any]] = [
            {"video": v, "confidence": float(p), "cost": float(c)}
            for v, p, c in zip(self.videos, confidence, cost, strict=True)
        ]
        dones = np.full(self.num_envs, result.terminated, dtype=bool)
        if result.terminated:
            elapsed = round(time.perf_counter() - self._created, 6)
            length = self.episodes.num_steps
            for i, info in enumerate(infos):
                info["terminal_observation"] = {key: value[i] for key, value in obs.items()}
                info["episode"] = {"r": float(self._returns[i]), "l": length, "t": elapsed}
                info["TimeLimit.truncated"] = False
            obs = self._start_batch()
        return obs, rewards, dones, infos

    def close(self) -> None:
        """Forget the in-memory cache of frames and glance features."""
        self.source.cache.clear()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The attribute of this batched environment, once per requested index."""
        value = getattr(self, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set the attribute of this batched environment (it has no separate sub-envs)."""
        setattr(self, attr_name, value)

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: VecEnvIndices = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        """Call the method of this batched environment once; its result for every index."""
        result = getattr(self, method_name)(*method_args, **method_kwargs)
        return [result for _ in self._get_indices(indices)]

    def env_is_wrapped(
        self, wrapper_class: type[Wrapper], indices: VecEnvIndices = None
    ) -> list[bool]:
        """Always False: the batched episodes are not gymnasium environments to wrap."""
        return [False for _ in self._get_indices(indices)]
