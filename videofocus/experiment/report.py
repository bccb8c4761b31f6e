"""The report of a grid: ``results.csv``, ``results.md`` and ``tradeoff.png``.

Rows are plain mappings (see :func:`videofocus.experiment.runner.variant_rows`). In the CSV a
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

from videofocus.experiment.grid import BASELINES, value_label
from videofocus.io.atomic_files import write_atomic

__all__ = [
    "comparison_rows",
    "format_comparison",
    "format_markdown",
    "plot_rows",
    "write_csv",
    "write_report",
]

#: Columns every row has after its axis columns, in table order.
METRICS = ("accuracy", "top5", "gmacs_per_video", "videos_per_s", "train_seconds")
_HEADERS = {
    "name": "variant",
    "exit_thresholds": "exit thresholds",
    "accuracy": "top-1",
    "top5": "top-5",
    "accuracy_warmup_net": "top-1 (warm-up net)",
    "target_coverage": "target coverage",
    "skip_rate": "skip rate",
    "gmacs_per_video": "GMACs / video",
    "videos_per_s": "videos / s",
    "train_seconds": "train s",
}
# Plot grouping only: the name and the other columns already say it in the tables.
_TABLE_SKIP = ("curve", "exit_fraction", "stage_seconds", "checkpoint")


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
    if key in ("accuracy", "top5", "accuracy_warmup_net", "target_coverage", "skip_rate"):
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


#: Stages every adaptive row shares; a row's ``train_seconds`` counts the training after them.
_SHARED = ("dense", "warmup")


def comparison_rows(rows: list[dict[str, Any]], names: tuple[str, ...]) -> list[dict[str, Any]]:
    """The runner's rows as table rows, in ``names`` order: ``train_seconds`` counts what a
    glimpse row trains after the stages every row shares (dense and warm-up)."""
    by = {r["name"]: r for r in rows}
    out = []
    for name in names:
        row = {k: v for k, v in by[name].items() if k not in ("curve", "stage_seconds")}
        if row["policy"] not in BASELINES:
            seconds = by[name]["stage_seconds"]
            row["train_seconds"] = sum(v for k, v in seconds.items() if k not in _SHARED)
        out.append(row)
    return out


def format_comparison(rows: list[dict[str, Any]]) -> str:
    """Rows of :func:`comparison_rows` as the Markdown table of ``bench policy`` and the
    quickstart: one row a method, with its protocol and glimpse statistics."""
    lines = [
        "| method | protocol | option | accuracy | acc. (warm-up net) | GMACs / video "
        "| videos / s | target coverage | skip rate | train s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.1f}%"

    for r in rows:
        lines.append(
            f"| {r['name']} | {r.get('protocol', '-')} | {r.get('option') or '-'} | "
            f"{pct(r['accuracy'])} | {pct(r.get('accuracy_warmup_net'))} | "
            f"{r['gmacs_per_video']:.4f} | {r['videos_per_s']:.1f} | "
            f"{pct(r.get('target_coverage'))} | {pct(r.get('skip_rate'))} | "
            f"{r.get('train_seconds', 0.0):.0f} |"
        )
    return "\n".join(lines)
