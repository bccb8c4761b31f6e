"""What ``videofocus quickstart`` writes and prints: ``report.json``, ``report.md``, the summary.

The rows come from :func:`videofocus.engine.quickstart.run_quickstart`; this module only formats
them, so that the table on screen, in ``report.md`` and in ``report.json`` cannot disagree.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["format_table", "report_markdown", "summary_text", "write_report"]

#: What each protocol means, in the words report.md uses.
PROTOCOL_NOTES = {
    "own checkpoint": "a baseline trained for itself (no glimpse policy)",
    "fine-tuned": "the warm-up network trained further on this policy's own glimpses",
    "warm-up network": "the shared warm-up network, used as it is, reading this policy's glimpses",
}

_HOW_TO_READ = """\
## How to read this

- **accuracy** is top-1 on the validation videos of the synthetic benchmark (chance: one over
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

This is the quickstart's QUICK protocol, chosen to fit in about a quarter of an hour on 2 CPU
cores: {quick}
`videofocus bench policy` runs the full protocol (every glimpse method fine-tuned on its own
glimpses for the same number of epochs, plus the cost-penalised variant).
"""


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """The report rows as a Markdown table."""
    lines = [
        "| method | protocol | option | accuracy | acc. (warm-up net) | GMACs / video "
        "| videos / s | target coverage | train s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['protocol']} | {r.get('option', '-')} | {_pct(r['accuracy'])} | "
            f"{_pct(r.get('accuracy_warmup_net'))} | {r['gmacs_per_video']:.4f} | "
            f"{r['videos_per_s']:.1f} | {_pct(r.get('target_coverage'))} | "
            f"{r.get('train_seconds', 0.0):.0f} |"
        )
    return "\n".join(lines)


def report_markdown(
    rows: Sequence[dict[str, Any]],
    config_name: str,
    quick_protocol: str,
    labels_line: str,
    files: Sequence[Path],
    seconds: float,
) -> str:
    """The text of ``report.md``.

    :param rows: the report rows.
    :param config_name: the config's ``name``.
    :param quick_protocol: one paragraph saying how each row was obtained.
    :param labels_line: what the label job did (see :func:`summary_text`).
    :param files: the files written, relative to the output folder.
    :param seconds: wall time of the whole run.
    """
    protocols = "\n".join(f"  - *{name}*: {note};" for name, note in PROTOCOL_NOTES.items())
    listing = "\n".join(f"- `{f}`" for f in files)
    return (
        f"# videofocus quickstart\n\nConfig `{config_name}`, validation split of the synthetic "
        f"benchmark, {seconds:.0f} s in all (training skipped where a finished stage was "
        f"reused).\n\n{format_table(rows)}\n\n"
        f"{_HOW_TO_READ.format(protocols=protocols, quick=quick_protocol)}\n"
        f"## Files\n\n{listing}\n\n{labels_line}\n"
    )


def summary_text(rows: Sequence[dict[str, Any]], files: Sequence[Path], seconds: float) -> str:
    """What the quickstart prints when it is done: the table, the files, the total time."""
    listing = "\n".join(f"  {f}" for f in files)
    return f"{format_table(rows)}\n\nwrote:\n{listing}\nin {seconds:.0f} s"


def write_report(out: Path, rows: Sequence[dict[str, Any]], markdown: str) -> list[Path]:
    """Write ``report.json`` (the rows) and ``report.md`` into ``out``; returns both paths."""
    json_path, md_path = out / "report.json", out / "report.md"
    json_path.write_text(json.dumps(list(rows), indent=2) + "\n", encoding="utf-8")
    md_path.write_text(markdown, encoding="utf-8")
    return [json_path, md_path]
