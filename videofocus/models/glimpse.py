"""Glimpse options and the mapping from policy actions to glimpse geometry.

An *action* at step t is ``(option, cell_x, cell_y)``: option 0 skips the frame, options ``1..K``
pick ``options[option - 1]``; the cells index a ``G x G`` grid of glimpse centres.

Geometry, shared with :mod:`videofocus.models.cropper`: centres are normalised ``(x, y)`` in
``[0, 1]``; a glimpse is square in pixels and its *extent* is a fraction of the frame's
**shorter** side, so a crop is never distorted whatever the aspect ratio.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "GlimpseOption",
    "actions_to_glimpses",
    "check_actions",
    "dense_actions",
    "dense_option",
    "grid_centres",
    "nearest_cells",
    "normalised_extents",
    "random_glimpse_actions",
    "skip_actions",
]


@dataclass(frozen=True)
class GlimpseOption:
    """One way of looking closely at a frame: a square crop of side ``extent`` (a fraction of the
    frame's shorter side, in (0, 1]) resized to ``resolution`` pixels for the ``LocalEncoder``,
    whose ``backbone`` it names (None: the encoder's default)."""

    extent: float
    resolution: int
    backbone: str | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.extent <= 1.0:
            raise ValueError(f"GlimpseOption.extent must be in (0, 1], got {self.extent}")
        if int(self.resolution) != self.resolution or self.resolution <= 0:
            raise ValueError(
                f"GlimpseOption.resolution must be a positive integer, got {self.resolution}"
            )


def dense_option(frame_size: int) -> GlimpseOption:
    """The option of the dense baseline: the whole square frame of side ``frame_size`` at full
    resolution."""
    return GlimpseOption(extent=1.0, resolution=frame_size)


def normalised_extents(extent: torch.Tensor, aspect: float = 1.0) -> torch.Tensor:
    """Per-axis normalised extents ``[..., 2]`` (width, height fractions) of square crops whose
    ``extent [...]`` is a fraction of the shorter side, on frames of ``aspect`` width / height."""
    return torch.stack([extent * min(1.0, 1.0 / aspect), extent * min(1.0, aspect)], dim=-1)


def grid_centres(
    cells: torch.Tensor, grid: int, extent: torch.Tensor | float, aspect: float = 1.0
) -> torch.Tensor:
    """Centres ``[..., 2]`` (normalised x, y) of grid ``cells [..., 2]``, kept so the glimpse
    lies in the frame.

    Cell ``i``'s centre ``(i + 0.5) / G`` is mapped linearly onto ``[e/2, 1 - e/2]``, ``e`` the
    glimpse's normalised extent along that axis: the outer cells touch the frame's borders.

    :param extent: extents ``[...]`` (fraction of the shorter side) or one float for all.
    """
    extent = torch.as_tensor(extent, device=cells.device).float()  # a float broadcasts
    span = normalised_extents(extent, aspect)  # [..., 2]
    unit = (cells.float() + 0.5) / grid
    return span / 2 + unit * (1.0 - span)


def nearest_cells(centres: torch.Tensor, grid: int, extent: float) -> torch.Tensor:
    """Grid cells ``[..., 2]`` (long) whose glimpse centres (:func:`grid_centres`, square
    frames) lie nearest to normalised ``centres`` ``[..., 2]``, per axis, the lower cell on a
    tie: the inverse of :func:`grid_centres` for a glimpse of ``extent``."""
    diagonal = torch.arange(grid, device=centres.device).unsqueeze(1).expand(grid, 2)
    axis = grid_centres(diagonal, grid, extent).to(centres.dtype)  # [G, 2]: cell i's (x, y)
    return (centres.unsqueeze(-2) - axis).abs().argmin(dim=-2)


def check_actions(actions: torch.Tensor, num_options: int) -> None:
    """Raise ``ValueError`` unless ``actions`` is ``[B, T, 3]`` with options in ``[0, K]``."""
    if actions.ndim != 3 or actions.shape[-1] != 3:
        raise ValueError(f"actions must be [B, T, 3], got {tuple(actions.shape)}")
    option = actions[..., 0]
    if bool(((option < 0) | (option > num_options)).any()):
        raise ValueError(f"action option out of range [0, {num_options}]")


def actions_to_glimpses(
    actions: torch.Tensor,
    options: Sequence[GlimpseOption],
    grid: int,
    aspect: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Decode ``actions [B, T, 3]`` of ``(option, cell_x, cell_y)`` into glimpse geometry.

    Skipped steps get placeholder geometry (centre 0.5, extent 1), so every value is finite.

    :returns: ``option_index [B, T]`` (``-1`` for skip, else ``0..K-1``), ``centres [B, T, 2]``
        (normalised x, y) and ``extents [B, T]`` (fraction of the shorter side).
    :raises ValueError: for a malformed action tensor or an option / cell out of range.
    """
    check_actions(actions, len(options))
    option, cells = actions[..., 0], actions[..., 1:]
    if bool(((cells < 0) | (cells >= grid)).any()):
        raise ValueError(f"action cell out of range [0, {grid})")
    table = torch.tensor([1.0] + [o.extent for o in options], device=actions.device)
    extents = table[option]  # skip (option 0) reads the placeholder extent 1.0
    centres = grid_centres(cells, grid, extents, aspect)
    return option - 1, centres, extents


def dense_actions(batch: int, steps: int, option: int = 1) -> torch.Tensor:
    """Actions ``[batch, steps, 3]`` choosing ``option`` at cell (0, 0) on every step: with an
    extent-1 option (:func:`dense_option`), the dense baseline."""
    actions = torch.zeros(batch, steps, 3, dtype=torch.long)
    actions[..., 0] = option
    return actions


def skip_actions(batch: int, steps: int) -> torch.Tensor:
    """Actions ``[batch, steps, 3]`` skipping every frame: the glance-only baseline."""
    return torch.zeros(batch, steps, 3, dtype=torch.long)


def random_glimpse_actions(
    num_options: int,
    grid: int,
    sample_ids: torch.Tensor,
    steps: int,
    seed: int,
    epoch: int,
    allow_skip: bool = False,
    skip_rate: float = 0.0,
) -> torch.Tensor:
    """Uniformly random actions ``[B, T, 3]``, drawn per sample from (seed, epoch, sample id).

    ``epoch`` may be -1 (evaluation: the same glimpses every time). ``skip_rate``: probability
    that a step skips its frame instead. Seeding per sample makes the glimpses independent of
    batch composition, so one process and N DDP processes see the same glimpse for a video.
    """
    low = 0 if allow_skip else 1
    out = torch.empty(len(sample_ids), steps, 3, dtype=torch.long)
    for row, sid in enumerate(sample_ids.tolist()):
        entropy = np.random.SeedSequence([seed, epoch + 1, int(sid)]).generate_state(1)[0]
        g = torch.Generator().manual_seed(int(entropy))
        out[row, :, 0] = torch.randint(low, num_options + 1, (steps,), generator=g)
        out[row, :, 1:] = torch.randint(0, grid, (steps, 2), generator=g)
        if skip_rate > 0:  # drawn last: skip_rate 0 keeps the glimpses of earlier versions
            out[row, :, 0] *= (torch.rand(steps, generator=g) >= skip_rate).long()
    return out
