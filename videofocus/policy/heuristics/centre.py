"""``centre``: a fixed option at the centre cell."""

from __future__ import annotations

import torch

from videofocus.models.focusnet import GlanceOutput
from videofocus.policy.heuristics.base import FixedOptionPolicy, constant_actions, register_policy


@register_policy("centre")
class CentrePolicy(FixedOptionPolicy):
    """Option ``option`` at the centre cell ``(G // 2, G // 2)`` (for an even ``G``, the cell
    right of and below the centre)."""

    def act(self, glance: GlanceOutput, generator: torch.Generator | None = None) -> torch.Tensor:
        return constant_actions(glance, self.option, self.grid // 2, self.grid // 2)
