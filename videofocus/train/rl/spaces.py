"""The gymnasium spaces of the glimpse environments: the action space of
:mod:`videofocus.policy.actions`, and the observation of :mod:`videofocus.policy.observation`
(a few channels of the current frame's glance map, layout kept, and the progress features)."""

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
    channels: int,
    map_hw: tuple[int, int],
    action_dims: Sequence[int],
    previous_action: bool = True,
) -> spaces.Dict:
    """``Dict(glance=Box float32 [channels, h, w], progress=Box float32 [E] in [0, 1])`` with
    ``E = progress_dim(action_dims, previous_action)``."""
    h, w = map_hw
    width = progress_dim(action_dims, previous_action)
    if channels < 1 or h < 1 or w < 1:
        raise ValueError(f"need positive channels and map size, got {channels}, {map_hw}")
    return spaces.Dict(
        {
            # Projected features are unbounded linear combinations of the glance channels.
            "glance": spaces.Box(-np.inf, np.inf, (channels, h, w), np.float32),
            "progress": spaces.Box(0.0, 1.0, (width,), np.float32),
        }
    )
