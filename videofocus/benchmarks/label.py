"""Labeling throughput: decode-only, dense baseline, adaptive, adaptive under a GMACs budget.

``videofocus bench label --config C --json OUT`` runs, on the same inputs in one process:

- ``decode_only``: the labeling job's decoding (``DataLoader`` workers, same batch) and nothing
  else: the ceiling any model can reach end to end;
- ``dense``: the dense baseline (whole frame at full resolution on every step) through the same
  engine and job;
- ``adaptive``: the learned policy, no early exit (``lambda = 0`` model);
- ``adaptive_budget``: the same with exit thresholds calibrated on the validation rows for
  ``--budget-gmacs`` (default: halfway between every video exiting after its first chunk and
  none exiting early);
- with ``--ray``: ``adaptive_ray`` and ``adaptive_ray_2actors``, the adaptive model on the Ray
  Data engine (embedded local Ray) with 1 and 2 model actors. Their ``videos_per_s`` is the
  steady state (rows after the first batch came back); Ray's start-up until that first batch is
  ``startup_s`` and the whole run ``videos_per_s_end_to_end``.

Each row reports end-to-end ``videos_per_s`` (decoding, the network and writing the JSONL, with
the job's resume machinery) and ``gmacs_per_video``; model rows also report
``model_videos_per_s`` (frames already decoded and on the device) and, on labelled inputs,
``accuracy``. Weights come from ``--run`` (a run folder with ``dense/final`` and
``finetune/final``, default the config's ``train.out_dir``); without them the models run with
random weights (speed only, said loudly). With a synthetic config and no ``--inputs``, the
config's videos are generated and all of them are labelled.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from videofocus.artifacts.factory import build_dense_baseline
from videofocus.config import Config, load_config
from videofocus.data.loaders import ensure_dataset
from videofocus.inference.inferencer import InferenceOptions
from videofocus.inference.model import (
    InferenceModel,
    calibrate_budget,
    load_inference_model,
    record_rollouts,
)
from videofocus.io.atomic_files import write_atomic
from videofocus.labeling.inputs import read_inputs
from videofocus.labeling.job import LabelJobOptions, label_loader, plan_cpu, run_label_job
from videofocus.labeling.ray_engine import RayOptions
from videofocus.labeling.results import meta_path, read_results
from videofocus.labeling.sharding import ShardSpec
from videofocus.policy.heuristics import create_policy
from videofocus.runtime import select_device

NAMES = ("decode_only", "dense", "adaptive", "adaptive_budget")
#: With --ray: (row name, model actors). On a small CPU machine the actors share the cores
#: (half a CPU each for two), so the pair shows what a second actor adds there.
RAY_ROWS = (("adaptive_ray", 1), ("adaptive_ray_2actors", 2))

#: Timed passes per row; the table reports their median.
REPEATS = 3


def _loader(source: str | Path, cfg: Config, job: LabelJobOptions, device: torch.device):
    """The label job's decoding loader, with the job's worker count for this machine."""
    return label_loader(read_inputs(source), cfg.data, job, plan_cpu(job, device)[0])


def decode_only(
    source: str | Path, cfg: Config, job: LabelJobOptions, device: torch.device
) -> dict[str, Any]:
    """Videos/s of the job's decoding alone (same workers as the labeling rows): the median of
    :data:`REPEATS` passes after a warm-up pass (file cache, worker start-up code paths)."""

    def once() -> tuple[int, float]:
        start = time.perf_counter()
        n = sum(len(batch.indices) for batch in _loader(source, cfg, job, device))
        return n, n / (time.perf_counter() - start)

    n, _ = once()
    return {
        "name": "decode_only",
        "videos_per_s": statistics.median(once()[1] for _ in range(REPEATS)),
        "gmacs_per_video": 0.0,
        "videos": n,
    }


def model_only(
    model: InferenceModel,
    source: str | Path,
    options: InferenceOptions,
    job: LabelJobOptions,
    device: torch.device,
) -> float:
    """Videos/s of the network alone: every clip decoded and on the device beforehand."""
    batches = [
        (batch.indices, batch.frames.to(device))
        for batch in _loader(source, model.cfg, job, device)
        if batch.frames is not None
    ]
    inferencer = model.inferencer(options, device)
    list(inferencer.run(batches[:1]))  # warm-up (allocations, kernels)

    def once() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        n = sum(1 for _ in inferencer.run(batches))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return n / (time.perf_counter() - start)

    return statistics.median(once() for _ in range(REPEATS))


def label_row(
    name: str,
    model: InferenceModel,
    source: str | Path,
    options: InferenceOptions,
    job: LabelJobOptions,
    workdir: Path,
    device: torch.device,
) -> dict[str, Any]:
    """End-to-end labeling runs into a fresh file: the median videos/s of :data:`REPEATS`."""
    out = workdir / f"{name}.jsonl"
    speeds, summaries = [], []
    for _ in range(REPEATS):
        for stale in (out, meta_path(out)):
            stale.unlink(missing_ok=True)
        summary = run_label_job(source, model, out, options, job, ShardSpec(1, 0), device)
        speeds.append(summary.videos_per_s)
        summaries.append(summary)
    rows = read_results(out)
    labels = {it.id: it.labels for it in read_inputs(source)}
    scored = [r for r in rows if r["status"] == "ok" and labels.get(r["id"])]
    accuracy = (
        sum(r["label_ids"][0] == labels[r["id"]][0] for r in scored) / len(scored)
        if scored
        else None
    )
    extra: dict[str, Any] = {}
    if job.engine == "ray":  # steady state; the start-up apart (model-only: the adaptive row's)
        steady = [s.ray_videos_per_s for s in summaries if s.ray_videos_per_s is not None]
        extra = {
            "videos_per_s_end_to_end": statistics.median(speeds),
            "startup_s": statistics.median(s.ray_startup_s or 0.0 for s in summaries),
            "actors": job.ray.actors if job.ray else None,
        }
        speeds = steady or speeds
    return {
        "name": name,
        "method": model.method,
        "videos_per_s": statistics.median(speeds),
        "gmacs_per_video": summary.mean_gmacs or 0.0,
        "model_videos_per_s": (
            None if job.engine == "ray" else model_only(model, source, options, job, device)
        ),
        "accuracy": accuracy,
        "videos": summary.ok,
        "failed": summary.failed,
        "thresholds": summary.thresholds,
        **extra,
    }


def _model(run: Path, stage: str, cfg: Config) -> InferenceModel:
    """The trained model of ``run/<stage>/final``, else the same architecture, random weights."""
    final = run / stage / "final"
    if (final / "meta.json").is_file():
        return load_inference_model(final, cfg)
    print(f"WARNING: no {final}; the {stage} row runs with RANDOM weights", file=sys.stderr)
    model = load_inference_model(config=cfg)
    if stage == "dense":  # the dense baseline is its own architecture (one whole-frame option)
        net = build_dense_baseline(cfg, len(model.class_names)).eval().requires_grad_(False)
        policy = create_policy("dense", net.options, net.grid)
        model = replace(model, net=net, policy=policy, method="dense")
    return model


def run_benchmark(
    cfg: Config,
    source: str | Path | None,
    run: Path,
    options: InferenceOptions,
    job: LabelJobOptions,
    budget_gmacs: float | None = None,
    device: str | None = None,
    log=print,
    ray: bool = False,
) -> list[dict[str, Any]]:
    """Every row of the table, in :data:`NAMES` order (then :data:`RAY_ROWS` with ``ray``)."""
    dev = select_device(device or cfg.train.device)
    cores = os.cpu_count() or 1
    if source is None:
        ensure_dataset(cfg.data, workers=cores, progress=job.progress)
        source = cfg.data.resolve(cfg.data.manifest)
    rows: list[dict[str, Any]] = []

    def add(row: dict[str, Any]) -> None:
        rows.append(row)
        log(f"{row['name']}: {row['videos_per_s']:.1f} videos/s")

    decoding = decode_only(source, cfg, job, dev)
    if plan_cpu(job, dev)[0] < cores and dev.type == "cpu":
        ceiling = replace(job, num_workers=cores)
        decoding["videos_per_s_all_cores"] = decode_only(source, cfg, ceiling, dev)["videos_per_s"]
    add(decoding)
    workdir = Path(tempfile.mkdtemp(prefix="vf-bench-label-"))
    add(label_row("dense", _model(run, "dense", cfg), source, options, job, workdir, dev))
    adaptive = _model(run, "finetune", cfg)
    add(label_row("adaptive", adaptive, source, options, job, workdir, dev))
    # Calibrated once beforehand (as `label --budget-gmacs` stores it beside the checkpoint), so
    # the row times labeling, not the one-off calibration pass.
    timer = time.perf_counter()
    rollouts = record_rollouts(adaptive, options)
    floor, ceiling = rollouts.cost_range
    # default: half of the cost above the cheapest possible (everyone exits after one chunk)
    budget = budget_gmacs or floor + 0.5 * (ceiling - floor)
    calibration = calibrate_budget(adaptive, budget, options, save=False, rollouts=rollouts)
    calibration_seconds = time.perf_counter() - timer
    budgeted = replace(options, thresholds=calibration.thresholds)
    row = label_row("adaptive_budget", adaptive, source, budgeted, job, workdir, dev)
    add({**row, "budget_gmacs": budget, "calibration_seconds": calibration_seconds})
    for name, actors in RAY_ROWS if ray else ():
        cpus = 1.0 if actors == 1 else 0.5
        on_ray = replace(job, engine="ray", ray=RayOptions(actors=actors, actor_cpus=cpus))
        add(label_row(name, adaptive, source, options, on_ray, workdir, dev))
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table."""
    lines = [
        "| run | videos / s (end to end; Ray: steady state) | model-only videos / s "
        "| GMACs / video | accuracy | Ray start-up s |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        model, acc, startup = r.get("model_videos_per_s"), r.get("accuracy"), r.get("startup_s")
        lines.append(
            f"| {r['name']} | {r['videos_per_s']:.1f} | "
            f"{'-' if model is None else f'{model:.1f}'} | {r['gmacs_per_video']:.4f} | "
            f"{'-' if acc is None else f'{100 * acc:.1f}%'} | "
            f"{'-' if startup is None else f'{startup:.1f}'} |"
        )
    return "\n".join(lines)


def acceptance(rows: list[dict[str, Any]]) -> list[str]:
    """The CPU targets, as pass/miss lines with the numbers."""
    by = {r["name"]: r for r in rows}
    lines = []
    for name in ("adaptive", "adaptive_budget"):
        speedup = by[name]["videos_per_s"] / by["dense"]["videos_per_s"]
        share = by[name]["videos_per_s"] / by["decode_only"]["videos_per_s"]
        lines.append(
            f"[{'pass' if speedup >= 3 else 'MISS'}] {name}: {speedup:.2f}x the dense "
            f"baseline's videos/s (target >= 3x)"
        )
        lines.append(
            f"[{'pass' if share >= 0.7 else 'MISS'}] {name}: {100 * share:.0f}% of decode-only "
            "throughput with the same decoding workers (target >= 70%)"
        )
        ceiling = by["decode_only"].get("videos_per_s_all_cores")
        if ceiling:
            lines.append(
                f"[info] {name}: {100 * by[name]['videos_per_s'] / ceiling:.0f}% of decoding "
                "on every core (the network's core decoding too)"
            )
    for name, _ in RAY_ROWS:
        if name in by:
            share = by[name]["videos_per_s"] / by["adaptive"]["videos_per_s"]
            lines.append(
                f"[{'pass' if share >= 0.8 else 'MISS'}] {name}: {100 * share:.0f}% of the "
                f"in-process adaptive videos/s in steady state (target >= 80%; Ray's start-up "
                f"{by[name]['startup_s']:.1f} s apart)"
            )
    return lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``videofocus bench label``."""
    parser.add_argument("--config", required=True, help="YAML config, e.g. synthetic_tiny.yaml")
    parser.add_argument("--json", type=Path, metavar="OUT", help="write the rows here")
    parser.add_argument("--inputs", help="manifest, folder or list (default: the config's data)")
    parser.add_argument(
        "--run",
        type=Path,
        help="run folder with dense/final and finetune/final (default: the config's train.out_dir)",
    )
    parser.add_argument(
        "--budget-gmacs",
        type=float,
        help="budget of adaptive_budget (default: halfway between every video exiting after "
        "its first chunk and none exiting early)",
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, help="decoding workers (default: the job's)")
    parser.add_argument("--chunk-steps", type=int, default=2)
    parser.add_argument("--local-batch", type=int, help="default: 64 on the CPU, 512 on a GPU")
    parser.add_argument("--amp", choices=["off", "bf16", "fp16"], default="off")
    parser.add_argument(
        "--channels-last",
        action="store_true",
        help="no effect: the encoders always run channels-last (kept for old command lines)",
    )
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--device", help="cpu, cuda (default: the config's)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument(
        "--ray", action="store_true", help="add the Ray Data engine's rows (1 and 2 actors)"
    )
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")


def run(args: argparse.Namespace) -> int:
    """Measure every row, print the table and the targets, optionally write JSON."""
    cfg = load_config(args.config, args.overrides)
    options = InferenceOptions(
        chunk_steps=args.chunk_steps,
        local_batch=args.local_batch,
        amp=args.amp,
        compile=args.compile,
    )
    job = LabelJobOptions(
        batch_size=args.batch_size, num_workers=args.workers, progress=not args.no_progress
    )
    log = functools.partial(print, file=sys.stderr, flush=True)
    run_dir = args.run or Path(cfg.train.out_dir)
    rows = run_benchmark(
        cfg, args.inputs, run_dir, options, job, args.budget_gmacs, args.device, log, args.ray
    )
    print(
        f"label benchmark: {cfg.name}, {rows[0]['videos']} videos; decoding workers, network "
        f"threads: {plan_cpu(job, torch.device(args.device or 'cpu'))}\n"
    )
    print(format_table(rows), "", *acceptance(rows), sep="\n")
    if args.json is not None:
        write_atomic(args.json, json.dumps(rows, indent=2) + "\n")
    return 0
