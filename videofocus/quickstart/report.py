"""What ``videofocus quickstart`` writes besides its training runs (``val_videos.jsonl``,
``labels.jsonl``, ``report.json``, ``report.md``) and what it prints; one table formatter serves
the screen and ``report.md``, so they cannot disagree."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from videofocus.config import Config
from videofocus.data.manifest import read_manifest, write_manifest
from videofocus.experiment.report import format_comparison as format_table
from videofocus.inference.model import load_inference_model
from videofocus.labeling.job import LabelJobOptions, run_label_job
from videofocus.labeling.results import meta_path, read_results
from videofocus.labeling.sharding import ShardSpec

__all__ = [
    "label_validation",
    "report_markdown",
    "reported_split",
    "summary_text",
    "write_report",
    "write_val_manifest",
]

#: What each protocol means, in the words report.md uses.
PROTOCOL_NOTES = {
    "own checkpoint": "a baseline trained for itself (no glimpse policy)",
    "fine-tuned": "the warm-up network trained further on this policy's own glimpses",
    "warm-up network": "the shared warm-up network, used as it is, reading this policy's glimpses",
}

_HOW_TO_READ = """\
## How to read this

- **accuracy** is top-1 on the {split} videos of the synthetic benchmark (chance: one over
  the number of classes). The class is a fine texture readable only at full resolution, so
  `glance_only` (the low-resolution glance of every frame, no glimpse) should stay near chance
  and `dense` (every whole frame at full resolution) is the accuracy to recover.
- **GMACs / video** are multiply-accumulates counted from the glimpses actually taken (glance +
  glimpses + aggregator), so two methods with the same glimpse option cost the same.
- **videos / s** is the evaluation pass end to end, decoding included, on this machine.
- **protocol** says which network read the glimpses:
{protocols}
- **acc. (warm-up net)** reads every method's glimpses with the same warm-up network: the one
  column where all glimpse policies are compared on equal terms. `accuracy` of a fine-tuned row
  also includes what the network learned from its own glimpses.
- **target coverage**: of the frames where the target is visible, the share whose glimpse box
  contains its centre (from the generator's `targets.jsonl`).
- **train s** is the training a row adds on top of the shared stages it reuses.

"""

_QUICK = (
    "This is the quickstart's QUICK protocol, chosen to fit in about a quarter of an hour on 2 "
    "CPU cores: {quick} `videofocus bench policy` runs the full protocol (every glimpse method "
    "fine-tuned on its own glimpses for the same number of epochs, plus the cost-penalised "
    "variant)."
)


def write_val_manifest(cfg: Config, path: Path) -> list[Path]:
    """Write the config's validation rows to ``path`` with absolute video paths (so the manifest
    works from any folder); returns the videos, in order."""
    source = cfg.data.resolve(cfg.data.val_manifest or cfg.data.manifest)
    rows = read_manifest(source, split=cfg.data.val_split)
    rows = [replace(r, path=str(r.resolved_path(source.parent).resolve())) for r in rows]
    if not rows:
        raise ValueError(f"{source}: no validation rows (split {cfg.data.val_split!r})")
    write_manifest(path, rows)
    return [Path(r.path) for r in rows]


def label_validation(
    cfg: Config, out: Path, manifest: Path, checkpoint: Path, progress: bool
) -> str:
    """Label the videos of ``manifest`` into ``out/labels.jsonl`` (rewritten: the checkpoint may
    have been retrained since) with ``checkpoint``'s model; returns one Markdown line saying what
    the job did and how often the top label is right."""
    labels = out / "labels.jsonl"
    labels.unlink(missing_ok=True)
    meta_path(labels).unlink(missing_ok=True)
    model = load_inference_model(checkpoint)
    job = LabelJobOptions(
        batch_size=cfg.train.batch_size,
        num_workers=cfg.data.num_workers,
        glimpses=True,
        progress=progress,
    )
    summary = run_label_job(manifest, model, labels, job=job, shard=ShardSpec(1, 0))
    truth = {r.id: r.labels for r in read_manifest(manifest)}
    ok = [r for r in read_results(labels) if r["status"] == "ok"]
    agree = sum(bool(truth[r["id"]]) and r["label_ids"][0] in truth[r["id"]] for r in ok)
    return (
        f"`labels.jsonl`: {summary.ok} of {summary.inputs} validation videos labelled by "
        f"`{model.method}` ({summary.failed} failed), top-1 label correct on "
        f"{100 * agree / max(1, len(ok)):.1f}%, {summary.videos_per_s:.1f} videos/s."
    )


def reported_split(rows: Sequence[dict[str, Any]]) -> str:
    """The split every row was evaluated on, which the report and its plot name.

    :raises ValueError: for rows of several splits (one table must not mix them).
    """
    splits = {row["split"] for row in rows}
    if len(splits) != 1:
        raise ValueError(f"the report's rows come from {len(splits)} splits: {sorted(splits)}")
    return splits.pop()


def report_markdown(
    rows: Sequence[dict[str, Any]],
    config_name: str,
    quick_protocol: str,
    labels_line: str,
    files: Sequence[Path],
    seconds: float,
) -> str:
    """The text of ``report.md``: ``quick_protocol`` says how each row was obtained,
    ``labels_line`` what the label job did, ``files`` are relative to the output folder."""
    protocols = "\n".join(f"  - *{name}*: {note};" for name, note in PROTOCOL_NOTES.items())
    split = reported_split(rows)
    listing = "\n".join(f"- `{f}`" for f in files)
    return (
        f"# videofocus quickstart\n\nConfig `{config_name}`, {split} split of the synthetic "
        f"benchmark, {seconds:.0f} s in all (training skipped where a finished stage was "
        f"reused).\n\n{format_table(rows)}\n\n"
        f"{_HOW_TO_READ.format(protocols=protocols, split=split)}"
        f"{textwrap.fill(_QUICK.format(quick=quick_protocol), width=96)}\n\n"
        f"## Files\n\n{listing}\n\n{labels_line}\n"
    )


def summary_text(rows: Sequence[dict[str, Any]], files: Sequence[Path], seconds: float) -> str:
    """What the quickstart prints when it is done: the table, the files, the total time."""
    listing = "\n".join(f"  {f}" for f in files)
    return f"{format_table(rows)}\n\nwrote:\n{listing}\nin {seconds:.0f} s"


def write_report(out: Path, rows: Sequence[dict[str, Any]], markdown: str) -> None:
    """Write ``report.json`` (the rows) and ``report.md`` into ``out``."""
    (out / "report.json").write_text(json.dumps(list(rows), indent=2) + "\n", encoding="utf-8")
    (out / "report.md").write_text(markdown, encoding="utf-8")
