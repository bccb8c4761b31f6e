"""``random``: a fixed option at uniformly random cells (the warm-up stage's glimpses)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from videofocus.models.focusnet import GlanceOutput
from videofocus.models.glimpse import GlimpseOption
from videofocus.policy.heuristics.base import GlimpsePolicy, register_policy


@register_policy("random")
class RandomPolicy(GlimpsePolicy):
    """Option ``option`` at uniformly random cells.

    :param option: the action option (``1..K``) of every glimpse.
    """

    def __init__(self, options: Sequence[GlimpseOption], grid: int, option: int = 1) -> None:
        super().__init__(options, grid)
        self.option = self._check_option(option)

    def act(self, glance: GlanceOutput, generator: torch.Generator | None = None) -> torch.Tensor:
        b, t = glance.maps.shape[:2]
        device = generator.device if generator is not None else glance.maps.device
        cells = torch.randint(0, self.grid, (b, t, 2), generator=generator, device=device)
        option = torch.full((b, t, 1), self.option, dtype=torch.long, device=device)
        return torch.cat([option, cells], dim=-1).to(glance.maps.device)
