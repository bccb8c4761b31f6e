"""The report of a grid: ``results.csv``, ``results.md`` and ``tradeoff.png``.

Rows are plain mappings (see :func:`videofocus.ablation.runner.variant_rows`). In the CSV a
missing value is an empty cell and a list or mapping is its JSON text; in the Markdown table
accuracies are percentages and a missing value is ``-``. Every file is replaced atomically, so a
reader (or a run killed while writing) never leaves half a table.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from videofocus.ablation.grid import value_label
from videofocus.io.atomic_files import write_atomic

__all__ = ["format_markdown", "plot_rows", "write_csv", "write_report"]

#: Columns every row has after its axis columns, in table order.
METRICS = ("accuracy", "top5", "gmacs_per_video", "videos_per_s", "train_seconds")
_HEADERS = {
    "name": "variant",
    "exit_thresholds": "exit thresholds",
    "accuracy": "top-1",
    "top5": "top-5",
    "gmacs_per_video": "GMACs / video",
    "videos_per_s": "videos / s",
    "train_seconds": "train s",
}
# Plot grouping only: the name and the other columns already say it in the tables.
_TABLE_SKIP = ("curve",)


def _columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every key of the rows, in order of first appearance."""
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return value


def write_csv(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """All rows as CSV (header: the union of their keys).

    :param rows: result rows.
    :param path: the file to (re)write.
    :returns: the path written.
    """
    columns = _columns(rows)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_cell(row.get(k)) for k in columns})
    return write_atomic(Path(path), buffer.getvalue())


def _md_cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key in ("accuracy", "top5"):
        return f"{100 * value:.1f}%"
    if key == "gmacs_per_video":
        return f"{value:.4g}"
    if key == "videos_per_s":
        return f"{value:.1f}"
    if key == "train_seconds":
        return f"{value:.0f}"
    return value_label(value)


def format_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows as a Markdown table (metrics right-aligned, accuracies in percent)."""
    columns = [c for c in _columns(rows) if c not in _TABLE_SKIP]
    header = "| " + " | ".join(_HEADERS.get(c, c) for c in columns) + " |"
    rule = "| " + " | ".join("---:" if c in METRICS else "---" for c in columns) + " |"
    body = ["| " + " | ".join(_md_cell(c, row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join([header, rule, *body])


def plot_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The rows as :func:`~videofocus.viz.tradeoff.plot_tradeoff` points: the exit thresholds
    added to the label where a row has them (the same variant appears once per entry)."""
    points = []
    for row in rows:
        name = str(row["name"])
        if row.get("exit_thresholds") is not None:
            name = f"{name} @{value_label(row['exit_thresholds'])}"
        points.append({**row, "name": name})
    return points


def write_report(
    rows: Sequence[Mapping[str, Any]], out_dir: str | Path, title: str | None = None
) -> dict[str, Path]:
    """Write ``results.csv``, ``results.md`` and ``tradeoff.png`` into ``out_dir``.

    :param rows: result rows with ``name``, ``accuracy``, ``gmacs_per_video`` and ``curve``.
    :param out_dir: the grid's output folder.
    :param title: the Markdown heading and the plot's title.
    :returns: ``{"csv": ..., "markdown": ..., "plot": ...}``.
    """
    # Imported here: matplotlib is only needed once there is something to plot.
    from videofocus.viz.tradeoff import plot_tradeoff

    out = Path(out_dir)
    heading = f"# {title}\n\n" if title else ""
    note = (
        "\ntop-1 / top-5 on the validation split; GMACs are multiply-accumulates per video; "
        "train s sums every stage behind a variant (shared stages included).\n"
    )
    paths = {
        "csv": write_csv(rows, out / "results.csv"),
        "markdown": write_atomic(out / "results.md", heading + format_markdown(rows) + "\n" + note),
    }
    tmp = out / ".tradeoff.tmp.png"
    plot_tradeoff(plot_rows(rows), tmp, title=title, curve_key="curve")
    os.replace(tmp, out / "tradeoff.png")
    paths["plot"] = out / "tradeoff.png"
    return paths
