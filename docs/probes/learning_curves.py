"""Probe: a stage's validation curve over the seeds of a run folder (did it converge?).

Reads every ``DIR/stages/<stage>-*/<stage>/metrics.jsonl`` of an experiment-runner folder (what
``bench policy`` / ``bench protocol`` / ``ablate`` leave) and prints one Markdown row per epoch
that was validated (1-based): the validation top-1 of each trained copy (named by its config's
``train.seed``) and their mean, one table per schedule (``train.epochs``: the 12-epoch dense
stage and the epoch-matched ``dense_matched`` one do not average).

    python docs/probes/learning_curves.py runs/protocol/memory --stage dense
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import yaml


def curves(run_dir: Path, stage: str) -> dict[tuple[int, str], dict[int, float]]:
    """Per schedule and trained copy (``(epochs, "seed <s>")``, else its folder name): epoch ->
    validation top-1."""
    out: dict[tuple[int, str], dict[int, float]] = {}
    for metrics in sorted(run_dir.glob(f"stages/{stage}-*/{stage}/metrics.jsonl")):
        config = yaml.safe_load((metrics.parent / "config.yaml").read_text(encoding="utf-8"))
        seed = (config.get("train") or {}).get("seed")
        name = f"seed {seed}" if seed is not None else metrics.parent.parent.name
        points = {}
        for line in metrics.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            if "val/top1" in row:
                points[int(row["epoch"])] = float(row["val/top1"])
        key = int((config.get("train") or {}).get("epochs", 0)), name
        if key in out:  # another stage of the same seed (e.g. each learned row's fine-tune)
            key = key[0], f"{name} ({metrics.parent.parent.name})"
        out[key] = points
    return out


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--stage", default="dense", help="stage folder name (default dense)")
    args = parser.parse_args()
    found = curves(args.run_dir, args.stage)
    if not found:
        raise SystemExit(f"{args.run_dir}: no stages/{args.stage}-*/{args.stage}/metrics.jsonl")
    for schedule in sorted({epochs for epochs, _ in found}):
        names = sorted(name for epochs, name in found if epochs == schedule)
        runs = [found[schedule, n] for n in names]
        print(f"\n{args.stage}, {schedule} epochs:\n")
        print(f"| epoch | {' | '.join(names)} | mean |")
        print("| ---: |" + " ---: |" * (len(names) + 1))
        for epoch in sorted({e for points in runs for e in points}):
            values = [points.get(epoch) for points in runs]
            known = [v for v in values if v is not None]
            cells = ["-" if v is None else f"{100 * v:.1f}%" for v in values]
            mean = f"{100 * statistics.mean(known):.1f}%" if known else "-"
            print(f"| {epoch + 1} | {' | '.join(cells)} | {mean} |")


if __name__ == "__main__":
    main()
