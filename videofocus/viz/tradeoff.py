"""The accuracy-vs-compute plot: one point per evaluated model, curves for sweeps.

Drawn on a :class:`matplotlib.figure.Figure` rendered by the Agg canvas directly, so nothing here
touches pyplot's global state or needs a display.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, NullFormatter, StrMethodFormatter

__all__ = ["plot_tradeoff"]

#: the x axis turns logarithmic when the largest cost exceeds the smallest by more than this
LOG_SPAN = 20.0
_FIGSIZE = (6.4, 4.8)  # inches
_DPI = 150


def _check_row(i: int, row: Mapping) -> tuple[str, float, float]:
    """``(name, accuracy, gmacs)`` of row ``i``, or a ValueError naming the row and key."""
    for key in ("name", "accuracy", "gmacs_per_video"):
        if key not in row:
            raise ValueError(f"tradeoff row {i} has no {key!r} (keys: {sorted(row)})")
    accuracy, gmacs = row["accuracy"], row["gmacs_per_video"]
    try:
        accuracy, gmacs = float(accuracy), float(gmacs)
    except (TypeError, ValueError) as err:
        raise ValueError(f"tradeoff row {i} ({row['name']}): non-numeric value: {err}") from None
    if not (math.isfinite(accuracy) and 0.0 <= accuracy <= 1.0):
        raise ValueError(
            f"tradeoff row {i} ({row['name']}): accuracy must be in [0, 1], got {accuracy}"
        )
    if not (math.isfinite(gmacs) and gmacs > 0.0):
        raise ValueError(
            f"tradeoff row {i} ({row['name']}): gmacs_per_video must be positive, got {gmacs}"
        )
    return str(row["name"]), accuracy, gmacs


def plot_tradeoff(
    rows: Sequence[Mapping],
    path: str | Path,
    title: str | None = None,
    curve_key: str | None = "curve",
) -> Path:
    """Plot accuracy against GMACs per video and save the figure.

    Every row is a labelled point. Rows whose ``curve_key`` value is the same (and not None) are
    joined by one line in order of cost, e.g. the points of a lambda or budget sweep; the legend
    names these curves. The x axis is logarithmic when the costs span more than
    :data:`LOG_SPAN` times.

    :param rows: mappings with ``name``, ``accuracy`` (in ``[0, 1]``, plotted in percent) and
        ``gmacs_per_video`` (positive); other keys are ignored.
    :param path: output file; its suffix picks the format (any matplotlib writes: ``.png``,
        ``.pdf``, ``.svg``, ...); parent folders are created.
    :param title: figure title.
    :param curve_key: key grouping rows into curves; None draws points only.
    :returns: ``path`` as a :class:`~pathlib.Path`.
    :raises ValueError: for no rows, a row with a missing or out-of-range value, or a suffix
        matplotlib cannot write.
    """
    if not rows:
        raise ValueError("plot_tradeoff needs at least one row")
    points = [_check_row(i, row) for i, row in enumerate(rows)]
    path = Path(path)
    fig = Figure(figsize=_FIGSIZE, dpi=_DPI, layout="constrained")
    canvas = FigureCanvasAgg(fig)
    formats = canvas.get_supported_filetypes()
    if path.suffix.lower().lstrip(".") not in formats:
        raise ValueError(
            f"{path}: unsupported suffix {path.suffix!r}, use one of {sorted(formats)}"
        )

    ax = fig.add_subplot()
    curves: dict[object, list[tuple[float, float]]] = {}
    singles: list[tuple[float, float]] = []
    for row, (_, accuracy, gmacs) in zip(rows, points, strict=True):
        group = row.get(curve_key) if curve_key is not None else None
        target = singles if group is None else curves.setdefault(group, [])
        target.append((gmacs, 100.0 * accuracy))
    for group, curve in curves.items():
        xs, ys = zip(*sorted(curve), strict=True)
        ax.plot(xs, ys, marker="o", markersize=5, label=str(group))
    if singles:
        xs, ys = zip(*singles, strict=True)
        ax.plot(xs, ys, marker="s", markersize=5, linestyle="none", color="black")
    stacked: dict[tuple[float, float], int] = {}  # names of coinciding points go one above another
    for name, accuracy, gmacs in points:
        spot = (round(gmacs, 6), round(100.0 * accuracy, 1))
        k = stacked[spot] = stacked.get(spot, -1) + 1
        ax.annotate(
            name,
            (gmacs, 100.0 * accuracy),
            xytext=(4, 4 + 9 * k),
            textcoords="offset points",
            fontsize=7,
        )

    costs = [gmacs for _, _, gmacs in points]
    if max(costs) > LOG_SPAN * min(costs):
        ax.set_xscale("log")
        # plain numbers at 1-2-5 steps instead of crowded 2x10^0-style minor labels
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(StrMethodFormatter("{x:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.margins(0.1)  # room for the names of the outermost points
    ax.set_xlabel("GMACs per video")
    ax.set_ylabel("accuracy (%)")
    ax.grid(True, which="both", alpha=0.3)
    if curves:
        ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
