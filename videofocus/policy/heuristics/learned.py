"""A trained policy network behind the :class:`GlimpsePolicy` interface (not a heuristic: it is
not registered, :func:`~videofocus.artifacts.learned_policy.load_learned_policy` builds it)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from videofocus.models.focusnet import GlanceOutput
from videofocus.models.glimpse import GlimpseOption
from videofocus.policy.actions import resolve_actions
from videofocus.policy.heuristics.base import GlimpsePolicy
from videofocus.policy.network import GlimpsePolicyNetwork
from videofocus.policy.observation import GlanceProjection


class LearnedGlimpsePolicy(GlimpsePolicy):
    """A trained recurrent policy on the environments' observations.

    Glance maps go through the same :class:`GlanceProjection` as in
    :class:`~videofocus.train.rl.episodes.EpisodeBatch`, the network rolls out every clip
    (:meth:`GlimpsePolicyNetwork.rollout`, progress features built as the environments build
    them) and skips are resolved as the environments resolve them (``allow_skip``);
    ``deterministic`` takes argmax actions, else they are sampled with the ``act`` generator.
    """

    def __init__(
        self,
        options: Sequence[GlimpseOption],
        grid: int,
        projection: GlanceProjection,
        network: GlimpsePolicyNetwork,
        allow_skip: bool = True,
        deterministic: bool = True,
    ) -> None:
        super().__init__(options, grid)
        expected = (len(self.options) + 1, grid, grid)
        if network.action_dims != expected:
            raise ValueError(f"network acts in {network.action_dims}, the model needs {expected}")
        self.projection = projection
        self.network = network
        self.allow_skip = allow_skip
        self.deterministic = deterministic

    def act(self, glance: GlanceOutput, generator: torch.Generator | None = None) -> torch.Tensor:
        maps = self.projection(glance.maps)
        actions = self.network.rollout(maps, self.deterministic, generator)
        return resolve_actions(actions, self.allow_skip)
