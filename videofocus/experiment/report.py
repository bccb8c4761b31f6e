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

from videofocus.evaluation.intervals import Interval, paired_difference, seed_interval
from videofocus.experiment.grid import BASELINES, value_label
from videofocus.io.atomic_files import write_atomic

__all__ = [
    "comparison_rows",
    "exit_label",
    "format_comparison",
    "format_comparisons",
    "paired_comparisons",
    "summarise",
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
    "glance_exit_rate": "glance exits",
    "glance_top1": "top-1 (glance head)",
    "gmacs_per_video": "GMACs / video",
    "videos_per_s": "videos / s",
    "train_seconds": "train s",
}
# Plot grouping only: the name and the other columns already say it in the tables.
_TABLE_SKIP = (
    "curve",
    "exit",
    "exit_fraction",
    "stage_seconds",
    "checkpoint",
    "accuracy_std",
    "accuracy_low",
    "accuracy_high",
    "gmacs_std",
)


def _columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every key of the rows, in order of first appearance."""
    return list(dict.fromkeys(key for row in rows for key in row))


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return value


def write_csv(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """(Re)write ``path`` with all rows as CSV (header: the union of their keys); returns it."""
    columns = _columns(rows)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_cell(row.get(k)) for k in columns})
    return write_atomic(Path(path), buffer.getvalue())


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _group_key(method: Any, exit_entry: Any) -> str:
    """The rows of one method and exit entry (an exit entry may be a list: not hashable)."""
    return json.dumps([method, exit_entry], sort_keys=True)


def _md_cell(row: Mapping[str, Any], key: str) -> str:
    value = row.get(key)
    if value is None:
        return "-"
    if key == "accuracy" and row.get("accuracy_std") is not None:
        fields = ("accuracy", "accuracy_std", "accuracy_low", "accuracy_high", "seeds")
        return Interval(*(row[k] for k in fields)).format()  # mean ± std [95% interval]
    if key == "gmacs_per_video" and row.get("gmacs_std") is not None:
        return f"{value:.4g} ± {row['gmacs_std']:.2g}"
    if key in (
        "accuracy",
        "top5",
        "accuracy_warmup_net",
        "target_coverage",
        "skip_rate",
        "glance_exit_rate",
        "glance_top1",
    ):
        return _pct(value)
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
    body = ["| " + " | ".join(_md_cell(row, c) for c in columns) + " |" for row in rows]
    return "\n".join([header, rule, *body])


def plot_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The rows as :func:`~videofocus.viz.tradeoff.plot_tradeoff` points: the exit entry added to
    the label where a row has one (the same variant appears once per entry): a budget or a
    truncation by :func:`exit_label`, thresholds by their values."""
    points = []
    for row in rows:
        name = str(row["name"])
        if isinstance(row.get("exit"), dict):
            name = f"{name} @{exit_label(row['exit'])}"
        elif row.get("exit_thresholds") is not None:
            name = f"{name} @{value_label(row['exit_thresholds'])}"
        points.append({**row, "name": name})
    return points


#: Columns a seed copy chooses (a glimpse option, an exit rule): a summary lists them, it does not
#: average them.
_CHOSEN_PER_SEED = ("option", "exit_rule")


def summarise(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per method and exit entry over its seeds' rows: ``accuracy`` the mean, with
    ``accuracy_std`` and the 95% t interval ``accuracy_low`` / ``accuracy_high``,
    ``gmacs_per_video`` the mean with ``gmacs_std``, ``seeds`` how many; other numbers are
    means, other columns the first row's. Rows without a ``seed`` are their own summary."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        key = _group_key(row.get("method", row["name"]), row.get("exit"))
        groups.setdefault(key, []).append(row)
    out = []
    for members in groups.values():
        first = dict(members[0])
        if first.get("seed") is None:
            out.extend(dict(r) for r in members)
            continue
        accuracy = seed_interval([r["accuracy"] for r in members])
        gmacs = seed_interval([r["gmacs_per_video"] for r in members])
        summary = {k: v for k, v in first.items() if k not in ("seed", "method", "name")}
        for key in list(summary):
            values = [r.get(key) for r in members]
            if key in _CHOSEN_PER_SEED:
                if len(set(values)) > 1:  # in seed order, e.g. option "1/2/2"
                    summary[key] = "/".join(map(str, values))
            elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                summary[key] = sum(values) / len(values)
        summary.update(
            name=first["method"],
            seeds=len(members),
            accuracy=accuracy.mean,
            accuracy_std=accuracy.std,
            accuracy_low=accuracy.low,
            accuracy_high=accuracy.high,
            gmacs_per_video=gmacs.mean,
            gmacs_std=gmacs.std,
        )
        if any(r.get("exit_thresholds") != first.get("exit_thresholds") for r in members):
            summary["exit_thresholds"] = None  # calibrated per seed: each seed's row has them
        out.append({"name": summary.pop("name"), **summary})
    return out


def paired_comparisons(
    runs: Sequence[Mapping[str, Any]],
    reference: str | None = None,
    pairs: Sequence[tuple[str, Any, str, Any]] = (),
) -> list[dict[str, Any]]:
    """Each method's top-1 minus the reference's, paired on the same seeds and test videos.

    :param runs: per variant and exit entry: ``method``, ``seed``, ``exit``, ``video_index``
        and ``video_correct``.
    :param reference: the method compared against (its run without early exit); default: the
        first method.
    :param pairs: further comparisons, as :attr:`~videofocus.experiment.grid.Grid.pairs`.
    :returns: rows ``name``, ``exit``, ``reference``, ``reference_exit``, ``difference`` with
        its 95% bootstrap interval ``difference_low`` / ``difference_high``, ``seeds`` and
        ``videos``.
    """
    by: dict[str, dict[int | None, dict[int, int]]] = {}  # method and exit -> seed -> hits
    order: dict[str, tuple[str, Any]] = {}
    for run in runs:
        key = _group_key(run["method"], run.get("exit"))
        order.setdefault(key, (run["method"], run.get("exit")))
        hits = dict(zip(run["video_index"], run["video_correct"], strict=True))
        by.setdefault(key, {})[run.get("seed")] = hits
    if not order:
        return []
    reference = reference or next(iter(order.values()))[0]
    wanted = [
        (method, exit_entry, reference, None)
        for method, exit_entry in order.values()
        if not (method == reference and exit_entry is None)
    ]
    out = []
    for method, exit_entry, ref, ref_exit in (*wanted, *pairs):
        runs_of, base = by.get(_group_key(method, exit_entry)), by.get(_group_key(ref, ref_exit))
        seeds = [s for s in runs_of or {} if s in (base or {})]
        if not seeds:
            continue
        videos = sorted(set.intersection(*(set(runs_of[s]) & set(base[s]) for s in seeds)))
        a = [[runs_of[s][v] for v in videos] for s in seeds]
        b = [[base[s][v] for v in videos] for s in seeds]
        diff = paired_difference(a, b)
        out.append(
            {
                "name": method,
                "exit": exit_entry,
                "reference": ref,
                "reference_exit": ref_exit,
                "difference": diff.mean,
                "difference_low": diff.low,
                "difference_high": diff.high,
                "seeds": len(seeds),
                "videos": len(videos),
            }
        )
    return out


def format_comparisons(comparisons: Sequence[Mapping[str, Any]]) -> str:
    """The paired comparisons as a Markdown table, differences in points."""
    lines = [
        "| method | exit | minus | exit | top-1 difference (points) | 95% interval | seeds "
        "| videos |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]

    def spelt(entry: Any) -> str:
        return "-" if entry is None else json.dumps(entry)

    for c in comparisons:
        lines.append(
            f"| {c['name']} | {spelt(c['exit'])} | {c['reference']} | "
            f"{spelt(c.get('reference_exit'))} | {100 * c['difference']:+.1f} | "
            f"[{100 * c['difference_low']:+.1f}, {100 * c['difference_high']:+.1f}] | "
            f"{c['seeds']} | {c['videos']} |"
        )
    return "\n".join(lines)


def write_report(
    rows: Sequence[Mapping[str, Any]],
    out_dir: str | Path,
    title: str | None = None,
    comparisons: Sequence[Mapping[str, Any]] = (),
    split: str = "val",
) -> dict[str, Path]:
    """Write ``results.csv`` (every row, every seed), ``results.md`` (the summary over seeds,
    the paired comparisons, then every row) and ``tradeoff.png`` (the summary, with its
    intervals) into ``out_dir``; with comparisons (of :func:`paired_comparisons`) also
    ``comparisons.csv``. ``title`` heads the Markdown and the plot; ``split`` is the one the
    numbers come from.

    :returns: ``{"csv": ..., "markdown": ..., "plot": ...}``.
    """
    # Imported here: matplotlib is only needed once there is something to plot.
    from videofocus.viz.tradeoff import plot_tradeoff

    out = Path(out_dir)
    summary = summarise(rows)
    seeded = any(r.get("seed") is not None for r in rows)
    text = (f"# {title}\n\n" if title else "") + format_markdown(summary) + "\n"
    text += (
        f"\ntop-1 / top-5 on the {split} split; GMACs are multiply-accumulates per video; "
        "train s sums every stage behind a variant (shared stages included).\n"
    )
    if seeded:
        text += "\nA row over seeds: top-1 as mean ± std [95% t interval].\n"
    if comparisons:
        text += (
            "\n## Paired comparisons\n\nTop-1 differences on the same seeds and videos, with "
            "a two-level bootstrap interval (seeds, then videos).\n\n"
            + format_comparisons(comparisons)
            + "\n"
        )
        write_csv(comparisons, out / "comparisons.csv")
    if seeded:
        text += "\n## Every seed\n\n" + format_markdown(rows) + "\n"
    paths = {
        "csv": write_csv(rows, out / "results.csv"),
        "markdown": write_atomic(out / "results.md", text),
        "plot": out / "tradeoff.png",
    }
    tmp = out / ".tradeoff.tmp.png"
    plot_tradeoff(plot_rows(summary), tmp, title=title, curve_key="curve")
    os.replace(tmp, paths["plot"])
    return paths


_SHARED = ("dense", "warmup")


def comparison_rows(rows: list[dict[str, Any]], names: tuple[str, ...]) -> list[dict[str, Any]]:
    """The runner's rows as table rows, in ``names`` order, one per method and exit entry (over
    seeds: :func:`summarise`'s means with intervals); ``train_seconds`` counts what a glimpse row
    trains after the stages every row shares (dense and warm-up)."""
    table = summarise(rows)
    out = []
    for name in names:
        for found in (r for r in table if r["name"] == name):
            row = {k: v for k, v in found.items() if k not in ("curve", "stage_seconds")}
            if row["policy"] not in BASELINES:
                seconds = found["stage_seconds"]
                row["train_seconds"] = sum(v for k, v in seconds.items() if k not in _SHARED)
            out.append(row)
    return out


def exit_label(entry: Any) -> str:
    """How a table names a row's exit entry: ``-``, ``first K steps``, ``budget: K-step cost``
    (or ``S x K-step cost``), ``budget: S x cost`` (``, glance exit`` where the glance-only
    prediction is the first exit) or the thresholds."""
    if entry is None:
        return "-"
    if isinstance(entry, dict) and set(entry) == {"max_steps"}:
        return f"first {entry['max_steps']} steps"
    if isinstance(entry, dict):
        share = "" if entry["budget_share"] == 1 else f"{entry['budget_share']:g} x "
        steps = entry.get("max_steps")
        of = f"{steps}-step cost" if steps else f"cost of {entry['of'] or 'itself'}"
        glance = ", glance exit" if entry.get("glance_exit") else ""
        return f"budget: {share}{of}{glance}"
    return "thresholds " + ", ".join(f"{t:g}" for t in entry)


def _accuracy_cell(row: dict[str, Any]) -> str:
    if row.get("seeds", 1) > 1:
        return (
            f"{_pct(row['accuracy'])} ± {100 * row['accuracy_std']:.1f} "
            f"[{100 * row['accuracy_low']:.1f}, {100 * row['accuracy_high']:.1f}]"
        )
    return _pct(row["accuracy"])


def format_comparison(rows: list[dict[str, Any]]) -> str:
    """Rows of :func:`comparison_rows` as the Markdown table of ``bench policy`` and the
    quickstart: one row a method and exit entry, with its protocol and glimpse statistics (a
    glance exit's share of videos leaving after the glance and its glance head's top-1); over
    seeds the accuracy is the mean ± std [95% t interval]."""
    lines = [
        "| method | exit | protocol | option | accuracy | acc. (warm-up net) | GMACs / video "
        "| videos / s | target coverage | skip rate | glance exits | glance head top-1 "
        "| train s |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {exit_label(r.get('exit'))} | {r.get('protocol', '-')} | "
            f"{r.get('option') or '-'} | {_accuracy_cell(r)} | "
            f"{_pct(r.get('accuracy_warmup_net'))} | "
            f"{r['gmacs_per_video']:.4f} | {r['videos_per_s']:.1f} | "
            f"{_pct(r.get('target_coverage'))} | {_pct(r.get('skip_rate'))} | "
            f"{_pct(r.get('glance_exit_rate'))} | {_pct(r.get('glance_top1'))} | "
            f"{r.get('train_seconds', 0.0):.0f} |"
        )
    return "\n".join(lines)
