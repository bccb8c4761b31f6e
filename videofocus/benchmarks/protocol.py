"""The policy protocol in one resumable command: bench policy on the aiming and the memory
benchmarks, N seeds each, reported on their test splits.

``videofocus bench protocol --out-dir DIR [--seeds 3] [--no-progress] [KEY=VALUE ...]`` runs
:func:`~videofocus.benchmarks.policy.run_benchmark` with seeds 0..N-1 on the aiming benchmark
(``configs/synthetic_tiny.yaml``) in ``DIR/aiming`` and on the memory benchmark
(``configs/synthetic_memory.yaml``) in ``DIR/memory``, writes each one's rows and comparisons to
``DIR/<benchmark>/rows.json`` (``{"rows", "comparisons"}``) and prints its table, paired
comparisons and acceptance lines, then the wall time. Each folder is the experiment runner's: a
rerun trains only what is missing (the runner goes seed by seed, so a run stopped part-way has
whole seeds), and ``--finished-only`` reports what is finished without training anything.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path

from videofocus.benchmarks.policy import (
    add_run_arguments,
    report_results,
    run_benchmark,
    truncation_steps,
)
from videofocus.config import load_config

#: The benchmarks of the protocol: folder name -> built-in config, and whether it is the
#: memory benchmark (its own acceptance line).
BENCHMARKS = {"aiming": ("synthetic_tiny", False), "memory": ("synthetic_memory", True)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``videofocus bench protocol``."""
    parser.add_argument("--out-dir", type=Path, required=True, help="one run folder per benchmark")
    add_run_arguments(parser, seeds=3)


def run(args: argparse.Namespace) -> int:
    """Run (or resume) both benchmarks and print their tables and acceptance lines."""
    if args.seeds < 1 or args.cost_lambda <= 0:
        print("videofocus bench protocol: --seeds must be >= 1, --cost-lambda > 0", file=sys.stderr)
        return 2
    log = functools.partial(print, file=sys.stderr, flush=True)
    start = time.perf_counter()
    for name, (config, memory) in BENCHMARKS.items():
        out = args.out_dir / name
        rows, comparisons = run_benchmark(
            config,
            out,
            args.overrides,
            args.cost_lambda,
            not args.no_progress,
            log,
            args.seeds,
            args.finished_only,
        )
        print(f"## {name} benchmark ({config}, test split, {args.seeds} seed(s)), {out}\n")
        frames = load_config(config, args.overrides).data.frames
        report_results(rows, comparisons, memory, out / "rows.json", truncation_steps(frames))
        print()
    print(f"{time.perf_counter() - start:.0f} s in all (training skipped where reused)")
    return 0
