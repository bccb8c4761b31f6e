"""``random``: a fixed option at uniformly random cells (the warm-up stage's glimpses)."""

from __future__ import annotations

import torch

from videofocus.models.focusnet import GlanceOutput
from videofocus.policy.heuristics.base import FixedOptionPolicy, register_policy


@register_policy("random")
class RandomPolicy(FixedOptionPolicy):
    """Option ``option`` at uniformly random cells."""

    def act(self, glance: GlanceOutput, generator: torch.Generator | None = None) -> torch.Tensor:
        b, t = glance.maps.shape[:2]
        device = generator.device if generator is not None else glance.maps.device
        cells = torch.randint(0, self.grid, (b, t, 2), generator=generator, device=device)
        return self.at_cells(cells).to(glance.maps.device)
