"""The accuracy-vs-compute plot: one point per evaluated model, curves for sweeps. Drawn by the
Agg canvas directly, so nothing here touches pyplot's global state or needs a display."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, NullFormatter, StrMethodFormatter

__all__ = ["label_offsets", "plot_tradeoff"]

#: the x axis turns logarithmic when the largest cost exceeds the smallest by more than this
LOG_SPAN = 20.0
_FIGSIZE = (6.4, 4.8)  # inches
_DPI = 150


def _check_row(i: int, row: Mapping) -> tuple[str, float, float]:
    """``(name, accuracy, gmacs)`` of row ``i``, or a ValueError naming the row and key."""
    for key in ("name", "accuracy", "gmacs_per_video"):
        if key not in row:
            raise ValueError(f"tradeoff row {i} has no {key!r} (keys: {sorted(row)})")
    where = f"tradeoff row {i} ({row['name']})"
    try:
        accuracy, gmacs = float(row["accuracy"]), float(row["gmacs_per_video"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: non-numeric value: {err}") from None
    if not (math.isfinite(accuracy) and 0.0 <= accuracy <= 1.0):
        raise ValueError(f"{where}: accuracy must be in [0, 1], got {accuracy}")
    if not (math.isfinite(gmacs) and gmacs > 0.0):
        raise ValueError(f"{where}: gmacs_per_video must be positive, got {gmacs}")
    return str(row["name"]), accuracy, gmacs


#: Font size (points) of the point names, and their offset right of and above the point.
_FONTSIZE = 7
_PAD = 4.0


def label_offsets(
    anchors: Sequence[Sequence[float]], names: Sequence[str], fontsize: float
) -> list[float]:
    """Upward offsets (points), one per point, that keep the names of nearby points from
    overlapping: going up from the lowest point (``anchors`` in display points), a name whose
    box (estimated from ``fontsize``) would overlap one already placed is lifted above it."""
    height = 1.3 * fontsize
    placed: list[tuple[float, float, float, float]] = []  # x0, x1, y0, y1
    rises = [0.0] * len(names)
    for i in sorted(range(len(names)), key=lambda j: (anchors[j][1], anchors[j][0])):
        x0 = anchors[i][0] + _PAD
        x1 = x0 + 0.62 * fontsize * len(names[i])
        y0 = anchors[i][1] + _PAD
        moved = True
        while moved:
            moved = False
            for bx0, bx1, by0, by1 in placed:
                if x0 < bx1 and bx0 < x1 and y0 < by1 and by0 < y0 + height:
                    y0, moved = by1 + 0.5, True
        placed.append((x0, x1, y0, y0 + height))
        rises[i] = y0 - anchors[i][1]
    return rises


def plot_tradeoff(
    rows: Sequence[Mapping],
    path: str | Path,
    title: str | None = None,
    curve_key: str | None = "curve",
    annotate: bool = True,
) -> Path:
    """Plot accuracy against GMACs per video into ``path`` (any format matplotlib writes;
    parent folders created) and return it.

    Every row is a labelled point; rows sharing a ``curve_key`` value (not None) are joined by
    one line in order of cost (a sweep), named in the legend. The x axis is logarithmic when the
    costs span more than :data:`LOG_SPAN` times.

    :param rows: mappings with ``name``, ``accuracy`` (in ``[0, 1]``, plotted in percent) and
        ``gmacs_per_video``; finite ``accuracy_low`` / ``accuracy_high`` draw an error bar.
    :param annotate: write each point's name beside it (False: curves named by the legend only,
        for plots of many points).
    :raises ValueError: for no rows, a missing or out-of-range value, or an unwritable suffix.
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
    for row, (_, accuracy, gmacs) in zip(rows, points, strict=True):
        low, high = row.get("accuracy_low"), row.get("accuracy_high")
        if low is not None and high is not None and math.isfinite(low) and math.isfinite(high):
            spread = [[100.0 * (accuracy - low)], [100.0 * (high - accuracy)]]  # over seeds
            ax.errorbar(gmacs, 100.0 * accuracy, yerr=spread, fmt="none", ecolor="grey", capsize=3)
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
    # names go where they overlap no other name: nearby points (a heuristic row beside another at
    # the same cost) would otherwise print their names on top of each other
    if annotate:
        xy = [(gmacs, 100.0 * accuracy) for _, accuracy, gmacs in points]
        canvas.draw()  # lays the axes out, so that data -> display positions are final
        anchors = ax.transData.transform(xy) * (72.0 / fig.dpi)  # display points
        names = [name for name, _, _ in points]
        offsets = label_offsets(anchors, names, _FONTSIZE)
        for name, point, rise in zip(names, xy, offsets, strict=True):
            ax.annotate(
                name, point, xytext=(_PAD, rise), textcoords="offset points", fontsize=_FONTSIZE
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
