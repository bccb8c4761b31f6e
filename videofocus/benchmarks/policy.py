"""Glimpse policies compared: accuracy, GMACs/video, videos/s and target coverage on val.

``videofocus bench policy --config configs/synthetic_tiny.yaml --json OUT [--out-dir DIR]
[KEY=VALUE ...]`` generates the synthetic data when it is absent, builds the table as a grid of
the one experiment runner (:func:`policy_grid`, run by
:func:`~videofocus.experiment.runner.run_grid` in ``DIR``: stages keyed by what they read, so a
stage two rows agree on is trained once, and a rerun reuses every finished stage and result),
evaluates every method on the validation split and prints one table, also written as a JSON
list of ``{"name", "protocol", "accuracy", "gmacs_per_video", "videos_per_s", ...}``; the runner
also leaves ``results.csv``, ``results.md`` and ``tradeoff.png`` in ``DIR``.

Rows:

- ``dense`` / ``glance_only``: the two baselines (every whole frame at full resolution / no
  glimpse at all);
- ``recurrent_ppo``: the three AdaFocus stages (warm-up from the dense encoders, recurrent PPO,
  fine-tune on the policy's glimpses);
- ``ppo``: the same with ``policy.algo=ppo``, and ``recurrent_ppo_lambda``: the same with
  ``policy.cost_lambda = --cost-lambda`` and ``policy.allow_skip=true`` (same dense and warm-up
  stages, no retraining);
- ``random`` / ``centre`` / ``saliency``: the heuristics at the **same glimpse option** as the
  recurrent PPO policy's most used one (same glimpse cost);
- ``recurrent_ppo_exit``: the ``recurrent_ppo`` model and policy with early exit, its per-step
  thresholds calibrated on the **training** rows for a budget of 24% of ``dense``'s GMACs per
  video (a quarter, less a margin for the shift from training to validation videos; see
  :func:`~videofocus.inference.model.calibrate_budget`), then evaluated on the validation
  rows through the batched inference engine (AdaFocus's budgeted inference);
- ``differentiable``: the AdaFocusV2-style policy trained end to end through the bilinear crop
  (:mod:`videofocus.policy.differentiable`) at that same option, evaluated with its continuous
  centres.

How the comparison is kept fair: every adaptive method starts from the same warm-up checkpoint
and then trains for the same number of epochs (``train.finetune_epochs``, else ``train.epochs``)
on *its own* glimpses: the learned policies in their fine-tune stage, each heuristic in a
fine-tune stage of its own (``finetune_<heuristic>_o<option>``: the warm-up model fine-tuned on
that heuristic's glimpses exactly as ``finetune`` is on the policy's), the differentiable policy
in its ``differentiable`` stage. ``accuracy`` is that model's top-1 (protocol ``fine-tuned``).
Because a network also adapts to whichever glimpses it is trained on, each glimpse row also
reports ``accuracy_warmup_net``: the same policy's glimpses read by the one shared warm-up
network (which was trained on random glimpses of every option, so it if anything favours
``random``); for ``differentiable`` that column uses its centres snapped to the grid and
``roi_align`` crops.

``target_coverage`` (glimpse rows): over validation frames where the target is visible (the
synthetic generator's ``targets.jsonl``, at the frame indices the dataset sampled), the fraction
whose glimpse box contains the target box's centre; a skipped frame covers nothing.
``skip_rate`` is the fraction of frames skipped. GMACs are counted multiply-accumulates per video
(glance + the policy's own network, where it has one + glimpses + aggregator: the one
:class:`~videofocus.models.cost.CostTable` of ``flops``, ``eval`` and ``label``);
``videos_per_s`` is end to end with decoding, on this machine.
``train_seconds`` is the training a row adds on top of the shared dense and warm-up stages
(policy + fine-tune for the learned policies).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from videofocus.config import load_config, resolve_config_path
from videofocus.experiment.grid import HEURISTICS, Budget, ExplicitVariant, Grid
from videofocus.experiment.report import comparison_rows, format_comparison
from videofocus.experiment.runner import run_grid

#: Row names, in table order.
NAMES = (
    "dense",
    "glance_only",
    "random",
    "centre",
    "saliency",
    "differentiable",
    "ppo",
    "recurrent_ppo",
    "recurrent_ppo_exit",
    "recurrent_ppo_lambda",
)

#: Budget of the early-exit row, as a fraction of the dense baseline's GMACs per video: a quarter,
#: less a margin for thresholds calibrated on the training rows exiting later on unseen videos.
EXIT_BUDGET = 0.24


def policy_grid(
    config: str | Path, overrides: list[str] | None = None, cost_lambda: float = 0.01
) -> Grid:
    """The benchmark as a grid for :func:`~videofocus.experiment.runner.run_grid`: every row a
    variant, in the order they can run (the heuristics and the differentiable policy take the
    option ``recurrent_ppo`` glimpses with most; the exit budget is a share of ``dense``'s cost).

    :param config: the base config (path or built-in name).
    :param overrides: dotted overrides for every row.
    :param cost_lambda: ``policy.cost_lambda`` of the ``recurrent_ppo_lambda`` row.
    """
    path = resolve_config_path(config)
    lam = (f"policy.cost_lambda={cost_lambda}", "policy.allow_skip=true")
    learned = "recurrent_ppo"
    variants = (
        ExplicitVariant("dense", policy="dense"),
        ExplicitVariant("glance_only", policy="glance_only"),
        ExplicitVariant(learned, policy=learned),
        ExplicitVariant(
            "recurrent_ppo_exit", policy=learned, exits=(Budget(EXIT_BUDGET, "dense"),)
        ),
        *(ExplicitVariant(h, policy=h, option_of=learned) for h in HEURISTICS),
        ExplicitVariant("differentiable", policy="differentiable", option_of=learned),
        ExplicitVariant("ppo", policy="ppo"),
        ExplicitVariant("recurrent_ppo_lambda", overrides=lam, policy=learned),
    )
    return Grid(path, path, tuple(overrides or ()), (), {}, variants, (None,))


def run_benchmark(
    config: str | Path,
    out_dir: str | Path,
    overrides: list[str] | None = None,
    cost_lambda: float = 0.01,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Train (or reuse) every method of the table in ``out_dir`` and evaluate it.

    :param config: the base config (its data is generated when absent).
    :param out_dir: the runner's folder (stages shared by what they read; a rerun reuses them).
    :param overrides: dotted overrides for every row.
    :param cost_lambda: ``policy.cost_lambda`` of the ``recurrent_ppo_lambda`` variant.
    :param progress: show progress bars while training.
    :param log: where progress lines go.
    :returns: the rows, in :data:`NAMES` order.
    """
    grid = policy_grid(config, overrides, cost_lambda)
    rows = comparison_rows(run_grid(grid, out_dir, progress=progress, log=log), NAMES)
    rows[NAMES.index("recurrent_ppo_lambda")]["cost_lambda"] = cost_lambda
    return rows


def acceptance(rows: list[dict[str, Any]]) -> list[str]:
    """The issue's acceptance checks, as lines saying pass or miss with the numbers."""
    by = {r["name"]: r for r in rows}
    rppo, rnd, dense, lam, ex = (
        by["recurrent_ppo"],
        by["random"],
        by["dense"],
        by["recurrent_ppo_lambda"],
        by["recurrent_ppo_exit"],
    )

    def line(ok: bool, text: str) -> str:
        return f"[{'pass' if ok else 'MISS'}] {text}"

    # Accuracies are multiples of 1 / (validation videos): 0.82 - 0.67 is 0.1499999... in floats,
    # and exactly 15 points must pass.
    eps = 1e-9

    gain = rppo["accuracy"] - rnd["accuracy"]
    acc_ratio = rppo["accuracy"] / max(dense["accuracy"], 1e-9)
    cost_ratio = rppo["gmacs_per_video"] / dense["gmacs_per_video"]
    saving = 1 - lam["gmacs_per_video"] / rppo["gmacs_per_video"]
    drop = rppo["accuracy"] - lam["accuracy"]
    return [
        line(
            gain >= 0.15 - eps,
            f"recurrent_ppo - random at option {rppo.get('option')}: {100 * gain:+.1f} points "
            "(need >= +15)",
        ),
        line(
            acc_ratio >= 0.95 - eps and cost_ratio <= 0.25 + eps,
            f"recurrent_ppo: {100 * acc_ratio:.1f}% of dense accuracy (need >= 95%) at "
            f"{100 * cost_ratio:.1f}% of dense GMACs (need <= 25%)",
        ),
        line(
            ex["accuracy"] / dense["accuracy"] >= 0.95 - eps
            and ex["gmacs_per_video"] / dense["gmacs_per_video"] <= 0.25 + eps,
            f"recurrent_ppo + early exit: {100 * ex['accuracy'] / dense['accuracy']:.1f}% of "
            f"dense accuracy at {100 * ex['gmacs_per_video'] / dense['gmacs_per_video']:.1f}% "
            "of dense GMACs (thresholds calibrated on the training rows)",
        ),
        line(
            saving >= 0.30 - eps and drop <= 0.02 + eps,
            f"lambda {lam.get('cost_lambda')} + skip: {100 * saving:.1f}% fewer GMACs than "
            f"lambda 0 (need >= 30%) for {100 * drop:+.1f} points of accuracy lost (need <= 2)",
        ),
    ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``videofocus bench policy``."""
    parser.add_argument("--config", required=True, help="YAML config, e.g. synthetic_tiny.yaml")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT", help="write rows here")
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=None,
        help="run folder (default: the config's train.out_dir); finished stages are reused",
    )
    parser.add_argument(
        "--cost-lambda",
        type=float,
        default=0.01,
        help="policy.cost_lambda of the recurrent_ppo_lambda row (default %(default)s; "
        "docs/benchmarks.md shows what lambda trades on the tiny config)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted config overrides")


def run(args: argparse.Namespace) -> int:
    """Train what is missing, evaluate every method, print the table, optionally write JSON."""
    if args.cost_lambda <= 0:
        print("videofocus bench policy: --cost-lambda must be > 0", file=sys.stderr)
        return 2
    cfg = load_config(args.config, args.overrides)
    out_dir = args.out_dir or Path(cfg.train.out_dir)
    start = time.perf_counter()

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    rows = run_benchmark(
        args.config, out_dir, args.overrides, args.cost_lambda, not args.no_progress, log
    )
    print(
        f"policy benchmark: {cfg.name}, validation split, run folder {out_dir}; "
        f"accuracy is top-1, GMACs are multiply-accumulates per video\n"
    )
    print(format_comparison(rows))
    print()
    print("\n".join(acceptance(rows)))
    print(f"\n{time.perf_counter() - start:.0f} s in all (training skipped where reused)")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0
