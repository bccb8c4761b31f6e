"""The policy protocol in one resumable command: bench policy on the aiming and the memory
benchmarks, N seeds each, reported on their test splits.

``videofocus bench protocol --out-dir DIR [--seeds 3] [--no-progress] [KEY=VALUE ...]`` runs
:func:`~videofocus.benchmarks.policy.run_benchmark` on the aiming benchmark
(``configs/synthetic_tiny.yaml``) in ``DIR/aiming`` and on the memory benchmark
(``configs/synthetic_memory.yaml``) in ``DIR/memory``, each with seeds 0..N-1 and reported on its
held-out test split, then prints both tables, their paired comparisons and acceptance lines and
the wall time. Each folder is the experiment runner's, so a rerun after an interruption trains
only what is missing; ``DIR/<benchmark>/rows.json`` holds that benchmark's
``{"rows", "comparisons"}``.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

from videofocus.benchmarks.policy import acceptance, run_benchmark
from videofocus.experiment.report import format_comparison, format_comparisons

#: The benchmarks of the protocol: folder name -> built-in config, and whether it is the
#: memory benchmark (its own acceptance line).
BENCHMARKS = {"aiming": ("synthetic_tiny", False), "memory": ("synthetic_memory", True)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``videofocus bench protocol``."""
    parser.add_argument("--out-dir", type=Path, required=True, help="one run folder per benchmark")
    parser.add_argument(
        "--seeds", type=int, default=3, metavar="N", help="seeds 0..N-1 (default 3)"
    )
    parser.add_argument(
        "--cost-lambda", type=float, default=0.01, help="the lambda row's policy.cost_lambda"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="for both benchmarks")


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
            config, out, args.overrides, args.cost_lambda, not args.no_progress, log, args.seeds
        )
        (out / "rows.json").write_text(
            json.dumps({"rows": rows, "comparisons": comparisons}, indent=2) + "\n",
            encoding="utf-8",
        )
        print(f"## {name} benchmark ({config}, test split, {args.seeds} seed(s)), {out}\n")
        print(format_comparison(rows), "", format_comparisons(comparisons), "", sep="\n")
        print(*acceptance(rows, comparisons, memory), "", sep="\n")
    print(f"{time.perf_counter() - start:.0f} s in all (training skipped where reused)")
    return 0
