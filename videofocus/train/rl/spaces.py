"""The gymnasium spaces of the glimpse environments (actions: :mod:`videofocus.policy.actions`).

- Action: ``MultiDiscrete([K + 1, G, G])`` of ``(option, cell_x, cell_y)``; option 0 skips the
  frame, ``1..K`` pick a glimpse option, the cells index a ``G x G`` grid of glimpse centres.
- Observation: ``Dict(glance=Box[c, h, w], progress=Box[E])``: a few channels of the current
  frame's glance map with its spatial layout kept (the policy must see *where*), and the
  progress features of :func:`~videofocus.policy.network.progress_features`.

The action space keeps its ``K + 1`` options even when skipping is disabled, so the policy
network has one layout whatever the run; :func:`resolve_actions` then reads a skip as option 1,
in the environments and at inference alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from gymnasium import spaces

from videofocus.policy.actions import glimpse_action_dims
from videofocus.policy.network import progress_dim

__all__ = ["glance_observation_space", "glimpse_action_space"]


def glimpse_action_space(num_options: int, grid: int) -> spaces.MultiDiscrete:
    """``MultiDiscrete([K + 1, G, G])`` of ``(option, cell_x, cell_y)`` for ``K = num_options``
    and ``G = grid``; option 0 = skip."""
    return spaces.MultiDiscrete(np.array(glimpse_action_dims(num_options, grid), dtype=np.int64))


def glance_observation_space(
    channels: int, map_hw: tuple[int, int], action_dims: Sequence[int]
) -> spaces.Dict:
    """``Dict(glance=Box float32 [channels, h, w], progress=Box float32 [E] in [0, 1])`` with
    ``E = progress_dim(action_dims)``."""
    h, w = map_hw
    if channels < 1 or h < 1 or w < 1:
        raise ValueError(f"need positive channels and map size, got {channels}, {map_hw}")
    return spaces.Dict(
        {
            # Projected features are unbounded linear combinations of the glance channels.
            "glance": spaces.Box(-np.inf, np.inf, (channels, h, w), np.float32),
            "progress": spaces.Box(0.0, 1.0, (progress_dim(action_dims),), np.float32),
        }
    )
