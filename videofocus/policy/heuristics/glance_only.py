"""``glance_only``: skip every frame."""

from __future__ import annotations

import torch

from videofocus.models.focusnet import GlanceOutput
from videofocus.policy.heuristics.base import GlimpsePolicy, constant_actions, register_policy


@register_policy("glance_only")
class GlanceOnlyPolicy(GlimpsePolicy):
    """Skip every frame: the aggregator sees only the glance."""

    def act(self, glance: GlanceOutput, generator: torch.Generator | None = None) -> torch.Tensor:
        return constant_actions(glance, 0, 0, 0)
