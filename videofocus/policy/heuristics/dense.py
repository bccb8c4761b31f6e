"""``dense``: the whole-frame option (extent 1) on every frame."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from videofocus.models.focusnet import GlanceOutput
from videofocus.models.glimpse import GlimpseOption
from videofocus.policy.heuristics.base import GlimpsePolicy, constant_actions, register_policy


@register_policy("dense")
class DensePolicy(GlimpsePolicy):
    """The whole frame on every step: the first option of extent 1 (AR-Net's full frame).

    :raises ValueError: when no option covers the whole frame.
    """

    def __init__(self, options: Sequence[GlimpseOption], grid: int) -> None:
        super().__init__(options, grid)
        whole = [k for k, o in enumerate(self.options, start=1) if o.extent == 1.0]
        if not whole:
            raise ValueError(
                "the dense policy needs a glimpse option of extent 1.0 (the whole frame); "
                f"options are {[o.extent for o in self.options]}"
            )
        self.option = whole[0]

    def act(self, glance: GlanceOutput, generator: torch.Generator | None = None) -> torch.Tensor:
        return constant_actions(glance, self.option, 0, 0)
