"""``centre``: a fixed option at the centre cell."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from videofocus.models.focusnet import GlanceOutput
from videofocus.models.glimpse import GlimpseOption
from videofocus.policy.heuristics.base import GlimpsePolicy, constant_actions, register_policy


@register_policy("centre")
class CentrePolicy(GlimpsePolicy):
    """Option ``option`` at the centre cell ``(G // 2, G // 2)`` (for an even ``G``, the cell
    right of and below the centre).

    :param option: the action option (``1..K``) of every glimpse.
    """

    def __init__(self, options: Sequence[GlimpseOption], grid: int, option: int = 1) -> None:
        super().__init__(options, grid)
        self.option = self._check_option(option)

    def act(self, glance: GlanceOutput, generator: torch.Generator | None = None) -> torch.Tensor:
        return constant_actions(glance, self.option, self.grid // 2, self.grid // 2)
