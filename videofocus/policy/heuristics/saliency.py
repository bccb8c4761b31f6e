"""``saliency``: a fixed option at the cell whose glimpse centre lies nearest to the strongest
glance activation (peak of the channel-summed glance map)."""

from __future__ import annotations

import torch
from einops import rearrange

from videofocus.models.focusnet import GlanceOutput
from videofocus.models.glimpse import nearest_cells
from videofocus.policy.heuristics.base import FixedOptionPolicy, register_policy

__all__ = ["SaliencyPolicy", "saliency_map"]


def saliency_map(maps: torch.Tensor) -> torch.Tensor:
    """Saliency ``[B, T, h, w]`` of glance maps ``[B, T, C, h, w]``: their channel sum."""
    return maps.sum(dim=2)


@register_policy("saliency")
class SaliencyPolicy(FixedOptionPolicy):
    """Option ``option`` centred as near as the grid allows to the glance activation's peak.

    The peak is the strongest position of the channel-summed glance map; the chosen cell is,
    along each axis, the one whose *glimpse centre* lies nearest to it. Glimpse centres are not
    the unit cells' centres (they span ``[e/2, 1 - e/2]`` for a glimpse of extent ``e``, see
    :func:`~videofocus.models.glimpse.grid_centres`), so resizing the map to ``G x G`` would
    aim off by up to half a glimpse near the borders. Frames are square (the training stages'
    clips)."""

    def peaks(self, maps: torch.Tensor) -> torch.Tensor:
        """Normalised ``(x, y)`` ``[B, T, 2]`` of the channel-summed maps' strongest positions."""
        h, w = maps.shape[-2:]
        flat = rearrange(saliency_map(maps), "b t h w -> b t (h w)").argmax(dim=-1)
        y, x = flat // w, flat % w
        return torch.stack([(x + 0.5) / w, (y + 0.5) / h], dim=-1)

    def act(self, glance: GlanceOutput, generator: torch.Generator | None = None) -> torch.Tensor:
        extent = self.options[self.option - 1].extent
        return self.at_cells(nearest_cells(self.peaks(glance.maps), self.grid, extent))
