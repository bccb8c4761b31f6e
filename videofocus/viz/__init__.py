"""Visualisation: the glimpses a policy took on a clip, and the accuracy-vs-compute plot. Names
are imported on first use, so the plot (matplotlib) and the drawing (torch) load apart."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from videofocus.viz.drawing import (
        OPTION_COLOURS,
        GlimpseTrace,
        draw_step,
        glimpse_boxes,
        option_colour,
        render_trace,
    )
    from videofocus.viz.glimpse_video import write_glimpse_video
    from videofocus.viz.tradeoff import plot_tradeoff

#: the short side an output frame reaches by default, so that the overlay's text stays legible
#: (here, not in :mod:`videofocus.viz.command`, so the command line reads it without torch)
MIN_SIDE = 256

_EXPORTS = {
    "OPTION_COLOURS": "videofocus.viz.drawing",
    "GlimpseTrace": "videofocus.viz.drawing",
    "draw_step": "videofocus.viz.drawing",
    "glimpse_boxes": "videofocus.viz.drawing",
    "option_colour": "videofocus.viz.drawing",
    "render_trace": "videofocus.viz.drawing",
    "write_glimpse_video": "videofocus.viz.glimpse_video",
    "plot_tradeoff": "videofocus.viz.tradeoff",
}

__all__ = [
    "OPTION_COLOURS",
    "GlimpseTrace",
    "draw_step",
    "glimpse_boxes",
    "option_colour",
    "plot_tradeoff",
    "render_trace",
    "write_glimpse_video",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'videofocus.viz' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
