"""The action space: ``(option, cell_x, cell_y)`` (:mod:`videofocus.models.glimpse`) in
``MultiDiscrete([K + 1, G, G])``.

The space keeps its ``K + 1`` options even when skipping is disabled, so the policy network has
one layout whatever the run; :func:`resolve_actions` then reads a skip as option 1, in the RL
environments and at inference alike.
"""

from __future__ import annotations

import torch


def glimpse_action_dims(num_options: int, grid: int) -> tuple[int, int, int]:
    """``(K + 1, G, G)``: the sizes of the action dimensions for ``K = num_options`` glimpse
    options (skip excluded) and a grid of ``G`` cells per side."""
    if num_options < 1 or grid < 1:
        raise ValueError(f"need num_options >= 1 and grid >= 1, got {num_options}, {grid}")
    return (num_options + 1, grid, grid)


def resolve_actions(actions: torch.Tensor, allow_skip: bool) -> torch.Tensor:
    """The actions (long ``[..., 3]``) that are carried out: unless ``allow_skip``, a skip
    (option 0) is option 1."""
    if allow_skip:
        return actions
    option = actions[..., :1].clamp(min=1)
    return torch.cat([option, actions[..., 1:]], dim=-1)
