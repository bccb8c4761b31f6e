"""``videofocus quickstart``: the whole pipeline on built-in data, from nothing to a report.

1. generate the synthetic benchmark (no download, no weights);
2. train the glance-only and dense baselines, then the three AdaFocus stages: warm-up (random
   glimpses; encoders started from the dense baseline), the recurrent PPO policy, and the
   fine-tune on the policy's glimpses;
3. evaluate each on the validation split: accuracy, counted GMACs per video, videos/s;
4. write ``report.json`` (a list of ``{"name", "accuracy", "gmacs_per_video", "videos_per_s"}``)
   and ``report.md`` into the output folder, and print the table.

Later stages (the RL policy, labeling) extend this same job.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from videofocus.config import Config, load_config
from videofocus.engine.data import ensure_dataset
from videofocus.engine.evaluate import evaluate_checkpoint
from videofocus.engine.pipeline import run_stage

#: The tiny config shipped beside the package in a source checkout.
DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "synthetic_tiny.yaml"

#: (report name, training stage), in the order they run; every stage is evaluated with its own
#: glimpses (warm-up: random glimpses; finetune: the learned policy's).
METHODS = (
    ("glance_only", "glance_only"),
    ("dense", "dense"),
    ("random", "warmup"),
    (None, "policy"),
    ("recurrent_ppo", "finetune"),
)


def quickstart_config(config: str | Path | None, out: Path, overrides: list[str]) -> Config:
    """The tiny config with its data and runs redirected under ``out``."""
    path = Path(config) if config else DEFAULT_CONFIG
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: config not found; pass --config configs/synthetic_tiny.yaml from a checkout"
        )
    cfg = load_config(path, overrides)
    return replace(
        cfg,
        data=replace(cfg.data, root=str(out / "data")),
        train=replace(cfg.train, out_dir=str(out / "runs")),
    )


def format_table(rows: list[dict[str, Any]]) -> str:
    """The report rows as a Markdown table."""
    lines = [
        "| method | accuracy (top-1) | GMACs / video | videos / s | train time (s) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {100 * r['accuracy']:.1f}% | {r['gmacs_per_video']:.4f} | "
            f"{r['videos_per_s']:.1f} | {r['train_seconds']:.0f} |"
        )
    return "\n".join(lines)


def run_quickstart(
    out: str | Path,
    config: str | Path | None = None,
    overrides: list[str] | None = None,
    resume: bool = True,
) -> list[dict[str, Any]]:
    """Run the quickstart into ``out`` and return the report rows (also written to disk)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = quickstart_config(config, out, list(overrides or []))
    start = time.perf_counter()
    ensure_dataset(cfg.data, workers=os.cpu_count() or 1)
    rows = []
    for name, stage_name in METHODS:
        result = run_stage(cfg, stage_name, resume=resume)
        if name is None:  # trains the policy; evaluated through the fine-tuned model
            continue
        ev = evaluate_checkpoint(cfg, result.final_dir)
        rows.append(
            {
                "name": name,
                "accuracy": ev["top1"],
                "gmacs_per_video": ev["gmacs_per_video"],
                "videos_per_s": ev["videos_per_s"],
                "train_seconds": result.seconds,
                "checkpoint": str(result.final_dir),
            }
        )
    table = format_table(rows)
    (out / "report.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    (out / "report.md").write_text(
        f"# videofocus quickstart\n\nConfig: `{cfg.name}`; validation split of the synthetic "
        f"benchmark; GMACs are counted multiply-accumulates per video.\n\n{table}\n",
        encoding="utf-8",
    )
    print(table)
    print(
        f"\nwrote {out / 'report.json'} and {out / 'report.md'} "
        f"in {time.perf_counter() - start:.0f} s"
    )
    return rows
